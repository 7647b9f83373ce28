"""Who is asking: a bearer token on the API, a signed session cookie on the pages.

Owns: resolving the user and scoping job queries to what that user may see (their own
jobs; an admin sees all). Someone else's job is reported as missing, not forbidden, so
ids leak nothing. API reads also accept the page session, so the pages' scripts use the
API; API writes take a token only. The cookie carries only a session key whose row
(`service.db.accounts`) must still be there: logout, expiry and revoking the token end it.
"""

from __future__ import annotations

import hmac
import threading
import time
from functools import wraps

from flask import g, redirect, request, session, url_for
from sqlalchemy import Select, bindparam, select

from service.db import Job, User, accounts
from web.context import reader, services
from web.errors import ApiError


class _KnownTokens:
    """Token hash -> credential, remembered for a few seconds per process, so a client polling a
    job costs one query per request instead of two. Only hits are kept: an unknown token is
    looked up every time. A hit is checked against its expiry every time; a token revoked
    in another process stays usable here for at most `TTL_SECONDS`."""

    TTL_SECONDS = 10.0

    def __init__(self):
        self._known: dict[str, tuple[float, accounts.Credential]] = {}
        self._lock = threading.Lock()

    def credential(self, token: str) -> accounts.Credential | None:
        key, now = accounts.hash_token(token), time.monotonic()
        with self._lock:
            hit = self._known.get(key)
        if hit and now - hit[0] < self.TTL_SECONDS:
            return hit[1] if hit[1].live() else None
        found = accounts.credential_for_token(reader(), token)
        if found is not None:
            with self._lock:
                if len(self._known) > 10_000:
                    self._known.clear()
                self._known[key] = (now, found)
        return found

    def forget(self, token_id: int) -> None:
        """Drops a revoked token at once in this process."""
        with self._lock:
            self._known = {
                key: hit for key, hit in self._known.items() if hit[1].token_id != token_id
            }


_known = _KnownTokens()


SAFE_METHODS = ("GET", "HEAD")


def api_credential() -> accounts.Credential:
    """The bearer token's credential. A read that carries no token may use the page session
    instead, so the pages' scripts read the same API as every other client; a write never
    may, since the API is exempt from CSRF checks."""
    reads_by_session = "Authorization" not in request.headers and request.method in SAFE_METHODS
    if reads_by_session and (found := session_credential()) is not None:
        return found
    found = bearer_credential()
    if found is None:
        raise ApiError(
            401,
            "unauthorized",
            "send an API token as 'Authorization: Bearer <token>'",
            {"WWW-Authenticate": "Bearer"},
        )
    return found


def bearer_credential() -> accounts.Credential | None:
    """The credential of the request's bearer token; None without one. A token that is unknown,
    revoked or expired is a 401."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        return None
    found = _known.credential(token.strip())
    if found is None:
        raise ApiError(
            401,
            "unauthorized",
            "unknown, expired or revoked API token",
            {"WWW-Authenticate": "Bearer"},
        )
    return found


def sees_every_job(scrape_token: str) -> bool:
    """Whether a caller of an open endpoint (/metrics) may see every user's jobs: it holds the
    operator's scrape token, or an admin's API token or page session. Anything else, a bad
    token included, is an anonymous caller, not an error."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() == "bearer" and token:
        if scrape_token and hmac.compare_digest(token.encode(), scrape_token.encode()):
            return True
        found = _known.credential(token)
    else:
        found = session_credential()
    return found is not None and found.user.is_admin


def forget_token(token_id: int) -> None:
    _known.forget(token_id)


def token_required(view):
    @wraps(view)
    def wrapped(*args, **kwargs):
        g.credential = api_credential()
        g.user = g.credential.user
        return view(*args, **kwargs)

    wrapped.needs_token = True  # web.openapi documents its 401 and the bearer scheme
    return wrapped


def session_credential() -> accounts.Credential | None:
    """Who is signed in to the pages, if anyone: the cookie's key must name a live session."""
    key = session.get("sid")
    if not isinstance(key, str):
        return None
    with services().db.read() as s:
        return accounts.credential_for_session(s, key)


def session_user() -> User | None:
    return (found := session_credential()) and found.user


def login_required(view):
    @wraps(view)
    def wrapped(*args, **kwargs):
        g.user = session_user()
        if g.user is None:
            return redirect(url_for("pages.login", next=request.full_path))
        return view(*args, **kwargs)

    return wrapped


def visible_jobs(user: User) -> Select:
    query = select(Job)
    return query if user.is_admin else query.where(Job.user_id == user.id)


def find_job(s, user: User, job_id: int, *options) -> Job | None:
    return s.scalar(visible_jobs(user).options(*options).where(Job.id == job_id))


_jobs = Job.__table__
_STATUS_COLUMNS = [
    c for c in _jobs.c if c.name not in ("spec", "idempotency_key", "worker", "sent_at")
]
_ROW_BY_ID = select(*_STATUS_COLUMNS).where(_jobs.c.id == bindparam("job_id"))
_OWN_ROW_BY_ID = _ROW_BY_ID.where(_jobs.c.user_id == bindparam("user_id"))


def job_or_404(job_id: int) -> Job:
    """The API caller's job, or a 404 (also for someone else's job)."""
    job = find_job(reader(), g.user, job_id)
    if job is None:
        raise ApiError(404, "not found", f"no job {job_id}")
    return job


def find_job_row(user: User, job_id: int) -> tuple | None:
    """`find_job` as a plain row without the spec (which can be megabytes), through a
    statement compiled once per process and run on the driver's connection: the path a
    polling client hits most, kept free of ORM and `Connection` bookkeeping."""
    if user.is_admin:
        return services().db.prepare(_ROW_BY_ID).one_or_none(job_id=job_id)
    return services().db.prepare(_OWN_ROW_BY_ID).one_or_none(job_id=job_id, user_id=user.id)
