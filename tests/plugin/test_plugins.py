"""The tcb_register_resolvers hook and the chain it feeds, with tiny test plugins."""

from __future__ import annotations

import asyncio
import json

import pytest

from tests.conftest import plugins_config_for
from tornado_callback.plugin import ConfigError, HostResolver, ResolverResult, Settings, hookimpl
from tornado_callback.plugin.manager import BUILTIN_PLUGINS, build_chain, make_plugin_manager

CALLBACK = "/api/v2/job_templates/{}/callback/"


class Named(HostResolver):
    def __init__(self, name, priority, behaviour):
        self.name, self.priority, self.behaviour = name, priority, behaviour

    async def resolve(self, request, state, hosts):
        return await self.behaviour(hosts)


class Provides:
    """A plugin whose tcb_register_resolvers returns the given resolvers."""

    def __init__(self, *resolvers):
        self.resolvers = list(resolvers)

    @hookimpl
    def tcb_register_resolvers(self, settings):
        return self.resolvers


async def crash(hosts):
    raise RuntimeError("plugin bug")


async def hang(hosts):
    await asyncio.sleep(30)


async def wrong_type(hosts):
    return ["web1"]


async def web1_by_name(hosts):
    return ResolverResult(hosts=await hosts.find("address", ["10.0.0.1"]), evidence=["found it"])


@pytest.fixture
def test_plugins():
    return [Provides(Named("crashes", 900, crash), Named("hangs", 800, hang),
                     Named("confused", 700, wrong_type), Named("finds_web1", 150, web1_by_name))]


@pytest.fixture
def plugins_config():
    return plugins_config_for(hangs={"timeout": 0.2})


@pytest.mark.gen_test
async def test_failing_resolvers_become_trace_entries_and_the_next_one_decides(fetch, seed, services):
    world = await seed({"web1": {"ansible_host": "10.0.0.1"}})
    response = await fetch(CALLBACK.format(world.template_id), method="POST",
                           headers={"Content-Type": "application/json"},
                           body=json.dumps({"host_config_key": world.key}))
    assert response.code == 202, response.body
    _, attempts = await services.attempts.page(world.template_id)
    trace = [(e["resolver"], e["outcome"], e["evidence"]) for e in attempts[0].trace]
    assert trace == [
        ("crashes", "error", ["RuntimeError: plugin bug"]),
        ("hangs", "timeout", ["no answer within 0.2s"]),
        ("confused", "error", ["returned list, not a ResolverResult"]),
        ("cloud_metadata", "skipped", []),
        ("x_forwarded_for", "skipped", []),
        ("ip_match", "no_match", ["client address 127.0.0.1", "no host has this address"]),
        ("finds_web1", "matched", ["found it"]),
    ]


async def nothing(hosts):
    return None


def chain_names(plugins, **tables):
    settings = Settings(plugins=plugins_config_for(**tables))
    chain = build_chain(make_plugin_manager(plugins, load_entrypoints=False), settings)
    return [(r.name, r.priority) for r in chain.resolvers]


def test_plugins_toml_ranks_and_disables():
    plugin = Provides(Named("mine", 10, nothing))
    assert chain_names([plugin]) == [("cloud_metadata", 400), ("x_forwarded_for", 300),
                                     ("ip_match", 200), ("mine", 10)]
    assert chain_names([plugin], mine={"priority": 250}, ip_match={"enabled": False}) == [
        ("cloud_metadata", 400), ("x_forwarded_for", 300), ("mine", 250)]


def test_builtins_are_plugins_like_any_other():
    pm = make_plugin_manager(load_entrypoints=False)
    assert set(BUILTIN_PLUGINS) <= {pm.get_name(p) for p in pm.get_plugins()}


@pytest.mark.parametrize("plugin, message", [
    (Provides(Named("ip_match", 1, nothing)), "resolver name 'ip_match' is provided twice"),
    (Provides("not a resolver"), "not a HostResolver"),
])
def test_unusable_registrations_refuse_to_start(plugin, message):
    with pytest.raises(ConfigError, match=message):
        chain_names([plugin])


def test_a_configured_but_missing_resolver_refuses_to_start():
    with pytest.raises(ConfigError, match="not installed: nowhere"):
        chain_names([], nowhere={"priority": 5})
