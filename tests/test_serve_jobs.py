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

from tests.helpers import cli_env, free_port


def job_cli_env() -> dict[str, str]:
    """The default SQLite database in the working directory, and quick polling."""
    return cli_env(TORNADO_CALLBACK_JOB_POLL_INTERVAL="0.2")


class Serve:
    def __init__(self, workdir: Path, *flags: str) -> None:
        self.port = free_port()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tornado_callback", "serve", "--port", str(self.port), *flags],
            cwd=workdir, env=job_cli_env(), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )
        self.banner = []
        for line in self.process.stdout:
            self.banner.append(line)
            if "listening on" in line and "--demo" not in flags:
                break
            if line.startswith("See which host"):
                break
        assert self.process.poll() is None, "".join(self.banner)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=30)
        self.process.stdout.close()
        return code


@pytest.fixture
def started(tmp_path):
    processes = []
    yield processes
    for process in processes:
        if isinstance(process, Serve):
            if process.process.poll() is None:
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
    shown = subprocess.run([sys.executable, "-m", "tornado_callback", "jobs", "show", str(job_id)],
                           cwd=workdir, env=job_cli_env(), capture_output=True, text=True, timeout=60, check=True)
    return re.search(r"^status\s+(\S+)", shown.stdout, re.MULTILINE).group(1)


def test_demo_callback_runs_the_playbook_and_writes_the_marker(tmp_path, started):
    serve = Serve(tmp_path, "--demo")
    started.append(serve)
    banner = "".join(serve.banner)
    callback = re.search(r"-d '(\{.*?\})' (http://\S+/callback/)", banner)
    key = json.loads(callback.group(1))["host_config_key"]

    job = post_callback(callback.group(2), key)

    marker = tmp_path / "demo-marker.txt"
    wait_for(marker.exists, what="the demo marker")
    assert marker.read_text().startswith("configured localhost")
    wait_for(lambda: job_status(tmp_path, job["job"]) == "successful", what="the job to finish")
    assert serve.stop() == 0


def test_no_worker_serve_leaves_jobs_to_a_worker_process(tmp_path, started):
    serve = Serve(tmp_path, "--demo", "--no-worker")
    started.append(serve)
    callback = re.search(r"-d '(\{.*?\})' (http://\S+/callback/)", "".join(serve.banner))
    job = post_callback(callback.group(2), json.loads(callback.group(1))["host_config_key"])

    time.sleep(1.5)  # several poll intervals: an in-process worker would have taken it
    assert job_status(tmp_path, job["job"]) == "pending"

    worker = subprocess.Popen([sys.executable, "-m", "tornado_callback", "worker"], cwd=tmp_path,
                              env=job_cli_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    started.append(worker)
    wait_for(lambda: job_status(tmp_path, job["job"]) == "successful", what="the worker to run the job")
    assert (tmp_path / "demo-marker.txt").exists()
