"""The JSON API's successful replies: a pydantic model serialised once, with optional headers.
Its own module so that both API blueprints share it without importing each other."""

from __future__ import annotations

from flask import Response
from pydantic import BaseModel


def reply(model: BaseModel, status: int = 200, **headers) -> Response:
    response = Response(model.model_dump_json(), status=status, mimetype="application/json")
    response.headers.update(headers)
    return response
