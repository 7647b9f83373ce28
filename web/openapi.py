"""The OpenAPI document of /api/v1, generated from the routes and the pydantic models their
views validate with, and the Swagger UI page that renders it (/api/docs/).

Owns: `operation`, the decorator that declares a view's tag, replies and errors and hands
the view its query, JSON body and headers, validated with the models its signature names
(`query: JobQuery`, `json: JobSubmission`, `headers: SubmitHeaders`); the document; the page.
What the document says of a request is therefore what the view is given, and `register`
adds the 401 of each view behind `token_required`.

Why spectree: it decorates plain Flask views on their blueprints and speaks pydantic v2, so
nothing else in the app changes. flask-openapi3 and APIFlask replace the Flask app and its
blueprints with classes of their own (and APIFlask's schemas are marshmallow's). spectree's
own request handling is swapped out (`_Requests`): it answers bad input with 422 in its own
format, re-validates each reply the view already built from its model, and buffers every
response, which the streamed model download cannot be.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from flask import Blueprint, Flask, render_template, request, url_for
from pydantic import BaseModel, RootModel, ValidationError
from spectree import Response, SecurityScheme, SecuritySchemeData, SpecTree, Tag
from spectree.plugins.flask_plugin import FlaskPlugin
from spectree.utils import get_request_model_hints
from swagger_ui_bundle import swagger_ui_path

from web import inputs
from web.actions import deep_merge
from web.errors import ApiError, field_errors, invalid
from web.schemas import ErrorOut

TAGS = {
    tag.name: tag
    for tag in (
        Tag(name="jobs", description="Submit, list, follow, cancel and retry jobs of every kind"),
        Tag(
            name="training",
            description="Train, SFT and eval jobs: metrics, rollouts, models, analysis, resume, clone",
        ),
        Tag(name="verify", description="Judge programs now, without a job"),
        Tag(
            name="files",
            description="Data files you upload for the jsonl task, named `file:<id>` in a spec",
        ),
        Tag(name="tokens", description="Your API tokens: list, issue, revoke"),
        Tag(name="monitoring", description="Health, Prometheus metrics and counts"),
        Tag(name="docs", description="This document"),
    )
}

ERRORS = {
    400: "Invalid query, body or header: `detail` lists each bad field as `{field, message}`",
    401: "Missing or unknown token",
    403: "Yours to read but not to change (an admin and another user's job)",
    404: "No such job, file or token (or not yours)",
    409: "Not allowed in the job's current state",
    413: "Body too large, or too many programs",
    429: "Over your quota (queued jobs, or verify calls being judged): retry after `Retry-After` seconds",
    503: "The database or Redis cannot be reached for the moment: retry after `Retry-After` seconds",
}
UNAVAILABLE = 503
TOO_LARGE = 413
INVALID = 400

Reply = type[BaseModel] | str | tuple[type[BaseModel] | str, str]
"""A success reply: a model, or a media type for a body that is not JSON, either with a description."""


class _Requests(FlaskPlugin):
    """spectree's Flask plugin with this API's request handling: the query, body and headers
    are validated here, inside `token_required`, bad ones answered with our 400, and the
    view's reply passes through untouched (its model already shaped it)."""

    def validate(self, func, query, json, form, headers, cookies, *_, **view_args):
        if query is not None:
            view_args["query"] = _parsed(query, request.args.to_dict())
        if json is not None:
            view_args["json"] = _parsed(json, _body(json))
        if headers is not None:
            view_args["headers"] = _parsed(headers, dict(request.headers))
        return func(**view_args)


def _parsed(model: type[BaseModel], data: Any) -> BaseModel:
    if problem := inputs.unstorable(data):
        raise invalid([problem])
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        # A union tagged by `kind` (a job submission) starts each error's location with the tag.
        root = model.model_fields.get("root") if issubclass(model, RootModel) else None
        raise invalid(field_errors(exc, tagged_by=root and root.discriminator)) from None


