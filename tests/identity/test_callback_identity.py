"""Signed cloud identities in the callback (API.md section 4), against a real server and database:
hosts behind one NAT address told apart, each refusal a 403 whose reason is in the answer, the
trace and the audit record (and no secret is), replays refused, bindings reset by REST and CLI."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.conftest import basic_auth, plugins_config_for
from tests.helpers import free_port, run_cli
from tests.identity.cloud import ACCOUNT, AUDIENCE, PROJECT, AwsSigner, GcpSigner
from tests.inventory_scripts import InventoryScript
from tornado_callback import plugin
from tornado_callback.accounts.service import LOCAL_ADMIN
from tornado_callback.identity.verdict import NONCE_MISMATCH, REPLAYED

pytestmark = pytest.mark.gen_test(timeout=30)

CALLBACK = "/api/v2/job_templates/{}/callback/"
BINDING = "/api/v2/cloud_identities/{}/{}/"
NAT = "127.0.0.1"  # every request of these tests comes from it: the hosts' one NAT address
AWS_A, AWS_B, AWS_UNKNOWN, GCE = "i-0aaaaaaaaaaaaaaa1", "i-0bbbbbbbbbbbbbbb2", "i-0ccccccccccccccc3", "4242424242424242"
NONCE_A, NONCE_B = "nonce-of-client-a-0123456789", "nonce-of-client-b-0123456789"
HOSTS = {
    "web-a": {"instance_id": AWS_A, "ansible_host": NAT},
    "web-b": {"ec2_instance_id": AWS_B, "ansible_host": NAT},
    "gce-1": {"instance_id": GCE, "ansible_host": NAT},
}
NO_FALLBACK = "no fallback to other evidence"
MISMATCH = (403, {"msg": f"Cloud identity refused: {NONCE_MISMATCH}."})


@pytest.fixture
def plugins_config(trust_files):
    return plugins_config_for(cloud_metadata={
        **trust_files, "gcp_audience": AUDIENCE, "allowed_accounts": [ACCOUNT], "allowed_projects": [PROJECT]})


async def answer(fetch, world, identity: Any = None) -> tuple[int, dict[str, Any]]:
    body = {"host_config_key": world.key}
    if identity is not None:
        body["cloud_identity"] = identity
    response = await fetch(CALLBACK.format(world.template_id), method="POST",
                           headers={"Content-Type": "application/json"}, body=json.dumps(body))
    return response.code, json.loads(response.body)


async def last_attempt(services, world):
    _, attempts = await services.attempts.page(world.template_id)
    return attempts[0]


def steps(record) -> list[tuple[str, str, list[str]]]:
    return [(e["resolver"], e["outcome"], e["evidence"]) for e in record.trace]


async def job_limits(services) -> list[str]:
    _, jobs = await services.jobs.page(LOCAL_ADMIN)
    return sorted(j.limit for j in jobs)


async def test_hosts_behind_one_nat_address_are_told_apart_by_their_verified_identities(
        fetch, seed, services, aws, gcp):
    world = await seed(HOSTS)
    # By address alone they are one.
    assert await answer(fetch, world) == (400, {"msg": "Multiple hosts matched the request!"})
    for identity in (aws.identity(aws.document(AWS_A), nonce=NONCE_A),
                     aws.identity(aws.document(AWS_B), form="rsa2048", nonce=NONCE_B),
                     gcp.identity(gcp.token(instance_id=GCE))):
        code, body = await answer(fetch, world, identity)
        assert code == 202, body
    assert await job_limits(services) == ["gce-1", "web-a", "web-b"]
    record = await last_attempt(services, world)
    assert (record.host_name, record.resolved_by) == ("gce-1", "cloud_metadata")
    assert steps(record) == [("cloud_metadata", "matched", [
        f"signature verified: gcp instance {GCE} of project {PROJECT} in europe-west1-b"])]


def _tampered(aws: AwsSigner, elsewhere: AwsSigner, gcp: GcpSigner) -> dict[str, str]:
    """web-a's document, edited to claim web-b's instance."""
    identity = aws.identity(aws.document(AWS_A), nonce=NONCE_A)
    return {**identity, "document": identity["document"].replace(AWS_A, AWS_B)}


Make = Callable[[AwsSigner, AwsSigner, GcpSigner], Any]
REFUSALS: dict[str, tuple[Make, str]] = {
    "tampered document": (_tampered, "bad signature: the document does not match its signature"),
    "key not configured": (
        lambda aws, elsewhere, gcp: elsewhere.identity(elsewhere.document(AWS_A), nonce=NONCE_A),
        "unknown certificate: no configured AWS certificate made this signature"),
    "wrong account": (
        lambda aws, elsewhere, gcp: aws.identity(aws.document(AWS_A, accountId="999999999999"), nonce=NONCE_A),
        "account 999999999999 is not allowed"),
    "wrong project": (
        lambda aws, elsewhere, gcp: gcp.identity(gcp.token(instance_id=GCE, project="someone-else")),
        "project someone-else is not allowed"),
    "wrong audience": (
        lambda aws, elsewhere, gcp: gcp.identity(gcp.token(instance_id=GCE, audience="https://other.test/")),
        "wrong audience: the token was requested for another audience"),
    "expired token": (
        lambda aws, elsewhere, gcp: gcp.identity(gcp.token(instance_id=GCE, issued=time.time() - 7200)),
        "expired: the token expired "),
    "too old token": (
        lambda aws, elsewhere, gcp: gcp.identity(gcp.token(instance_id=GCE, issued=time.time() - 900)),
        "too old: the token was issued "),
    "short nonce": (
        lambda aws, elsewhere, gcp: aws.identity(aws.document(AWS_A), nonce="x" * 15),
        "malformed: nonce is shorter than 16 characters"),
    "unknown provider": (lambda aws, elsewhere, gcp: {"provider": "azure", "document": "{}"},
                         "malformed: provider must be aws or gcp"),
}


@pytest.mark.parametrize("case", list(REFUSALS))
async def test_a_refused_identity_is_a_403_with_its_reason_never_overruled_by_the_address(
        case, fetch, seed, services, aws, aws_elsewhere, gcp):
    make, expected = REFUSALS[case]
    world = await seed(HOSTS | {"nat-only": {"ansible_host": NAT}})
    identity = make(aws, aws_elsewhere, gcp)
    code, body = await answer(fetch, world, identity)
    assert code == 403
    reason = body["msg"].removeprefix("Cloud identity refused: ").removesuffix(".")
    assert body == {"msg": f"Cloud identity refused: {reason}."} and reason.startswith(expected)
    record = await last_attempt(services, world)
    assert (record.status_code, record.msg, record.job_id, record.host_name) == (403, body["msg"], None, "")
    assert steps(record) == [("cloud_metadata", "no_match", [f"cloud identity refused: {reason}", NO_FALLBACK])]
    assert await job_limits(services) == []
    stored = json.dumps([record.msg, record.trace])
    # Neither the proof nor the nonce, nor any line of them (signatures come wrapped).
    for name, value in identity.items():
        if name != "provider":
            assert all(line.strip() not in stored for line in [value, *value.splitlines()] if len(line.strip()) >= 15)


async def test_a_verified_instance_that_no_host_carries_is_not_matched_by_its_address(fetch, seed, services, aws):
    world = await seed(HOSTS)
    code, body = await answer(fetch, world, aws.identity(aws.document(AWS_UNKNOWN), nonce=NONCE_A))
    assert (code, body) == (400, {"msg": "No matching host could be found!"})
    record = await last_attempt(services, world)
    assert steps(record) == [("cloud_metadata", "no_match", [
        f"signature verified: aws instance {AWS_UNKNOWN} of account {ACCOUNT} in us-east-1a",
        "no host has this instance id", NO_FALLBACK])]


async def test_a_verified_instance_whose_host_is_disabled_is_not_matched_by_its_address(
        fetch, seed, services, aws):
    """The proof names web-a; web-a is disabled. Its neighbour behind the same address must not be
    configured in its place."""
    world = await seed({"web-a": {**HOSTS["web-a"], "enabled": False}, "neighbour": {"ansible_host": NAT}})
    code, body = await answer(fetch, world, aws.identity(aws.document(AWS_A), nonce=NONCE_A))
    assert (code, body) == (400, {"msg": "No matching host could be found!"})
    assert await job_limits(services) == []
    record = await last_attempt(services, world)
    assert [(resolver, outcome) for resolver, outcome, _ in steps(record)] == [("cloud_metadata", "no_match")]


async def test_update_on_launch_brings_the_verified_instance_and_a_refused_one_syncs_nothing(
        fetch, seed, services, aws, tmp_path):
    world = await seed({"nat-only": {"ansible_host": NAT}})
    script = InventoryScript(tmp_path / "script")
    await services.admin.create("inventory_sources", LOCAL_ADMIN, {
        "inventory": world.inventory_id, "name": "ec2", "source": "script", "source_path": str(script.path),
        "update_on_launch": True, "update_cache_timeout": 0})
    script.set_hosts({"late": {"ec2_instance_id": AWS_UNKNOWN, "ansible_host": NAT}})
    bad = {**aws.identity(aws.document(AWS_UNKNOWN), nonce=NONCE_A), "signature": aws.signature("{}")}
    assert (await answer(fetch, world, bad))[0] == 403
    assert script.runs == 0
    code, body = await answer(fetch, world, aws.identity(aws.document(AWS_UNKNOWN), nonce=NONCE_A))
    assert code == 202, body
    assert (script.runs, await job_limits(services)) == (1, ["late"])


async def test_a_gcp_token_is_accepted_once(fetch, seed, services, gcp):
    world = await seed(HOSTS)
    token = gcp.identity(gcp.token(instance_id=GCE))
    assert (await answer(fetch, world, token))[0] == 202
    replayed = (403, {"msg": f"Cloud identity refused: {REPLAYED}."})
    assert await answer(fetch, world, token) == replayed
    record = await last_attempt(services, world)
    assert steps(record) == [("cloud_metadata", "no_match", [f"cloud identity refused: {REPLAYED}", NO_FALLBACK])]
    # A fresh token of the same instance is no replay: it matches (and finds its job pending).
    code, body = await answer(fetch, world, gcp.identity(gcp.token(instance_id=GCE, issued=time.time() - 5)))
    assert (code, body["msg"]) == (400, "Host callback job already pending.")


async def test_a_gcp_token_sent_by_many_at_once_is_accepted_once(fetch, seed, services, gcp):
    world = await seed(HOSTS)
    token = gcp.identity(gcp.token(instance_id=GCE))
    answers = await asyncio.gather(*(answer(fetch, world, token) for _ in range(12)))
    assert sorted(code for code, _ in answers) == [202] + [403] * 11
    assert await job_limits(services) == ["gce-1"]


async def test_an_aws_instance_is_bound_to_its_first_nonce_until_an_admin_resets_it(
        fetch, seed, services, settings, aws, tmp_path):
    world = await seed(HOSTS)
    await services.accounts.create_user("root", "pw", superuser=True)
    document = aws.document(AWS_A)

    def send(nonce: str):
        return answer(fetch, world, aws.identity(document, form="rsa2048", nonce=nonce))

    code, first = await send(NONCE_A)
    assert code == 202
    # Verified and matched again (its job is still pending): the document may be sent again and again.
    pending = (400, {"msg": "Host callback job already pending.", "job": first["job"]})
    assert await send(NONCE_A) == pending
    # A copy of the document with another client's nonce.
    assert await send(NONCE_B) == MISMATCH
    record = await last_attempt(services, world)
    assert steps(record) == [("cloud_metadata", "no_match", [f"cloud identity refused: {NONCE_MISMATCH}", NO_FALLBACK])]
    assert NONCE_B not in json.dumps(record.trace)

    # Rebuilt, the instance has a new nonce: an admin resets its binding, by REST...
    reset = await fetch(BINDING.format("aws", AWS_A), method="DELETE", headers=basic_auth("root", "pw"))
    assert (reset.code, reset.body) == (204, b"")
    assert await send(NONCE_B) == pending
    assert await send(NONCE_A) == MISMATCH
    # ... or by the command line.
    cli = await asyncio.to_thread(run_cli, "identity", "reset", "aws", AWS_A,
                                  "--database-url", settings.database_url, cwd=tmp_path)
    assert cli.returncode == 0, cli.stderr
    assert f"aws instance {AWS_A}: binding reset" in cli.stdout
    assert await send(NONCE_A) == pending
    assert await send(NONCE_B) == MISMATCH


async def test_a_binding_is_reset_by_a_superuser_and_only_when_there_is_one(fetch, services, settings, tmp_path):
    await services.accounts.create_user("root", "pw", superuser=True)
    await services.accounts.create_user("alice", "pw")
    path = BINDING.format("aws", AWS_A)
    assert (await fetch(path, method="DELETE")).code == 401
    denied = await fetch(path, method="DELETE", headers=basic_auth("alice", "pw"))
    assert (denied.code, json.loads(denied.body)) == (403, {"detail": "You do not have permission to perform this action."})
    for provider, instance in (("aws", AWS_A), ("gcp", GCE), ("azure", AWS_A), ("aws", "i-" + "0" * 400)):
        missing = await fetch(BINDING.format(provider, instance), method="DELETE", headers=basic_auth("root", "pw"))
        assert (missing.code, json.loads(missing.body)) == (404, {"detail": "Not found."})
    cli = await asyncio.to_thread(run_cli, "identity", "reset", "aws", AWS_A,
                                  "--database-url", settings.database_url, cwd=tmp_path)
    assert (cli.returncode, cli.stderr.splitlines()[-1]) == (
        2, f"tornado-callback: error: aws instance {AWS_A} is bound to no nonce")


class TestProviderWithoutAnchors:
    @pytest.fixture
    def plugins_config(self, trust_files):
        return plugins_config_for(cloud_metadata={"aws_certificates": trust_files["aws_certificates"]})

    async def test_its_proofs_are_refused_saying_so(self, fetch, seed, services, gcp):
        world = await seed(HOSTS)
        reason = "provider not configured: this server has no Google keys (gcp_jwks)"
        assert await answer(fetch, world, gcp.identity(gcp.token(instance_id=GCE))) == (
            403, {"msg": f"Cloud identity refused: {reason}."})
        assert steps(await last_attempt(services, world)) == [
            ("cloud_metadata", "no_match", [f"cloud identity refused: {reason}", NO_FALLBACK])]


class Witness(plugin.HostResolver):
    """A third-party resolver ranked above cloud_metadata: tells what it was shown, and
    claims web-a whatever the caller proves."""

    name, priority = "witness", 900

    async def resolve(self, request, state, hosts):
        seen = request.cloud_identity
        return plugin.ResolverResult(hosts=await hosts.find(plugin.INSTANCE_KIND, [AWS_A]), evidence=[
            f"body {sorted(request.body)}",
            f"{seen.provider} {seen.instance_id!r} verified={seen.verified} refusal={seen.refusal!r}",
            f"facts {dict(seen.facts)}"])


class ThirdParty:
    @plugin.hookimpl
    def tcb_register_resolvers(self, settings):
        return [Witness()]


class TestThirdPartyResolvers:
    @pytest.fixture
    def test_plugins(self):
        return [ThirdParty()]

    async def test_they_see_the_verdict_never_the_proof(self, fetch, seed, services, gcp):
        world = await seed(HOSTS)
        code, body = await answer(fetch, world, gcp.identity(gcp.token(instance_id=GCE)))
        assert code == 202, body
        facts = {"instance_id": GCE, "project_id": PROJECT, "region": "europe-west1",
                 "availability_zone": "europe-west1-b", "instance_name": "web-1"}
        assert steps(await last_attempt(services, world)) == [("witness", "matched", [
            "body []", f"gcp {GCE!r} verified=True refusal=None", f"facts {facts}"])]

    async def test_a_refusal_is_decisive_whatever_they_match(self, fetch, seed, services, aws, aws_elsewhere, gcp):
        world = await seed(HOSTS)
        code, body = await answer(fetch, world, _tampered(aws, aws_elsewhere, gcp))
        reason = REFUSALS["tampered document"][1]
        assert (code, body) == (403, {"msg": f"Cloud identity refused: {reason}."})
        record = await last_attempt(services, world)
        assert (record.msg, record.job_id, record.trace[0]["evidence"][1]) == (
            body["msg"], None, f"aws '' verified=False refusal={reason!r}")
        assert await job_limits(services) == []


@pytest.mark.parametrize("content, problem", [
    (None, "No such file or directory"),
    (b"not a certificate\n", "not a PEM certificate file"),
])
def test_an_unusable_certificate_stops_serve_at_start_naming_the_option(content, problem, tmp_path):
    certificate = tmp_path / "aws.pem"
    if content is not None:
        certificate.write_bytes(content)
    plugins = tmp_path / "plugins.toml"
    plugins.write_text(f'[resolvers.cloud_metadata]\naws_certificates = ["{certificate}"]\n')
    served = run_cli("serve", "--no-worker", "--port", str(free_port()), "--plugins", str(plugins),
                     "--database-url", f"sqlite:///{tmp_path / 'db.sqlite'}", cwd=tmp_path)
    assert (served.returncode, served.stderr.splitlines()[-1]) == (
        2, f"tornado-callback: error: resolvers.cloud_metadata.aws_certificates: {certificate}: {problem}")
