"""Every POST leaves one audit record; the key is never stored or logged."""

from __future__ import annotations

import json
import logging

import pytest

from tests.conftest import trace_entry

pytestmark = pytest.mark.gen_test

KEY = "very-secret-host-config-key"


async def post(fetch, template_id, body, content_type="application/json"):
    return await fetch(f"/api/v2/job_templates/{template_id}/callback/", method="POST",
                       body=body, headers={"Content-Type": content_type})


async def test_each_post_writes_one_attempt_with_outcome(fetch, seed, services):
    world = await seed({"web1": {"ansible_host": "127.0.0.1"}, "db1": {"ansible_host": "10.0.0.9"}}, key=KEY)
    accepted = await post(fetch, world.template_id, json.dumps({"host_config_key": KEY}))
    await post(fetch, world.template_id, json.dumps({"host_config_key": "wrong"}))
    await post(fetch, world.template_id, "{broken")
    await post(fetch, "424242", json.dumps({"host_config_key": KEY}))
    count, attempts = await services.attempts.page()
    assert count == 4
    newest_first = [(a.status_code, a.job_template_id) for a in attempts]
    assert newest_first == [(404, None), (400, world.template_id), (403, world.template_id),
                            (202, world.template_id)]
    ok = attempts[-1]
    assert ok.job_id == json.loads(accepted.body)["job"]
    assert (ok.host_name, ok.peer_address, ok.client_addresses, ok.resolved_by) == (
        "web1", "127.0.0.1", ["127.0.0.1"], "ip_match")
    assert trace_entry(ok.trace, "ip_match")["outcome"] == "matched"
    assert attempts[1].msg.startswith("JSON parse error")


async def test_key_never_reaches_the_database_or_the_logs(fetch, seed, services, caplog):
    world = await seed({"web1": {"ansible_host": "127.0.0.1"}}, key=KEY)
    caplog.set_level(logging.DEBUG)  # everything the callback path logs, drivers included
    await post(fetch, world.template_id, json.dumps({"host_config_key": KEY, "extra_vars": {"x": KEY}}))
    await post(fetch, world.template_id, json.dumps({"host_config_key": KEY + "x"}))
    await post(fetch, world.template_id, f"host_config_key={KEY}", "application/x-www-form-urlencoded")
    _, attempts = await services.attempts.page()
    for attempt in attempts:
        record = json.dumps({c.name: getattr(attempt, c.name) for c in attempt.__table__.columns},
                            default=str)
        assert KEY not in record
    assert KEY not in caplog.text
