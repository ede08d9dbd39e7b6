"""Jobs run for real: a callback's job becomes an ansible-playbook run on localhost."""

from __future__ import annotations

import json
import time

import pytest

from tests.jobs_support import (  # noqa: F401  (fixtures used by this module)
    LOCALHOST_VARS,
    settings,
    wait_for_status,
    workers,
    write_playbook,
)
from tornado_callback.jobs.executor import EXPLAIN_SHUTDOWN
from tornado_callback.store.models import Group, GroupChild, GroupHost, Inventory

pytestmark = [pytest.mark.gen_test(timeout=90), pytest.mark.usefixtures("workers")]

CALLBACK = "/api/v2/job_templates/{}/callback/"
JSON = {"Content-Type": "application/json"}


async def call_back(fetch, world, extra_vars=None, **kwargs):
    body = {"host_config_key": world.key}
    if extra_vars is not None:
        body["extra_vars"] = extra_vars
    response = await fetch(CALLBACK.format(world.template_id), method="POST",
                           body=json.dumps(body), headers=JSON, **kwargs)
    assert response.code == 202, response.body
    return json.loads(response.body)["job"]


async def test_callback_job_runs_the_playbook_on_the_calling_host(
    fetch, seed, services, admin, project, out
):
    marker = out / "marker.txt"
    playbook = write_playbook(project, "site.yml", """\
    - name: Leave a marker
      ansible.builtin.copy:
        dest: "{{ marker }}"
        content: "{{ inventory_hostname }} {{ greeting }} job {{ awx_job_id }}\\n"
""")
    world = await seed({"localhost": dict(LOCALHOST_VARS), "other": {"ansible_host": "10.9.9.9"}},
                       ask_variables_on_launch=True, extra_vars={"marker": str(marker)},
                       project_dir=str(project), playbook=playbook)
    job_id = await call_back(fetch, world, extra_vars='{"greeting": "hello"}')

    job = await wait_for_status(services, job_id)

    assert (job.status, job.failed, job.job_explanation) == ("successful", False, "")
    assert marker.read_text() == f"localhost hello job {job_id}\n"
    assert "TASK [Leave a marker]" in job.result_stdout
    assert "changed: [localhost]" in job.result_stdout
    assert "other" not in job.result_stdout  # limit = the host that called
    assert job.started <= job.finished and job.elapsed > 0
    events = {e.event: e for e in await services.jobs.events(job_id)}
    assert events["runner_on_ok"].host_name == "localhost"
    assert events["runner_on_ok"].task == "Leave a marker"
    assert events["runner_on_ok"].changed is True

    detail = json.loads((await fetch(f"/api/v2/jobs/{job_id}/", headers=admin)).body)
    assert (detail["status"], detail["launch_type"], detail["limit"]) == ("successful", "callback", "localhost")
    assert json.loads(detail["extra_vars"]) == {"marker": str(marker), "greeting": "hello"}
    stdout = await fetch(f"/api/v2/jobs/{job_id}/stdout/?format=txt", headers=admin)
    assert stdout.body.decode() == job.result_stdout


async def test_output_is_stored_while_the_job_runs(fetch, seed, services, project):
    playbook = write_playbook(project, "slow.yml", """\
    - name: First step
      ansible.builtin.debug:
        msg: first step done
    - name: Wait
      ansible.builtin.pause:
        seconds: 30
""")
    world = await seed({"localhost": dict(LOCALHOST_VARS)}, project_dir=str(project), playbook=playbook)
    job_id = await call_back(fetch, world)
    deadline = time.monotonic() + 30
    while "first step done" not in (job := await wait_for_status(services, job_id, ("running",))).result_stdout:
        assert time.monotonic() < deadline, job.result_stdout
    assert job.status == "running" and job.finished is None
    await services.jobs.cancel(None, job_id)
    assert (await wait_for_status(services, job_id)).status == "canceled"


