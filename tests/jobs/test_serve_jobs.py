"""``serve`` runs jobs itself (the demo closes the loop); ``serve --no-worker`` leaves them to ``worker``."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.helpers import ServerProcess, cli_env, run_cli

POLL = {"TORNADO_CALLBACK_JOB_POLL_INTERVAL": "0.2"}


@pytest.fixture
def started(tmp_path):
    """Start ``serve --demo FLAGS`` (and record other processes); stop them all afterwards."""
    processes = []

    def serve(*flags: str) -> ServerProcess:
        server = ServerProcess("--demo", *flags, cwd=tmp_path, **POLL)
        processes.append(server)
        server.wait_for("See which host would match")
        return server

    yield serve, processes
    for process in processes:
        if isinstance(process, ServerProcess):
            process.stop()
        elif process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)


def post_callback(url: str, key: str, **fields: object) -> dict:
    request = urllib.request.Request(url, data=json.dumps({"host_config_key": key, **fields}).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 202
        return json.loads(response.read())


def wait_for(predicate, timeout: float = 60.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def show_job(workdir: Path, job_id: int) -> str:
    shown = run_cli("jobs", "show", str(job_id), cwd=workdir, **POLL)
    assert shown.returncode == 0, shown.stderr
    return shown.stdout


def job_status(workdir: Path, job_id: int) -> str:
    return re.search(r"^status\s+(\S+)", show_job(workdir, job_id), re.MULTILINE).group(1)


def test_demo_callback_runs_the_playbook_in_the_sandbox(tmp_path, started):
    serve = started[0]()
    assert "WITHOUT the sandbox" not in serve.output
    callback = re.search(r"-d '(\{.*?\})' (http://\S+/callback/)", serve.output)
    key = json.loads(callback.group(1))["host_config_key"]

    # The demo template takes variables at launch: they arrive as text, never as a template.
    job = post_callback(callback.group(2), key, extra_vars={"greeting": "{{ 6 * 7 }}"})

    wait_for(lambda: job_status(tmp_path, job["job"]) == "successful", what="the job to finish")
    assert '"msg": "configured localhost {{ 6 * 7 }}"' in show_job(tmp_path, job["job"])
    assert serve.stop() == 0
    # The job's life in the server log, one line a step.
    assert f"job {job['job']} queued: callback launch of template 'Demo Job Template', limit 'localhost'" \
        in serve.output
    assert re.search(rf"job {job['job']} started by worker \S+: template 'Demo Job Template', limit 'localhost'\n",
                     serve.output), serve.output
    assert f"job {job['job']} finished: successful after" in serve.output


def demo_run(workdir: Path, **env: str) -> str:
    """``serve --demo`` with ``env``: one callback, its job run to success; what the server printed."""
    server = ServerProcess("--demo", cwd=workdir, **env, **POLL)
    try:
        server.wait_for("See what the job did")
        callback = re.search(r"-d '(\{.*?\})' (http://\S+/callback/)", server.output)
        job = post_callback(callback.group(2), json.loads(callback.group(1))["host_config_key"])
        wait_for(lambda: job_status(workdir, job["job"]) == "successful", what="the job to finish")
    finally:
        assert server.stop() == 0, server.output
    return server.output


def test_demo_without_bubblewrap_says_its_jobs_run_unsandboxed(tmp_path):
    output = demo_run(tmp_path, TORNADO_CALLBACK_BWRAP=str(tmp_path / "no-bwrap"))
    assert "NOTE: the demo's jobs run WITHOUT the sandbox, because job isolation needs bubblewrap" in output
    assert "apt-get install bubblewrap" in output
    assert "without the sandbox" in output  # the job's start in the log says so too


def test_serve_refuses_to_run_jobs_without_bubblewrap(tmp_path):
    refused = run_cli("serve", cwd=tmp_path, TORNADO_CALLBACK_BWRAP=str(tmp_path / "no-bwrap"))
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines() == [
        f"tornado-callback: error: job isolation needs bubblewrap, and {str(tmp_path / 'no-bwrap')!r} was not "
        "found: install bubblewrap (Debian/Ubuntu: apt-get install bubblewrap; Fedora/RHEL: dnf install "
        "bubblewrap), or set TORNADO_CALLBACK_JOB_ISOLATION=off to run playbooks without a sandbox"]


def test_isolation_turned_off_runs_jobs_with_a_warning(tmp_path):
    output = demo_run(tmp_path, TORNADO_CALLBACK_JOB_ISOLATION="off")
    assert "job isolation is off (TORNADO_CALLBACK_JOB_ISOLATION=off)" in output
    assert "WITHOUT the sandbox" not in output  # the admin chose it; no demo excuse needed


def test_no_worker_serve_leaves_jobs_to_a_worker_process(tmp_path, started):
    serve = started[0]("--no-worker")
    callback = re.search(r"-d '(\{.*?\})' (http://\S+/callback/)", serve.output)
    job = post_callback(callback.group(2), json.loads(callback.group(1))["host_config_key"])

    time.sleep(1.5)  # several poll intervals: an in-process worker would have taken it
    assert job_status(tmp_path, job["job"]) == "pending"

    worker = subprocess.Popen([sys.executable, "-m", "tornado_callback", "worker"], cwd=tmp_path,
                              env=cli_env(**POLL), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    started[1].append(worker)
    wait_for(lambda: job_status(tmp_path, job["job"]) == "successful", what="the worker to run the job")
    assert '"msg": "configured localhost "' in show_job(tmp_path, job["job"])
