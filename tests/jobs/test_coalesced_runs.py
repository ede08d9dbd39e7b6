"""Coalesced runs: callback jobs that pile up run as one ansible-playbook, each job keeping its own truth."""

from __future__ import annotations

import asyncio
import json
from collections import Counter

import pytest

from tests.jobs.test_worker_processes import queue_callback_jobs
from tests.jobs_support import (  # noqa: F401  (fixtures used by this module)
    LOCALHOST_VARS,
    job_row,
    job_settings,
    wait_for_status,
    write_playbook,
)
from tornado_callback.jobs.sandbox import job_sandbox
from tornado_callback.plugin import HostRef
from tornado_callback.store import queries

pytestmark = pytest.mark.gen_test(timeout=150)

CALLBACK = "/api/v2/job_templates/{}/callback/"
JSON = {"Content-Type": "application/json"}


@pytest.fixture
def settings(database_url, plugins_config, tmp_path, request):
    # One job slot: a busy worker is what makes callbacks pile up (and batches form).
    # A test may set more (parametrize settings, indirect).
    return job_settings(database_url, plugins_config, tmp_path, workers=1, **getattr(request, "param", {}))


def boot_playbook(project, out, extra_tasks=""):
    """Records each ansible-playbook run (a run_once task runs once per run) and configures each host."""
    return write_playbook(project, "boot.yml", f"""\
    - name: Count this run
      ansible.builtin.debug:
        msg: "{{{{ lookup('ansible.builtin.pipe', 'echo ' ~ awx_job_id ~ ' >> {out}/runs.log') }}}}"
      run_once: true
    - name: Configure the host
      ansible.builtin.debug:
        msg: "configured {{{{ inventory_hostname }}}} for job {{{{ awx_job_id }}}}"
{extra_tasks}""")


def gated(gate, when=""):
    """A task that holds its host's run until the test creates the file ``gate``."""
    condition = f"\n      when: {when}" if when else ""
    return f"""\
    - name: Wait for the gate
      ansible.builtin.wait_for:
        path: "{gate}"
        timeout: 60{condition}
"""


async def at_the_gate(services, job_id):
    """Wait until the job's run waits at its gate."""
    while "TASK [Wait for the gate]" not in (await wait_for_status(services, job_id, ("running",))).result_stdout:
        await asyncio.sleep(0.2)


async def run_to_the_end(services, job_ids):
    """This process's workers run the queued jobs; each job as it ended."""
    pool = services.start_workers(job_sandbox(services.settings))
    try:
        return [await wait_for_status(services, job_id) for job_id in job_ids]
    finally:
        await pool.stop()


def fleet(count, **extra):
    """Hosts h00, h01... each at its own loopback address, configured on this machine."""
    return {f"h{n:02d}": dict(LOCALHOST_VARS, ansible_host=f"127.0.1.{n + 1}", **extra) for n in range(count)}


async def events_of(fetch, admin, job_id):
    response = await fetch(f"/api/v2/jobs/{job_id}/stdout/?format=json", headers=admin)
    return json.loads(response.body)["events"]


async def test_callbacks_queued_while_the_worker_is_busy_run_as_one_playbook(
    fetch, seed, services, project, out, admin
):
    gate = out / "gate"
    # The first host's run waits at the gate: while it holds the only worker, 20 hosts call back.
    playbook = boot_playbook(project, out, gated(gate, when="inventory_hostname == 'h20'"))
    world = await seed(fleet(21), project_dir=str(project), playbook=playbook)
    pool = services.start_workers(job_sandbox(services.settings))
    try:
        body = json.dumps({"host_config_key": world.key})
        first = await fetch(CALLBACK.format(world.template_id), method="POST", body=body, headers=JSON,
                            network_interface="127.0.1.21")
        busy = json.loads(first.body)["job"]
        await at_the_gate(services, busy)
        answers = await asyncio.gather(*(
            fetch(CALLBACK.format(world.template_id), method="POST", body=body, headers=JSON,
                  network_interface=f"127.0.1.{n + 1}")
            for n in range(20)))
        assert [a.code for a in answers] == [202] * 20
        job_ids = [json.loads(a.body)["job"] for a in answers]
        gate.touch()
        jobs = [await wait_for_status(services, job_id, timeout=90) for job_id in job_ids]
    finally:
        await pool.stop()

    assert [j.status for j in jobs] == ["successful"] * 20
    # Two ansible-playbook runs in all: the first host's, then one for the twenty.
    # (The run_once task runs on the run's first host in inventory order: its job is any of the twenty.)
    first_run, shared_run = (out / "runs.log").read_text().split()
    assert first_run == str(busy) and int(shared_run) in job_ids
    assert len({j.run_id for j in jobs}) == 1
    assert {j.run_job_count for j in jobs} == {20}
    shown = await fetch(f"/api/v2/jobs/{job_ids[5]}/", headers=admin)
    assert {k: json.loads(shown.body)[k] for k in ("run_id", "run_job_count")} == {
        "run_id": jobs[5].run_id, "run_job_count": 20}
    for job in jobs:
        host = job.limit
        others = [f"h{n:02d}" for n in range(20) if f"h{n:02d}" != host]
        # Its stdout reads like a run of its host alone: its lines, the headers, its recap line.
        assert f"ok: [{host}]" in job.result_stdout
        assert f"configured {host} for job {job.id}" in job.result_stdout
        assert "TASK [Configure the host]" in job.result_stdout
        assert "PLAY RECAP" in job.result_stdout
        assert not [other for other in others if other in job.result_stdout], job.result_stdout
        events = await events_of(fetch, admin, job.id)
        assert {e["host_name"] for e in events} == {"", host}
        assert [e["counter"] for e in events] == list(range(1, len(events) + 1))