async def test_failing_playbook_ends_failed_with_its_output(fetch, seed, services, project):
    playbook = write_playbook(project, "fail.yml", """\
    - name: Break on purpose
      ansible.builtin.fail:
        msg: the disk is on fire
""")
    world = await seed({"localhost": dict(LOCALHOST_VARS)}, project_dir=str(project), playbook=playbook)
    job = await wait_for_status(services, await call_back(fetch, world))
    assert (job.status, job.failed) == ("failed", True)
    assert "TASK [Break on purpose]" in job.result_stdout
    assert "the disk is on fire" in job.result_stdout


async def test_missing_playbook_is_an_error_with_a_reason(fetch, seed, services, project):
    project.mkdir()
    world = await seed({"localhost": dict(LOCALHOST_VARS)}, project_dir=str(project), playbook="nope.yml")
    job = await wait_for_status(services, await call_back(fetch, world))
    assert (job.status, job.failed) == ("error", True)
    assert job.job_explanation == f"Playbook not found: {project / 'nope.yml'}"


async def test_playbook_exceeding_the_template_timeout_is_stopped(fetch, seed, services, project):
    playbook = write_playbook(project, "sleepy.yml", """\
    - name: Sleep past the timeout
      ansible.builtin.pause:
        seconds: 60
""")
    world = await seed({"localhost": dict(LOCALHOST_VARS)}, project_dir=str(project),
                       playbook=playbook, timeout=6)  # ansible-playbook takes 2-3 s to reach its first task
    job = await wait_for_status(services, await call_back(fetch, world))
    assert (job.status, job.job_explanation) == ("failed", "Job terminated due to timeout")
    assert 6 <= job.elapsed < 20
    assert "TASK [Sleep past the timeout]" in job.result_stdout


async def test_cancel_stops_a_running_playbook(fetch, seed, services, admin, project, out):
    after = out / "after-the-pause"
    playbook = write_playbook(project, "long.yml", f"""\
    - name: Long wait
      ansible.builtin.pause:
        seconds: 60
    - name: Never reached
      ansible.builtin.file:
        path: {after}
        state: touch
""")
    world = await seed({"localhost": dict(LOCALHOST_VARS)}, project_dir=str(project), playbook=playbook)
    job_id = await call_back(fetch, world)
    await wait_for_status(services, job_id, ("running",))
    cancel = f"/api/v2/jobs/{job_id}/cancel/"
    assert json.loads((await fetch(cancel, headers=admin)).body) == {"can_cancel": True}

    response = await fetch(cancel, method="POST", body=b"", headers=admin)

    assert response.code == 202
    job = await wait_for_status(services, job_id, timeout=20)
    assert (job.status, job.failed) == ("canceled", True)
    assert job.job_explanation == "Job canceled at the request of a user."
    assert job.elapsed < 20
    assert not after.exists()
    assert json.loads((await fetch(cancel, headers=admin)).body) == {"can_cancel": False}
    again = await fetch(cancel, method="POST", body=b"", headers=admin)
    assert again.code == 405
    # The host is free again: a new callback is accepted.
    assert await call_back(fetch, world) != job_id


async def test_callbacks_keep_answering_while_a_playbook_runs(fetch, seed, services, project):
    playbook = write_playbook(project, "pause.yml", """\
    - name: Hold the worker
      ansible.builtin.pause:
        seconds: 30
""")
    world = await seed({"localhost": dict(LOCALHOST_VARS), "web2": {"ansible_host": "127.0.0.2"}},
                       project_dir=str(project), playbook=playbook)
    first = await call_back(fetch, world)
    running = await wait_for_status(services, first, ("running",))
    while "TASK [Hold the worker]" not in running.result_stdout:
        running = await wait_for_status(services, first, ("running",))

    latencies = []
    for _ in range(10):
        started = time.monotonic()
        assert (await fetch("/api/v2/ping/")).code == 200
        latencies.append(time.monotonic() - started)
    started = time.monotonic()
    second = await call_back(fetch, world, network_interface="127.0.0.2")
    latencies.append(time.monotonic() - started)

    assert (await wait_for_status(services, first, ("running",))).status == "running"
    assert max(latencies) < 1.0, latencies
    for job_id in (first, second):
        await services.jobs.cancel(None, job_id)
        await wait_for_status(services, job_id)


