"""Operator commands: `flask --app web create-user NAME [--admin]` prints a new API token."""

from __future__ import annotations

import click
from flask import Flask

from service.db import accounts
from web.context import services


def create_user(name: str, admin: bool) -> str:
    with services().db.begin() as s:
        user = accounts.create_user(s, name, is_admin=admin)
        return accounts.issue_token(s, user.id, "cli")


def register(app: Flask) -> None:
    @app.cli.command("create-user")
    @click.argument("name")
    @click.option("--admin", is_flag=True, help="May see and act on every user's jobs.")
    def _create_user(name: str, admin: bool) -> None:
        """Adds a user and prints their API token (shown only this once)."""
        click.echo(create_user(name, admin))
