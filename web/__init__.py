"""The Flask app: the JSON API under /api/v1 and the HTML pages.

Owns: HTTP. Views validate at the edge, call `service.db` and `service.queues`, and render;
they know tasks only by name. `create_app()` reads the settings from the environment;
tests pass their own.
"""

from __future__ import annotations

from flask import Flask
from flask_wtf import CSRFProtect

from service.queues import make_services
from service.settings import Settings, load_settings
from web import (
    api,
    cli,
    errors,
    files_api,
    inputs,
    openapi,
    pages,
    scrape,
    security,
    tokens_api,
    training_api,
)
from web.context import close_reader
from web.sessions import SessionCookies


def create_app(settings: Settings | None = None, **config) -> Flask:
    settings = settings or load_settings()
    key = security.signing_key(settings)
    security.check_key(key, settings.web_bind)
    app = Flask(__name__)
    app.session_interface = SessionCookies()
    app.config.update(SECRET_KEY=key, MAX_CONTENT_LENGTH=settings.max_body_bytes, **config)
    security.register(app, settings)
    app.extensions["rlvr"] = make_services(settings)
    app.url_map.converters["int"] = (
        inputs.RowId
    )  # before any route: every int in a path is a row id
    csrf = CSRFProtect(app)
    for blueprint in (api.bp, training_api.bp, files_api.bp, tokens_api.bp):
        csrf.exempt(blueprint)  # API writes take a bearer token only, never a cookie (web.auth)
        app.register_blueprint(blueprint)
    app.register_blueprint(pages.bp)
    app.register_blueprint(scrape.bp)
    openapi.register(app)
    errors.register(app)
    cli.register(app)
    app.teardown_appcontext(close_reader)
    return app