async def test_inventory_groups_and_variables_reach_the_play(fetch, seed, services, project, out):
    out = out / "vars.txt"
    playbook = write_playbook(project, "vars.yml", """\
    - name: Write what the inventory says
      ansible.builtin.copy:
        dest: "{{ out }}"
        content: "{{ site }} {{ tier }} {{ region }} {{ group_names | sort | join(',') }} {{ own }} {{ groups.web | join(',') }}"
""")
    world = await seed({"localhost": dict(LOCALHOST_VARS, own="mine"), "off": {"enabled": False}},
                       project_dir=str(project), playbook=playbook, extra_vars={"out": str(out)})
    async with services.db.session() as session:
        inventory = await session.get(Inventory, world.inventory_id)
        inventory.variables = {"site": "lab", "tier": "overridden"}
        web = Group(inventory_id=inventory.id, name="web", variables={"tier": "frontend"})
        europe = Group(inventory_id=inventory.id, name="europe", variables={"region": "eu"})
        session.add_all([web, europe])
        await session.flush()
        session.add_all([GroupHost(group_id=web.id, host_id=world.hosts["localhost"]),
                         GroupHost(group_id=web.id, host_id=world.hosts["off"]),
                         GroupChild(parent_id=europe.id, child_id=web.id)])
        await session.commit()

    job = await wait_for_status(services, await call_back(fetch, world))

    assert job.status == "successful", job.result_stdout
    assert out.read_text() == "lab frontend eu europe,web mine localhost"  # disabled hosts are left out


async def test_stopping_the_workers_stops_their_playbooks(fetch, seed, services, project, request):
    playbook = write_playbook(project, "pause.yml", """\
    - name: Hold the worker
      ansible.builtin.pause:
        seconds: 60
""")
    world = await seed({"localhost": dict(LOCALHOST_VARS)}, project_dir=str(project), playbook=playbook)
    job_id = await call_back(fetch, world)
    await wait_for_status(services, job_id, ("running",))

    started = time.monotonic()
    await request.getfixturevalue("workers").stop()  # what SIGTERM to serve or worker does

    assert time.monotonic() - started < 15
    job = await wait_for_status(services, job_id, timeout=1)
    assert (job.status, job.job_explanation) == ("error", EXPLAIN_SHUTDOWN)


async def test_template_run_options_reach_ansible(fetch, seed, services, project, out):
    out = out / "options.txt"
    playbook = write_playbook(project, "tags.yml", f"""\
    - name: Tagged a
      ansible.builtin.copy:
        dest: {out}
        content: "forks={{{{ ansible_forks }}}} verbosity={{{{ ansible_verbosity }}}}"
      tags: [a]
    - name: Tagged b
      ansible.builtin.debug:
        msg: skipped by skip_tags
      tags: [a, b]
    - name: Tagged c
      ansible.builtin.debug:
        msg: not in job_tags
      tags: [c]
""")
    world = await seed({"localhost": dict(LOCALHOST_VARS)}, project_dir=str(project), playbook=playbook,
                       forks=3, verbosity=1, job_tags="a,b", skip_tags="b")
    job = await wait_for_status(services, await call_back(fetch, world))
    assert job.status == "successful", job.result_stdout
    assert out.read_text() == "forks=3 verbosity=1"
    assert "TASK [Tagged a]" in job.result_stdout
    assert "Tagged b" not in job.result_stdout and "Tagged c" not in job.result_stdout
