"""Inventory sources: syncs by ansible-inventory, update on launch, the update API.

Every sync here runs the real ansible-inventory on a real executable script
(tests/inventory_scripts.py) whose output the test changes.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from typing import Any

import pytest
from sqlalchemy import func, select
from tornado.simple_httpclient import SimpleAsyncHTTPClient

from tests.conftest import PG_ENV, basic_auth
from tests.inventory_scripts import InventoryScript, is_running
from tornado_callback.accounts.service import LOCAL_ADMIN
from tornado_callback.config import PluginsConfig, Settings
from tornado_callback.errors import NotFound
from tornado_callback.plugin.manager import make_plugin_manager
from tornado_callback.services import Services
from tornado_callback.store.models import Group, GroupChild, GroupHost, Host, InventorySource, InventoryUpdate

pytestmark = pytest.mark.gen_test(timeout=30)

CALLBACK = "/api/v2/job_templates/{}/callback/"
NO_MATCH = {"msg": "No matching host could be found!"}


@pytest.fixture
def sync_wait() -> float:
    return 60.0


@pytest.fixture
def settings(database_url: str, plugins_config: PluginsConfig, sync_wait: float) -> Settings:
    return Settings(database_url=database_url, plugins=plugins_config, inventory_sync_wait=sync_wait)


@pytest.fixture
def script(tmp_path) -> InventoryScript:
    return InventoryScript(tmp_path / "script")


async def update_count(services) -> int:
    async with services.db.session() as session:
        return await session.scalar(select(func.count()).select_from(InventoryUpdate))


async def add_source(services, world, script, name="cloud", **options: Any) -> InventorySource:
    options.setdefault("update_on_launch", True)
    options.setdefault("update_cache_timeout", 300)
    created = await services.admin.create("inventory_sources", LOCAL_ADMIN, {
        "inventory": world.inventory_id, "name": name, "source": "script", "source_path": str(script.path),
        **options})
    return await services.inventory_sync.get_source(created["id"])


def callback(fetch, world, address="127.0.0.1", client=None):
    body = json.dumps({"host_config_key": world.key})
    kwargs = dict(method="POST", body=body, headers={"Content-Type": "application/json"},
                  network_interface=address, raise_error=False)
    if client is None:
        return fetch(CALLBACK.format(world.template_id), **kwargs)
    return client.fetch(client.base_url + CALLBACK.format(world.template_id), **kwargs)


async def addresses(services, inventory_id, *values) -> list[str]:
    return [h.name for h in await services.inventories.lookup(inventory_id).find("address", values)]


# -- update on launch ----------------------------------------------------------

async def test_new_host_is_found_by_one_sync_and_the_cache_is_honoured(fetch, seed, services, script):
    world = await seed({})
    await add_source(services, world, script)
    script.set_hosts({"new1": {"ansible_host": "127.0.0.1"}})

    first = await callback(fetch, world)
    assert first.code == 202
    _, jobs = await services.jobs.page(LOCAL_ADMIN)
    assert jobs[0].limit == "new1"
    assert (script.runs, await update_count(services)) == (1, 1)

    # Within the cache timeout an unknown caller does not sync again, even
    # though the script would now list it.
    script.set_hosts({"new1": {"ansible_host": "127.0.0.1"}, "new2": {"ansible_host": "127.0.0.2"}})
    second = await callback(fetch, world, "127.0.0.2")
    assert second.code == 400
    assert json.loads(second.body) == NO_MATCH
    assert (script.runs, await update_count(services)) == (1, 1)


async def test_expired_cache_syncs_again(fetch, seed, services, script):
    world = await seed({})
    await add_source(services, world, script, update_cache_timeout=0)
    assert (await callback(fetch, world, "127.0.0.2")).code == 400
    script.set_hosts({"late": {"ansible_host": "127.0.0.2"}})
    assert (await callback(fetch, world, "127.0.0.2")).code == 202
    assert (script.runs, await update_count(services)) == (2, 2)


async def test_matched_host_and_sources_without_update_on_launch_do_not_sync(fetch, seed, services, script):
    world = await seed({"web1": {"ansible_host": "127.0.0.1"}})
    await add_source(services, world, script)
    await add_source(services, world, script, "manual-only", update_on_launch=False)
    assert (await callback(fetch, world)).code == 202
    assert (await callback(fetch, world, "127.0.0.9")).code == 400  # syncs "cloud" only
    assert (script.runs, await update_count(services)) == (1, 1)


async def test_admin_get_never_syncs(fetch, seed, services, script):
    world = await seed({})
    await add_source(services, world, script)
    await services.accounts.create_user("admin", "pw", superuser=True)
    response = await fetch(CALLBACK.format(world.template_id), headers=basic_auth("admin", "pw"))
    assert response.code == 200
    assert json.loads(response.body)["matching_hosts"] == []
    assert (script.runs, await update_count(services)) == (0, 0)


async def test_twenty_concurrent_callbacks_share_one_sync(seed, services, script, http_server, base_url):
    world = await seed({})
    await add_source(services, world, script)
    hosts = {f"node{i}": {"ansible_host": f"127.0.0.{10 + i}"} for i in range(20)}
    script.set_hosts(hosts)
    client = SimpleAsyncHTTPClient(force_instance=True, max_clients=20)
    client.base_url = base_url
    try:
        responses = await asyncio.gather(*(
            callback(None, world, variables["ansible_host"], client) for variables in hosts.values()
        ))
    finally:
        client.close()
    assert [r.code for r in responses] == [202] * 20
    assert (script.runs, await update_count(services)) == (1, 1)
    _, jobs = await services.jobs.page(LOCAL_ADMIN)
    assert sorted(j.limit for j in jobs) == sorted(hosts)


# Coalescing across processes uses PostgreSQL advisory locks (SQLite runs one process).
@pytest.mark.skipif(not os.environ.get(PG_ENV), reason=f"needs PostgreSQL ({PG_ENV}); CI sets it")
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_two_processes_share_one_sync_through_the_database(seed, services, script, settings):
    world = await seed({})
    await add_source(services, world, script)
    script.set_hosts({"x": {"ansible_host": "10.6.0.1"}})
    # A second Services has its own engine and connections: to the database,
    # a second server process.
    other = await Services.start(settings, make_plugin_manager([], load_entrypoints=False), upgrade=False)
    try:
        refreshed = await asyncio.gather(
            services.inventory_sync.refresh_for_callback(world.inventory_id),
            other.inventory_sync.refresh_for_callback(world.inventory_id),
        )
    finally:
        await other.close()
    assert refreshed == [True, True]
    assert (script.runs, await update_count(services)) == (1, 1)


class TestHangingScript:
    @pytest.fixture
    def sync_wait(self) -> float:
        return 1.0

    async def test_callback_answers_within_the_bound_and_the_loop_keeps_serving(
        self, fetch, seed, services, script
    ):
        world = await seed({})
        await add_source(services, world, script)
        script.set_mode("hang")
        started = time.monotonic()
        pending = asyncio.ensure_future(callback(fetch, world))
        await asyncio.sleep(0.3)
        ping_started = time.monotonic()
        ping = await fetch("/api/v2/ping/")
        ping_elapsed = time.monotonic() - ping_started
        still_waiting = not pending.done()
        response = await pending
        elapsed = time.monotonic() - started

        assert ping.code == 200 and still_waiting
        assert ping_elapsed < 0.5
        assert response.code == 400
        assert json.loads(response.body) == NO_MATCH
        assert 1.0 <= elapsed < 3.0

        # The sync goes on in the background; shutting down kills the script.
        pid = await first_run(script)
        assert is_running(pid)
        assert (await latest_update(services)).status == "running"
        await services.inventory_sync.close()
        assert not is_running(pid)
        assert (await latest_update(services)).status == "canceled"


async def first_run(script: InventoryScript) -> int:
    """The pid of the script's first run, once ansible-inventory (slow to start) got there."""
    for _ in range(100):
        if script.pids():
            return script.pids()[0]
        await asyncio.sleep(0.1)
    raise AssertionError("the inventory script never ran")


