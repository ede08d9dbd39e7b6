"""reverse_dns against a real DNS server (dnsmasq on a loopback port), and
against DNS servers that are down or never answer."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from pathlib import Path
from urllib.parse import urlencode

import pytest

from tests.conftest import basic_auth, plugins_config_for
from tests.helpers import free_port
from tests.realservers import dnsmasq, silent_udp_server
from tornado_callback.accounts.service import LOCAL_ADMIN
from tornado_callback.plugin import ConfigError, DNSLookup, DNSSettings, Settings
from tornado_callback.plugin import dns as dns_lookup
from tornado_callback.plugin.manager import build_chain, make_plugin_manager

pytestmark = pytest.mark.gen_test

CALLBACK = "/api/v2/job_templates/{}/callback/"
JSON = {"Content-Type": "application/json"}
TIMEOUT = 0.6
RECORDS = [
    "--host-record=web5.example.test,127.0.0.5",  # A and PTR
    "--ptr-record=6.0.0.127.in-addr.arpa,liar.example.test",  # PTR only: not confirmed
    "--host-record=Mixed.Example.Test,127.0.0.8",
    # An address whose reverse zone lists many names.
    *(f"--ptr-record=10.0.0.127.in-addr.arpa,n{i}.example.test" for i in range(7)),
    # Two names, one held elsewhere (a server without upstream refuses to look it up).
    "--host-record=web11.example.test,127.0.0.11",
    "--ptr-record=11.0.0.127.in-addr.arpa,web11.example.test",
    "--ptr-record=11.0.0.127.in-addr.arpa,elsewhere.example.test",
]
HOSTS = {
    "web5.example.test": {},
    "liar.example.test": {},
    "mixed": {"ansible_host": "MIXED.example.test."},
    "web7": {"ansible_host": "127.0.0.7"},
}


@pytest.fixture
def nameserver(request: pytest.FixtureRequest, tmp_path: Path):
    """``(kind, address, server)``: dnsmasq by default; ``down`` (nothing listens),
    ``silent`` (a UDP socket that never answers) or ``refusing`` (dnsmasq without
    upstream, refusing what it does not hold) when parametrized indirectly."""
    kind = getattr(request, "param", "dnsmasq")
    if kind == "down":
        yield kind, f"127.0.0.1:{free_port(socket.SOCK_DGRAM)}", None
    elif kind == "silent":
        with silent_udp_server() as (port, sock):
            yield kind, f"127.0.0.1:{port}", sock
    else:
        with dnsmasq(tmp_path, RECORDS, authoritative=kind != "refusing") as (port, process):
            yield kind, f"127.0.0.1:{port}", process


@pytest.fixture
def dns_options() -> dict:
    return {}


@pytest.fixture
def plugins_config(nameserver, dns_options):
    return plugins_config_for(reverse_dns={
        "enabled": True, "nameservers": [nameserver[1]], "timeout": TIMEOUT, **dns_options})


def post(fetch, world, interface):
    return fetch(CALLBACK.format(world.template_id), method="POST", headers=JSON,
                 body=json.dumps({"host_config_key": world.key}), network_interface=interface)


async def last_trace(services, world) -> dict:
    _, attempts = await services.attempts.page(world.template_id)
    return {e["resolver"]: e for e in attempts[0].trace}


# "refusing": dnsmasq without upstream answers the AAAA query of web5 (an A record only)
# REFUSED; forward confirmation asks the caller's own family, so it still confirms.
@pytest.mark.parametrize("nameserver", ["dnsmasq", "refusing"], indirect=True)
async def test_reverse_match(fetch, seed, services):
    world = await seed(HOSTS)
    response = await post(fetch, world, "127.0.0.5")
    assert response.code == 202, response.body
    _, jobs = await services.jobs.page(LOCAL_ADMIN)
    assert (jobs[0].limit, jobs[0].resolved_by) == ("web5.example.test", "reverse_dns")
    entry = (await last_trace(services, world))["reverse_dns"]
    assert entry["evidence"] == ["127.0.0.5 has PTR name web5.example.test, which resolves back to it"]


async def test_names_compare_case_insensitively_without_trailing_dot(fetch, seed, services):
    world = await seed(HOSTS)
    response = await post(fetch, world, "127.0.0.8")
    assert response.code == 202, response.body
    _, jobs = await services.jobs.page(LOCAL_ADMIN)
    assert jobs[0].limit == "mixed"


async def test_forward_confirmation_refuses_a_ptr_that_does_not_resolve_back(fetch, seed, services):
    world = await seed(HOSTS)
    response = await post(fetch, world, "127.0.0.6")
    assert response.code == 400
    assert json.loads(response.body) == {"msg": "No matching host could be found!"}
    entry = (await last_trace(services, world))["reverse_dns"]
    assert entry["outcome"] == "no_match"
    assert entry["evidence"] == [
        "127.0.0.6 has PTR name liar.example.test, which does not resolve back to it: ignored"]


@pytest.mark.parametrize("nameserver", ["refusing"], indirect=True)
async def test_a_name_that_fails_to_resolve_leaves_the_others_confirmed(fetch, seed, services):
    world = await seed({"web11.example.test": {}})
    response = await post(fetch, world, "127.0.0.11")
    assert response.code == 202, response.body
    entry = (await last_trace(services, world))["reverse_dns"]
    assert sorted(entry["evidence"]) == [
        "127.0.0.11 has PTR name elsewhere.example.test, not confirmed: "
        "DNS lookup failed: A elsewhere.example.test: DNS server refused query",
        "127.0.0.11 has PTR name web11.example.test, which resolves back to it",
    ]


@pytest.mark.parametrize("dns_options", [{"forward_confirm": False}])
async def test_without_forward_confirmation_the_ptr_name_is_believed(fetch, seed, services):
    world = await seed(HOSTS)
    response = await post(fetch, world, "127.0.0.6")
    assert response.code == 202, response.body
    _, jobs = await services.jobs.page(LOCAL_ADMIN)
    assert jobs[0].limit == "liar.example.test"


async def explain(fetch, world, address):
    response = await fetch(f"{CALLBACK.format(world.template_id)}?{urlencode({'address': address})}",
                           headers=basic_auth("admin", "pw"))
    assert response.code == 200, response.body
    return json.loads(response.body)


async def test_answers_are_cached(fetch, seed, services, nameserver):
    world = await seed(HOSTS)
    await services.accounts.create_user("admin", "pw", superuser=True)
    assert (await explain(fetch, world, "127.0.0.5"))["matching_hosts"] == ["web5.example.test"]
    assert (await explain(fetch, world, "127.0.0.9"))["matching_hosts"] == []
    nameserver[2].terminate()
    nameserver[2].wait()
    # The DNS server is gone: both the answer and the "no such name" come from the cache.
    again = await explain(fetch, world, "127.0.0.5")
    assert again["matching_hosts"] == ["web5.example.test"]
    assert again["remote"]["names"] == ["web5.example.test"]
    unknown = await explain(fetch, world, "127.0.0.9")
    reverse = next(e for e in unknown["resolution"] if e["resolver"] == "reverse_dns")
    assert reverse["evidence"] == ["no PTR name for 127.0.0.9"]


async def test_many_ptr_names_are_capped(fetch, seed, services):
    world = await seed(HOSTS)
    await services.accounts.create_user("admin", "pw", superuser=True)
    body = await explain(fetch, world, "127.0.0.10")
    reverse = next(e for e in body["resolution"] if e["resolver"] == "reverse_dns")
    assert reverse["evidence"][0] == "127.0.0.10 has 7 PTR names: only the first 5 are used"
    assert len(reverse["evidence"]) == 1 + 5  # five forward lookups, none confirmed


async def test_the_cache_is_bounded(nameserver, monkeypatch):
    monkeypatch.setattr(dns_lookup, "MAX_CACHE_ENTRIES", 3)
    lookup = DNSLookup(DNSSettings(nameservers=(nameserver[1],)))
    try:
        for last in range(5, 11):
            await lookup.names_of(f"127.0.0.{last}")
        assert len(lookup._cache) == 3
        assert await lookup.names_of("127.0.0.5") == ("web5.example.test",)
    finally:
        await lookup.close()


@pytest.mark.parametrize("nameserver", ["down", "silent"], indirect=True)
async def test_dns_failure_answers_within_the_timeout(fetch, seed, services, nameserver):
    world = await seed(HOSTS)
    started = time.monotonic()
    response = await post(fetch, world, "127.0.0.9")
    elapsed = time.monotonic() - started
    assert response.code == 400
    assert json.loads(response.body) == {"msg": "No matching host could be found!"}
    assert elapsed < TIMEOUT + 0.5
    entry = (await last_trace(services, world))["reverse_dns"]
    assert entry["outcome"] in ("no_match", "timeout")
    assert entry["evidence"][0].startswith(("DNS lookup failed", "no answer within"))


@pytest.mark.parametrize("nameserver", ["silent"], indirect=True)
async def test_a_silent_dns_server_stalls_no_other_request(fetch, seed, services, nameserver):
    world = await seed(HOSTS)
    await services.accounts.create_user("admin", "pw", superuser=True)
    await explain(fetch, world, "127.0.0.7")  # warm up: the first verification of a password is slow

    async def timed(coroutine):
        started = time.monotonic()
        response = await coroutine
        return response, time.monotonic() - started

    stuck = [asyncio.ensure_future(timed(explain(fetch, world, "127.0.0.9"))) for _ in range(5)]
    await asyncio.sleep(0.05)
    response, elapsed = await timed(post(fetch, world, "127.0.0.7"))
    assert response.code == 202  # matched by ip_match while the DNS lookups hang
    assert elapsed < 0.3
    results = await asyncio.gather(*stuck)
    assert all(body["matching_hosts"] == [] for body, _ in results)
    assert max(seconds for _, seconds in results) < TIMEOUT + 0.5
    # The five identical lookups were one query (sent at most once per try), not five.
    sock = nameserver[2]
    sock.setblocking(False)
    datagrams = []
    while True:
        try:
            datagrams.append(sock.recv(512))
        except BlockingIOError:
            break
    assert 1 <= len(datagrams) <= 2  # tries = 2
    assert b"\x019\x010\x010\x03127\x07in-addr\x04arpa" in datagrams[0]


@pytest.mark.parametrize("options, message", [
    ({"nameservers": "127.0.0.1"}, "must be a list of addresses"),
    ({"nameservers": ["dns.example.test"]}, "must be a list of addresses"),
    ({"nameservers": ["127.0.0.1:99999"]}, "must be a list of addresses"),
    ({"tries": 0}, "tries must be"),
    ({"forward_confirm": "yes"}, "forward_confirm must be"),
    ({"cache_ttl": -1}, "cache_ttl must be"),
    ({"nameserver": []}, "unknown option"),
])
async def test_bad_options_refuse_to_start(options, message):
    settings = Settings(plugins=plugins_config_for(reverse_dns=options))
    with pytest.raises(ConfigError, match=message):
        build_chain(make_plugin_manager(load_entrypoints=False), settings)
