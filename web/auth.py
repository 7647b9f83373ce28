"""Who is asking: a bearer token on the API, a signed session cookie on the pages.

Owns: resolving the user and scoping job queries to what that user may see (their own
jobs; an admin sees all). Someone else's job is reported as missing, not forbidden, so
ids leak nothing.
"""

from __future__ import annotations

from functools import wraps

from flask import g, redirect, request, session, url_for
from sqlalchemy import Select, select

from rlvr.db import Job, User, accounts
from web import services
from web.errors import ApiError


def api_user() -> User:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise ApiError(401, "unauthorized", "send an API token as 'Authorization: Bearer <token>'",
                       {"WWW-Authenticate": "Bearer"})
    with services().db.read() as s:
        user = accounts.user_for_token(s, token.strip())
    if user is None:
        raise ApiError(401, "unauthorized", "unknown API token", {"WWW-Authenticate": "Bearer"})
    return user


def token_required(view):
    @wraps(view)
    def wrapped(*args, **kwargs):
        g.user = api_user()
        return view(*args, **kwargs)
    return wrapped


def login_required(view):
    @wraps(view)
    def wrapped(*args, **kwargs):
        user_id = session.get("user_id")
        with services().db.read() as s:
            g.user = s.get(User, user_id) if user_id else None
        if g.user is None:
            return redirect(url_for("pages.login", next=request.full_path))
        return view(*args, **kwargs)
    return wrapped


def visible_jobs(user: User) -> Select:
    query = select(Job)
    return query if user.is_admin else query.where(Job.user_id == user.id)


def find_job(s, user: User, job_id: int) -> Job | None:
    return s.scalar(visible_jobs(user).where(Job.id == job_id))