async def latest_update(services) -> InventoryUpdate:
    async with services.db.session() as session:
        return await session.scalar(select(InventoryUpdate).order_by(InventoryUpdate.id.desc()))


# -- failed syncs --------------------------------------------------------------

async def test_hanging_script_is_killed_at_the_source_timeout(seed, services, script):
    world = await seed({})
    source = await add_source(services, world, script, timeout=2)
    script.set_mode("hang")
    started = time.monotonic()
    update = await services.inventory_sync.update(source.id)
    assert time.monotonic() - started < 10
    assert update.status == "failed"
    assert update.job_explanation == "ansible-inventory did not finish within 2s and was killed"
    [pid] = script.pids()
    assert not is_running(pid)


@pytest.mark.parametrize("mode, in_output", [
    ("garbage", "JSON"),
    ("fail", "cloud API said: 503 boom"),
])
async def test_bad_script_output_is_recorded_failed_and_no_host_is_lost(
    fetch, seed, services, script, mode, in_output
):
    world = await seed({})
    source = await add_source(services, world, script, overwrite=True, update_cache_timeout=0)
    script.set_hosts({"keep1": {"ansible_host": "10.1.0.1"}, "keep2": {"ansible_host": "10.1.0.2"}})
    assert (await services.inventory_sync.update(source.id)).status == "successful"

    script.set_mode(mode)
    failed = await services.inventory_sync.update(source.id)
    assert failed.status == "failed"
    assert failed.job_explanation == "ansible-inventory exited with status 1"
    assert in_output in failed.result_stdout
    assert failed.finished is not None

    # A callback that needs a sync while the source is broken answers from the store.
    response = await callback(fetch, world, "127.0.0.1")
    assert response.code == 400
    assert json.loads(response.body) == NO_MATCH
    assert (await latest_update(services)).status == "failed"
    assert await addresses(services, world.inventory_id, "10.1.0.1", "10.1.0.2") == ["keep1", "keep2"]
    stored = await services.inventory_sync.get_source(source.id)
    assert stored.last_update_id == (await latest_update(services)).id


