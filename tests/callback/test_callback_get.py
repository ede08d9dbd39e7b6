"""The admin's GET of the callback URL: who may see it, and what it explains."""

from __future__ import annotations

import json
from urllib.parse import urlencode

import pytest

from tests.conftest import basic_auth, trace_entry
from tornado_callback.accounts.service import LOCAL_ADMIN

pytestmark = pytest.mark.gen_test

CALLBACK = "/api/v2/job_templates/{}/callback/"
LOCAL = {"ansible_host": "127.0.0.1"}


@pytest.fixture
def admin(io_loop, services):
    io_loop.run_sync(lambda: services.accounts.create_user("root", "rootpass", superuser=True))
    return basic_auth("root", "rootpass")


async def get(fetch, template_id, headers, **query):
    path = CALLBACK.format(template_id)
    if query:
        path += "?" + urlencode(query, doseq=True)
    return await fetch(path, headers=headers)


async def test_superuser_sees_key_matching_host_and_trace(fetch, seed, admin):
    world = await seed({"web1": LOCAL, "web2": {"ansible_host": "10.0.0.2"}})
    response = await get(fetch, world.template_id, admin)
    assert response.code == 200
    body = json.loads(response.body)
    assert body["host_config_key"] == world.key
    assert body["matching_hosts"] == ["web1"]
    assert body["remote"] == {"peer": "127.0.0.1", "addresses": ["127.0.0.1"], "names": []}
    assert [(e["resolver"], e["outcome"]) for e in body["resolution"]] == [
        ("cloud_metadata", "skipped"), ("x_forwarded_for", "skipped"), ("ip_match", "matched")]
    entry = trace_entry(body["resolution"], "ip_match")
    assert entry["hosts"] == ["web1"]
    assert entry["priority"] == 200
    assert entry["elapsed_ms"] >= 0


async def test_get_never_launches(fetch, seed, admin, services):
    world = await seed({"web1": LOCAL})
    assert (await get(fetch, world.template_id, admin)).code == 200
    count, _ = await services.jobs.page(LOCAL_ADMIN)
    assert count == 0


async def test_without_credentials_is_401_with_challenge(fetch, seed):
    world = await seed({"web1": LOCAL})
    response = await get(fetch, world.template_id, {})
    assert response.code == 401
    assert response.headers["WWW-Authenticate"] == 'Basic realm="tornado-callback"'
    assert "detail" in json.loads(response.body)


@pytest.mark.parametrize("authorization", [
    "Basic " + "cm9vdDp3cm9uZw==",  # root:wrong
    "Basic !!!notbase64",
    "Basic bm9jb2xvbg==",            # "nocolon"
    "Bearer not-a-token",
    "Digest abc",
    "",
])
async def test_bad_credentials_are_401(fetch, seed, admin, authorization):
    world = await seed({"web1": LOCAL})
    response = await get(fetch, world.template_id, {"Authorization": authorization})
    assert response.code == 401


async def test_bearer_token_authenticates(fetch, seed, admin, services):
    world = await seed({"web1": LOCAL})
    token = await services.accounts.create_token("root")
    response = await get(fetch, world.template_id, {"Authorization": f"Bearer {token}"})
    assert response.code == 200


async def test_token_is_stored_hashed(services, admin, database_url):
    token = await services.accounts.create_token("root")
    async with services.db.session() as session:
        from sqlalchemy import select

        from tornado_callback.store.models import Token
        stored = list(await session.scalars(select(Token.token_hash)))
    assert stored and token not in stored


async def test_user_without_admin_role_is_403(fetch, seed, services):
    world = await seed({"web1": LOCAL})
    await services.accounts.create_user("viewer", "viewpass")
    await services.accounts.grant("viewer", "job_template", world.template_id, "read")
    response = await get(fetch, world.template_id, basic_auth("viewer", "viewpass"))
    assert response.code == 403
    assert json.loads(response.body) == {"detail": "You do not have permission to perform this action."}


async def test_template_admin_role_may_get(fetch, seed, services):
    world = await seed({"web1": LOCAL})
    await services.accounts.create_user("ops", "opspass")
    await services.accounts.grant("ops", "job_template", world.template_id, "admin")
    response = await get(fetch, world.template_id, basic_auth("ops", "opspass"))
    assert response.code == 200


async def test_unknown_template_is_404(fetch, seed, admin):
    await seed({"web1": LOCAL})
    for template_id in ("999", "0", "abc"):
        assert (await get(fetch, template_id, admin)).code == 404


async def test_simulated_address_evaluates_another_host(fetch, seed, admin):
    world = await seed({"web1": LOCAL, "web2": {"ansible_host": "10.0.0.2"}})
    response = await get(fetch, world.template_id, admin, address="10.0.0.2")
    body = json.loads(response.body)
    assert body["matching_hosts"] == ["web2"]
    assert body["remote"]["peer"] == "10.0.0.2"


async def test_simulated_ipv4_mapped_ipv6_is_normalised(fetch, seed, admin):
    world = await seed({"web2": {"ansible_host": "10.0.0.2"}})
    response = await get(fetch, world.template_id, admin, address="::ffff:10.0.0.2")
    assert json.loads(response.body)["matching_hosts"] == ["web2"]


@pytest.mark.parametrize("query", [
    {"address": "not-an-ip"}, {"header": "no colon here"}, {"header": "bad name: x"},
    {"page": "0"}, {"page": "x"}, {"page_size": "201"}, {"page_size": "-1"},
])
async def test_bad_query_parameters_are_400(fetch, seed, admin, query):
    world = await seed({"web1": LOCAL})
    response = await get(fetch, world.template_id, admin, **query)
    assert response.code == 400
    assert "detail" in json.loads(response.body)


async def test_matching_hosts_search_and_paging(fetch, seed, admin):
    hosts = {f"web{i:02d}": {"ansible_host": "10.1.1.1"} for i in range(12)}
    hosts["db1"] = {"ansible_host": "10.1.1.1"}
    world = await seed(hosts)
    everything = json.loads((await get(fetch, world.template_id, admin, address="10.1.1.1")).body)
    assert len(everything["matching_hosts"]) == 13
    assert trace_entry(everything["resolution"], "ip_match")["outcome"] == "ambiguous"
    page = json.loads((await get(fetch, world.template_id, admin, address="10.1.1.1",
                                 search="WEB", page="2", page_size="5")).body)
    assert page["matching_hosts"] == ["web05", "web06", "web07", "web08", "web09"]


async def test_disabled_host_is_reported_in_trace(fetch, seed, admin):
    world = await seed({"web1": {**LOCAL, "enabled": False}})
    body = json.loads((await get(fetch, world.template_id, admin)).body)
    assert body["matching_hosts"] == []
    assert "host web1 is disabled: skipped" in trace_entry(body["resolution"], "ip_match")["evidence"]
