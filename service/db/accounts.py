"""Users and API tokens. A token is shown once when issued; the table keeps its SHA-256.

SHA-256 without a salt is enough here because tokens are 256 random bits, not passwords.
"""

from __future__ import annotations

import hashlib
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.db.models import ApiToken, User

TOKEN_PREFIX = "rlvr_"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_user(session: Session, name: str, *, is_admin: bool = False) -> User:
    user = User(name=name, is_admin=is_admin)
    session.add(user)
    session.flush()
    return user


def issue_token(session: Session, user_id: int, label: str = "") -> str:
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    session.add(ApiToken(user_id=user_id, token_hash=hash_token(token), label=label))
    return token


def user_for_token(session: Session, token: str) -> User | None:
    return session.scalar(select(User).join(ApiToken).where(ApiToken.token_hash == hash_token(token)))


def ensure_user(session: Session, name: str, *, is_admin: bool = False) -> User:
    """The user called `name`, made if missing."""
    return session.scalar(select(User).where(User.name == name)) or create_user(session, name, is_admin=is_admin)
