"""The store's callback path: units of work (Database.read/write), SQLite's group
commit, the short-lived read cache, and what the index does for a fresh import."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from sqlalchemy import event, insert, select, update

from tests.conftest import plugins_config_for
from tornado_callback.accounts.service import LOCAL_ADMIN
from tornado_callback.store.database import Database
from tornado_callback.store.models import Inventory, JobTemplate
from tornado_callback.store.read_cache import READ_CACHE_SECONDS, ReadCache

pytestmark = pytest.mark.gen_test

CALLBACK = "/api/v2/job_templates/{}/callback/"
HOSTS = {f"h{i}": {"ansible_host": f"127.0.0.{10 + i}"} for i in range(4)}


class Refused(Exception):
    pass


def add_inventory(db, name, fail=False):
    db.execute(insert(Inventory.__table__).values(name=name, description=""))
    if fail:
        raise Refused(name)
    return name


def inventory_names(db):
    return set(db.scalars(select(Inventory.__table__.c.name)))


async def test_a_unit_that_raises_undoes_only_its_own_writes(services):
    db = services.db
    # Submitted together, so that on SQLite they share one transaction (group commit).
    outcomes = await asyncio.gather(
        *(db.write(add_inventory, f"inv-{i}", fail=(i == 3)) for i in range(8)),
        return_exceptions=True,
    )
    assert [type(o).__name__ for o in outcomes] == ["str"] * 3 + ["Refused"] + ["str"] * 4
    names = await db.read(inventory_names)
    assert names == {f"inv-{i}" for i in range(8)} - {"inv-3"}


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # the SQLite writer thread
async def test_writes_submitted_in_one_turn_of_the_loop_commit_once(services):
    commits = []

    def committed(connection):
        commits.append(connection)

    async def write_then_linger(i):
        written = services.db.write(add_inventory, f"turn-{i}")
        time.sleep(0.01)  # the rest of the turn takes a while (and lets other threads run)
        return await written

    engines = services.db.sync_engines
    for engine in engines:
        event.listen(engine, "commit", committed)
    try:
        outcomes = await asyncio.gather(*(write_then_linger(i) for i in range(8)))
    finally:
        for engine in engines:
            event.remove(engine, "commit", committed)
    assert outcomes == [f"turn-{i}" for i in range(8)]
    assert len(commits) == 1


async def test_a_unit_reads_what_units_before_it_wrote(services):
    await services.db.write(add_inventory, "first")
    assert "first" in await services.db.read(inventory_names)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # the SQLite worker threads
async def test_closing_commits_the_writes_already_queued(database_url):
    db = Database(database_url)
    pending = [asyncio.ensure_future(db.write(add_inventory, f"queued-{i}")) for i in range(20)]
    await asyncio.sleep(0)  # they are submitted, not finished
    await db.close()
    assert [await p for p in pending] == [f"queued-{i}" for i in range(20)]
    with pytest.raises(RuntimeError, match="closed"):
        await db.write(add_inventory, "too-late")
    reopened = Database(database_url)
    try:
        assert {f"queued-{i}" for i in range(20)} <= await reopened.read(inventory_names)
    finally:
        await reopened.close()


async def test_concurrent_misses_read_once_and_a_local_commit_forgets(services):
    cache: ReadCache[str] = ReadCache(services.db, {"inventories"})
    loads = []

    async def load():
        loads.append(1)
        await asyncio.sleep(0.01)
        return "value"

    assert await asyncio.gather(*(cache.get("k", load) for _ in range(20))) == ["value"] * 20
    assert len(loads) == 1
    assert await cache.get("k", load) == "value" and len(loads) == 1
    await services.admin.create("inventories", LOCAL_ADMIN, {"name": "changed"})  # commits to inventories
    assert await cache.get("k", load) == "value" and len(loads) == 2


async def post(fetch, template_id, key, address):
    return await fetch(CALLBACK.format(template_id), method="POST", raise_error=False,
                       headers={"Content-Type": "application/json", "X-Forwarded-For": address},
                       body=json.dumps({"host_config_key": key}))


@pytest.fixture
def plugins_config():
    return plugins_config_for(x_forwarded_for={"trusted_proxies": ["127.0.0.1/32"]})


async def test_a_key_changed_here_counts_at_once(fetch, seed, services):
    world = await seed(HOSTS)
    assert (await post(fetch, world.template_id, world.key, "127.0.0.10")).code == 202
    await services.admin.update("job_templates", LOCAL_ADMIN, world.template_id, {"host_config_key": "rotated"},
                                partial=True)
    assert (await post(fetch, world.template_id, world.key, "127.0.0.11")).code == 403
    assert (await post(fetch, world.template_id, "rotated", "127.0.0.11")).code == 202


async def test_a_key_changed_by_another_process_counts_within_the_cache_time(fetch, seed, database_url):
    world = await seed(HOSTS)
    assert (await post(fetch, world.template_id, world.key, "127.0.0.10")).code == 202
    other = Database(database_url)  # as the command line or another server would
    try:
        async with other.session() as session:
            await session.execute(update(JobTemplate).where(JobTemplate.id == world.template_id)
                                  .values(host_config_key="rotated"))
            await session.commit()
    finally:
        await other.close()
    await asyncio.sleep(READ_CACHE_SECONDS + 0.2)
    assert (await post(fetch, world.template_id, world.key, "127.0.0.11")).code == 403
    assert (await post(fetch, world.template_id, "rotated", "127.0.0.11")).code == 202


async def test_hosts_saved_into_an_empty_index_are_not_indexed_again(services):
    inventory = await services.admin.create("inventories", LOCAL_ADMIN, {"name": "imported"})
    for name, variables in HOSTS.items():
        await services.admin.create("hosts", LOCAL_ADMIN, {"inventory": inventory["id"], "name": name,
                                                           "variables": variables})
    assert await services.inventories.ensure_index(rebuild=True) == 0
