"""schemathesis against /api/v2/openapi.json of a real ``serve`` process.

It generates requests from the document (every operation, edge cases and
random data) and fails on any 5xx, any undocumented status, and any answer
that breaks the document's schemas. The run is bounded (few examples per
operation) to keep CI fast.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from tests.helpers import cli_env, free_port

# The run's own token must survive it.
EXCLUDED = r"^/api/v2/tokens/\{id\}/$"
CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"


def cli(env: dict[str, str], *args: str, stdin: str = "") -> str:
    done = subprocess.run([sys.executable, "-m", "tornado_callback", *args], env=env, input=stdin,
                          capture_output=True, text=True, timeout=60, check=True)
    return done.stdout


def post(base: str, token: str, path: str, body: dict[str, object]) -> None:
    request = urllib.request.Request(f"{base}/api/v2/{path}", data=json.dumps(body).encode(), headers={
        "Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    urllib.request.urlopen(request, timeout=10).close()


def seed_objects(base: str, token: str, tmp_path: Path) -> None:
    """One object of each kind, so that generated ids (the boundary value 1 first) reach real objects.

    The inventory source reads a small static file, so that the syncs the run
    starts are harmless.
    """
    hosts_file = tmp_path / "hosts.ini"
    hosts_file.write_text("[web]\nweb1 ansible_host=127.0.0.1\n")
    post(base, token, "inventories/", {"name": "inv"})
    post(base, token, "hosts/", {"name": "web1", "inventory": 1, "variables": {"ansible_host": "127.0.0.1"}})
    post(base, token, "groups/", {"name": "web", "inventory": 1})
    post(base, token, "inventory_sources/", {"name": "src", "inventory": 1, "source": "file",
                                             "source_path": str(hosts_file)})
    post(base, token, "inventory_sources/1/update/", {})
    post(base, token, "credentials/", {"name": "cred", "password": "pw"})
    post(base, token, "job_templates/", {"name": "tpl", "playbook": "site.yml", "inventory": 1,
                                         "credential": 1, "host_config_key": "k"})
    post(base, token, "job_templates/1/launch/", {})
    post(base, token, "users/", {"username": "someone", "password": "pw"})


@pytest.fixture
def server(database_url: str, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """A ``serve`` process with a superuser; yields (base URL, that superuser's token)."""
    port = free_port()
    env = {**cli_env(), "TORNADO_CALLBACK_DATABASE_URL": database_url,
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
        seed_objects(base, token, tmp_path)
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
         "--exclude-path-regex", EXCLUDED,
         "--report-dir", str(tmp_path)],
        cwd=tmp_path, capture_output=True, text=True, timeout=600, check=False,
    )
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    with urllib.request.urlopen(f"{base}/api/v2/openapi.json") as response:
        document = json.load(response)
    # schemathesis leaves out the excluded paths and the document it loaded itself.
    operations = sum(len(ops) for path, ops in document["paths"].items()
                     if not re.match(EXCLUDED, path) and not path.endswith("/openapi.json"))
    assert re.search(r"Tested:\s+(\d+)", run.stdout).group(1) == str(operations), run.stdout[-3000:]
    generated, passed = re.search(r"(\d+) generated, (\d+) passed", run.stdout).groups()
    assert generated == passed and int(generated) > 10 * operations, run.stdout[-3000:]
