"""/metrics and the log of real ``serve`` processes, after a known sequence of callbacks, a job and a sync.

The sequence, the same with one process and with two (whose counters /metrics sums):
a matched callback (202) whose job runs to its end; a callback to a template
whose inventory matches no one, which syncs its update-on-launch source first
and still matches no one (400); a wrong key (403); the same wrong key again,
over the limit of one (429). The one-process server logs at DEBUG as text, the
two-process server at INFO as JSON.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import plugins_config_for, run_isolated
from tests.helpers import ServerProcess
from tests.jobs_support import LOCALHOST_VARS
from tornado_callback import __version__
from tornado_callback.accounts.service import LOCAL_ADMIN
from tornado_callback.config import Settings
from tornado_callback.services import Services

KEY = "the-template-key-4f9a"
OTHER_KEY = "the-other-key-77c1"
WRONG_KEY = "a-wrong-guess-0b3e"
PASSWORD = "admin-password-93kd"
METRICS_TOKEN = "scrape-token-x81q"
SECRETS = (KEY, OTHER_KEY, WRONG_KEY, PASSWORD, METRICS_TOKEN)
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
DATABASE = "tornado-callback.db"  # serve's default, in its working directory


@dataclass
class Run:
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float]
    log: str
    unauthorized_scrape: int
    forbidden: int  # wrong keys answered 403 before the 429


def http(url: str, data: dict[str, str] | None = None, headers: dict[str, str] | None = None) -> tuple[int, str]:
    body = urllib.parse.urlencode(data).encode() if data is not None else None
    request = urllib.request.Request(url, data=body, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def scrape(base_url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    status, text = http(f"{base_url}/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert status == 200, text
    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def prepare(workdir: Path, migrated: Path) -> None:
    """An admin, a template on 127.0.0.1's host, and a template on an inventory of another host
    whose update-on-launch source was never synced; written through the admin service (what the
    CLI would do, without a process each)."""
    project = workdir / "project"
    project.mkdir()
    (project / "hello.yml").write_text("- hosts: all\n  gather_facts: false\n  tasks:\n    - ansible.builtin.ping:\n")
    (workdir / "elsewhere.ini").write_text("far-away ansible_host=192.0.2.10\n")
    shutil.copy(migrated, workdir / DATABASE)

    async def seed() -> None:
        settings = Settings(database_url=f"sqlite+aiosqlite:///{workdir / DATABASE}", plugins=plugins_config_for())
        services = await Services.start(settings, upgrade=False)
        try:
            async def create(resource: str, **values: object) -> int:
                return (await services.admin.create(resource, LOCAL_ADMIN, values))["id"]

            await create("users", username="admin", password=PASSWORD, is_superuser=True)
            here = await create("inventories", name="here")
            await create("hosts", inventory=here, name="localhost", variables=LOCALHOST_VARS)
            assert await create("job_templates", name="configure", inventory=here, playbook="hello.yml",
                                project_dir=str(project), host_config_key=KEY) == 1
            elsewhere = await create("inventories", name="elsewhere")
            await create("inventory_sources", name="file", inventory=elsewhere, source="file",
                         source_path=str(workdir / "elsewhere.ini"), update_on_launch=True)
            assert await create("job_templates", name="far", inventory=elsewhere, playbook="hello.yml",
                                project_dir=str(project), host_config_key=OTHER_KEY) == 2
        finally:
            await services.close()

    run_isolated(seed())


def run_sequence(workdir: Path, migrated: Path, *serve_args: str) -> Run:
    prepare(workdir, migrated)
    server = ServerProcess(*serve_args, cwd=workdir, TORNADO_CALLBACK_BAD_KEY_LIMIT="1",
                           TORNADO_CALLBACK_METRICS_TOKEN=METRICS_TOKEN)
    try:
        server.wait_for("listening on")
        callback = f"{server.base_url}/api/v2/job_templates/{{}}/callback/"
        # The key also in the query string, where a careless client may put it: the server reads
        # the body's, and the access log must not show the query's.
        status, answer = http(callback.format(1) + "?" + urllib.parse.urlencode({"host_config_key": KEY}),
                              {"host_config_key": KEY}, FORM)
        assert status == 202, answer
        job = json.loads(answer)["job"]
        status, answer = http(callback.format(2), {"host_config_key": OTHER_KEY}, FORM)
        assert (status, json.loads(answer)) == (400, {"msg": "No matching host could be found!"})
        # Last: over the limit, this address is refused whatever the template. With P processes
        # up to P - 1 more wrong keys get through than the limit (ratelimit.py): 403s, then a 429.
        refusals = [http(callback.format(1), {"host_config_key": WRONG_KEY}, FORM)[0]]
        while refusals[-1] == 403 and len(refusals) < 4:
            refusals.append(http(callback.format(1), {"host_config_key": WRONG_KEY}, FORM)[0])
        assert refusals[-1] == 429 and set(refusals[:-1]) == {403}, refusals
        admin = {"Authorization": "Basic " + base64.b64encode(f"admin:{PASSWORD}".encode()).decode()}
        deadline = time.monotonic() + 60
        while json.loads(http(f"{server.base_url}/api/v2/jobs/{job}/", headers=admin)[1])["status"] != "successful":
            assert time.monotonic() < deadline, "the job did not succeed within 60 s"
            time.sleep(0.3)
        # A credential with a control character: Tornado refuses the request, and logs why.
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as raw:
            raw.sendall(f"GET /api/v2/ping/ HTTP/1.1\r\nAuthorization: Bearer {METRICS_TOKEN}\x01\r\n\r\n".encode())
            assert raw.recv(100).startswith(b"HTTP/1.1 400")
        samples = scrape(server.base_url)
        unauthorized = http(f"{server.base_url}/metrics")[0]
    finally:
        assert server.stop() == 0, server.output
    return Run(samples, server.output, unauthorized, forbidden=len(refusals) - 1)


@pytest.fixture(scope="module")
def one_process(tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path) -> Run:
    return run_sequence(tmp_path_factory.mktemp("one"), sqlite_template, "--log-level", "DEBUG", "--log-format", "text")


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path) -> Run:
    return run_sequence(tmp_path_factory.mktemp("two"), sqlite_template, "--processes", "2", "--log-format", "json")


@pytest.mark.parametrize("run", ["one_process", "two_processes"])
def test_metrics_count_the_sequence(run: str, request: pytest.FixtureRequest) -> None:
    samples, forbidden = request.getfixturevalue(run).samples, request.getfixturevalue(run).forbidden
    callbacks = "tornado_callback_callbacks_total"
    assert value(samples, callbacks, template="1", code="202", outcome="accepted") == 1
    assert value(samples, callbacks, template="2", code="400", outcome="no_match") == 1
    assert value(samples, callbacks, template="1", code="403", outcome="forbidden") == forbidden
    assert value(samples, callbacks, template="1", code="429", outcome="rate_limited") == 1
    assert sum(v for (name, _), v in samples.items() if name == callbacks) == 3 + forbidden
    assert value(samples, "tornado_callback_callback_duration_seconds_count", outcome="accepted") == 1
    assert value(samples, "tornado_callback_rate_limit_refusals_total", limit="bad_key_address") == 1
    # 127.0.0.1 matched by ip_match once; the far template's inventory matched before and after its sync.
    assert value(samples, "tornado_callback_resolver_outcomes_total", resolver="ip_match", outcome="matched") == 1
    assert value(samples, "tornado_callback_resolver_outcomes_total", resolver="ip_match", outcome="no_match") == 2
    assert value(samples, "tornado_callback_resolver_duration_seconds_count", resolver="ip_match") == 3
    assert value(samples, "tornado_callback_inventory_syncs_total", outcome="successful") == 1
    assert value(samples, "tornado_callback_inventory_sync_duration_seconds_count", outcome="successful") == 1
    assert value(samples, "tornado_callback_job_duration_seconds_count", status="successful") == 1
    # Read from the job table: the same whichever process answers the scrape.
    assert value(samples, "tornado_callback_jobs", status="successful") == 1
    assert value(samples, "tornado_callback_jobs", status="pending") == 0
    assert value(samples, "tornado_callback_job_queue_depth") == 0
    assert value(samples, "tornado_callback_job_queue_oldest_age_seconds") == 0
    # No host name or address is a label anywhere.
    labels = {v for (_, pairs), _ in samples.items() for _, v in pairs}
    assert not labels & {"localhost", "far-away", "127.0.0.1", "192.0.2.10"}


def test_metrics_ask_for_the_token(one_process: Run) -> None:
    assert one_process.unauthorized_scrape == 401


def test_info_log_has_the_job_and_sync_lifecycle(two_processes: Run) -> None:
    records = [json.loads(line) for line in two_processes.log.splitlines() if line.startswith("{")]
    messages = [r["message"] for r in records if r["level"] == "INFO"]
    assert not [r for r in records if r["level"] == "DEBUG"]

    def logged(start: str, *parts: str) -> bool:
        return any(m.startswith(start) and all(p in m for p in parts) for m in messages)

    assert logged(f"tornado-callback {__version__} serving on 127.0.0.1:", "database sqlite",
                  "resolvers in order: cloud_metadata, x_forwarded_for, ip_match")
    assert logged("job 1 queued")
    # A run may carry several callback jobs (coalesced runs): "run R of job(s) 1, 2 started by worker W".
    assert [m for m in messages if re.match(r"(job|run \S+ of job\(s\)) 1\b.* started by worker ", m)]
    assert logged("job 1 finished: successful")
    assert logged("inventory update 1 started: source 1 of inventory 2, callback launch")
    assert logged("inventory update 1 finished: successful after", "1 added")
    assert logged("shutting down")
    assert sum(m.startswith("stopped (process") for m in messages) == 2
    assert [r for r in records if r["level"] == "WARNING" and r["message"].startswith(
        "rate limit bad_key_address tripped by 127.0.0.1: refused for")]


def test_debug_log_shows_no_secret(one_process: Run) -> None:
    log = one_process.log
    assert " DEBUG " in log  # the level took
    assert "POST /api/v2/job_templates/1/callback/?host_config_key=REDACTED (127.0.0.1)" in log
    assert "Malformed HTTP message from 127.0.0.1: Invalid header value (not logged)" in log
    assert [secret for secret in SECRETS if secret in log] == []
