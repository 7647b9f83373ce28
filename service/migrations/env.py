"""Alembic's entry: migrates the database the service settings name, or the URL a caller
put in the config (`service.db.migrate.upgrade`). Online mode only; the service never needs SQL
scripts."""

from alembic import context

from service.db.models import Base
from service.db.session import make_engine
from service.settings import load_settings

url = context.config.get_main_option("sqlalchemy.url") or load_settings().database_url
engine = make_engine(url)
with engine.connect() as connection:
    context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
engine.dispose()
