"""``tornado-callback worker`` processes: each job runs once, and a killed worker frees its host."""

from __future__ import annotations

import asyncio
import json
import os
import select
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest

from tests.conftest import PG_ENV, shown
from tests.jobs_support import LOCALHOST_VARS, job_settings, wait_for_status, write_playbook
from tornado_callback.jobs.executor import EXPLAIN_LEASE_EXPIRED, LeaseSweeper
from tornado_callback.jobs.launch import MSG_ALREADY_PENDING
from tornado_callback.jobs.run_dirs import RunDirectories
from tornado_callback.plugin import HostRef
from tornado_callback.store import queries

pytestmark = pytest.mark.gen_test(timeout=120)

CALLBACK = "/api/v2/job_templates/{}/callback/"
JSON = {"Content-Type": "application/json"}


@pytest.fixture
def settings(database_url, plugins_config, tmp_path):
    return job_settings(database_url, plugins_config, tmp_path, job_lease_seconds=2.0)


@pytest.fixture
def start_worker(settings, tmp_path, project):
    """Start ``tornado-callback worker`` subprocesses; stop them (and their playbooks) afterwards."""
    started: list[subprocess.Popen[bytes]] = []

    def start(slots: int = 2, batch_size: int = 50) -> subprocess.Popen[bytes]:
        env = dict(os.environ)
        env.update({
            "TORNADO_CALLBACK_DATABASE_URL": settings.database_url,
            "TORNADO_CALLBACK_WORKERS": str(slots),
            "TORNADO_CALLBACK_JOB_BATCH_SIZE": str(batch_size),
            "TORNADO_CALLBACK_JOB_POLL_INTERVAL": str(settings.job_poll_interval),
            "TORNADO_CALLBACK_JOB_LEASE_SECONDS": str(settings.job_lease_seconds),
            "TORNADO_CALLBACK_SECRET_KEY": settings.secret_key,
            "TORNADO_CALLBACK_RUN_DIR": settings.run_dir,
            "TORNADO_CALLBACK_JOB_SHOW_PATHS": os.pathsep.join(settings.job_show_paths),
        })
        process = subprocess.Popen(
            [sys.executable, "-m", "tornado_callback", "worker"],
            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)
        process.stdout.close()


async def wait_for_output(process: subprocess.Popen[bytes], text: bytes, timeout: float = 60) -> None:
    """Read a worker's output (without blocking the loop) until ``text`` appears."""
    seen = b""
    deadline = asyncio.get_running_loop().time() + timeout
    while text not in seen:
        assert process.poll() is None, seen.decode(errors="replace")
        assert asyncio.get_running_loop().time() < deadline, seen.decode(errors="replace")
        if select.select([process.stdout], [], [], 0)[0]:
            seen += os.read(process.stdout.fileno(), 65536)
        else:
            await asyncio.sleep(0.1)


async def queue_callback_jobs(services, template_id: int, host_ids: dict[str, int]) -> list[int]:
    """Pending callback jobs, created as the callback creates them."""
    template = await services.db.read(queries.template_by_id, template_id)

    def create(db):
        return [services.launcher.create_callback_job(
                    db, template, services.launcher.callback_job(template, HostRef(id=i, name=n), None, "test"))
                for n, i in host_ids.items()]

    return await services.db.write(create)


def record_runs_playbook(project, runs, once=False):
    """A playbook whose every host appends its job id to ``runs`` (or, ``once``, only one host of each run).

    A lookup runs in ansible-playbook itself: no module to ship, so the runs stay cheap.
    """
    return write_playbook(project, "record.yml", f"""\
    - name: Record this run
      ansible.builtin.debug:
        msg: "{{{{ lookup('ansible.builtin.pipe', 'echo ' ~ awx_job_id ~ ' >> {runs}') }}}}"
      run_once: {str(once).lower()}
""")


