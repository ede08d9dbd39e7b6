"""The host index follows the resolvers: rebuilt by ``serve`` when they change, never by others."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select

from tests.conftest import plugins_config_for
from tornado_callback.accounts.service import LOCAL_ADMIN
from tornado_callback.plugin import HostResolver, Settings, hookimpl
from tornado_callback.plugin.manager import make_plugin_manager
from tornado_callback.services import Services
from tornado_callback.store.models import HostKey

pytestmark = pytest.mark.gen_test(timeout=60)


async def addresses(services: Services) -> list[str]:
    async with services.db.session() as session:
        return sorted(await session.scalars(select(HostKey.value).where(HostKey.kind == "address")))


def start(settings: Settings, plugins=(), **kwargs):
    pm = make_plugin_manager(list(plugins), load_entrypoints=False)
    return Services.start(settings, pm, upgrade=False, **kwargs)


async def test_changed_resolver_options_rebuild_the_index_only_when_serving(services, seed, settings):
    world = await seed({"web1": {"ansible_host": "10.0.0.1", "vpc_ip": "10.9.9.9"}})
    assert await addresses(services) == ["10.0.0.1"]
    changed = Settings(database_url=settings.database_url,
                       plugins=plugins_config_for(ip_match={"address_variables": ["vpc_ip"]}))

    worker = await start(changed)  # a worker or a command: leaves the index alone
    try:
        assert await addresses(worker) == ["10.0.0.1"]
    finally:
        await worker.close()

    servers = await asyncio.gather(start(changed, reindex=True), start(changed, reindex=True))
    try:
        assert await addresses(servers[0]) == ["10.0.0.1", "10.9.9.9"]
        lookup = servers[0].inventories.lookup(world.inventory_id)
        assert [h.name for h in await lookup.find("address", ["10.9.9.9"])] == ["web1"]
    finally:
        for server in servers:
            await server.close()


def tagging(version: int):
    """A plugin whose resolver's index rule (not its class, not its options) is at ``version``."""

    class Tagging(HostResolver):
        name = "tagging"
        priority = 10
        index_version = version

        def index_keys(self, host_name, variables):
            yield "tag", f"v{version}:{host_name}"

        async def resolve(self, request, state, hosts):
            return None

    class Plugin:
        @hookimpl
        def tcb_register_resolvers(self, settings):
            return [Tagging()]

    return Plugin()


async def tags(services: Services) -> list[str]:
    async with services.db.session() as session:
        return sorted(await session.scalars(select(HostKey.value).where(HostKey.kind == "tag")))


async def test_a_new_index_version_rebuilds_the_index(settings):
    first = await start(settings, [tagging(1)])
    try:
        inventory = await first.admin.create("inventories", LOCAL_ADMIN, {"name": "inv"})
        await first.admin.create("hosts", LOCAL_ADMIN, {"inventory": inventory["id"], "name": "web1"})
        assert await tags(first) == ["v1:web1"]
    finally:
        await first.close()
    upgraded = await start(settings, [tagging(2)], reindex=True)
    try:
        assert await tags(upgraded) == ["v2:web1"]
    finally:
        await upgraded.close()
