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


def post_callback(url: str, key: str) -> dict:
    request = urllib.request.Request(url, data=json.dumps({"host_config_key": key}).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 202
        return json.loads(response.read())


def wait_for(predicate, timeout: float = 60.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def job_status(workdir: Path, job_id: int) -> str:
    shown = run_cli("jobs", "show", str(job_id), cwd=workdir, **POLL)
    assert shown.returncode == 0, shown.stderr
    return re.search(r"^status\s+(\S+)", shown.stdout, re.MULTILINE).group(1)


def test_demo_callback_runs_the_playbook_and_writes_the_marker(tmp_path, started):
    serve = started[0]()
    callback = re.search(r"-d '(\{.*?\})' (http://\S+/callback/)", serve.output)
    key = json.loads(callback.group(1))["host_config_key"]

    job = post_callback(callback.group(2), key)

    marker = tmp_path / "demo-marker.txt"
    wait_for(marker.exists, what="the demo marker")
    assert marker.read_text().startswith("configured localhost")
    wait_for(lambda: job_status(tmp_path, job["job"]) == "successful", what="the job to finish")
    assert serve.stop() == 0


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
    assert (tmp_path / "demo-marker.txt").exists()
