"""Rate limits on guessing: wrong host_config_keys and wrong passwords.

Counted against the client a trusted proxy names (not the proxy), against the
job template and the user name whatever the address, shared by servers and
processes on one database; an unknown user name costs what a wrong password
costs. Distinct clients are real sockets bound to distinct loopback addresses.
"""

from __future__ import annotations

import asyncio
import base64
import json
import statistics
import time
from pathlib import Path
from typing import Any

import pytest
from tornado.testing import bind_unused_port

from tests.conftest import TEST_SECRET_KEY, plugins_config_for
from tests.helpers import ServerProcess
from tests.realservers import nginx_proxy
from tornado_callback.app import make_server
from tornado_callback.config import Settings
from tornado_callback.plugin.manager import make_plugin_manager
from tornado_callback.services import Services

pytestmark = pytest.mark.gen_test(timeout=60)  # argon2 takes a good part of a second here

CALLBACK = "/api/v2/job_templates/{}/callback/"
ME = "/api/v2/me/"
HOSTS = {"web5": {"ansible_host": "127.0.0.5"}, "web6": {"ansible_host": "127.0.0.6"}}
PASSWORD = "right-password"


@pytest.fixture
def plugins_config():
    return plugins_config_for(x_forwarded_for={"trusted_proxies": ["127.0.0.1/32"]})


@pytest.fixture
def limits() -> dict[str, Any]:
    """Settings of the limits; a test parametrizes ``limits`` to change them."""
    return {}


@pytest.fixture
def settings(database_url, plugins_config, limits):
    return Settings(database_url=database_url, plugins=plugins_config, secret_key=TEST_SECRET_KEY, **limits)


@pytest.fixture
def proxy(tmp_path: Path, http_server, http_port: int):
    """A real nginx in front of the server (127.0.0.1, a trusted proxy); its base URL."""
    with nginx_proxy(tmp_path, http_port) as port:
        yield f"http://127.0.0.1:{port}"


@pytest.fixture
def second_server(io_loop, settings):
    """Another server on the same database, as another machine (or process) runs it; its base URL."""
    services = io_loop.run_sync(
        lambda: Services.start(settings, make_plugin_manager([], load_entrypoints=False), upgrade=False))
    sock, port = bind_unused_port()
    server = make_server(services)
    server.add_socket(sock)
    yield f"http://127.0.0.1:{port}"
    server.stop()
    io_loop.run_sync(server.close_all_connections)
    io_loop.run_sync(services.close)


def post_key(http_client, base: str, template_id: int, key: str, *, client: str = "127.0.0.1",
             headers: dict[str, str] | None = None):
    return http_client.fetch(
        base + CALLBACK.format(template_id), method="POST", body=json.dumps({"host_config_key": key}),
        headers={"Content-Type": "application/json", **(headers or {})},
        network_interface=client, raise_error=False)


def login(http_client, base: str, username: str, password: str, *, client: str = "127.0.0.1"):
    credentials = base64.b64encode(f"{username}:{password}".encode()).decode()
    return http_client.fetch(base + ME, headers={"Authorization": f"Basic {credentials}"},
                             network_interface=client, raise_error=False)


def assert_refused(response, reason: str) -> None:
    assert response.code == 429, response.body
    assert int(response.headers["Retry-After"]) >= 1
    assert reason in json.loads(response.body)["detail"]


async def test_wrong_keys_behind_a_proxy_count_against_the_client_it_names(
    http_client, proxy, seed, services
):
    world = await seed(HOSTS)
    for n in range(services.settings.bad_key_limit):
        # The client writes an address of its choosing each time: nginx appends the one it sees.
        forged = {"X-Forwarded-For": f"10.9.9.{n}"}
        wrong = await post_key(http_client, proxy, world.template_id, "guess", client="127.0.0.7", headers=forged)
        assert wrong.code == 403
    limited = await post_key(http_client, proxy, world.template_id, world.key, client="127.0.0.7")
    assert_refused(limited, "from this address")
    # Another host behind the same proxy is not held to the guesser's count.
    other = await post_key(http_client, proxy, world.template_id, world.key, client="127.0.0.5")
    assert other.code == 202, other.body
    _, attempts = await services.attempts.page(world.template_id)
    assert {tuple(a.client_addresses) for a in attempts if a.status_code in (403, 429)} == {("127.0.0.7",)}


@pytest.mark.parametrize("limits", [{"bad_key_template_limit": 30}])
async def test_wrong_keys_from_many_addresses_meet_the_templates_ceiling(http_client, base_url, seed):
    world = await seed(HOSTS)
    other = await seed(HOSTS, name="other")
    for n in range(30):  # ten from each of three addresses: each well within its own limit
        wrong = await post_key(http_client, base_url, world.template_id, "guess", client=f"127.0.1.{n % 3 + 1}")
        assert wrong.code == 403
    refused = await post_key(http_client, base_url, world.template_id, world.key, client="127.0.0.5")
    assert_refused(refused, "for this job template")
    launched = await post_key(http_client, base_url, other.template_id, other.key, client="127.0.0.5")
    assert launched.code == 202, launched.body


