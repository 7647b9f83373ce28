"""Operator commands, run as `flask --app web <command>`:

- `create-user NAME [--admin] [--expires-days N]` adds a user and prints their first API token;
- `tokens NAME` lists a user's tokens (id, label, created, expires; never the tokens themselves);
- `issue-token NAME [--label L] [--expires-days N]` prints another token for the user;
- `revoke-token NAME ID` revokes one token, `revoke-tokens NAME` every token of a user (either
  ends the page sessions signed in with them).

Each goes through service/db/accounts.py, the same functions /api/v1/tokens calls. A mistake
(a name taken or unknown, a token not the user's) is one line on stderr and exit status 1.
Web processes cache known tokens for up to 10 seconds, so a revoked token may be accepted that
much longer there.
"""

from __future__ import annotations

from datetime import timedelta

import click
from flask import Flask
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service.db import User, accounts
from service.db.models import utcnow
from web.context import services

LABEL_MAX = 100  # api_tokens.label's column width
EXPIRES_DAYS = click.option(
    "--expires-days",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="The token is refused after this many days (default: never).",
)


def _expiry(expires_days: float | None):
    return utcnow() + timedelta(days=expires_days) if expires_days else None


def _user(s: Session, name: str) -> User:
    user = s.scalar(select(User).where(User.name == name))
    if user is None:
        raise click.ClickException(f"no user named {name!r}")
    return user


def create_user(name: str, admin: bool, expires_days: float | None = None) -> str:
    taken = click.ClickException(f"a user named {name!r} already exists")
    try:
        with services().db.begin() as s:
            if s.scalar(select(User.id).where(User.name == name)) is not None:
                raise taken
            user = accounts.create_user(s, name, is_admin=admin)
            return accounts.issue_token(s, user.id, "cli", expires_at=_expiry(expires_days))
    except IntegrityError:  # another create-user of the same name won the race
        raise taken from None


def issue_token(name: str, label: str, expires_days: float | None = None) -> str:
    if len(label) > LABEL_MAX:
        raise click.ClickException(f"a label has at most {LABEL_MAX} characters")
    with services().db.begin() as s:
        return accounts.issue_token(s, _user(s, name).id, label, expires_at=_expiry(expires_days))


def token_lines(name: str) -> list[str]:
    with services().db.read() as s:
        rows = accounts.tokens(s, _user(s, name).id)
        return [
            f"{t.id}\t{t.label or '-'}\tcreated {t.created_at:%Y-%m-%d %H:%M}\t"
            + (f"expires {t.expires_at:%Y-%m-%d %H:%M}" if t.expires_at else "never expires")
            for t in rows
        ]


def revoke_token(name: str, token_id: int) -> None:
    with services().db.begin() as s:
        if not accounts.revoke_token(s, _user(s, name).id, token_id):
            raise click.ClickException(f"{name!r} has no token {token_id}")


def revoke_tokens(name: str) -> int:
    """How many tokens the user had."""
    with services().db.begin() as s:
        return accounts.revoke_all(s, _user(s, name).id)


def register(app: Flask) -> None:
    @app.cli.command("create-user")
    @click.argument("name")
    @click.option("--admin", is_flag=True, help="May see and act on every user's jobs.")
    @EXPIRES_DAYS
    def _create_user(name: str, admin: bool, expires_days: float | None) -> None:
        """Adds a user and prints their API token (shown only this once)."""
        click.echo(create_user(name, admin, expires_days))

    @app.cli.command("tokens")
    @click.argument("name")
    def _tokens(name: str) -> None:
        """Lists a user's API tokens: id, label, created, expiry (never the tokens)."""
        for line in token_lines(name):
            click.echo(line)

    @app.cli.command("issue-token")
    @click.argument("name")
    @click.option("--label", default="cli", show_default=True, help="What the token is for.")
    @EXPIRES_DAYS
    def _issue_token(name: str, label: str, expires_days: float | None) -> None:
        """Prints another API token for an existing user (shown only this once)."""
        click.echo(issue_token(name, label, expires_days))

    @app.cli.command("revoke-token")
    @click.argument("name")
    @click.argument("token_id", type=int)
    def _revoke_token(name: str, token_id: int) -> None:
        """Revokes one of a user's API tokens (ids as `tokens NAME` lists them)."""
        revoke_token(name, token_id)
        click.echo(f"revoked token {token_id} of {name}")

    @app.cli.command("revoke-tokens")
    @click.argument("name")
    def _revoke_tokens(name: str) -> None:
        """Revokes every API token of a user; their page sessions end with them."""
        click.echo(f"revoked {revoke_tokens(name)} token(s) of {name}")