async def test_a_failing_host_fails_its_own_job_only(fetch, seed, services, project, out, admin):
    playbook = boot_playbook(project, out, """\
    - name: Break one host
      ansible.builtin.fail:
        msg: "h02 is broken"
      when: inventory_hostname == 'h02'
""")
    world = await seed(fleet(4), project_dir=str(project), playbook=playbook)
    # Queued before any worker looks: the first claim takes them all.
    job_ids = await queue_callback_jobs(services, world.template_id, world.hosts)
    jobs = {j.limit: j for j in await run_to_the_end(services, job_ids)}

    assert {host: (j.status, j.failed) for host, j in jobs.items()} == {
        "h00": ("successful", False), "h01": ("successful", False),
        "h02": ("failed", True), "h03": ("successful", False)}
    assert len((out / "runs.log").read_text().split()) == 1
    assert "h02 is broken" in jobs["h02"].result_stdout
    assert "h02 is broken" not in jobs["h01"].result_stdout
    assert "failed=1" in jobs["h02"].result_stdout and "failed=1" not in jobs["h01"].result_stdout
    failed_events = [e for e in await events_of(fetch, admin, jobs["h02"].id) if e["failed"]]
    assert [e["host_name"] for e in failed_events] == ["h02"]


async def test_a_host_disabled_while_its_job_waits_is_not_reported_configured(
    fetch, seed, services, project, out, admin
):
    """An admin disables a host (say, a suspect one) while its callback job waits: the shared run's
    limit no longer matches it, and its job must not end successful as if it had been configured."""
    world = await seed(fleet(3), project_dir=str(project), playbook=boot_playbook(project, out))
    job_ids = await queue_callback_jobs(services, world.template_id, world.hosts)
    response = await fetch(f"/api/v2/hosts/{world.hosts['h02']}/", method="PATCH",
                           body=json.dumps({"enabled": False}), headers={**admin, **JSON})
    assert response.code == 200, response.body
    jobs = {j.limit: j for j in await run_to_the_end(services, job_ids)}
    assert [jobs[h].status for h in ("h00", "h01")] == ["successful"] * 2
    assert "configured h02" not in jobs["h02"].result_stdout
    assert (jobs["h02"].status, jobs["h02"].job_explanation) == (
        "error", "The host 'h02' is not in the inventory any more (deleted, renamed or disabled).")


async def test_canceling_one_job_of_a_shared_run_requeues_the_others(fetch, seed, services, project, out, admin):
    gate = out / "gate"
    playbook = boot_playbook(project, out, gated(gate))
    world = await seed(fleet(4), project_dir=str(project), playbook=playbook)
    job_ids = await queue_callback_jobs(services, world.template_id, world.hosts)
    pool = services.start_workers(job_sandbox(services.settings))
    try:
        await at_the_gate(services, job_ids[1])
        shared_run = (await job_row(services, job_ids[1])).run_id
        response = await fetch(f"/api/v2/jobs/{job_ids[1]}/cancel/", method="POST", body="", headers=admin)
        assert response.code == 202
        canceled = await wait_for_status(services, job_ids[1])
        # The others went back to the queue; once the gate opens their new run succeeds.
        gate.touch()
        others = [await wait_for_status(services, job_id, timeout=90) for job_id in job_ids if job_id != job_ids[1]]
    finally:
        await pool.stop()

    assert (canceled.status, canceled.job_explanation) == ("canceled", "Job canceled at the request of a user.")
    assert [j.status for j in others] == ["successful"] * 3
    assert {j.run_id for j in others} != {shared_run}
    for job in others:
        assert f"[run {shared_run} stopped: job {job_ids[1]}, which shared it, was canceled. " \
               "This job is back in the queue and runs again.]" in job.result_stdout
        # Its output tells both attempts, in order; the events go on numbering from the first.
        assert job.result_stdout.count("TASK [Wait for the gate]") == 2
        events = await events_of(fetch, admin, job.id)
        assert [e["counter"] for e in events] == list(range(1, len(events) + 1))
    # Two runs: the shared one, stopped, and the others' second run.
    assert len((out / "runs.log").read_text().split()) == 2