@pytest.mark.parametrize("limits", [{"login_user_limit": 4}])
async def test_wrong_passwords_for_a_user_are_limited_from_any_address(http_client, base_url, services):
    await services.accounts.create_user("admin", PASSWORD, superuser=True)
    token = await services.accounts.create_token("admin")
    # A user name that does not exist is limited alike: a 429 tells no one which names exist.
    for username in ("admin", "nobody"):
        for n in range(4):
            wrong = await login(http_client, base_url, username, f"guess{n}", client=f"127.0.2.{n + 1}")
            assert wrong.code == 401
        assert_refused(await login(http_client, base_url, username, PASSWORD, client="127.0.2.9"),
                       "for this user")
    # A token is no password: nothing to guess, and the user keeps working with it.
    me = await http_client.fetch(base_url + ME, headers={"Authorization": f"Bearer {token}"}, raise_error=False)
    assert me.code == 200


@pytest.mark.parametrize("limits", [{"login_user_limit": 3}])
async def test_wrong_passwords_sent_at_once_cannot_all_pass_the_check(http_client, base_url, services):
    await services.accounts.create_user("admin", PASSWORD)
    # Each takes a password verification; none has failed yet when the others are checked.
    answers = await asyncio.gather(*(login(http_client, base_url, "admin", f"guess{n}", client=f"127.0.5.{n + 1}")
                                     for n in range(8)))
    codes = sorted(a.code for a in answers)
    assert codes == [401] * 3 + [429] * 5, codes


@pytest.mark.parametrize("limits", [{"login_address_limit": 4}])
async def test_wrong_passwords_from_a_client_behind_a_proxy_are_limited(http_client, proxy, services):
    await services.accounts.create_user("admin", PASSWORD, superuser=True)
    for n in range(4):  # a different user name each time: no user's own limit is reached
        assert (await login(http_client, proxy, f"user{n}", "guess", client="127.0.3.7")).code == 401
    assert_refused(await login(http_client, proxy, "admin", PASSWORD, client="127.0.3.7"), "from this address")
    assert (await login(http_client, proxy, "admin", PASSWORD, client="127.0.3.8")).code == 200


@pytest.mark.parametrize("limits", [{"login_user_limit": 100, "login_address_limit": 100}])
async def test_an_unknown_user_answers_no_faster_than_a_wrong_password(http_client, base_url, services):
    await services.accounts.create_user("admin", PASSWORD)
    await login(http_client, base_url, "warm-up", "guess")  # the first unknown user makes the dummy hash
    unknown, known = [], []
    for n in range(7):
        for timings, username in ((unknown, f"nobody{n}"), (known, "admin")):
            started = time.perf_counter()
            assert (await login(http_client, base_url, username, f"guess{n}")).code == 401
            timings.append(time.perf_counter() - started)
    # Medians of alternating logins: both pay one password verification, so they are
    # alike; answering an unknown name at once was a hundred times faster.
    assert statistics.median(unknown) > 0.6 * statistics.median(known), (unknown, known)


async def test_wrong_keys_count_across_servers_sharing_the_database(
    http_client, base_url, second_server, seed, services
):
    world = await seed(HOSTS)
    limit = services.settings.bad_key_limit
    answers = []
    for n in range(2 * limit):  # one after another, to each server in turn
        server = (base_url, second_server)[n % 2]
        answers.append((await post_key(http_client, server, world.template_id, "guess", client="127.0.0.7")).code)
    forbidden = answers.count(403)
    # A server that has not seen the other's newest failure lets one more through, then knows.
    assert limit <= forbidden <= limit + 1, answers
    assert answers == [403] * forbidden + [429] * (2 * limit - forbidden)


@pytest.mark.parametrize("limits", [{"login_user_limit": 3}])
async def test_failed_logins_count_across_servers_sharing_the_database(
    http_client, base_url, second_server, services
):
    await services.accounts.create_user("admin", PASSWORD)
    answers = []
    for n in range(6):
        server = (base_url, second_server)[n % 2]
        answers.append((await login(http_client, server, "admin", f"guess{n}", client=f"127.0.4.{n + 1}")).code)
    unauthorized = answers.count(401)
    assert 3 <= unauthorized <= 4, answers
    assert answers == [401] * unauthorized + [429] * (6 - unauthorized)


async def test_serve_processes_share_the_limit(database_url, http_client, seed, services, tmp_path):
    world = await seed(HOSTS)
    limit = services.settings.bad_key_limit
    server = ServerProcess("--processes", "2", "--no-worker", "--database-url", database_url, cwd=tmp_path,
                           TORNADO_CALLBACK_SECRET_KEY=TEST_SECRET_KEY)
    try:
        server.wait_for("serving on")
        await asyncio.sleep(1)  # the second process starts as the first does
        # Ten at once (the client's connections), each on a new connection: both processes answer.
        answers = [r.code for r in await asyncio.gather(*(
            post_key(http_client, server.base_url, world.template_id, "guess", client="127.0.0.7")
            for _ in range(3 * limit)))]
    finally:
        assert server.stop() == 0, server.output
    forbidden = answers.count(403)
    assert answers.count(429) == 3 * limit - forbidden
    # Each process alone would let the limit through (twice the limit in all). Sent one
    # after another, one more gets through (the test with two servers above); sent at
    # once, a few more: those one process checks while the other's are being written.
    assert limit <= forbidden < limit + limit // 2, answers