# -- what a sync writes --------------------------------------------------------

async def test_sync_writes_groups_variables_and_the_lookup_index(seed, services, script):
    world = await seed({"manual": {"ansible_host": "10.2.0.9"}})
    source = await add_source(services, world, script)
    script.set_hosts({"a": {"ansible_host": "10.2.0.1", "role": "web"}, "b": {}})
    script.set_groups({"all": {"vars": {"dc": "east"}},
                       "web": {"hosts": ["a"], "vars": {"port": 80}, "children": ["canary"]}})
    update = await services.inventory_sync.update(source.id)
    assert (update.status, update.hosts_added, update.hosts_updated, update.hosts_removed) == (
        "successful", 2, 0, 0)
    assert await addresses(services, world.inventory_id, "10.2.0.1") == ["a"]

    # ansible_host moves: the index follows, the old address no longer matches.
    script.set_hosts({"a": {"ansible_host": "10.2.0.2"}, "b": {}})
    update = await services.inventory_sync.update(source.id)
    assert (update.hosts_added, update.hosts_updated, update.hosts_removed) == (0, 1, 0)
    assert await addresses(services, world.inventory_id, "10.2.0.1") == []
    assert await addresses(services, world.inventory_id, "10.2.0.2") == ["a"]

    inventory = await services.admin.get("inventories", LOCAL_ADMIN, world.inventory_id)
    assert json.loads(inventory["variables"]) == {"dc": "east"}
    assert await group_members(services, world.inventory_id) == {
        "canary": ([], []), "provisioned": (["a", "b"], []), "web": (["a"], ["canary"]),
    }


async def group_members(services, inventory_id) -> dict[str, tuple[list[str], list[str]]]:
    async with services.db.session() as session:
        groups = {g.id: g.name for g in await session.scalars(
            select(Group).where(Group.inventory_id == inventory_id))}
        hosts = {h.id: h.name for h in await session.scalars(
            select(Host).where(Host.inventory_id == inventory_id))}
        members = {name: ([], []) for name in groups.values()}
        for row in await session.execute(select(GroupHost).where(GroupHost.group_id.in_(groups))):
            members[groups[row[0].group_id]][0].append(hosts[row[0].host_id])
        for row in await session.execute(select(GroupChild).where(GroupChild.parent_id.in_(groups))):
            members[groups[row[0].parent_id]][1].append(groups[row[0].child_id])
    return {name: (sorted(h), sorted(c)) for name, (h, c) in members.items()}


@pytest.mark.parametrize("overwrite", [False, True])
async def test_overwrite_removes_only_what_the_source_stopped_listing(seed, services, script, overwrite):
    world = await seed({"manual": {"ansible_host": "10.3.0.9"}})
    source = await add_source(services, world, script, overwrite=overwrite)
    script.set_hosts({"a": {"ansible_host": "10.3.0.1"}, "b": {"ansible_host": "10.3.0.2"}})
    script.set_groups({"old": {"hosts": ["a"]}})
    await services.inventory_sync.update(source.id)

    script.set_hosts({"a": {"ansible_host": "10.3.0.1"}})
    script.set_groups({})
    update = await services.inventory_sync.update(source.id)
    assert update.hosts_removed == (1 if overwrite else 0)
    expected = ["a", "manual"] if overwrite else ["a", "b", "manual"]
    assert await addresses(services, world.inventory_id, "10.3.0.1", "10.3.0.2", "10.3.0.9") == expected
    groups = await group_members(services, world.inventory_id)
    assert ("old" in groups) is not overwrite


