"""Trusted proxy ranges that take in hosts: every machine in a trusted range is believed
when it names a client, so a host there can be taken for another host. ``serve`` warns
at start; the trace says when the peer believed is itself a host's address."""

from __future__ import annotations

import ipaddress
import json
import re
import tomllib

import pytest

from resolvers.x_forwarded_for import ForwardedForResolver
from tests.conftest import plugins_config_for
from tests.helpers import REPO, ServerProcess, run_cli
from tornado_callback.plugin import (
    RESOLVED_ADDRESS_KIND,
    CallbackRequest,
    HostRef,
    HostResolver,
    IndexEntry,
    ResolutionState,
)
from tornado_callback.plugin.chain import RankedResolver, ResolverChain

HOSTS = {"web2": {"ansible_host": "127.0.0.2"}, "web3": {"ansible_host": "127.0.0.3"}}


@pytest.fixture
def plugins_config():
    # The shape of the README's old example, 10.0.0.0/8, on loopback.
    return plugins_config_for(x_forwarded_for={"trusted_proxies": ["127.0.0.0/8"]})


@pytest.mark.gen_test
async def test_a_host_trusted_as_a_proxy_is_named_in_the_trace(http_client, http_port, seed, services):
    world = await seed(HOSTS)
    response = await http_client.fetch(
        f"http://127.0.0.1:{http_port}/api/v2/job_templates/{world.template_id}/callback/",
        method="POST", body=json.dumps({"host_config_key": world.key}),
        headers={"Content-Type": "application/json", "X-Forwarded-For": "127.0.0.3"},
        network_interface="127.0.0.2", raise_error=False)
    # Believed, as configured (the warnings say why not to configure it so) ...
    assert response.code == 202, response.body
    _, attempts = await services.attempts.page(world.template_id)
    assert attempts[0].host_name == "web3"
    # ... and the trace says who was believed.
    evidence = next(e["evidence"] for e in attempts[0].trace if e["resolver"] == "x_forwarded_for")
    assert evidence[:2] == ["peer 127.0.0.2 is a trusted proxy", "client 127.0.0.3"]
    assert evidence[2].startswith("peer 127.0.0.2, trusted as a proxy, is the address of host web2: "
                                  "a host inside a trusted range can write another host's address")


class Lookup:
    """A HostLookup over fixed keys, counting its queries."""

    def __init__(self, keys: dict[tuple[str, str], HostRef]) -> None:
        self.keys = keys
        self.queries = 0

    async def find(self, kind, values):
        self.queries += 1
        return [self.keys[kind, value] for value in values if (kind, value) in self.keys]


def forwarded(peer: str, client: str) -> CallbackRequest:
    return CallbackRequest(peer=peer, headers=(("X-Forwarded-For", client),))


@pytest.mark.gen_test
async def test_a_peer_whose_name_resolves_to_it_is_named_too():
    resolver = ForwardedForResolver([ipaddress.ip_network("192.0.2.0/24")])
    lookup = Lookup({(RESOLVED_ADDRESS_KIND, "192.0.2.9"): HostRef(9, "gateway.example.test")})
    result = await resolver.resolve(forwarded("192.0.2.9", "192.0.2.50"), ResolutionState(("192.0.2.9",)), lookup)
    assert result.client_addresses == ("192.0.2.50",)
    assert "is the address of host gateway.example.test" in result.evidence[-1]


@pytest.mark.gen_test
async def test_a_proxy_named_by_its_address_costs_no_lookup():
    # Checked at start instead: a callback through the proxy pays nothing for it.
    resolver = ForwardedForResolver([ipaddress.ip_network("192.0.2.9/32")])
    lookup = Lookup({("address", "192.0.2.9"): HostRef(9, "proxy")})
    result = await resolver.resolve(forwarded("192.0.2.9", "192.0.2.50"), ResolutionState(("192.0.2.9",)), lookup)
    assert result.evidence == ["peer 192.0.2.9 is a trusted proxy", "client 192.0.2.50"]
    assert lookup.queries == 0


def test_serve_warns_about_trusted_ranges_at_start(database_url, tmp_path):
    def cli(*args: str) -> None:
        result = run_cli(*args, "--database-url", database_url, cwd=tmp_path)
        assert result.returncode == 0, result.stderr

    cli("inventory", "create", "prod")
    cli("host", "add", "prod", "web2", "--var", "ansible_host=127.0.0.2")
    cli("host", "add", "prod", "edge", "--var", "ansible_host=192.0.2.10")
    cli("host", "add", "prod", "far", "--var", "ansible_host=198.51.100.7")
    plugins = tmp_path / "plugins.toml"
    plugins.write_text(
        '[resolvers.x_forwarded_for]\n'
        'trusted_proxies = ["127.0.0.0/8", "fd00::/8", "192.0.2.10", "198.51.100.0/24", "2001:db8::/64"]\n'
        '[resolvers.reverse_dns]\nenabled = false\n[resolvers.forward_dns]\nenabled = false\n')
    server = ServerProcess("--database-url", database_url, "--plugins", str(plugins), "--no-worker", cwd=tmp_path)
    try:
        server.wait_for("serving on")
    finally:
        assert server.stop() == 0, server.output
    warnings = re.findall(r"WARNING tornado_callback: x_forwarded_for: trusted_proxies: (.*)", server.output)
    danger = "a host inside a trusted range can write another host's address into X-Forwarded-For and be taken for it"
    assert sorted(warnings) == sorted([
        f"127.0.0.0/8 is wider than a /24: {danger}; list the proxies' own addresses",
        f"fd00::/8 is wider than a /64: {danger}; list the proxies' own addresses",
        f"127.0.0.0/8 contains 127.0.0.2, the address of host web2 (inventory prod): {danger}",
        f"192.0.2.10/32 contains 192.0.2.10, the address of host edge (inventory prod): {danger}",
        f"198.51.100.0/24 contains 198.51.100.7, the address of host far (inventory prod): {danger}",
    ]), server.output


class Broken(HostResolver):
    name, priority = "broken", 1

    async def resolve(self, request, state, hosts):
        return None

    async def startup_warnings(self, index):
        raise RuntimeError("no index today")


class Index:
    async def entries(self, kind):
        return [IndexEntry("prod", "web2", "127.0.0.2")] if kind == "address" else []


@pytest.mark.gen_test
async def test_a_failing_check_is_a_warning_not_a_failed_start():
    chain = ResolverChain([
        RankedResolver(Broken(), 1, 5.0, {}, "test"),
        RankedResolver(ForwardedForResolver([ipaddress.ip_network("127.0.0.0/30")]), 300, 5.0, {}, "test"),
    ])
    assert await chain.startup_warnings(Index()) == [
        "x_forwarded_for: trusted_proxies: 127.0.0.0/30 contains 127.0.0.2, the address of host web2 "
        "(inventory prod): a host inside a trusted range can write another host's address into "
        "X-Forwarded-For and be taken for it",
        "broken: checking the configuration failed: RuntimeError: no index today",
    ]


def test_the_shipped_examples_trust_proxies_one_by_one():
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("### Behind a reverse proxy"):]
    example = tomllib.loads(section.split("```toml\n", 1)[1].split("```", 1)[0])
    for config in (example, tomllib.loads((REPO / "plugins.toml").read_text())):
        proxies = config["resolvers"]["x_forwarded_for"]["trusted_proxies"]
        assert all(ipaddress.ip_network(proxy).num_addresses == 1 for proxy in proxies), proxies
