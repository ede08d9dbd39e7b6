"""Alembic environment. Migrations always run on a connection handed in by
``Database.upgrade`` (async engine, ``run_sync``), so there is one code path."""

from alembic import context

from tornado_callback.store.models import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations with `tornado-callback db upgrade`, not the alembic CLI")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
