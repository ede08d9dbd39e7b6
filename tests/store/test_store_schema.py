"""The migrations build exactly the schema the models describe, on each backend."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from tornado_callback.store.database import Database
from tornado_callback.store.models import Base

pytestmark = pytest.mark.gen_test


async def test_migrations_match_models(database_url):
    db = Database(database_url)
    try:
        async with db.engine.connect() as connection:
            diff = await connection.run_sync(
                lambda sync: compare_metadata(MigrationContext.configure(sync), Base.metadata))
    finally:
        await db.close()
    assert diff == []


async def test_sqlite_runs_in_wal_mode(tmp_path):
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}")
    try:
        await db.upgrade()
        async with db.engine.connect() as connection:
            mode = (await connection.exec_driver_sql("PRAGMA journal_mode")).scalar()
    finally:
        await db.close()
    assert mode == "wal"
