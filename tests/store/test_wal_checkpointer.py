"""SQLite's write-ahead log is copied back into the database file by a thread of its own
while the server runs, not by the commit of one batch of callbacks (issue 18)."""

from __future__ import annotations

import asyncio
import sqlite3
import time

import pytest
from sqlalchemy import insert, make_url, select

from tornado_callback.store.database import Database
from tornado_callback.store.models import Inventory
from tornado_callback.store.wal_checkpointer import CHECKPOINT_SECONDS

pytestmark = [pytest.mark.gen_test, pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)]


def add_inventory(db, name):
    db.execute(insert(Inventory.__table__).values(name=name, description=""))


def names_in_the_file_itself(path: str) -> set[str]:
    """What the database file holds, leaving out what is still only in its log (-wal)."""
    with sqlite3.connect(f"file:{path}?immutable=1", uri=True) as file:
        return {name for (name,) in file.execute(select(Inventory.__table__.c.name).compile().string)}


async def test_committed_writes_reach_the_database_file_while_it_is_open(database_url):
    path = make_url(database_url).database
    db = Database(database_url)
    try:
        await asyncio.gather(*(db.write(add_inventory, f"logged-{i}") for i in range(5)))
        # A few small writes: SQLite's own checkpoint would wait for 1,000 pages, or the close.
        deadline = time.monotonic() + CHECKPOINT_SECONDS + 10
        while time.monotonic() < deadline and "logged-4" not in names_in_the_file_itself(path):
            await asyncio.sleep(0.05)
        assert {f"logged-{i}" for i in range(5)} <= names_in_the_file_itself(path)
    finally:
        await db.close()
