"""Users, API tokens and page sessions. A token is shown once when issued; the table keeps its
SHA-256, and so does a session's row for the key in its cookie.

SHA-256 without a salt is enough here because tokens and keys are 256 random bits, not passwords.
A token may expire (`expires_at`) and be revoked (its row deleted, its sessions with it); a page
session lives until logout, its own `expires_at`, or the end of the token it signed in with.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from service.db.models import ApiToken, User, WebSession, utcnow

TOKEN_PREFIX = "rlvr_"


@dataclass(frozen=True)
class Credential:
    """Who a token or a session speaks for, and until when (None: no end)."""

    user: User
    token_id: int
    expires_at: datetime | None

    def live(self, now: datetime | None = None) -> bool:
        return self.expires_at is None or (now or utcnow()) < self.expires_at


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_user(session: Session, name: str, *, is_admin: bool = False) -> User:
    user = User(name=name, is_admin=is_admin)
    session.add(user)
    session.flush()
    return user


def issue_token(
    session: Session, user_id: int, label: str = "", expires_at: datetime | None = None
) -> str:
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    session.add(
        ApiToken(user_id=user_id, token_hash=hash_token(token), label=label, expires_at=expires_at)
    )
    session.flush()
    return token


def credential_for_token(session: Session, token: str) -> Credential | None:
    """The token's user, unless the token is unknown, revoked or expired."""
    row = session.execute(
        select(User, ApiToken.id, ApiToken.expires_at)
        .join(ApiToken)
        .where(ApiToken.token_hash == hash_token(token))
    ).first()
    found = row and Credential(*row)
    return found if found and found.live() else None


def user_for_token(session: Session, token: str) -> User | None:
    return (found := credential_for_token(session, token)) and found.user


def ensure_user(session: Session, name: str, *, is_admin: bool = False) -> User:
    """The user called `name`, made if missing."""
    return session.scalar(select(User).where(User.name == name)) or create_user(
        session, name, is_admin=is_admin
    )


def tokens(session: Session, user_id: int) -> list[ApiToken]:
    return list(
        session.scalars(select(ApiToken).where(ApiToken.user_id == user_id).order_by(ApiToken.id))
    )


def revoke_token(session: Session, user_id: int, token_id: int) -> bool:
    """Deletes the user's token and the page sessions it signed in; False if it is not theirs.
    The sessions are deleted here, not left to the foreign key, so it holds whatever the
    database does with ON DELETE."""
    owned = session.scalar(
        select(ApiToken.id).where(ApiToken.id == token_id, ApiToken.user_id == user_id)
    )
    if owned is None:
        return False
    session.execute(delete(WebSession).where(WebSession.token_id == token_id))
    session.execute(delete(ApiToken).where(ApiToken.id == token_id))
    return True


def revoke_all(session: Session, user_id: int) -> int:
    """Revokes every token of the user (and so ends their page sessions); how many there were."""
    ids = [token.id for token in tokens(session, user_id)]
    for token_id in ids:
        revoke_token(session, user_id, token_id)
    return len(ids)


def start_session(session: Session, signed_in_with: Credential, lifetime: timedelta) -> str:
    """A new page session's key (for the cookie); it ends after `lifetime`, or with its token."""
    now, key = utcnow(), secrets.token_urlsafe(32)
    ends = now + lifetime
    if signed_in_with.expires_at is not None:
        ends = min(ends, signed_in_with.expires_at)
    session.execute(
        delete(WebSession).where(
            WebSession.token_id == signed_in_with.token_id, WebSession.expires_at < now
        )
    )  # the token's stale sessions
    session.add(
        WebSession(key_hash=hash_token(key), token_id=signed_in_with.token_id, expires_at=ends)
    )
    return key


def credential_for_session(session: Session, key: str) -> Credential | None:
    """The session's user, unless it ended, or its token was revoked or expired."""
    row = session.execute(
        select(User, ApiToken.id, ApiToken.expires_at, WebSession.expires_at)
        .join(ApiToken, ApiToken.user_id == User.id)
        .join(WebSession, WebSession.token_id == ApiToken.id)
        .where(WebSession.key_hash == hash_token(key))
    ).first()
    if row is None:
        return None
    user, token_id, token_ends, session_ends = row
    ends = session_ends if token_ends is None else min(token_ends, session_ends)
    found = Credential(user, token_id, ends)
    return found if found.live() else None


def end_session(session: Session, key: str) -> None:
    session.execute(delete(WebSession).where(WebSession.key_hash == hash_token(key)))
