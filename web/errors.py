"""Errors: under /api every error is JSON `{error, detail}`, never an HTML page or a 500
with a traceback; pages keep Flask's HTML errors."""

from __future__ import annotations

import logging

from flask import Flask, jsonify, request
from pydantic import ValidationError
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)


class ApiError(Exception):
    def __init__(self, status: int, error: str, detail=None, headers: dict | None = None):
        super().__init__(error)
        self.status, self.error, self.detail, self.headers = status, error, detail, headers or {}


def field_errors(exc: ValidationError, prefix: tuple = ()) -> list[dict]:
    """Pydantic errors as `[{field: "spec.requests.0.program", message}]`, one per bad field."""
    return [
        {"field": ".".join(str(part) for part in (*prefix, *e["loc"])) or "body", "message": e["msg"]}
        for e in exc.errors(include_url=False, include_input=False)
    ]


def json_error(status: int, error: str, detail=None, headers=None):
    response = jsonify(error=error, detail=detail)
    response.status_code = status
    response.headers.update(headers or {})
    return response


def register(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError):
        return json_error(exc.status, exc.error, exc.detail, exc.headers)

    @app.errorhandler(ValidationError)
    def _invalid(exc: ValidationError):
        return json_error(400, "invalid request", field_errors(exc))

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException):
        if not request.path.startswith("/api/"):
            return exc
        return json_error(exc.code, exc.name.lower(), exc.description)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        log.exception("unhandled error on %s %s", request.method, request.path)
        if request.path.startswith("/api/"):
            return json_error(500, "internal error", type(exc).__name__)
        return "Internal error", 500
