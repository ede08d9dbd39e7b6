"""A stopped job leaves nothing running and no secret behind.

Cancel, the template's timeout, SIGTERM and kill -9 of ``serve`` and of
``worker``: each must end every process of the run (ansible-playbook, its
forked workers, which call setsid(), and their tasks) within 5 seconds. The
process table is walked to see it; exit codes are not trusted. The playbook's
shell task would write a marker after the stop, in the test's shown directory.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from pathlib import Path

import psutil
import pytest

from tests.conftest import shown
from tests.helpers import CliProcess, ServerProcess
from tests.jobs_support import LOCALHOST_VARS, job_settings, wait_for_status, workers, write_playbook  # noqa: F401
from tornado_callback.accounts.service import LOCAL_ADMIN
from tornado_callback.jobs.executor import EXPLAIN_SHUTDOWN

pytestmark = pytest.mark.gen_test(timeout=120)

CALLBACK = "/api/v2/job_templates/{}/callback/"
JSON = {"Content-Type": "application/json"}
# The shell task's sleep: the marker would be written this long after the task starts.
SLEEP = 6
# A stopped run's processes are gone within this.
GONE_WITHIN = 5.0
KEY_TEXT = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAAstopped-run-key\n-----END OPENSSH PRIVATE KEY-----"


def processes_of(workdir: Path) -> list[str]:
    """Live processes whose command line names this test's directory (its playbook, its markers)."""
    found = []
    for process in psutil.process_iter(["cmdline", "status"]):
        if process.pid != os.getpid() and process.info["status"] != psutil.STATUS_ZOMBIE \
                and str(workdir) in " ".join(process.info["cmdline"] or ()):
            found.append(" ".join(process.info["cmdline"]))
    return found


async def assert_run_gone(workdir: Path, stopped_at: float) -> None:
    """No process of the run is left 5 s after the stop, and its markers are never written."""
    while (left := processes_of(workdir)) and time.monotonic() - stopped_at < GONE_WITHIN:
        await asyncio.sleep(0.1)
    assert not left, left
    await asyncio.sleep(max(0.0, stopped_at + SLEEP + 2 - time.monotonic()))
    assert not list(shown(workdir).iterdir()), "a task ran on after its job was stopped"


async def running_job(fetch, seed, services, tmp_path, **template) -> int:
    """A callback job whose shell task (in one of ansible's setsid() workers) is sleeping."""
    out = shown(tmp_path)
    playbook = write_playbook(tmp_path / "project", "sleepy.yml", f"""\
    - name: Sleep then touch
      ansible.builtin.shell: sleep {SLEEP} && touch {out}/after-the-sleep
    - name: Never reached
      ansible.builtin.file:
        path: {out}/after-the-task
        state: touch
""")
    world = await seed({"localhost": dict(LOCALHOST_VARS)}, project_dir=str(tmp_path / "project"),
                       playbook=playbook, **template)
    response = await fetch(CALLBACK.format(world.template_id), method="POST",
                           body=json.dumps({"host_config_key": world.key}), headers=JSON)
    assert response.code == 202, response.body
    job_id = json.loads(response.body)["job"]
    deadline = time.monotonic() + 60
    while not any(f"sleep {SLEEP}" in p for p in processes_of(tmp_path)):
        assert time.monotonic() < deadline, (await wait_for_status(services, job_id, timeout=0)).result_stdout
        await asyncio.sleep(0.1)
    return job_id


@pytest.mark.usefixtures("workers")
async def test_cancel_ends_every_process_of_the_run(fetch, seed, services, tmp_path):
    job_id = await running_job(fetch, seed, services, tmp_path)

    await services.jobs.cancel(None, job_id)
    stopped_at = time.monotonic()

    assert (await wait_for_status(services, job_id, timeout=GONE_WITHIN)).status == "canceled"
    await assert_run_gone(tmp_path, stopped_at)


