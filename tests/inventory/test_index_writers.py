"""The host index has one writer, which has forward_dns resolve every host saved, whichever
way it was saved: a host added through the admin API, changed there, or brought by an
inventory sync calls back from the address its name resolves to (a real dnsmasq) and is
matched within a few seconds, with no restart."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from tests.admin_helpers import call, user_with_token
from tests.conftest import plugins_config_for
from tests.inventory_scripts import InventoryScript
from tests.realservers import dnsmasq

pytestmark = pytest.mark.gen_test(timeout=30)

# What a booting host waits at most, retrying its callback as the stock scripts do.
FEW_SECONDS = 5.0
RECORDS = ["--host-record=web5.example.test,127.0.0.5", "--host-record=db.example.test,127.0.0.6"]


@pytest.fixture
def plugins_config(tmp_path):
    """forward_dns asks a dnsmasq that holds the names above, and nothing else."""
    with dnsmasq(tmp_path, RECORDS) as (port, _):
        yield plugins_config_for(forward_dns={"enabled": True, "nameservers": [f"127.0.0.1:{port}"]})


async def serving(services) -> dict[str, str]:
    """The refresher started as ``serve`` starts it; returns a superuser's Authorization header."""
    services.refresher.start()
    return await user_with_token(services, "root", superuser=True)


async def matched_host(fetch, world, admin, address: str) -> tuple[str, str]:
    """(host, resolver) of the job that a callback from ``address`` is given."""
    deadline = time.monotonic() + FEW_SECONDS
    while True:
        response = await fetch(f"/api/v2/job_templates/{world.template_id}/callback/", method="POST",
                               headers={"Content-Type": "application/json"}, raise_error=False,
                               body=json.dumps({"host_config_key": world.key}), network_interface=address)
        if response.code == 202 or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.1)
    assert response.code == 202, response.body
    status, job = await call(fetch, "GET", f"/api/v2/jobs/{json.loads(response.body)['job']}/", admin)
    assert status == 200, job
    return job["limit"], job["resolved_by"]


async def test_a_host_added_through_the_admin_api_is_matched(fetch, seed, services):
    admin = await serving(services)
    world = await seed({})
    status, body = await call(fetch, "POST", "/api/v2/hosts/", admin,
                              {"name": "web5.example.test", "inventory": world.inventory_id})
    assert status == 201, body
    assert await matched_host(fetch, world, admin, "127.0.0.5") == ("web5.example.test", "forward_dns")


async def test_a_host_changed_through_the_admin_api_is_matched_at_its_new_name(fetch, seed, services):
    admin = await serving(services)
    world = await seed({})
    status, host = await call(fetch, "POST", f"/api/v2/inventories/{world.inventory_id}/hosts/", admin,
                              {"name": "db", "variables": {"ansible_host": "nowhere.example.test"}})
    assert status == 201, host
    status, body = await call(fetch, "PATCH", f"/api/v2/hosts/{host['id']}/", admin,
                              {"variables": {"ansible_host": "db.example.test"}})
    assert status == 200, body
    assert await matched_host(fetch, world, admin, "127.0.0.6") == ("db", "forward_dns")


@pytest.mark.gen_test(timeout=60)  # ansible-inventory runs
async def test_a_host_brought_by_a_sync_is_matched(fetch, seed, services, tmp_path):
    admin = await serving(services)
    world = await seed({})
    script = InventoryScript(tmp_path / "script")
    script.set_hosts({"web5.example.test": {}})
    status, source = await call(fetch, "POST", "/api/v2/inventory_sources/", admin, {
        "name": "cloud", "inventory": world.inventory_id, "source": "script", "source_path": str(script.path)})
    assert status == 201, source
    status, update = await call(fetch, "POST", f"/api/v2/inventory_sources/{source['id']}/update/", admin)
    assert status == 202, update
    while update["status"] in ("pending", "running"):
        await asyncio.sleep(0.1)
        _, update = await call(fetch, "GET", update["url"], admin)
    assert update["status"] == "successful", update
    assert await matched_host(fetch, world, admin, "127.0.0.5") == ("web5.example.test", "forward_dns")
