"""Errors: under /api every error is JSON `{error, detail}`, never an HTML page or a 500
with a traceback; pages keep Flask's HTML errors. A database or Redis that cannot be reached
(`service.outages`) is a 503 with Retry-After, on the API and the pages alike."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from flask import Flask, jsonify, request
from pydantic import ValidationError
from werkzeug.exceptions import HTTPException

from rlvr.tasks.base import TASKS
from service.outages import outage

log = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 5
"""What a 503 asks clients to wait: about what a Postgres restart or a Redis failover takes."""


class ApiError(Exception):
    def __init__(self, status: int, error: str, detail=None, headers: dict | None = None):
        super().__init__(error)
        self.status, self.error, self.detail, self.headers = status, error, detail, headers or {}


def field_errors(
    exc: ValidationError, prefix: tuple = (), tagged_by: str | None = None
) -> list[dict]:
    """Pydantic errors as `[{field: "spec.requests.0.program", message}]`, one per bad field.

    For a union tagged by the field `tagged_by` (a job submission by `kind`), pydantic starts
    each location with the tag (`verify.spec...`) and puts a missing or unknown tag at the
    top; clients know the fields by where they are in the body, so the tag is left out and
    the tag's errors name its field.
    """
    errors = []
    for e in exc.errors(include_url=False, include_input=False):
        loc = e["loc"]
        if tagged_by:
            top_tag = not loc and e["type"] in ("union_tag_invalid", "union_tag_not_found")
            loc = (tagged_by,) if top_tag else loc[1:]
        errors.append(
            {
                "field": ".".join(str(part) for part in (*prefix, *_untagged_task(loc))) or "body",
                "message": e["msg"],
            }
        )
    return errors


def _untagged_task(loc: tuple) -> tuple:
    """`loc` without the task's name that pydantic puts after `task` (the spec's task options
    are a union tagged by `name`): a client wrote `task.source`, not `task.gsm8k.source`."""
    for at in range(len(loc) - 2):
        if loc[at] == "task" and loc[at + 1] in TASKS:
            return (*loc[: at + 1], *loc[at + 2 :])
    return loc


def invalid(errors: list[dict]) -> ApiError:
    """The 400 for bad fields: `invalid spec` when all of them lie inside a job's spec, which is
    what a client tells its user to fix (`rlvr submit` prints it), else `invalid request`."""
    in_spec = all(e["field"].startswith("spec.") for e in errors)
    return ApiError(400, "invalid spec" if in_spec else "invalid request", errors)


@contextmanager
def spec_errors() -> Iterator[None]:
    """A spec refused inside (by its kind's model, or by what its user may name) is a 400
    naming each field as `spec.<path>`."""
    try:
        yield
    except ValidationError as exc:
        raise invalid(field_errors(exc, prefix=("spec",))) from None


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
        if (down := outage(exc)) is not None:
            log.warning("%s unreachable on %s %s: %s", down, request.method, request.path, exc)
            retry = {"Retry-After": str(RETRY_AFTER_SECONDS)}
            if request.path.startswith("/api/"):
                return json_error(
                    503, "unavailable", f"the {down} cannot be reached for the moment; retry", retry
                )
            return "Service unavailable for the moment; retry", 503, retry
        log.exception("unhandled error on %s %s", request.method, request.path)
        if request.path.startswith("/api/"):
            return json_error(500, "internal error", type(exc).__name__)
        return "Internal error", 500
