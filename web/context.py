"""Per-app and per-request handles the views share: the app's `Services` and this request's
read session. A module of its own, so blueprints import it rather than the package that
registers them (`web/__init__.py` imports every blueprint).
"""

from __future__ import annotations

from flask import current_app, g
from sqlalchemy.orm import Session

from service.queues import Services


def services() -> Services:
    return current_app.extensions["rlvr"]


def reader() -> Session:
    """This request's read session (autocommit, so it also sees what the request wrote
    elsewhere), opened on first use and closed when the request ends."""
    if "db" not in g:
        g.db = services().db.read_session()
    return g.db


def close_reader(_exc) -> None:
    if (session := g.pop("db", None)) is not None:
        session.close()
