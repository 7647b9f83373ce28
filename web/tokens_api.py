"""API tokens under /api/v1/tokens: a user lists their tokens, issues more (each expiring no
later than the token that asked), and revokes any of them, which also ends the page sessions
signed in with it.

Writes need a bearer token (as every API write does), so "the token that asked" is known.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from flask import Blueprint, Response, g, url_for
from pydantic import BaseModel, ConfigDict, Field

from service.db import accounts
from service.db.models import utcnow
from web.auth import forget_token, token_required
from web.context import reader, services
from web.errors import ApiError
from web.openapi import operation
from web.replies import reply

bp = Blueprint("tokens_api", __name__, url_prefix="/api/v1")


class TokenOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    label: str
    created_at: datetime
    expires_at: datetime | None = Field(description="After this the token is refused; null: never.")
    current: bool = Field(
        False, description="The token (or page session's token) this request came with."
    )


class TokenList(BaseModel):
    tokens: list[TokenOut]


class IssuedToken(TokenOut):
    token: str = Field(description="The token itself, shown this once; only its hash is kept.")


class NewToken(BaseModel):
    model_config = ConfigDict(extra="forbid")
    label: str = Field("", max_length=100, description="What the token is for.")
    expires_in_days: float | None = Field(
        None,
        gt=0,
        le=3650,
        description=(
            "Lifetime; null: as long as the token that asks. Never past that token's own expiry."
        ),
    )


@bp.get("/tokens")
@token_required
@operation("tokens", {200: TokenList})
def list_tokens():
    """Your API tokens (never the tokens themselves)"""
    rows = accounts.tokens(reader(), g.user.id)
    return reply(
        TokenList(
            tokens=[
                TokenOut.model_validate(row).model_copy(
                    update={"current": row.id == g.credential.token_id}
                )
                for row in rows
            ]
        )
    )


@bp.post("/tokens")
@token_required
@operation("tokens", {201: IssuedToken})
def issue_token(json: NewToken):
    """Issue another token

    It expires no later than the token that asked, so a stolen token cannot mint one that
    outlives it.
    """
    ceiling = g.credential.expires_at
    expires = utcnow() + timedelta(days=json.expires_in_days) if json.expires_in_days else ceiling
    if ceiling is not None and expires is not None:
        expires = min(expires, ceiling)
    with services().db.begin() as s:
        token = accounts.issue_token(s, g.user.id, json.label, expires_at=expires)
        row = accounts.tokens(s, g.user.id)[-1]
        issued = IssuedToken.model_validate(
            {**TokenOut.model_validate(row).model_dump(), "token": token}
        )
    return reply(issued, 201, Location=url_for("tokens_api.list_tokens"))


@bp.delete("/tokens/<int:token_id>")
@token_required
@operation("tokens", {204: (None, "Revoked")}, errors=[404])
def revoke_token(token_id: int):
    """Revoke one of your tokens

    It is refused from now on (other web processes may accept it for up to 10 more seconds,
    their cache of known tokens), and the page sessions signed in with it end.
    """
    with services().db.begin() as s:
        if not accounts.revoke_token(s, g.user.id, token_id):
            raise ApiError(404, "not found", f"no token {token_id}")
    forget_token(token_id)
    return Response(status=204)
