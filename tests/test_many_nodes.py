"""Many nodes on one PostgreSQL database, as deploy/ and the README's "Deploying" lay them out:
two ``serve --no-worker`` processes (the API nodes behind the proxy) and one ``worker`` process.

Callbacks come from distinct loopback addresses (each client socket is bound to its own
127.0.x.y), split between the two nodes, so that every guarantee the single-node tests prove
with one process is proven here across processes: one job per host, each job run once, one
update-on-launch sync, and no 202 lost when a node dies.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from tests.conftest import PG_ENV, shown
from tests.helpers import cli_env, free_port
from tests.inventory_scripts import InventoryScript
from tests.jobs_support import LOCALHOST_VARS, job_settings, write_playbook
from tornado_callback.accounts.service import LOCAL_ADMIN
from tornado_callback.jobs.launch import MSG_ALREADY_PENDING
from tornado_callback.store.models import FINISHED_JOB_STATUSES, InventoryUpdate, Job

pytestmark = [
    pytest.mark.skipif(not os.environ.get(PG_ENV), reason=f"needs PostgreSQL ({PG_ENV})"),
    pytest.mark.parametrize("database_url", ["postgresql"], indirect=True),
]

CALLBACK = "/api/v2/job_templates/{}/callback/"
JSON = {"Content-Type": "application/json"}


@pytest.fixture
def settings(database_url, plugins_config, tmp_path):
    return job_settings(database_url, plugins_config, tmp_path, job_poll_interval=0.2, job_lease_seconds=30.0)


class Node:
    """One ``tornado-callback`` process. Its output goes to a file: a pipe nobody reads
    would fill up under a burst of access-log lines and stall the process."""

    def __init__(self, args: list[str], workdir: Path, log: Path, env: dict[str, str]) -> None:
        self.log = log
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tornado_callback", *args],
                cwd=workdir, env=cli_env(**env), stdout=out, stderr=subprocess.STDOUT,
            )

    def wait_until(self, ready: Callable[[], bool], timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"{self.process.args} did not start:\n{self.log.read_text(errors='replace')}")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class ApiNode(Node):
    """``serve --no-worker`` on a free port."""

    def __init__(self, workdir: Path, log: Path, env: dict[str, str]) -> None:
        self.port = free_port()
        super().__init__(["serve", "--no-worker", "--port", str(self.port)], workdir, log, env)

    def answers(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/api/v2/ping/", timeout=2) as response:
                return response.status == 200
        except OSError:
            return False


@dataclass
class Cluster:
    nodes: list[ApiNode]
    start_worker: Callable[[], Node]


@pytest.fixture
def start_cluster(settings, tmp_path) -> Iterator[Callable[[], Cluster]]:
    """Two API nodes on the test's database, and a worker process when the test asks for it;
    all of them stopped when the test ends, whatever happened to them."""
    started: list[Node] = []
    workdir = tmp_path / "state"
    workdir.mkdir()
    env = {
        "TORNADO_CALLBACK_DATABASE_URL": settings.database_url,
        "TORNADO_CALLBACK_SECRET_KEY": settings.secret_key,
        "TORNADO_CALLBACK_JOB_POLL_INTERVAL": str(settings.job_poll_interval),
        "TORNADO_CALLBACK_JOB_LEASE_SECONDS": str(settings.job_lease_seconds),
        "TORNADO_CALLBACK_RUN_DIR": settings.run_dir,
        "TORNADO_CALLBACK_JOB_SHOW_PATHS": os.pathsep.join(settings.job_show_paths),
    }

    def start_worker() -> Node:
        log = tmp_path / "worker.log"
        worker = Node(["worker", "--workers", "2"], workdir, log, env)
        started.append(worker)
        worker.wait_until(lambda: b"job slot(s)" in log.read_bytes())
        return worker

    def start() -> Cluster:
        nodes = [ApiNode(workdir, tmp_path / f"{name}.log", env) for name in ("node-a", "node-b")]
        started.extend(nodes)
        for node in nodes:
            node.wait_until(node.answers)
        return Cluster(nodes, start_worker)

    yield start
    for node in started:
        node.stop()


def post_callback(port: int, source: str, template_id: int, key: str) -> tuple[int, Any] | None:
    """POST the callback from ``source`` (a loopback address of its own); None when the
    node could not be reached or went away before answering."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60, source_address=(source, 0))
    try:
        connection.request("POST", CALLBACK.format(template_id), body=json.dumps({"host_config_key": key}),
                           headers=JSON)
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    except (OSError, http.client.HTTPException):
        return None
    finally:
        connection.close()