def _body(model: type[BaseModel]) -> dict:
    """The JSON object in the body; no body at all is `{}` for a model whose fields all have defaults."""
    raw = request.get_data()
    if not raw and _all_optional(model):
        return {}
    try:
        data = inputs.loads(raw) if request.is_json else None
    except ValueError as exc:
        raise ApiError(400, "invalid request", f"the body is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ApiError(400, "invalid request", "the body must be a JSON object")
    return data


class _Replies(Response):
    """An operation's replies. spectree adds a validation-error reply to every operation it
    decorates; this keeps it only where the view validates a query, body or header."""

    def __init__(self, validates: bool, **replies):
        super().__init__(**replies)
        self.validates = validates

    def add_model(
        self, code: int, model, replace: bool = True, description: str | None = None
    ) -> None:
        if code == INVALID and not self.validates:
            return
        super().add_model(code, model, replace, description or ERRORS.get(code))


spec = SpecTree(
    backend=_Requests,
    mode="strict",
    title="rlvr-service",
    version="1",
    description="Reinforcement learning from verifiable rewards as a job service. Send `Authorization: Bearer "
    "<token>`; a GET may instead carry the web pages' session cookie. A JSON body, query or header "
    f"that an operation reads is a 400 naming the field if it nests deeper than {inputs.MAX_DEPTH} "
    "levels, holds a string with NUL or a lone surrogate, or a number that is not finite.",
    validation_error_status=INVALID,
    validation_error_model=ErrorOut,
    # Components are named after their models (spectree's default adds a hash), and a model
    # nested in several bodies (VerifyRequest) is one component.
    naming_strategy=lambda model: model.__name__,
    nested_naming_strategy=lambda _parent, child: child,
    security_schemes=[
        SecurityScheme(name="bearer", data=SecuritySchemeData(type="http", scheme="bearer"))
    ],
)

_PATCHES: dict[str, dict] = {}
"""operationId -> what spectree cannot say of the operation (the media type of a reply that is
not JSON, a body that may be left out), laid over what it generates."""


def operation(
    tag: str,
    replies: dict[int, Reply],
    errors: Iterable[int] = (),
    request_body: dict | None = None,
):
    """Documents a view under `tag` with its success `replies` by status and the `errors` it
    raises (400 comes with any query, body or header its signature names, 413 with a body; 401
    with `token_required`; 503 with every view but this document's, since all of them read the
    database or Redis). `request_body` is the OpenAPI request body of a view that reads a body
    that is not a JSON model (an upload). Its docstring's first paragraph is the summary, the
    rest the description."""

    def decorate(view):
        models, patch = {}, {}
        for status, reply in replies.items():
            body, description = reply if isinstance(reply, tuple) else (reply, None)
            if isinstance(body, str):
                patch.setdefault("responses", {})[str(status)] = {
                    "content": {body: {"schema": {"type": "string"}}}
                }
                body = None
            models[f"HTTP_{status}"] = (body, description) if description else body
        hints = get_request_model_hints(view)
        codes = set(errors)
        if tag != "docs" and UNAVAILABLE not in replies:
            codes.add(UNAVAILABLE)
        if "json" in hints:
            codes.add(TOO_LARGE)  # any body past RLVR_MAX_BODY_BYTES, before the view runs
        models.update({f"HTTP_{code}": (ErrorOut, ERRORS[code]) for code in sorted(codes)})
        if "json" in hints and _all_optional(hints["json"]):
            patch["requestBody"] = {"required": False}
        if request_body is not None:
            patch["requestBody"] = request_body
        _PATCHES[view.__name__] = patch
        return spec.validate(
            resp=_Replies(validates=bool(hints), **models),
            tags=[TAGS[tag]],
            operation_id=view.__name__,
            path_parameter_descriptions={"job_id": "A job's id; someone else's job is a 404"},
        )(view)

    return decorate


def _all_optional(model: type[BaseModel]) -> bool:
    return not any(field.is_required() for field in model.model_fields.values())


def document() -> dict:
    """spectree's document with each operation's patch laid over it, and the bounds of the
    path ids (`web.inputs.RowId`), which spectree cannot read from a rule."""
    return {
        **spec.spec,
        "paths": {
            path: {
                method: _bounded_ids(deep_merge(op, _PATCHES.get(op["operationId"], {})))
                for method, op in operations.items()
            }
            for path, operations in spec.spec["paths"].items()
        },
    }


def _bounded_ids(op: dict) -> dict:
    if "parameters" not in op:
        return op
    return {
        **op,
        "parameters": [
            {**p, "schema": {**p["schema"], "minimum": 1, "maximum": inputs.MAX_ID}}
            if p["in"] == "path" and p["schema"].get("type") == "integer"
            else p
            for p in op["parameters"]
        ],
    }


# Not spectree's offline pages (its `offline` extra): they inline the scripts of three UIs into
# templates at import, some 35 MB in every web process. Only Swagger UI is served, as files.
docs = Blueprint(
    "docs", __name__, url_prefix="/api/docs", static_folder=swagger_ui_path, static_url_path=""
)


@docs.get("/")
def swagger_ui():
    """Swagger UI on the document. Its scripts and styles are served from the
    swagger-ui-bundle-v2 package, so the page needs no CDN."""
    return render_template("swagger.html", openapi_spec_url=url_for("api.openapi"))


def register(app: Flask) -> None:
    """Adds a 401 reply and the bearer scheme to every documented view behind `token_required`,
    and serves the docs page."""
    for view in app.view_functions.values():
        metadata = spec.get_function_metadata(view)
        if metadata is not None and getattr(view, "needs_token", False):
            metadata.resp.add_model(401, ErrorOut)
            metadata.security = {"bearer": []}
    app.register_blueprint(docs)
