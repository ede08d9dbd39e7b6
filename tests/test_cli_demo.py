"""The README's first command: ``tornado-callback serve --demo`` on the embedded SQLite default,
answered by the seed documentation's three example commands, pasted verbatim."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.conftest import trace_entry
from tests.helpers import ServerProcess


def printed_command(output: str, prefix: str) -> str:
    return next(line.strip() for line in output.splitlines() if line.strip().startswith(prefix))


def sh(command: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-c", command], cwd=cwd, capture_output=True, text=True, timeout=60)


@pytest.fixture
def demo(tmp_path: Path):
    server = ServerProcess("--demo", cwd=tmp_path)
    try:
        server.wait_for("See which host would match")
        server.wait_for("curl http://")
        yield server
    finally:
        assert server.stop() == 0, server.output


def test_demo_prints_lines_that_work_verbatim(demo, tmp_path):
    curl_line = printed_command(demo.output, "curl -s -i")
    posted = sh(curl_line, tmp_path)
    assert posted.stdout.startswith("HTTP/1.1 202"), posted.stdout
    job = json.loads(posted.stdout.split("\n\n", 1)[1])
    assert f"Location: /api/v2/jobs/{job['job']}/" in posted.stdout

    wget_line = printed_command(demo.output, "wget ")
    fetched = sh(wget_line, tmp_path)
    # The same host calling again while its job is active: AWX's 400, which wget reports.
    assert "400 Bad Request" in fetched.stderr or "202 Accepted" in fetched.stderr, fetched.stderr

    admin_line = printed_command(demo.output, "curl http://")
    explained = json.loads(sh(admin_line, tmp_path).stdout)
    assert explained["matching_hosts"] == ["localhost"]
    assert trace_entry(explained["resolution"], "ip_match")["outcome"] == "matched"
    assert (tmp_path / "tornado-callback.db").exists()


def test_demo_can_restart_on_the_same_database(tmp_path):
    for _ in range(2):
        server = ServerProcess("--demo", cwd=tmp_path)
        try:
            server.wait_for("curl http://")
        finally:
            assert server.stop() == 0, server.output
