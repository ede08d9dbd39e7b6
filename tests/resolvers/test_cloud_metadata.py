"""cloud_metadata: instance ids carried by cloud inventories; unsigned claims and
unverifiable identity documents are never trusted blindly (tests/identity/test_callback_identity.py
has the verified ones)."""

from __future__ import annotations

import json

import pytest

from tests.conftest import plugins_config_for
from tornado_callback.accounts.service import LOCAL_ADMIN
from tornado_callback.config import ConfigError, Settings
from tornado_callback.plugin.manager import build_chain, make_plugin_manager

CALLBACK = "/api/v2/job_templates/{}/callback/"
HOSTS = {
    "i-web1": {"ec2_instance_id": "i-0abc", "private_ip_address": "10.0.0.1"},
    "here": {"instance_id": "i-0def", "ansible_host": "127.0.0.1"},
}


def post(fetch, world, **fields):
    return fetch(CALLBACK.format(world.template_id), method="POST",
                 headers={"Content-Type": "application/json"},
                 body=json.dumps({"host_config_key": world.key, **fields}))


async def outcome(services, world):
    _, jobs = await services.jobs.page(LOCAL_ADMIN)
    _, attempts = await services.attempts.page(world.template_id)
    trace = {e["resolver"]: (e["outcome"], e["evidence"]) for e in attempts[0].trace}
    return [j.limit for j in jobs], trace


@pytest.mark.gen_test
async def test_an_unsigned_claim_is_ignored_by_default(fetch, seed, services):
    world = await seed(HOSTS)
    response = await post(fetch, world, instance_id="i-0abc")
    assert response.code == 202
    jobs, trace = await outcome(services, world)
    assert jobs == ["here"]  # the address decided, not the claim
    assert trace["cloud_metadata"] == (
        "no_match", ["unsigned instance_id claim ignored (trust_unsigned_claims is off)"])


class TestTrustedClaims:
    @pytest.fixture
    def plugins_config(self):
        return plugins_config_for(cloud_metadata={"trust_unsigned_claims": True})

    @pytest.mark.gen_test
    async def test_a_claim_matches_the_instance_id_variables(self, fetch, seed, services):
        world = await seed(HOSTS)
        response = await post(fetch, world, instance_id="i-0abc")
        assert response.code == 202
        jobs, trace = await outcome(services, world)
        assert jobs == ["i-web1"]
        assert trace == {"cloud_metadata": ("matched", ["unsigned instance id claim i-0abc"])}

    @pytest.mark.gen_test
    async def test_an_unknown_id_falls_back_to_the_address(self, fetch, seed, services):
        world = await seed(HOSTS)
        response = await post(fetch, world, instance_id="i-0zzz")
        assert response.code == 202
        jobs, trace = await outcome(services, world)
        assert jobs == ["here"]
        assert trace["cloud_metadata"][1] == [
            "unsigned instance id claim i-0zzz", "no host has this instance id"]


@pytest.mark.gen_test
async def test_an_identity_document_is_refused_without_fallback_where_no_certificate_is_configured(
        fetch, seed, services):
    world = await seed(HOSTS)
    response = await post(fetch, world, cloud_identity={
        "provider": "aws", "document": '{"instanceId": "i-0abc"}', "signature": "AAAA",
        "nonce": "a-nonce-of-enough-length-0001"})
    reason = "provider not configured: this server has no AWS certificates (aws_certificates)"
    assert response.code == 403
    assert json.loads(response.body) == {"msg": f"Cloud identity refused: {reason}."}
    jobs, trace = await outcome(services, world)
    assert jobs == []
    # The address would have matched "here": it must not overrule a failed proof.
    assert trace == {"cloud_metadata": ("no_match", [
        f"cloud identity refused: {reason}", "no fallback to other evidence"])}


@pytest.mark.parametrize("options, message", [
    ({"instance_id_variables": "instance_id"}, "must be a list"),
    ({"trust_unsigned_claims": "yes"}, "must be true or false"),
    ({"trust": True}, "unknown option"),
])
def test_bad_options_refuse_to_start(options, message):
    settings = Settings(plugins=plugins_config_for(cloud_metadata=options))
    with pytest.raises(ConfigError, match=message):
        build_chain(make_plugin_manager(load_entrypoints=False), settings)
