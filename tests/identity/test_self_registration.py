"""Verified self-registration (API.md section 4, issue 17) against a real server and database:
off by default; on, an unknown verified instance gets exactly one host, whatever the concurrency,
with the verified facts as variables, in the inventory's group, shown as registered by callback,
and its job limited to it; rate-limited per inventory; never for a refused identity."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from typing import Any

import pytest

from tests.conftest import basic_auth, plugins_config_for
from tests.helpers import run_cli
from tests.identity.cloud import ACCOUNT, AUDIENCE, PROJECT
from tornado_callback.accounts.service import LOCAL_ADMIN

pytestmark = pytest.mark.gen_test(timeout=60)

CALLBACK = "/api/v2/job_templates/{}/callback/"
INSTANCE, OTHER, THIRD = "i-0ddddddddddddddd4", "i-0eeeeeeeeeeeeeee5", "i-0fffffffffffffff6"
NONCE = "nonce-of-the-fleet-client-0123"
NO_MATCH = (400, {"msg": "No matching host could be found!"})
ROOT = basic_auth("root", "pw")


@pytest.fixture
def plugins_config(trust_files):
    return plugins_config_for(cloud_metadata={
        **trust_files, "gcp_audience": AUDIENCE, "allowed_accounts": [ACCOUNT], "allowed_projects": [PROJECT]})


async def post(fetch, world, identity: dict[str, str], **extra: Any) -> tuple[int, dict[str, Any]]:
    body = {"host_config_key": world.key, "cloud_identity": identity, **extra}
    response = await fetch(CALLBACK.format(world.template_id), method="POST",
                           headers={"Content-Type": "application/json"}, body=json.dumps(body))
    return response.code, json.loads(response.body)


async def api(fetch, path: str, method: str = "GET", body: Any = None) -> Any:
    response = await fetch(path, method=method, headers={**ROOT, "Content-Type": "application/json"},
                           body=None if body is None else json.dumps(body))
    assert response.code < 300, response.body
    return json.loads(response.body)


async def registering(fetch, seed, services):
    """An inventory (with one host behind the NAT address) whose admin turned registration on, by REST."""
    await services.accounts.create_user("root", "pw", superuser=True)
    world = await seed({"nat-only": {"ansible_host": "127.0.0.1"}})
    inventory = await api(fetch, f"/api/v2/inventories/{world.inventory_id}/", "PATCH",
                          {"register_verified_hosts": True, "registration_group": "fleet"})
    assert (inventory["register_verified_hosts"], inventory["registration_group"]) == (True, "fleet")
    return world


async def hosts_of(fetch, world) -> list[dict[str, Any]]:
    return (await api(fetch, f"/api/v2/inventories/{world.inventory_id}/hosts/"))["results"]


async def job_limits(services) -> list[str]:
    _, jobs = await services.jobs.page(LOCAL_ADMIN)
    return sorted(j.limit for j in jobs)


async def test_off_by_default_an_unknown_verified_instance_is_not_registered(fetch, seed, services, aws):
    await services.accounts.create_user("root", "pw", superuser=True)
    world = await seed({"nat-only": {"ansible_host": "127.0.0.1"}})
    inventory = await api(fetch, f"/api/v2/inventories/{world.inventory_id}/")
    assert inventory["register_verified_hosts"] is False
    assert await post(fetch, world, aws.identity(aws.document(INSTANCE), nonce=NONCE)) == NO_MATCH
    assert [h["name"] for h in await hosts_of(fetch, world)] == ["nat-only"]
    _, attempts = await services.attempts.page(world.template_id)
    assert [e["resolver"] for e in attempts[0].trace] == ["cloud_metadata"]


async def test_concurrent_callbacks_of_one_instance_register_one_host_and_launch_one_job(
        fetch, seed, services, aws):
    world = await registering(fetch, seed, services)
    identity = aws.identity(aws.document(INSTANCE), nonce=NONCE)
    # Whatever else the body says is the caller's word, shared by the fleet: never a variable.
    answers = await asyncio.gather(*(
        post(fetch, world, identity, ansible_host="10.6.6.6", instance_id="i-0evil") for _ in range(40)))
    jobs = {body["job"] for code, body in answers if code == 202}
    assert len(jobs) == 1, answers
    (job,) = jobs
    others = [(code, body) for code, body in answers if code != 202]
    assert others == [(400, {"msg": "Host callback job already pending.", "job": job})] * len(others)
    assert await job_limits(services) == [INSTANCE]

    hosts = {h["name"]: h for h in await hosts_of(fetch, world)}
    assert sorted(hosts) == [INSTANCE, "nat-only"]
    host = hosts[INSTANCE]
    assert json.loads(host["variables"]) == {
        "instance_id": INSTANCE, "account_id": ACCOUNT, "region": "us-east-1", "availability_zone": "us-east-1a",
        "private_ip_address": "10.0.1.23", "ansible_host": "10.0.1.23",
        "instance_type": "t3.micro", "image_id": "ami-0abcdef1234567890"}
    assert (host["registered_by_callback"], hosts["nat-only"]["registered_by_callback"]) == (True, False)
    assert host["description"].startswith(f"Registered by provisioning callback: aws instance {INSTANCE}")
    groups = await api(fetch, f"/api/v2/hosts/{host['id']}/groups/")
    assert [g["name"] for g in groups["results"]] == ["fleet"]
    listed = await api(fetch, f"/api/v2/hosts/?inventory={world.inventory_id}&registered_by_callback=true")
    assert [h["name"] for h in listed["results"]] == [INSTANCE]

    _, attempts = await services.attempts.page(world.template_id)
    registered = [a for a in attempts if a.trace[-1]["evidence"] == [f"registered host {INSTANCE} in group fleet"]]
    assert [(a.status_code, a.job_id, a.host_name, a.resolved_by) for a in registered] == [
        (202, job, INSTANCE, "self_registration")]
    # The host is indexed like any other: the next callback of the instance matches it by its id.
    code, body = await post(fetch, world, identity)
    assert (code, body) == (400, {"msg": "Host callback job already pending.", "job": job})
    _, attempts = await services.attempts.page(world.template_id)
    assert [(e["resolver"], e["hosts"]) for e in attempts[0].trace] == [("cloud_metadata", [INSTANCE])]


class TestRateLimit:
    @pytest.fixture
    def settings(self, settings):
        return dataclasses.replace(settings, registrations_per_minute=2)

    async def test_registrations_beyond_the_rate_of_an_inventory_get_429(self, fetch, seed, services, aws):
        world = await registering(fetch, seed, services)
        for instance in (INSTANCE, OTHER):
            code, body = await post(fetch, world, aws.identity(aws.document(instance), nonce=NONCE))
            assert code == 202, body
        response = await fetch(CALLBACK.format(world.template_id), method="POST", body=json.dumps({
            "host_config_key": world.key, "cloud_identity": aws.identity(aws.document(THIRD), nonce=NONCE)}),
            headers={"Content-Type": "application/json"})
        wait = int(response.headers["Retry-After"])
        assert response.code == 429 and 50 <= wait <= 60
        assert json.loads(response.body) == {
            "detail": f"Too many hosts registered by callback in this inventory. Try again in {wait} seconds."}
        assert sorted(h["name"] for h in await hosts_of(fetch, world)) == [INSTANCE, OTHER, "nat-only"]
        _, attempts = await services.attempts.page(world.template_id)
        assert (attempts[0].status_code, attempts[0].job_id) == (429, None)
        # Per inventory: another one still registers.
        elsewhere = await seed(name="elsewhere")
        await api(fetch, f"/api/v2/inventories/{elsewhere.inventory_id}/", "PATCH", {"register_verified_hosts": True})
        code, body = await post(fetch, elsewhere, aws.identity(aws.document(THIRD), nonce=NONCE))
        assert code == 202, body
        assert [h["name"] for h in await hosts_of(fetch, elsewhere)] == [THIRD]
        groups = await api(fetch, f"/api/v2/inventories/{elsewhere.inventory_id}/groups/")
        assert [g["name"] for g in groups["results"]] == ["registered_by_callback"]


async def test_a_refused_identity_never_registers(fetch, seed, services, aws, aws_elsewhere, gcp):
    world = await registering(fetch, seed, services)
    tampered = aws.identity(aws.document(INSTANCE), nonce=NONCE)
    tampered["document"] = tampered["document"].replace(INSTANCE, OTHER)
    for identity in (tampered,
                     aws_elsewhere.identity(aws_elsewhere.document(INSTANCE), nonce=NONCE),
                     aws.identity(aws.document(INSTANCE, accountId="999999999999"), nonce=NONCE),
                     gcp.identity(gcp.token(project="someone-else")),
                     gcp.identity(gcp.token(issued=time.time() - 900))):
        code, body = await post(fetch, world, identity)
        assert code == 403 and body["msg"].startswith("Cloud identity refused: "), body
    assert [h["name"] for h in await hosts_of(fetch, world)] == ["nat-only"]
    assert await job_limits(services) == []


class TestGcpHostsNamedByInstanceName:
    @pytest.fixture
    def settings(self, settings):
        return dataclasses.replace(settings, register_gcp_by_name=True)

    async def test_the_host_is_named_by_the_instance_name(self, fetch, seed, services, gcp):
        world = await registering(fetch, seed, services)
        code, body = await post(fetch, world, gcp.identity(gcp.token(instance_id="777", instance_name="db-7")))
        assert code == 202, body
        host = {h["name"]: h for h in await hosts_of(fetch, world)}["db-7"]
        assert json.loads(host["variables"]) == {
            "instance_id": "777", "instance_name": "db-7", "project_id": PROJECT,
            "region": "europe-west1", "availability_zone": "europe-west1-b"}
        assert await job_limits(services) == ["db-7"]
        # Another instance under the same name is not that host.
        code, body = await post(fetch, world, gcp.identity(gcp.token(instance_id="778", instance_name="db-7")))
        assert (code, body) == NO_MATCH
        _, attempts = await services.attempts.page(world.template_id)
        assert attempts[0].trace[-1]["evidence"] == [
            "host name db-7 is taken by a host without this instance id: not registered"]


async def test_inventory_create_turns_registration_on_through_the_admin_service(services, settings, tmp_path):
    def create(*args: str):
        return run_cli("inventory", "create", *args, "--database-url", settings.database_url, cwd=tmp_path)

    made = await asyncio.to_thread(create, "fleet", "--register-verified-hosts", "--registration-group", "nat")
    assert made.returncode == 0, made.stderr
    assert "registers verified hosts in group nat" in made.stdout
    plain = await asyncio.to_thread(create, "plain")
    assert plain.returncode == 0 and "registers" not in plain.stdout
    shown = {name: await services.admin.named("inventories", LOCAL_ADMIN, name) for name in ("fleet", "plain")}
    assert [(i["register_verified_hosts"], i["registration_group"]) for i in shown.values()] == [
        (True, "nat"), (False, "registered_by_callback")]
    # The API's checks hold for the command line too.
    refused = await asyncio.to_thread(create, "spaced", "--register-verified-hosts", "--registration-group", " nat")
    assert (refused.returncode, refused.stderr.splitlines()[-1]) == (
        2, "tornado-callback: error: registration_group: Names may not begin or end with spaces.")
