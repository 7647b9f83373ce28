"""The Alembic migrations build exactly the schema the SQLAlchemy models describe."""

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from service.db.models import Base


def test_migrations_match_models(db):
    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


def test_migrated_database_is_at_head(db):
    with db.engine.connect() as conn:
        revision = MigrationContext.configure(conn).get_current_revision()
    assert revision is not None
