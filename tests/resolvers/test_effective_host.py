"""AWX compares a caller only with a host's effective name: ``ansible_host``, else
``ansible_ssh_host``, else the inventory name. Forward DNS resolves that name, and
reverse-DNS names are compared with it; the other two never match (real dnsmasq)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import plugins_config_for
from tests.realservers import dnsmasq
from tornado_callback.accounts.service import LOCAL_ADMIN
from tornado_callback.config import ConfigError, Settings
from tornado_callback.plugin.manager import build_chain, make_plugin_manager

pytestmark = pytest.mark.gen_test(timeout=20)

CALLBACK = "/api/v2/job_templates/{}/callback/"
NO_MATCH = {"msg": "No matching host could be found!"}
RECORDS = [
    "--host-record=localhost,127.0.0.1",
    "--host-record=foobar,127.0.0.4",
    "--host-record=web5.example.test,127.0.0.5",
]


@pytest.fixture
def plugins_config(tmp_path: Path):
    with dnsmasq(tmp_path, RECORDS) as (port, _):
        dns = {"enabled": True, "nameservers": [f"127.0.0.1:{port}"], "timeout": 1.0}
        yield plugins_config_for(forward_dns=dns, reverse_dns=dns)


async def callback(fetch, services, world, interface):
    """The answer to a POST from ``interface``, and the job's (host, resolver) when one was launched."""
    response = await fetch(CALLBACK.format(world.template_id), method="POST",
                           headers={"Content-Type": "application/json"},
                           body=json.dumps({"host_config_key": world.key}), network_interface=interface)
    if response.code != 202:
        return response.code, json.loads(response.body)
    _, jobs = await services.jobs.page(LOCAL_ADMIN)
    return response.code, (jobs[0].limit, jobs[0].resolved_by)


async def test_ansible_host_outranks_ansible_ssh_host(fetch, seed, services):
    world = await seed({"web": {"ansible_ssh_host": "127.0.0.2", "ansible_host": "127.0.0.3"}})
    assert await callback(fetch, services, world, "127.0.0.2") == (400, NO_MATCH)
    assert await callback(fetch, services, world, "127.0.0.3") == (202, ("web", "ip_match"))


async def test_an_address_as_inventory_name_gives_way_to_ansible_host(fetch, seed, services):
    world = await seed({"127.0.0.7": {"ansible_host": "127.0.0.8"}})
    assert await callback(fetch, services, world, "127.0.0.7") == (400, NO_MATCH)
    assert await callback(fetch, services, world, "127.0.0.8") == (202, ("127.0.0.7", "ip_match"))


async def test_dns_looks_only_at_the_effective_name(fetch, seed, services):
    # localhost resolves to 127.0.0.1 and back: neither forward nor reverse DNS may use it.
    world = await seed({"localhost": {"ansible_host": "foobar"}})
    await services.refresher.refresh()
    assert await callback(fetch, services, world, "127.0.0.1") == (400, NO_MATCH)
    assert await callback(fetch, services, world, "127.0.0.4") == (202, ("localhost", "forward_dns"))


async def test_reverse_dns_names_compare_with_the_effective_name(fetch, seed, services):
    world = await seed({"web5.example.test": {"ansible_host": "127.0.0.9"}})
    assert await callback(fetch, services, world, "127.0.0.5") == (400, NO_MATCH)


async def test_a_variable_that_decides_but_holds_no_text_matches_nothing(fetch, seed, services):
    # AWX takes ansible_host when the variable is there at all: the name is not a fallback.
    world = await seed({"127.0.0.2": {"ansible_host": None}})
    assert await callback(fetch, services, world, "127.0.0.2") == (400, NO_MATCH)


async def test_cloud_address_variables_are_matched_besides(fetch, seed, services):
    world = await seed({
        "i-0abc": {"ansible_host": "10.0.0.1", "private_ip_address": "127.0.0.11"},
        "i-0def": {"public_ip_address": "127.0.0.12"},
    })
    assert await callback(fetch, services, world, "127.0.0.11") == (202, ("i-0abc", "ip_match"))
    assert await callback(fetch, services, world, "127.0.0.12") == (202, ("i-0def", "ip_match"))


@pytest.mark.parametrize("variable", ["ansible_host", "ansible_ssh_host"])
async def test_the_effective_host_variables_are_no_extra_address_variables(variable):
    settings = Settings(plugins=plugins_config_for(
        ip_match={"address_variables": ["private_ip_address", variable]}))
    with pytest.raises(ConfigError, match=f"{variable} is not an extra address variable"):
        build_chain(make_plugin_manager(load_entrypoints=False), settings)
