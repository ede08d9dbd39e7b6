"""x_forwarded_for: callbacks relayed by a real nginx match the client, not the proxy;
the same headers from an untrusted peer change nothing."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlencode

import pytest

from resolvers.x_forwarded_for import MalformedHeader, forwarded_for_nodes, list_nodes
from tests.conftest import basic_auth, plugins_config_for
from tests.realservers import nginx_proxy
from tornado_callback.accounts.service import LOCAL_ADMIN
from tornado_callback.plugin import CallbackRequest, ConfigError, Settings
from tornado_callback.plugin.manager import build_chain, make_plugin_manager

CALLBACK = "/api/v2/job_templates/{}/callback/"
JSON = {"Content-Type": "application/json"}
HOSTS = {
    "proxy": {"ansible_host": "127.0.0.1"},
    "web5": {"ansible_host": "127.0.0.5"},
    "web7": {"ansible_host": "127.0.0.7"},
    "inside": {"ansible_host": "10.0.0.5"},
    "v6": {"ansible_host": "2001:db8::17"},
}


@pytest.fixture
def plugins_config():
    return plugins_config_for(x_forwarded_for={"trusted_proxies": ["127.0.0.1/32", "fd00::/8"]})


@pytest.fixture
def proxy_port(tmp_path: Path, http_server, http_port: int):
    with nginx_proxy(tmp_path, http_port) as port:
        yield port


def callback(http_client, port, world, *, interface, headers=None):
    return http_client.fetch(
        f"http://127.0.0.1:{port}{CALLBACK.format(world.template_id)}",
        method="POST", body=json.dumps({"host_config_key": world.key}),
        headers={**JSON, **(headers or {})}, network_interface=interface, raise_error=False,
    )


async def launched_for(services):
    _, jobs = await services.jobs.page(LOCAL_ADMIN)
    return [job.limit for job in jobs]


@pytest.mark.gen_test
async def test_relayed_callback_matches_the_client_not_the_proxy(
    http_client, proxy_port, seed, services
):
    world = await seed(HOSTS)
    response = await callback(http_client, proxy_port, world, interface="127.0.0.5")
    assert response.code == 202, response.body
    assert await launched_for(services) == ["web5"]
    _, attempts = await services.attempts.page(world.template_id)
    assert attempts[0].peer_address == "127.0.0.1"
    assert attempts[0].client_addresses == ["127.0.0.5"]
    evidence = {e["resolver"]: e["evidence"] for e in attempts[0].trace}
    assert evidence["x_forwarded_for"] == ["peer 127.0.0.1 is a trusted proxy", "client 127.0.0.5"]


@pytest.mark.gen_test
async def test_a_client_cannot_choose_its_address_through_the_proxy(
    http_client, proxy_port, seed, services
):
    world = await seed(HOSTS)
    # nginx appends the real client to what the client claimed: "10.0.0.5, 127.0.0.7".
    response = await callback(http_client, proxy_port, world, interface="127.0.0.7",
                              headers={"X-Forwarded-For": "10.0.0.5"})
    assert response.code == 202, response.body
    assert await launched_for(services) == ["web7"]


@pytest.mark.gen_test
async def test_headers_from_an_untrusted_peer_change_nothing(http_client, http_port, seed, services):
    world = await seed(HOSTS)
    response = await callback(http_client, http_port, world, interface="127.0.0.7",
                              headers={"X-Forwarded-For": "127.0.0.5", "Forwarded": "for=127.0.0.5"})
    assert response.code == 202, response.body
    assert await launched_for(services) == ["web7"]
    _, attempts = await services.attempts.page(world.template_id)
    evidence = {e["resolver"]: e["evidence"] for e in attempts[0].trace}
    assert evidence["x_forwarded_for"] == [
        "peer 127.0.0.7 is not a trusted proxy: X-Forwarded-For ignored"]


async def explain(fetch, services, world, address, *headers):
    await services.accounts.create_user("admin", "pw", superuser=True)
    query = urlencode([("address", address), *(("header", h) for h in headers)])
    response = await fetch(f"{CALLBACK.format(world.template_id)}?{query}",
                           headers=basic_auth("admin", "pw"))
    assert response.code == 200, response.body
    return json.loads(response.body)


def trace_of(body, resolver):
    return next(entry for entry in body["resolution"] if entry["resolver"] == resolver)


@pytest.mark.gen_test
@pytest.mark.parametrize("headers, client, host", [
    # Every header line counts; trusted proxies are skipped right to left.
    (["X-Forwarded-For: 10.0.0.9, 10.0.0.5", "X-Forwarded-For: 127.0.0.1"], "10.0.0.5", "inside"),
    (["X-Forwarded-For: [2001:db8::17]:4711"], "2001:db8::17", "v6"),
    (["X-Forwarded-For: 127.0.0.1"], "127.0.0.1", "proxy"),  # all trusted: the left-most
])
async def test_explain_shows_the_client_behind_trusted_proxies(fetch, seed, services, headers, client, host):
    world = await seed(HOSTS)
    body = await explain(fetch, services, world, "127.0.0.1", *headers)
    assert body["remote"]["addresses"] == [client]
    assert body["matching_hosts"] == [host]
    assert trace_of(body, "x_forwarded_for")["evidence"][-1] == f"client {client}"


@pytest.mark.gen_test
@pytest.mark.parametrize("value", ["10.0.0.5,,10.0.0.6", "not-an-ip", "10.0.0.5:http", "[::1"])
async def test_malformed_header_fails_closed(fetch, seed, services, value):
    world = await seed(HOSTS)
    body = await explain(fetch, services, world, "127.0.0.1", f"X-Forwarded-For: {value}")
    # Neither the client's claim nor the proxy's own address is used.
    assert body["remote"]["addresses"] == []
    assert body["matching_hosts"] == []
    assert "client unknown" in trace_of(body, "x_forwarded_for")["evidence"][-1]


@pytest.mark.parametrize("values, nodes", [
    (["for=192.0.2.60;proto=http;by=203.0.113.43"], ["192.0.2.60"]),
    (['for="[2001:db8:cafe::17]:4711"'], ["2001:db8:cafe::17"]),
    (["for=192.0.2.43, for=198.51.100.17"], ["192.0.2.43", "198.51.100.17"]),
    (["For=192.0.2.43", 'for="_hidden", for=unknown'], ["192.0.2.43", "_hidden", "unknown"]),
    (['for="192.0.2.43:8080";by="a;b"'], ["192.0.2.43"]),
])
def test_rfc7239_forwarded_is_parsed(values, nodes):
    assert forwarded_for_nodes(values) == nodes


@pytest.mark.parametrize("values", [
    ["for=[2001:db8::1]"],          # IPv6 must be quoted (brackets are not token characters)
    ["for=192.0.2.1;for=192.0.2.2"],
    ["proto=https"],
    ['for="192.0.2.1'],
    ["for=300.1.1.1"],
])
def test_malformed_forwarded_is_refused(values):
    with pytest.raises(MalformedHeader):
        forwarded_for_nodes(values)


def test_x_forwarded_for_lists_and_ports():
    assert list_nodes(["10.0.0.1:80, [::FFFF:10.0.0.2]", "::1"]) == ["10.0.0.1", "10.0.0.2", "::1"]


@pytest.mark.gen_test
async def test_forwarded_header_when_configured(services):
    settings = Settings(plugins=plugins_config_for(x_forwarded_for={
        "trusted_proxies": ["fd00::/8"], "header": "forwarded"}))
    chain = build_chain(make_plugin_manager(load_entrypoints=False), settings)
    world_lookup = services.inventories.lookup(0)
    resolution = await chain.resolve(CallbackRequest(peer="fd00::1", headers=(
        ("Forwarded", 'for="_gazonk", for=10.0.0.5;proto=https'),
        ("X-Forwarded-For", "10.9.9.9"),
    )), world_lookup)
    assert resolution.client_addresses == ("10.0.0.5",)
    assert resolution.trace[1].resolver == "x_forwarded_for"
    assert resolution.trace[1].evidence == ("peer fd00::1 is a trusted proxy", "client 10.0.0.5")


@pytest.mark.parametrize("options, message", [
    ({"trusted_proxies": "127.0.0.1"}, "must be a list"),
    ({"trusted_proxies": ["10.0.0.0/33"]}, "is not a network"),
    ({"header": "X-Client-IP"}, "header must be one of"),
    ({"trusted": []}, "unknown option"),
])
def test_bad_options_refuse_to_start(options, message):
    settings = Settings(plugins=plugins_config_for(x_forwarded_for=options))
    with pytest.raises(ConfigError, match=message):
        build_chain(make_plugin_manager(load_entrypoints=False), settings)


@pytest.mark.gen_test
async def test_the_trace_quotes_a_huge_header_briefly(fetch, seed, services):
    world = await seed(HOSTS)
    body = await explain(fetch, services, world, "127.0.0.1", "X-Forwarded-For: " + "x" * 5000)
    evidence = trace_of(body, "x_forwarded_for")["evidence"][-1]
    assert evidence.startswith("malformed X-Forwarded-For header ('xxx")
    assert len(evidence) < 150
