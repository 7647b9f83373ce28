"""Runs the Alembic migrations in `service/migrations/` against a database URL.

`python -m service.db.migrate` upgrades the database the settings name; the demo, `make up`
and the test fixtures call it, so nobody needs to remember the Alembic command line.
"""

from __future__ import annotations

from alembic import command
from alembic.config import Config

from service.settings import PROJECT_ROOT, load_settings


def alembic_config(url: str) -> Config:
    config = Config(str(PROJECT_ROOT / "alembic.ini"))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)


if __name__ == "__main__":
    upgrade(load_settings().database_url)
