"""The Flask app: the JSON API under /api/v1 and the HTML pages.

Owns: HTTP. Views validate at the edge, call `service.db` and `service.queues`, and render;
they know tasks only by name. `create_app()` reads the settings from the environment;
tests pass their own.
"""

from __future__ import annotations

from flask import Flask, Request, current_app, g
from flask.sessions import SecureCookieSessionInterface, SessionMixin
from flask_wtf import CSRFProtect
from itsdangerous import URLSafeTimedSerializer
from sqlalchemy.orm import Session

from service.settings import Settings, load_settings
from service.queues import Services, make_services


def create_app(settings: Settings | None = None, **config) -> Flask:
    from web import api, cli, errors, pages, scrape, training_api

    settings = settings or load_settings()
    app = Flask(__name__)
    app.session_interface = _SessionCookies()
    app.config.update(SECRET_KEY=settings.secret_key, MAX_CONTENT_LENGTH=settings.max_body_bytes, **config)
    app.extensions["rlvr"] = make_services(settings)
    csrf = CSRFProtect(app)
    for blueprint in (api.bp, training_api.bp):
        csrf.exempt(blueprint)  # API writes take a bearer token only, never a cookie (web.auth)
        app.register_blueprint(blueprint)
    app.register_blueprint(pages.bp)
    app.register_blueprint(scrape.bp)
    errors.register(app)
    cli.register(app)
    app.teardown_appcontext(_close_reader)
    return app


def services() -> Services:
    return current_app.extensions["rlvr"]


def reader() -> Session:
    """This request's read session (autocommit, so it also sees what the request wrote
    elsewhere), opened on first use and closed when the request ends."""
    if "db" not in g:
        g.db = services().db.read_session()
    return g.db


def _close_reader(_exc) -> None:
    if (session := g.pop("db", None)) is not None:
        session.close()


class _SessionCookies(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions, cheaper for API clients: a request that carries a bearer
    token gets the null session (web.auth never reads the cookie when there is a token), and
    the signing serializer is built once per set of keys instead of on every request (building
    it test-serializes a dict). Together these were a fifth of the cost of a status poll."""

    def __init__(self):
        self._serializers: dict[tuple, URLSafeTimedSerializer | None] = {}

    def open_session(self, app: Flask, request: Request) -> SessionMixin | None:
        if request.headers.get("Authorization", "")[:7].lower() == "bearer ":
            return self.make_null_session(app)
        return super().open_session(app, request)

    def get_signing_serializer(self, app: Flask) -> URLSafeTimedSerializer | None:
        keys = (app.secret_key, *(app.config["SECRET_KEY_FALLBACKS"] or ()))
        if keys not in self._serializers:
            self._serializers[keys] = super().get_signing_serializer(app)
        return self._serializers[keys]
