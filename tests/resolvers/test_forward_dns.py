"""forward_dns: host names resolved in the background (real dnsmasq) into the host index;
a callback only reads the index."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from urllib.parse import urlencode

import pytest

from tests.conftest import basic_auth, plugins_config_for
from tests.inventory_scripts import InventoryScript
from tests.realservers import dnsmasq
from tornado_callback.accounts.service import LOCAL_ADMIN

pytestmark = pytest.mark.gen_test(timeout=20)

CALLBACK = "/api/v2/job_templates/{}/callback/"
RECORDS = [
    "--host-record=web5.example.test,127.0.0.5",
    "--host-record=db.example.test,127.0.0.6",
    "--host-record=other.example.test,127.0.0.8",
]
HOSTS = {
    "web5.example.test": {},
    "db": {"ansible_host": "DB.example.test."},
    "web7": {"ansible_host": "127.0.0.7"},
    "gone.example.test": {},  # NXDOMAIN: no resolved address
}


@pytest.fixture
def authoritative() -> bool:
    """False: a dnsmasq without upstream, which refuses the AAAA query of an A-only name."""
    return True


@pytest.fixture
def dns_server(tmp_path: Path, authoritative: bool):
    with dnsmasq(tmp_path, RECORDS, authoritative=authoritative) as server:
        yield server


@pytest.fixture
def plugins_config(dns_server):
    return plugins_config_for(forward_dns={
        "enabled": True, "nameservers": [f"127.0.0.1:{dns_server[0]}"], "timeout": 1.0})


async def matching(fetch, world, address):
    response = await fetch(f"{CALLBACK.format(world.template_id)}?{urlencode({'address': address})}",
                           headers=basic_auth("admin", "pw"))
    assert response.code == 200, response.body
    return json.loads(response.body)["matching_hosts"]


async def eventually(fetch, world, address, expected):
    for _ in range(100):
        if await matching(fetch, world, address) == expected:
            return
        await asyncio.sleep(0.05)
    assert await matching(fetch, world, address) == expected


async def test_names_are_resolved_in_the_background_and_matched(fetch, seed, services):
    await services.accounts.create_user("admin", "pw", superuser=True)
    services.refresher.start()
    world = await seed(HOSTS)
    await eventually(fetch, world, "127.0.0.5", ["web5.example.test"])
    await eventually(fetch, world, "127.0.0.6", ["db"])
    response = await fetch(CALLBACK.format(world.template_id), method="POST",
                           headers={"Content-Type": "application/json"},
                           body=json.dumps({"host_config_key": world.key}),
                           network_interface="127.0.0.5")
    assert response.code == 202, response.body
    _, jobs = await services.jobs.page(LOCAL_ADMIN)
    assert (jobs[0].limit, jobs[0].resolved_by) == ("web5.example.test", "forward_dns")


async def test_a_changed_host_is_resolved_again(fetch, seed, services):
    await services.accounts.create_user("admin", "pw", superuser=True)
    services.refresher.start()
    world = await seed(HOSTS)
    await eventually(fetch, world, "127.0.0.6", ["db"])
    await services.admin.update("hosts", LOCAL_ADMIN, world.hosts["db"],
                                {"variables": {"ansible_host": "other.example.test"}}, partial=True)
    await eventually(fetch, world, "127.0.0.8", ["db"])
    assert await matching(fetch, world, "127.0.0.6") == []


async def test_no_dns_on_the_request_path(fetch, seed, services, dns_server):
    await services.accounts.create_user("admin", "pw", superuser=True)
    world = await seed(HOSTS)
    assert await services.refresher.refresh() == len(HOSTS)
    process = dns_server[1]
    process.terminate()
    process.wait()
    # DNS is gone: callbacks still match from the index ...
    assert await matching(fetch, world, "127.0.0.5") == ["web5.example.test"]
    # ... and a refresh that cannot reach DNS keeps what the index had.
    await services.refresher.refresh()
    assert await matching(fetch, world, "127.0.0.5") == ["web5.example.test"]


@pytest.mark.parametrize("authoritative", [False])
async def test_a_server_refusing_aaaa_queries_still_resolves_names(fetch, seed, services):
    await services.accounts.create_user("admin", "pw", superuser=True)
    world = await seed(HOSTS)
    await services.refresher.refresh()
    assert await matching(fetch, world, "127.0.0.5") == ["web5.example.test"]
    assert await matching(fetch, world, "127.0.0.6") == ["db"]


@pytest.mark.gen_test(timeout=60)  # ansible-inventory runs
async def test_a_host_synced_on_launch_is_matched_by_the_callback_that_synced_it(fetch, seed, services, tmp_path):
    services.refresher.start()
    world = await seed({})
    script = InventoryScript(tmp_path / "script")
    script.set_hosts({"web5.example.test": {}})
    await services.admin.create("inventory_sources", LOCAL_ADMIN, {
        "name": "cloud", "inventory": world.inventory_id, "source": "script", "source_path": str(script.path),
        "update_on_launch": True, "update_cache_timeout": 300})
    response = await fetch(CALLBACK.format(world.template_id), method="POST",
                           headers={"Content-Type": "application/json"},
                           body=json.dumps({"host_config_key": world.key}), network_interface="127.0.0.5")
    assert response.code == 202, response.body
    _, jobs = await services.jobs.page(LOCAL_ADMIN)
    assert (jobs[0].limit, jobs[0].resolved_by) == ("web5.example.test", "forward_dns")