@pytest.mark.skipif(not os.environ.get(PG_ENV), reason=f"needs PostgreSQL ({PG_ENV})")
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_two_worker_processes_run_each_of_20_jobs_exactly_once(
    seed, services, start_worker, project, tmp_path
):
    runs = shown(tmp_path) / "runs.log"
    playbook = record_runs_playbook(project, runs)
    hosts = {f"host{n:02d}": dict(LOCALHOST_VARS, ansible_host=f"127.0.1.{n}") for n in range(20)}
    world = await seed(hosts, project_dir=str(project), playbook=playbook)
    # Both workers are polling before any job exists, so they compete for every job (one at a time).
    for worker in (start_worker(batch_size=1), start_worker(batch_size=1)):
        await wait_for_output(worker, b"job slot(s)")
    job_ids = await queue_callback_jobs(services, world.template_id, world.hosts)
    finished = [await wait_for_status(services, job_id, timeout=100) for job_id in job_ids]

    assert [j.status for j in finished] == ["successful"] * 20
    assert Counter(runs.read_text().split()) == Counter(str(i) for i in job_ids)
    assert len({j.worker_id for j in finished}) == 2  # both processes took jobs


@pytest.mark.skipif(not os.environ.get(PG_ENV), reason=f"needs PostgreSQL ({PG_ENV})")
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_two_worker_processes_never_share_out_one_batch_twice(
    seed, services, start_worker, project, tmp_path
):
    runs = shown(tmp_path) / "runs.log"  # one line per ansible-playbook run
    playbook = record_runs_playbook(project, runs, once=True)
    hosts = {f"host{n:02d}": dict(LOCALHOST_VARS, ansible_host=f"127.0.1.{n}") for n in range(40)}
    world = await seed(hosts, project_dir=str(project), playbook=playbook)
    job_ids = await queue_callback_jobs(services, world.template_id, world.hosts)
    # Four job slots in two processes claim batches of at most 8 from the same 40 pending jobs.
    for worker in (start_worker(batch_size=8), start_worker(batch_size=8)):
        await wait_for_output(worker, b"job slot(s)")
    finished = [await wait_for_status(services, job_id, timeout=100) for job_id in job_ids]

    assert [j.status for j in finished] == ["successful"] * 40
    batches = Counter(j.run_id for j in finished)
    # Each job was in one run; each run held the jobs it says it held, at most 8; each ran once.
    assert all(j.run_job_count == batches[j.run_id] <= 8 for j in finished)
    assert len(runs.read_text().split()) == len(batches) >= 5
    assert len({j.worker_id for j in finished}) == 2


async def test_a_killed_workers_job_ends_in_error_and_the_host_can_call_back(
    fetch, seed, services, settings, start_worker, project
):
    playbook = write_playbook(project, "hold.yml", """\
    - name: Hold the worker
      ansible.builtin.pause:
        seconds: 60
""")
    world = await seed({"localhost": dict(LOCALHOST_VARS)}, project_dir=str(project), playbook=playbook)
    body = json.dumps({"host_config_key": world.key})
    callback = CALLBACK.format(world.template_id)
    response = await fetch(callback, method="POST", body=body, headers=JSON)
    assert response.code == 202
    job_id = json.loads(response.body)["job"]
    worker = start_worker(slots=1)
    job = await wait_for_status(services, job_id, ("running",), timeout=30)
    while "TASK [Hold the worker]" not in job.result_stdout:
        job = await wait_for_status(services, job_id, ("running",))

    worker.kill()
    worker.wait(timeout=10)
    killed_at = time.monotonic()

    blocked = await fetch(callback, method="POST", body=body, headers=JSON)
    assert (blocked.code, json.loads(blocked.body)) == (400, {"msg": MSG_ALREADY_PENDING, "job": job_id})
    sweeper = LeaseSweeper(services.db, settings, RunDirectories(settings.run_dir_path))  # as serve runs it
    while (job := await wait_for_status(services, job_id, ("running", "error"))).status == "running":
        assert time.monotonic() - killed_at < 15, "lease never expired"
        await sweeper.sweep()
        await asyncio.sleep(0.2)
    assert (job.status, job.failed, job.job_explanation) == ("error", True, EXPLAIN_LEASE_EXPIRED)
    assert job.finished is not None

    again = await fetch(callback, method="POST", body=body, headers=JSON)
    assert again.code == 202
    assert json.loads(again.body)["job"] != job_id
