"""The web app's own defences: the signing key, the headers every response carries, cookie
flags, and where a sign-in may send the browser next.

Owns: `signing_key` (the operator's `SECRET_KEY`, else one made on first start and kept in
the data dir), the refusal to serve a network with a key anyone can know, the security
headers, and `safe_next`. Does not own: who a request speaks for (`web.auth`).

The old default key was a fixed string in the source: with it anyone could sign a session
cookie and a CSRF token, and act as any user. A key the process made itself and kept with
mode 0600 is one nobody else has; every process of the machine (gunicorn's workers, the
`flask` commands) reads the same file, so a cookie one signed the others accept.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import secrets
from pathlib import Path
from urllib.parse import urlsplit

from flask import Flask, Response, request
from werkzeug.middleware.proxy_fix import ProxyFix

from service.settings import Settings

log = logging.getLogger(__name__)

KEY_FILE = "secret_key"
MIN_KEY_BYTES = 32
KNOWN_KEYS = frozenset({"dev-only-not-secret", "dev", "secret", "changeme", "change-me"})
"""Keys that were defaults here or are defaults everywhere: as good as none."""

# 'unsafe-inline' styles only: scripts are files under /static (no inline script, no
# handler attribute), so an injected <script> or onclick= does not run.
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",  # frame-ancestors for browsers that predate it
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


def signing_key(settings: Settings) -> str:
    """`SECRET_KEY` when set, else the key kept in the data dir (made now if missing)."""
    return settings.secret_key.get_secret_value() or _kept_key(settings.data_dir / KEY_FILE)


def _kept_key(path: Path) -> str:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        draft = path.with_name(f".{KEY_FILE}.{os.getpid()}.{secrets.token_hex(4)}")
        descriptor = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as out:
            out.write(secrets.token_urlsafe(48))
            out.flush()
            os.fsync(out.fileno())
        try:
            os.link(draft, path)  # a link never replaces: the first process's key wins a race
        except FileExistsError:
            pass
        finally:
            os.unlink(draft)
    if path.stat().st_mode & 0o077:
        log.warning("%s was readable by others; made it 0600", path)
        path.chmod(0o600)
    return path.read_text().strip()


def weak(key: str) -> bool:
    return key in KNOWN_KEYS or len(key.encode()) < MIN_KEY_BYTES


def loopback(bind: str) -> bool:
    """Whether gunicorn's `host:port` (or `unix:path`) is reachable from this machine only.

    >>> [loopback(b) for b in ("127.0.0.1:8000", "localhost:80", "[::1]:8000", "0.0.0.0:8000", "10.0.0.5:80")]
    [True, True, True, False, False]
    """
    if bind.startswith("unix:"):
        return True
    host = bind.rpartition(":")[0].strip("[]") if ":" in bind else bind
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: whatever it resolves to, assume the network


def check_key(key: str, bind: str) -> None:
    """Refuses to serve a network with a key anyone could guess or look up."""
    if not weak(key):
        return
    if not loopback(bind):
        raise RuntimeError(
            f"SECRET_KEY is a known or short key (under {MIN_KEY_BYTES} bytes) and the app would "
            f"listen on {bind}: set a long random SECRET_KEY, or unset it to have one made"
        )
    log.warning("SECRET_KEY is weak; tolerated only because %s is loopback", bind)


def safe_next(target: str | None) -> str | None:
    """`target` if it is a path on this site, else None. Browsers drop tabs and newlines from
    URLs and read a backslash as a slash, so `/%09/evil.example` and `/\\\\evil.example` are
    other sites even though they start with one slash.

    >>> [safe_next(t) for t in ("/jobs/3?x=1", "//evil.example", "/\\t/evil.example", "/\\\\evil", "https://e.x/")]
    ['/jobs/3?x=1', None, None, None, None]
    """
    if not target or any(c.isspace() or not c.isprintable() or c == "\\" for c in target):
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return None
    return target


def _headers(response: Response) -> Response:
    for name, value in HEADERS.items():
        response.headers.setdefault(name, value)
    if request.is_secure:
        response.headers.setdefault("Strict-Transport-Security", "max-age=31536000")
    return response


def register(app: Flask, settings: Settings) -> None:
    """Trusts `RLVR_PROXY_HOPS` proxies' forwarded headers, sets the cookie flags, and adds the
    security headers to every response."""
    if settings.proxy_hops:
        hops = settings.proxy_hops
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops, x_port=hops)
    # Lax: the cookie goes with top-level navigation to the site, not with another site's
    # forms or fetches. Secure is decided per request as well (web.sessions): on HTTPS always.
    app.config.update(
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SECURE=settings.secure_cookies,
    )
    app.after_request(_headers)
