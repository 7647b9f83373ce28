"""Which jobs a listing shows: the caller's (an admin's: all), narrowed by status, kind, tag
and a search in names. Shared by the API's job list and the jobs page, so both filter alike.
Owns the filters only; ordering, paging and shaping stay with the views."""

from __future__ import annotations

from sqlalchemy import Select, String, cast

from service.db import Job, User
from web.auth import visible_jobs


def _like_escaped(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def filtered(
    user: User,
    status: str | None = None,
    kind: str | None = None,
    tag: str | None = None,
    q: str | None = None,
) -> Select:
    query = visible_jobs(user)
    if status:
        query = query.where(Job.status == status)
    if kind:
        query = query.where(Job.kind == kind)
    if tag:
        # The JSON text of the list holds each tag in quotes on both SQLite and Postgres, and a
        # tag has no quote in it (`web.schemas.Tag`), so `"tag"` matches whole tags only. One
        # statement for both backends; a list of 20 short tags is cheap to scan.
        query = query.where(cast(Job.tags, String).like(f'%"{_like_escaped(tag)}"%', escape="\\"))
    if q:
        query = query.where(Job.name.ilike(f"%{_like_escaped(q)}%", escape="\\"))
    return query
