"""One active job per template and host, held by the database under concurrency."""

from __future__ import annotations

import asyncio
import json
from collections import Counter

import pytest

from tornado_callback.accounts.service import LOCAL_ADMIN

pytestmark = pytest.mark.gen_test(timeout=60)


async def test_fifty_concurrent_callbacks_from_one_host_give_one_job(fetch, seed, services):
    world = await seed({"web1": {"ansible_host": "127.0.0.1"}})
    body = json.dumps({"host_config_key": world.key})
    responses = await asyncio.gather(*(
        fetch(f"/api/v2/job_templates/{world.template_id}/callback/", method="POST", body=body,
              headers={"Content-Type": "application/json"})
        for _ in range(50)
    ))
    codes = Counter(r.code for r in responses)
    assert codes == {202: 1, 400: 49}
    job_id = next(json.loads(r.body)["job"] for r in responses if r.code == 202)
    for refused in (r for r in responses if r.code == 400):
        assert json.loads(refused.body) == {"msg": "Host callback job already pending.", "job": job_id}
    count, jobs = await services.jobs.page(LOCAL_ADMIN)
    assert count == 1 and jobs[0].id == job_id
    attempts, _ = await services.attempts.page(world.template_id)
    assert attempts == 50


async def test_finished_job_lets_the_host_call_again(fetch, seed, services):
    world = await seed({"web1": {"ansible_host": "127.0.0.1"}})
    body = json.dumps({"host_config_key": world.key})
    path = f"/api/v2/job_templates/{world.template_id}/callback/"
    first = await fetch(path, method="POST", body=body, headers={"Content-Type": "application/json"})
    assert first.code == 202
    async with services.db.session() as session:
        from tornado_callback.store.models import Job
        job = await session.get(Job, json.loads(first.body)["job"])
        job.status = "successful"
        await session.commit()
    again = await fetch(path, method="POST", body=body, headers={"Content-Type": "application/json"})
    assert again.code == 202