async def test_a_job_requeued_before_its_run_said_anything_keeps_the_note(fetch, seed, services, project, out, admin):
    """The shared run is canceled while ansible-playbook still loads (no event yet): the others' second
    run, alone, must not replace the note that says why they ran again."""
    gate = out / "gate"
    boot_playbook(project, out)
    wait = f"for i in $(seq 600); do [ -e {gate} ] && break; sleep 0.1; done"
    (project / "slow.yml").write_text(f"- import_playbook: \"{{{{ lookup('ansible.builtin.pipe', '{wait}') }}}}boot.yml\"\n")
    world = await seed(fleet(2), project_dir=str(project), playbook="slow.yml")
    job_ids = await queue_callback_jobs(services, world.template_id, world.hosts)
    pool = services.start_workers(job_sandbox(services.settings))
    try:
        shared_run = (await wait_for_status(services, job_ids[0], ("running",))).run_id
        response = await fetch(f"/api/v2/jobs/{job_ids[0]}/cancel/", method="POST", body="", headers=admin)
        assert response.code == 202
        assert (await wait_for_status(services, job_ids[0])).status == "canceled"
        gate.touch()
        other = await wait_for_status(services, job_ids[1], timeout=90)
    finally:
        await pool.stop()
    assert other.status == "successful"
    assert f"[run {shared_run} stopped: job {job_ids[0]}, which shared it, was canceled. " \
           "This job is back in the queue and runs again.]" in other.result_stdout
    assert f"configured h01 for job {other.id}" in other.result_stdout


@pytest.mark.parametrize("template", [{"allow_coalesced_runs": False}, {"forks": 1}])
async def test_templates_that_opt_out_or_run_one_host_at_a_time_run_each_job_alone(
    seed, services, project, out, template
):
    world = await seed(fleet(3), project_dir=str(project), playbook=boot_playbook(project, out), **template)
    job_ids = await queue_callback_jobs(services, world.template_id, world.hosts)
    jobs = await run_to_the_end(services, job_ids)
    assert [j.status for j in jobs] == ["successful"] * 3
    assert Counter((out / "runs.log").read_text().split()) == Counter(str(i) for i in job_ids)
    assert {j.run_job_count for j in jobs} == {1}


async def test_opting_out_holds_for_the_jobs_already_queued(fetch, seed, services, project, out, admin):
    """An admin opts a template out (say, its playbook stops every host when one fails) while
    a boot storm's jobs wait: those jobs too run alone."""
    world = await seed(fleet(3), project_dir=str(project), playbook=boot_playbook(project, out))
    job_ids = await queue_callback_jobs(services, world.template_id, world.hosts)
    response = await fetch(f"/api/v2/job_templates/{world.template_id}/", method="PATCH",
                           body=json.dumps({"allow_coalesced_runs": False}), headers={**admin, **JSON})
    assert response.code == 200, response.body
    jobs = await run_to_the_end(services, job_ids)
    assert [j.status for j in jobs] == ["successful"] * 3
    assert Counter((out / "runs.log").read_text().split()) == Counter(str(i) for i in job_ids)
    assert {j.run_job_count for j in jobs} == {1}


@pytest.mark.parametrize("settings", [{"job_batch_linger": 4.0}], indirect=True)
async def test_a_linger_longer_than_the_lease_loses_no_job(seed, services, project, out, settings):
    """A worker waiting for more jobs of its key does not renew the leases of those it took:
    the wait must end well before they expire, or the sweeper ends them error, never run."""
    assert settings.job_lease_seconds < settings.job_batch_linger
    world = await seed(fleet(1), project_dir=str(project), playbook=boot_playbook(project, out))
    [job_id] = await queue_callback_jobs(services, world.template_id, world.hosts)
    [job] = await run_to_the_end(services, [job_id])
    assert (job.status, job.job_explanation) == ("successful", "")


async def test_only_callback_jobs_of_the_same_launch_share_a_run(seed, services, project, out, admin, fetch):
    world = await seed(fleet(4), project_dir=str(project), playbook=boot_playbook(project, out),
                       ask_variables_on_launch=True, ask_limit_on_launch=True)
    template = await services.db.read(queries.template_by_id, world.template_id)
    given = {"h00": '{"size": "large"}', "h01": '{"size": "large"}', "h02": None, "h03": None}

    def create(db):
        return {name: services.launcher.create_callback_job(db, template, services.launcher.callback_job(
                    template, HostRef(id=world.hosts[name], name=name), given[name], "test"))
                for name in given}

    callback_jobs = await services.db.write(create)
    manual = await fetch(f"/api/v2/job_templates/{world.template_id}/launch/", method="POST",
                         body=json.dumps({"limit": "h02"}), headers={**admin, **JSON})
    assert manual.code == 201, manual.body
    *ended, by_hand = await run_to_the_end(services, [*callback_jobs.values(), json.loads(manual.body)["job"]])
    jobs = dict(zip(callback_jobs, ended, strict=True))

    assert {j.status for j in [*jobs.values(), by_hand]} == {"successful"}
    # Two launches, two runs of two; a launch by a user always runs alone.
    assert jobs["h00"].run_id == jobs["h01"].run_id != jobs["h02"].run_id == jobs["h03"].run_id
    assert [j.run_job_count for j in jobs.values()] == [2, 2, 2, 2]
    assert by_hand.run_id not in {j.run_id for j in jobs.values()} and by_hand.run_job_count == 1
    assert len((out / "runs.log").read_text().split()) == 3
