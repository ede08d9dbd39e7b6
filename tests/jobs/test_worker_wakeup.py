"""A job queued by this process starts at once, not at the workers' next poll."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from tests.jobs_support import (  # noqa: F401
    LOCALHOST_VARS,
    job_settings,
    wait_for_status,
    workers,
    write_playbook,
)

pytestmark = [pytest.mark.gen_test(timeout=60), pytest.mark.usefixtures("workers")]

POLL = 30.0


@pytest.fixture
def settings(database_url, plugins_config, tmp_path):
    return job_settings(database_url, plugins_config, tmp_path, job_poll_interval=POLL)


async def test_callback_wakes_idle_workers(fetch, seed, services, tmp_path):
    playbook = write_playbook(tmp_path / "project", "noop.yml", """\
    - name: Nothing much
      ansible.builtin.debug:
        msg: hi
""")
    world = await seed({"localhost": dict(LOCALHOST_VARS)}, project_dir=str(tmp_path / "project"),
                       playbook=playbook)
    await asyncio.sleep(0.5)  # the workers found nothing and sleep for POLL seconds
    started = time.monotonic()
    response = await fetch(f"/api/v2/job_templates/{world.template_id}/callback/", method="POST",
                           body=json.dumps({"host_config_key": world.key}),
                           headers={"Content-Type": "application/json"})
    job_id = json.loads(response.body)["job"]
    await wait_for_status(services, job_id, ("running", "successful"), timeout=POLL / 3)
    assert time.monotonic() - started < 5
