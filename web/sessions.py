"""The session-cookie interface of the pages, made cheap for API clients."""

from __future__ import annotations

from flask import Flask, Request, request
from flask.sessions import SecureCookieSessionInterface, SessionMixin
from itsdangerous import URLSafeTimedSerializer


class SessionCookies(SecureCookieSessionInterface):
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

    def get_cookie_secure(self, app: Flask) -> bool:
        """Secure when the settings say so, and on any request that came in over HTTPS (behind
        a proxy, as `RLVR_PROXY_HOPS` lets ProxyFix tell), so the cookie never leaves in clear
        after a secure sign-in."""
        return super().get_cookie_secure(app) or request.is_secure

    def get_signing_serializer(self, app: Flask) -> URLSafeTimedSerializer | None:
        keys = (app.secret_key, *(app.config["SECRET_KEY_FALLBACKS"] or ()))
        if keys not in self._serializers:
            self._serializers[keys] = super().get_signing_serializer(app)
        return self._serializers[keys]