@pytest.mark.parametrize("overwrite_vars, expected", [
    (False, {"ansible_host": "10.4.0.1", "kept": 1, "new": 2}),
    (True, {"ansible_host": "10.4.0.1", "new": 2}),
])
async def test_overwrite_vars_replaces_instead_of_merging(seed, services, script, overwrite_vars, expected):
    world = await seed({})
    source = await add_source(services, world, script, overwrite_vars=overwrite_vars)
    script.set_hosts({"a": {"ansible_host": "10.4.0.1", "kept": 1}})
    await services.inventory_sync.update(source.id)
    script.set_hosts({"a": {"ansible_host": "10.4.0.1", "new": 2}})
    await services.inventory_sync.update(source.id)
    async with services.db.session() as session:
        stored = await session.scalar(select(Host).where(Host.inventory_id == world.inventory_id))
    assert stored.variables == expected


# -- the HTTP API --------------------------------------------------------------

async def test_update_endpoint_starts_a_sync_and_the_update_can_be_read(fetch, seed, services, script):
    world = await seed({})
    source = await add_source(services, world, script, update_on_launch=False)
    script.set_hosts({"api1": {"ansible_host": "10.5.0.1"}})
    await services.accounts.create_user("root", "pw", superuser=True)
    auth = basic_auth("root", "pw")

    for path in (f"/api/v2/inventory_sources/{source.id}/update/",
                 f"/api/v2/inventory_sources/{source.id}/update"):
        response = await fetch(path, method="POST", body=b"", headers=auth)
        assert response.code == 202
        update_id = json.loads(response.body)["inventory_update"]
        assert response.headers["Location"] == f"/api/v2/inventory_updates/{update_id}/"
        for _ in range(100):
            read = await fetch(f"/api/v2/inventory_updates/{update_id}", headers=auth)
            body = json.loads(read.body)
            if body["status"] in ("successful", "failed"):
                break
            await asyncio.sleep(0.1)
        assert read.code == 200
        assert body["status"] == "successful"
        assert (body["inventory_source"], body["inventory"]) == (source.id, world.inventory_id)
    assert await addresses(services, world.inventory_id, "10.5.0.1") == ["api1"]


async def test_update_endpoint_needs_the_inventory_admin_role(fetch, seed, services, script):
    world = await seed({})
    source = await add_source(services, world, script)
    path = f"/api/v2/inventory_sources/{source.id}/update/"
    await services.accounts.create_user("alice", "pw")
    assert (await fetch(path, method="POST", body=b"")).code == 401
    # Without a role the source does not exist for her; with use she sees it but may not sync it.
    assert (await fetch(path, method="POST", body=b"", headers=basic_auth("alice", "pw"))).code == 404
    await services.accounts.grant("alice", "inventory", world.inventory_id, "use")
    assert (await fetch(path, method="POST", body=b"", headers=basic_auth("alice", "pw"))).code == 403
    await services.accounts.grant("alice", "inventory", world.inventory_id, "admin")
    response = await fetch(path, method="POST", body=b"", headers=basic_auth("alice", "pw"))
    assert response.code == 202
    assert (await fetch("/api/v2/inventory_sources/999/update/", method="POST", body=b"",
                        headers=basic_auth("alice", "pw"))).code == 404
    assert (await fetch("/api/v2/inventory_updates/abc/", headers=basic_auth("alice", "pw"))).code == 404


async def test_source_deleted_during_its_sync_ends_it_quietly(seed, services, script, caplog):
    world = await seed({})
    source = await add_source(services, world, script)
    script.set_hosts({"late": {"ansible_host": "10.6.6.6"}})
    script.set_mode("slow")
    running = asyncio.ensure_future(services.inventory_sync.update(source.id))
    await first_run(script)  # the script answers 2 s from now: the delete lands mid-sync
    async with services.db.session() as session:
        await session.delete(await session.get(InventorySource, source.id))
        await session.commit()
    with pytest.raises(NotFound, match="deleted during its sync"):
        await running

    assert await update_count(services) == 0  # the update went with its source
    assert "Traceback" not in caplog.text and not any(r.exc_info for r in caplog.records)
    lookup = services.inventories.lookup(world.inventory_id)
    assert await lookup.find("address", ["10.6.6.6"]) == []  # nothing of the deleted source stored