@pytest.mark.usefixtures("workers")
async def test_the_templates_timeout_ends_every_process_of_the_run(fetch, seed, services, tmp_path):
    # ansible-playbook reaches the shell task within the timeout (2-3 s here), and the
    # task's sleep outlasts it, wherever in those seconds it began.
    job_id = await running_job(fetch, seed, services, tmp_path, timeout=SLEEP)
    job = await wait_for_status(services, job_id, timeout=30)
    stopped_at = time.monotonic()

    assert (job.status, job.job_explanation) == ("failed", "Job terminated due to timeout")
    await assert_run_gone(tmp_path, stopped_at)


def start_runner(kind: str, settings, tmp_path: Path) -> CliProcess:
    """``serve`` or ``worker`` in a process of its own, on the test's database, ready to take jobs."""
    env = {
        "TORNADO_CALLBACK_DATABASE_URL": settings.database_url,
        "TORNADO_CALLBACK_WORKERS": "1",
        "TORNADO_CALLBACK_JOB_POLL_INTERVAL": str(settings.job_poll_interval),
        "TORNADO_CALLBACK_JOB_LEASE_SECONDS": str(settings.job_lease_seconds),
        "TORNADO_CALLBACK_SECRET_KEY": settings.secret_key,
        "TORNADO_CALLBACK_RUN_DIR": settings.run_dir,
        "TORNADO_CALLBACK_JOB_SHOW_PATHS": os.pathsep.join(settings.job_show_paths),
    }
    if kind == "serve":
        process: CliProcess = ServerProcess(cwd=tmp_path, **env)
        process.wait_for("listening on")
    else:
        process = CliProcess("worker", cwd=tmp_path, **env)
        process.wait_for("job slot(s)")
    return process


@pytest.fixture
def settings(database_url, plugins_config, tmp_path):
    return job_settings(database_url, plugins_config, tmp_path)


@pytest.fixture
def runners(settings, tmp_path):
    started: list[CliProcess] = []

    def start(kind: str) -> CliProcess:
        started.append(start_runner(kind, settings, tmp_path))
        return started[-1]

    yield start
    for process in started:
        process.stop()


@pytest.mark.parametrize("kind", ["serve", "worker"])
@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
async def test_stopping_the_process_ends_every_process_of_its_runs(
    fetch, seed, services, tmp_path, runners, kind, how
):
    runner = runners(kind)
    job_id = await running_job(fetch, seed, services, tmp_path)

    runner.proc.send_signal(how)
    stopped_at = time.monotonic()

    await assert_run_gone(tmp_path, stopped_at)
    assert runner.proc.wait(timeout=30) == (0 if how == signal.SIGTERM else -signal.SIGKILL)
    if how == signal.SIGTERM:
        job = await wait_for_status(services, job_id, timeout=1)
        assert (job.status, job.job_explanation) == ("error", EXPLAIN_SHUTDOWN)


def files_holding(root: Path, text: str) -> list[Path]:
    found = []
    for directory, _, names in os.walk(root):
        for name in names:
            path = Path(directory, name)
            try:
                if text.encode() in path.read_bytes():
                    found.append(path)
            except OSError:
                continue
    return found


async def test_a_killed_runs_key_is_gone_once_the_next_worker_starts(fetch, seed, services, settings, tmp_path,
                                                                     runners):
    credential = await services.admin.create("credentials", LOCAL_ADMIN,
                                             {"name": "deploy", "username": "deploy", "ssh_key_data": KEY_TEXT})
    runner = runners("worker")
    job_id = await running_job(fetch, seed, services, tmp_path, credential_id=credential["id"])
    assert (await wait_for_status(services, job_id, ("running",))).status == "running"
    runner.proc.kill()
    runner.proc.wait(timeout=10)
    assert files_holding(tmp_path, "stopped-run-key")  # the dead run's directory is still there

    runners("worker")

    assert files_holding(tmp_path, "stopped-run-key") == []
    assert [p.name for p in Path(settings.run_dir).iterdir()] == [".lock"]
