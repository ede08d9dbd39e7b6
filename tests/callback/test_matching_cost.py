"""Matching cost does not grow with inventory size: the SQL a callback runs is the same
for 3 hosts and for hundreds, and host lookups go through the host_keys index."""

from __future__ import annotations

import json
import re

import pytest
from sqlalchemy import event

from tests.conftest import plugins_config_for
from tornado_callback.store import queries

# Seeding hundreds of hosts one save at a time takes seconds.
pytestmark = pytest.mark.gen_test(timeout=60)

CALLBACK = "/api/v2/job_templates/{}/callback/"
LARGE = 300


@pytest.fixture
def plugins_config():
    return plugins_config_for(x_forwarded_for={"trusted_proxies": ["127.0.0.1/32"]},
                              cloud_metadata={"trust_unsigned_claims": True})


@pytest.fixture
def statements(services):
    """Every SQL statement the server runs, parameters left out."""
    seen: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany):
        # Savepoint names count up per connection: not a difference in the work.
        statement = re.sub(r"sa_savepoint_\d+", "sa_savepoint_N", statement)
        seen.append(re.sub(r"\s+", " ", statement).strip())

    for engine in services.db.sync_engines:
        event.listen(engine, "before_cursor_execute", record)
    yield seen
    for engine in services.db.sync_engines:
        event.remove(engine, "before_cursor_execute", record)


async def callback_sql(fetch, world, statements):
    statements.clear()
    response = await fetch(CALLBACK.format(world.template_id), method="POST",
                           headers={"Content-Type": "application/json",
                                    "X-Forwarded-For": "10.0.0.99"},
                           body=json.dumps({"host_config_key": world.key, "instance_id": "i-none"}))
    assert response.code == 202, response.body
    return list(statements)


def many_hosts(count):
    hosts = {f"h{i}.example.test": {"ansible_host": f"10.1.{i // 250}.{i % 250}",
                                    "instance_id": f"i-{i:05d}"} for i in range(count)}
    hosts["target"] = {"ansible_host": "10.0.0.99"}
    return hosts


async def test_callback_sql_does_not_depend_on_inventory_size(fetch, seed, statements):
    small = await seed(many_hosts(3), name="small")
    large = await seed(many_hosts(LARGE), name="large")
    small_sql = await callback_sql(fetch, small, statements)
    large_sql = await callback_sql(fetch, large, statements)
    assert small_sql == large_sql
    # Every statement that reads hosts during a callback goes through the index.
    reading_hosts = [s for s in large_sql if s.startswith("SELECT") and " hosts" in s]
    assert reading_hosts and all("JOIN host_keys" in s for s in reading_hosts), reading_hosts


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # EXPLAIN QUERY PLAN is SQLite's
async def test_the_host_lookup_uses_the_index(services, seed):
    world = await seed(many_hosts(LARGE))
    captured = []

    def record(conn, cursor, statement, parameters, context, executemany):
        captured.append((statement, parameters))

    def lookup_plan(db):
        queries.find_hosts_by_keys(db, world.inventory_id, "address", ["10.0.0.99"])
        statement, parameters = captured[-1]
        return [row[-1] for row in db.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, tuple(parameters))]

    for engine in services.db.sync_engines:
        event.listen(engine, "before_cursor_execute", record)
    try:
        details = await services.db.read(lookup_plan)
    finally:
        for engine in services.db.sync_engines:
            event.remove(engine, "before_cursor_execute", record)
    assert any("COVERING INDEX ix_host_keys_lookup" in d for d in details), details
    assert not any(d.startswith("SCAN") for d in details), details