def burst(
    calls: list[tuple[int, str]], template_id: int, key: str, threads: int | None = None,
    before_call: Callable[[int], None] = lambda index: None,
) -> list[Any]:
    """POST each (port, source address) callback: all at once (a thread each, released together),
    or ``threads`` at a time, ``before_call(index)`` first. The answers come in the order of ``calls``."""
    threads = threads or len(calls)
    together = threading.Barrier(threads) if threads == len(calls) else None

    def call(index: int) -> Any:
        if together is not None:
            together.wait(timeout=60)
        before_call(index)
        return post_callback(*calls[index], template_id, key)

    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(call, range(len(calls))))


def marking_playbook(project: Path, marks: Path) -> str:
    """Each host it runs for appends a line to ``marks/HOST``: a host run twice has two lines.
    A lookup runs in ansible-playbook itself, so a run for many hosts ships no module."""
    return write_playbook(project, "mark.yml", f"""\
    - name: Mark this host
      ansible.builtin.debug:
        msg: "{{{{ lookup('ansible.builtin.pipe', 'echo ran >> {marks}/' ~ inventory_hostname) }}}}"
""")


def split(sources: list[str], cluster: Cluster) -> list[tuple[int, str]]:
    """Each source's callback to the nodes in turn."""
    return [(cluster.nodes[n % len(cluster.nodes)].port, source) for n, source in enumerate(sources)]


async def jobs_of(services, template_id: int) -> list[Job]:
    async with services.db.session() as session:
        return list(await session.scalars(select(Job).where(Job.job_template_id == template_id).order_by(Job.id)))


async def wait_until_finished(services, template_id: int, count: int, timeout: float) -> list[Job]:
    deadline = time.monotonic() + timeout
    while True:
        jobs = await jobs_of(services, template_id)
        if len(jobs) == count and all(job.status in FINISHED_JOB_STATUSES for job in jobs):
            return jobs
        assert time.monotonic() < deadline, f"after {timeout}s: {Counter(job.status for job in jobs)}"
        await asyncio.sleep(0.5)


def marks_written(marks: Path) -> dict[str, int]:
    return {path.name: len(path.read_text().splitlines()) for path in marks.iterdir()}


@pytest.mark.gen_test(timeout=120)
async def test_40_concurrent_callbacks_of_one_host_across_two_nodes_give_one_job(
    seed, services, start_cluster, project, tmp_path
):
    marks = shown(tmp_path)
    world = await seed({"web1": dict(LOCALHOST_VARS, ansible_host="127.0.0.7")},
                       project_dir=str(project), playbook=marking_playbook(project, marks))
    cluster = start_cluster()

    answers = await asyncio.to_thread(burst, split(["127.0.0.7"] * 40, cluster), world.template_id, world.key)

    [job_id] = [body["job"] for status, body in answers if status == 202]
    assert [(status, body) for status, body in answers if status != 202] \
        == [(400, {"msg": MSG_ALREADY_PENDING, "job": job_id})] * 39
    # The worker starts only now: had it finished the job during the burst, a late callback
    # would rightly have had a second one.
    cluster.start_worker()
    [job] = await wait_until_finished(services, world.template_id, 1, timeout=90)
    assert (job.id, job.status, job.host_id) == (job_id, "successful", world.hosts["web1"])
    assert marks_written(marks) == {"web1": 1}


# With coalesced runs (issue 18) the worker runs the 200 jobs as a few playbooks: 47 s for the
# whole test on a busy 2-core machine; one playbook per job took over 300 s.
@pytest.mark.gen_test(timeout=240)
async def test_200_hosts_calling_two_nodes_get_200_jobs_each_run_once_by_the_worker(
    seed, services, start_cluster, project, tmp_path
):
    marks = shown(tmp_path)
    addresses = {f"host{n:03d}": f"127.0.1.{n + 1}" for n in range(200)}
    world = await seed({name: dict(LOCALHOST_VARS, ansible_host=address) for name, address in addresses.items()},
                       project_dir=str(project), playbook=marking_playbook(project, marks))
    cluster = start_cluster()
    cluster.start_worker()

    answers = await asyncio.to_thread(
        burst, split(list(addresses.values()), cluster), world.template_id, world.key, threads=20)

    assert [status for status, _ in answers] == [202] * 200
    jobs = await wait_until_finished(services, world.template_id, 200, timeout=180)
    assert sorted(body["job"] for _, body in answers) == [job.id for job in jobs]
    assert Counter(job.status for job in jobs) == {"successful": 200}
    host_of = {job.id: job.host_id for job in jobs}
    assert [host_of[body["job"]] for _, body in answers] == [world.hosts[name] for name in addresses]
    assert marks_written(marks) == dict.fromkeys(addresses, 1)


