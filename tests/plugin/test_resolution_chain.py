"""The resolver chain's rules, seen through the admin GET with tiny test plugins."""

from __future__ import annotations

import asyncio
import json

import pytest

from tests.conftest import basic_auth, plugins_config_for, trace_entry
from tornado_callback.plugin import HostResolver, ResolverResult, hookimpl

pytestmark = pytest.mark.gen_test


class NamedHosts(HostResolver):
    """Matches the hosts listed, by name index (every host is indexed under its name)."""

    def __init__(self, name, priority, hosts=(), *, delay=0.0, fail=False, decisive=False):
        self.name, self.priority = name, priority
        self.hosts, self.delay, self.fail, self.decisive = hosts, delay, fail, decisive

    def index_keys(self, host_name, variables):
        yield "test_name", host_name

    async def resolve(self, request, state, hosts):
        await asyncio.sleep(self.delay)
        if self.fail:
            raise RuntimeError("resolver bug")
        found = await hosts.find("test_name", self.hosts)
        return ResolverResult(hosts=found, evidence=[f"{self.name} looked"], decisive=self.decisive)


class Plugin:
    def __init__(self, *resolvers):
        self.resolvers = list(resolvers)

    @hookimpl
    def tcb_register_resolvers(self, settings):
        return self.resolvers


HOSTS = {"a": {"ansible_host": "10.0.0.1"}, "b": {"ansible_host": "10.0.0.1"}, "c": {}}


@pytest.fixture
def admin(io_loop, services):
    io_loop.run_sync(lambda: services.accounts.create_user("root", "pw", superuser=True))
    return basic_auth("root", "pw")


async def explain(fetch, world, admin, address="127.0.0.1"):
    response = await fetch(f"/api/v2/job_templates/{world.template_id}/callback/?address={address}",
                           headers=admin)
    assert response.code == 200, response.body
    return json.loads(response.body)


def trace(body):
    """The entries that looked at something (built-ins with nothing to look at say "skipped")."""
    return [(e["resolver"], e["outcome"], e["hosts"]) for e in body["resolution"]
            if e["outcome"] != "skipped"]


class TestFirstUniqueMatchDecides:
    @pytest.fixture
    def test_plugins(self):
        return [Plugin(NamedHosts("high", 900, ["c"]), NamedHosts("low", 1, ["a"]))]

    async def test_later_resolvers_do_not_run(self, fetch, seed, admin):
        body = await explain(fetch, await seed(HOSTS), admin)
        assert body["matching_hosts"] == ["c"]
        assert trace(body) == [("high", "matched", ["c"])]


class TestPriorityFromPluginsToml:
    @pytest.fixture
    def test_plugins(self):
        return [Plugin(NamedHosts("high", 900, ["c"]), NamedHosts("low", 1, ["a"]))]

    @pytest.fixture
    def plugins_config(self):
        return plugins_config_for(low={"priority": 1000}, ip_match={"enabled": False})

    async def test_overridden_priority_runs_first(self, fetch, seed, admin):
        body = await explain(fetch, await seed(HOSTS), admin)
        assert trace(body) == [("low", "matched", ["a"])]


class TestAmbiguityNarrowed:
    @pytest.fixture
    def test_plugins(self):
        return [Plugin(NamedHosts("narrower", 100, ["b", "c"]))]

    async def test_later_resolver_narrows_to_one(self, fetch, seed, admin):
        body = await explain(fetch, await seed(HOSTS), admin, address="10.0.0.1")
        assert trace(body) == [("ip_match", "ambiguous", ["a", "b"]), ("narrower", "matched", ["b"])]
        assert "narrowed the earlier candidates to one host" in trace_entry(
            body["resolution"], "narrower")["evidence"]


class TestAmbiguityStays:
    async def test_multiple_hosts_reported(self, fetch, seed, admin):
        body = await explain(fetch, await seed(HOSTS), admin, address="10.0.0.1")
        assert body["matching_hosts"] == ["a", "b"]
        assert trace(body) == [("ip_match", "ambiguous", ["a", "b"])]


class TestFailuresBecomeTraceEntries:
    @pytest.fixture
    def test_plugins(self):
        return [Plugin(NamedHosts("slow", 900, ["c"], delay=30), NamedHosts("buggy", 800, fail=True),
                       NamedHosts("fallback", 1, ["c"]))]

    @pytest.fixture
    def plugins_config(self):
        return plugins_config_for(slow={"timeout": 0.2})

    async def test_timeout_and_error_do_not_stop_the_chain(self, fetch, seed, admin):
        body = await explain(fetch, await seed(HOSTS), admin)
        assert trace(body) == [("slow", "timeout", []), ("buggy", "error", []),
                               ("ip_match", "no_match", []), ("fallback", "matched", ["c"])]
        assert trace_entry(body["resolution"], "slow")["evidence"] == ["no answer within 0.2s"]
        assert trace_entry(body["resolution"], "buggy")["evidence"] == ["RuntimeError: resolver bug"]


class TestDecisiveRefusal:
    @pytest.fixture
    def test_plugins(self):
        return [Plugin(NamedHosts("signed", 900, [], decisive=True))]

    async def test_no_later_resolver_overrules(self, fetch, seed, admin):
        body = await explain(fetch, await seed({"c": {"ansible_host": "127.0.0.1"}}), admin)
        assert trace(body) == [("signed", "no_match", [])]
        assert body["matching_hosts"] == []
