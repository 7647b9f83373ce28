"""Operator commands: `flask --app web create-user NAME [--admin] [--expires-days N]` prints a
new API token; `flask --app web revoke-tokens NAME` revokes every token of a user (and so ends
their page sessions)."""

from __future__ import annotations

from datetime import timedelta

import click
from flask import Flask
from sqlalchemy import select

from service.db import User, accounts
from service.db.models import utcnow
from web.context import services


def create_user(name: str, admin: bool, expires_days: float | None = None) -> str:
    expires = utcnow() + timedelta(days=expires_days) if expires_days else None
    with services().db.begin() as s:
        user = accounts.create_user(s, name, is_admin=admin)
        return accounts.issue_token(s, user.id, "cli", expires_at=expires)


def revoke_tokens(name: str) -> int | None:
    """How many tokens the user had; None when there is no such user."""
    with services().db.begin() as s:
        user = s.scalar(select(User).where(User.name == name))
        return None if user is None else accounts.revoke_all(s, user.id)


def register(app: Flask) -> None:
    @app.cli.command("create-user")
    @click.argument("name")
    @click.option("--admin", is_flag=True, help="May see and act on every user's jobs.")
    @click.option(
        "--expires-days",
        type=click.FloatRange(min=0, min_open=True),
        default=None,
        help="The token is refused after this many days (default: never).",
    )
    def _create_user(name: str, admin: bool, expires_days: float | None) -> None:
        """Adds a user and prints their API token (shown only this once)."""
        click.echo(create_user(name, admin, expires_days))

    @app.cli.command("revoke-tokens")
    @click.argument("name")
    def _revoke_tokens(name: str) -> None:
        """Revokes every API token of a user; their page sessions end with them."""
        revoked = revoke_tokens(name)
        if revoked is None:
            raise click.ClickException(f"no user named {name!r}")
        click.echo(f"revoked {revoked} token(s) of {name}")
