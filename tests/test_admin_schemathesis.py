"""schemathesis against /api/v2/openapi.json of a real ``serve`` process.

It generates requests from the document (every operation, edge cases and
random data) and fails on any 5xx, any undocumented status, and any answer
that breaks the document's schemas. The run is bounded (few examples per
operation) to keep CI fast.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cli(env: dict[str, str], *args: str, stdin: str = "") -> str:
    done = subprocess.run([sys.executable, "-m", "tornado_callback", *args], env=env, input=stdin,
                          capture_output=True, text=True, timeout=60, check=True)
    return done.stdout


@pytest.fixture
def server(database_url: str, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """A ``serve`` process with a superuser; yields (base URL, that superuser's token)."""
    port = free_port()
    env = {**os.environ, "TORNADO_CALLBACK_DATABASE_URL": database_url,
           "TORNADO_CALLBACK_SECRET_KEY": Fernet.generate_key().decode()}
    cli(env, "user", "create", "root", "--superuser", "--password-stdin", stdin="pw\n")
    token = cli(env, "token", "create", "root").strip()
    log_path = tmp_path / "serve.log"
    log = log_path.open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "tornado_callback", "serve", "--port", str(port)],
        env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{base}/api/v2/ping/", timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise
                time.sleep(0.2)
        yield base, token
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()
    # A 500 would also show as a traceback in the server's log.
    text = log_path.read_text()
    assert "Traceback" not in text, text[-6000:]


def test_openapi_document_holds_against_generated_requests(server: tuple[str, str], tmp_path: Path) -> None:
    base, token = server
    run = subprocess.run(
        [str(Path(sys.executable).with_name("schemathesis")), "run", f"{base}/api/v2/openapi.json",
         "--header", f"Authorization: Bearer {token}",
         "--checks", CHECKS, "--mode", "positive", "--phases", "coverage,fuzzing",
         "--max-examples", "5", "--workers", "1", "--seed", "20261126", "--no-color",
         # The run's own token must survive it.
         "--exclude-path-regex", r"^/api/v2/tokens/\{id\}/$",
         "--report-dir", str(tmp_path)],
        cwd=tmp_path, capture_output=True, text=True, timeout=600, check=False,
    )
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    assert "passed" in run.stdout