@pytest.mark.gen_test(timeout=120)
async def test_an_update_on_launch_sync_asked_for_by_both_nodes_at_once_runs_once(
    seed, services, start_cluster, tmp_path
):
    world = await seed({})
    script = InventoryScript(tmp_path / "script")
    # Hosts only the sync brings; it takes 2 s, so every callback asks while it runs.
    addresses = {f"new{n}": f"127.0.2.{n + 1}" for n in range(8)}
    script.set_hosts({name: {"ansible_host": address} for name, address in addresses.items()})
    script.set_mode("slow")
    # No cache: only the nodes' coordination keeps the second node from syncing again.
    await services.admin.create("inventory_sources", LOCAL_ADMIN, {
        "inventory": world.inventory_id, "name": "cloud", "source": "script", "source_path": str(script.path),
        "update_on_launch": True, "update_cache_timeout": 0})
    cluster = start_cluster()

    answers = await asyncio.to_thread(burst, split(list(addresses.values()), cluster), world.template_id, world.key)

    assert [status for status, _ in answers] == [202] * 8
    async with services.db.session() as session:
        updates = await session.scalar(select(func.count()).select_from(InventoryUpdate))
    assert (script.runs, updates) == (1, 1)


@pytest.mark.gen_test(timeout=120)
async def test_a_node_killed_mid_burst_loses_no_202_and_the_other_keeps_answering(
    seed, services, start_cluster, tmp_path
):
    addresses = {f"host{n:02d}": f"127.0.3.{n + 1}" for n in range(80)}
    world = await seed({name: dict(LOCALHOST_VARS, ansible_host=address) for name, address in addresses.items()})
    cluster = start_cluster()
    doomed, survivor = cluster.nodes
    calls = split(list(addresses.values()), cluster)

    def kill_at_the_30th(index: int) -> None:
        if index == 30:
            doomed.process.send_signal(signal.SIGKILL)

    answers = await asyncio.to_thread(burst, calls, world.template_id, world.key, threads=8,
                                      before_call=kill_at_the_30th)

    assert doomed.process.wait(timeout=10) == -signal.SIGKILL
    host_at = {address: world.hosts[name] for name, address in addresses.items()}
    answered = {port: [answer is not None for (to, _), answer in zip(calls, answers, strict=True) if to == port]
                for port in (doomed.port, survivor.port)}
    # Killed mid-burst: it had answered some callbacks, and no more after.
    assert 0 < sum(answered[doomed.port]) < len(answered[doomed.port])
    assert all(answered[survivor.port])
    # Every 202 a client got names a job of its host, in the database; the survivor accepted all.
    host_of = {job.id: job.host_id for job in await jobs_of(services, world.template_id)}
    for (_, source), answer in zip(calls, answers, strict=True):
        if answer is not None:
            status, body = answer
            assert (status, host_of[body["job"]]) == (202, host_at[source]), (source, answer)

    # The hosts the dead node never answered call the survivor: each gets a job now, or hears
    # of the one the dead node committed before it could answer.
    unanswered = [source for (_, source), answer in zip(calls, answers, strict=True) if answer is None]
    retried = await asyncio.to_thread(burst, [(survivor.port, source) for source in unanswered],
                                      world.template_id, world.key, threads=8)
    host_of = {job.id: job.host_id for job in await jobs_of(services, world.template_id)}
    for source, (status, body) in zip(unanswered, retried, strict=True):
        assert status == 202 or body == {"msg": MSG_ALREADY_PENDING, "job": body["job"]}, (source, body)
        assert host_of[body["job"]] == host_at[source]
    assert sorted(host_of.values()) == sorted(world.hosts.values())  # one job per host, none twice
