"""Workers: claim pending jobs, run them with ansible-runner, stream results to the store.

Callback jobs of one template and launch that pile up while the workers are
busy run together: one ansible-playbook limited to all their hosts (a
coalesced run), so that a boot storm is configured at Ansible's own pace
rather than one process start per host. Each job keeps its own events, output
and outcome (run_output.py).

A playbook runs in ansible-runner's own thread; the event loop only polls it
(events, lease, cancel requests) between short sleeps, so the server keeps
answering callbacks while jobs run. Every state change goes through
``jobs.queue``'s conditional updates, so a job is run by exactly one
worker, and a worker that lost its job (its lease was swept) changes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os
import queue
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ansible_runner import RunnerConfig
from ansible_runner.exceptions import AnsibleRunnerException
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError

from tornado_callback.accounts.credentials import Credentials, SshSecrets
from tornado_callback.accounts.secrets import SecretsUnreadable
from tornado_callback.config import Settings
from tornado_callback.inventory.export import inventory_document
from tornado_callback.jobs import queue as job_queue
from tornado_callback.jobs.playbook_run import (
    RunSetupError,
    RunSpec,
    UntrustingRunner,
    host_limit_problem,
    runner_config,
)
from tornado_callback.jobs.queue import Claim, Ending
from tornado_callback.jobs.run_dirs import RunDirectories
from tornado_callback.jobs.run_output import EXPLAIN_CANCELED, EXPLAIN_SHUTDOWN, RunOutput
from tornado_callback.jobs.sandbox import Sandbox
from tornado_callback.store.database import Database
from tornado_callback.store.models import Credential, Job, JobEvent, JobTemplate
from tornado_callback.telemetry import metrics

log = logging.getLogger("tornado_callback.jobs.executor")

# How often a running job's new events and text are written to the store.
FLUSH_SECONDS = 0.25
# Events written per transaction at most, so one chatty task cannot stall the loop.
MAX_EVENTS_PER_FLUSH = 500

EXPLAIN_LEASE_EXPIRED = "Job terminated: its worker stopped renewing its lease (the worker died or lost the database)."
EXPLAIN_LEASE_LOST = "its worker lost the lease of a job that shared it."
EXPLAIN_INTERNAL = "Internal error while running the job; see the server log."


def new_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def awx_variables(job: Job) -> dict[str, Any]:
    """What AWX gives every playbook of the job (``awx_*`` and the older ``tower_*``), but its id."""
    values = {"job_template_id": job.job_template_id, "job_launch_type": job.launch_type,
              "job_template_name": job.name}
    return prefixed(values)


def prefixed(values: dict[str, Any]) -> dict[str, Any]:
    return {f"{prefix}_{name}": value for prefix in ("awx", "tower") for name, value in values.items()}


JOB_ID_VARIABLES = frozenset(prefixed({"job_id": None}))


class LeaseSweeper:
    """Marks ``error`` the jobs whose worker stopped renewing their lease.

    Cheap (one indexed UPDATE), idempotent, and safe to run in every process,
    including API-only ones, so a dead worker never blocks a host for long.
    """

    def __init__(self, db: Database, settings: Settings, run_dirs: RunDirectories) -> None:
        self.db = db
        self.run_dirs = run_dirs
        self.interval = min(max(settings.job_lease_seconds / 2, 0.1), 10.0)

    async def sweep(self) -> list[int]:
        async with self.db.session() as session:
            expired = await job_queue.expire_lost_jobs(session, EXPLAIN_LEASE_EXPIRED)
        for job_id in expired:
            log.warning("job %s: lease expired, marked error", job_id)
        await asyncio.to_thread(sweep_run_directories, self.run_dirs)
        return expired

    async def run_forever(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.sweep()
            except (SQLAlchemyError, OSError) as e:
                log.warning("lease sweep failed: %s", e)
            await wait_for_any(self.interval, stop)


def sweep_run_directories(run_dirs: RunDirectories) -> None:
    """Remove what runs of dead processes left (their decrypted keys among it). Blocking."""
    for name in run_dirs.sweep():
        log.warning("removed %s, left behind by a run whose process died", run_dirs.root / name)


def start_workers(
    db: Database, credentials: Credentials, settings: Settings, sandbox: Sandbox | None
) -> WorkerPool:
    """This process's job slots (and lease sweeper); ``Services.start_workers`` has jobs
    queued in this process wake them.

    ``sandbox`` None runs playbooks unsandboxed: only by the admin's choice
    (``TORNADO_CALLBACK_JOB_ISOLATION=off``) or for ``serve --demo``.
    """
    run_dirs = RunDirectories(settings.run_dir_path)
    run_dirs.prepare()
    sweep_run_directories(run_dirs)
    pool = WorkerPool(db, credentials, settings, sandbox, run_dirs)
    pool.start()
    return pool


class WorkerPool:
    """``settings.workers`` job slots in this process, plus a lease sweeper."""

    def __init__(
        self, db: Database, credentials: Credentials, settings: Settings,
        sandbox: Sandbox | None, run_dirs: RunDirectories,
    ) -> None:
        self.db = db
        self.credentials = credentials
        self.settings = settings
        self.sandbox = sandbox
        self.run_dirs = run_dirs
        self.worker_id = new_worker_id()
        self.lease = dt.timedelta(seconds=settings.job_lease_seconds)
        # Renew well before expiry; this is also how soon a cancel request is seen.
        self.renew_seconds = min(settings.job_lease_seconds / 3, 1.0)
        # The wait for more jobs of a batch renews no lease of those taken: it ends well before they expire.
        self.linger = min(settings.job_batch_linger, settings.job_lease_seconds / 3)
        self.sweeper = LeaseSweeper(db, settings, run_dirs)
        self._stop = asyncio.Event()
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._slot()) for _ in range(self.settings.workers)]
        self._tasks.append(asyncio.create_task(self.sweeper.run_forever(self._stop)))
        log.info("worker %s: %d job slot(s)", self.worker_id, self.settings.workers)

    def wake(self) -> None:
        """A job was just queued in this process: look now rather than at the next poll."""
        self._wake.set()

    async def stop(self) -> None:
        """Stop claiming; running playbooks are stopped and their jobs marked ``error``."""
        self._stop.set()
        await asyncio.gather(*self._tasks)

    async def _slot(self) -> None:
        while not self._stop.is_set():
            claim = await self._claim()
            if not claim.job_ids:
                self._wake.clear()
                await wait_for_any(self.settings.job_poll_interval, self._stop, self._wake)
                continue
            try:
                await self.run(claim)
            except Exception:
                log.exception("run %s of job(s) %s: internal error", claim.run_id, claim.job_ids)
                # If even this fails (database gone), the lease sweeper ends the jobs.
                with contextlib.suppress(SQLAlchemyError, OSError):
                    await self._record({job_id: Ending("error", EXPLAIN_INTERNAL) for job_id in claim.job_ids})

    async def _claim(self) -> Claim:
        """The jobs of this slot's next run: the oldest pending job, and the callback jobs
        that may share its run (none when ``job_batch_size`` is 1)."""
        settings = self.settings
        run_id = uuid.uuid4().hex
        try:
            async with self.db.session() as session:
                claim = await job_queue.claim_run(session, self.worker_id, self.lease, run_id, settings.job_batch_size)
                if claim.launch and self.linger > 0 and len(claim.job_ids) < claim.capacity:
                    await wait_for_any(self.linger, self._stop)
                    claim = await job_queue.claim_more(session, self.worker_id, self.lease, claim)
        except (SQLAlchemyError, OSError) as e:
            log.warning("worker %s: cannot claim jobs: %s", self.worker_id, e)
            return Claim([], run_id)
        return claim

    async def _record(self, endings: dict[int, Ending]) -> None:
        async with self.db.session() as session:
            lost = await job_queue.record_endings(session, self.worker_id, endings)
        for job_id in lost:
            log.warning("job %s: no longer ours (its lease expired); outcome %s dropped",
                        job_id, endings.pop(job_id).status)

    async def _plan(self, claim: Claim) -> RunPlan:
        async with self.db.session() as session:
            jobs = list(await session.scalars(select(Job).where(Job.id.in_(claim.job_ids)).order_by(Job.id)))
            if not jobs:
                raise RunSetupError("The job was deleted before it could run.")
            first = jobs[0]
            template = await session.get(JobTemplate, first.job_template_id) if first.job_template_id else None
            if template is None:
                raise RunSetupError("The job template was deleted before the job could run.")
            if first.inventory_id is None:
                raise RunSetupError("The inventory was deleted before the job could run.")
            try:
                inventory = await inventory_document(session, first.inventory_id)
            except LookupError as e:
                raise RunSetupError(str(e)) from e
            secrets = None
            if template.credential_id is not None:
                credential = await session.get(Credential, template.credential_id)
                if credential is not None:
                    try:
                        secrets = self.credentials.decrypt(credential)
                    except SecretsUnreadable as e:
                        raise RunSetupError(f"Credential {credential.name!r}: {e}.") from e
            counters: dict[int, int] = dict((await session.execute(
                select(JobEvent.job_id, func.max(JobEvent.counter))
                .where(JobEvent.job_id.in_(claim.job_ids)).group_by(JobEvent.job_id)
            )).all())
        return RunPlan(jobs, template, inventory, secrets, counters)

    async def run(self, claim: Claim) -> None:
        """Run the jobs of ``claim`` as one ansible-playbook, from ``waiting`` to their final status."""
        started = time.monotonic()
        private_dir = await asyncio.to_thread(self.run_dirs.create, claim.job_ids[0])
        try:
            endings = await self._execute(claim, private_dir.path)
        finally:
            # The private directory holds the decrypted key: it is gone before
            # anyone can see the jobs finished.
            await asyncio.to_thread(private_dir.remove)
        await self._record(endings)
        seconds = time.monotonic() - started
        for job_id, ending in endings.items():
            if ending.status == "pending":
                log.info("job %s back in the queue: %s", job_id, ending.explanation)
                continue
            metrics.job_finished(ending.status, seconds)
            log.log(logging.WARNING if ending.status == "error" else logging.INFO,
                    "job %s finished: %s after %.1f s%s", job_id, ending.status, seconds,
                    f" ({ending.explanation})" if ending.explanation else "")

    async def _execute(self, claim: Claim, private_dir: Path) -> dict[int, Ending]:
        """How each job of the claim ended (those no longer ours left out)."""
        try:
            plan = await self._plan(claim)
        except RunSetupError as e:
            return {job_id: Ending("error", str(e)) for job_id in claim.job_ids}
        endings = plan.refused()
        runnable = [job.id for job in plan.jobs if job.id not in endings]
        async with self.db.session() as session:
            running, canceled = await job_queue.mark_running(session, runnable, self.worker_id)
        endings |= {job_id: Ending("canceled", EXPLAIN_CANCELED) for job_id in canceled}
        job_ids = [job_id for job_id in running if job_id not in canceled]
        if not job_ids:
            return endings
        spec = plan.spec(job_ids)
        try:
            config = await asyncio.to_thread(runner_config, spec, private_dir, self.sandbox)
        except RunSetupError as e:
            return endings | {job_id: Ending("error", str(e)) for job_id in job_ids}
        hosts = plan.hosts(job_ids)
        for job in plan.jobs:
            if job.id in job_ids:
                log.info("job %s started by worker %s: template %r, limit %r%s", job.id, self.worker_id,
                         spec.template_name, job.limit if hosts else spec.limit,
                         "" if self.sandbox else ", without the sandbox")
        if len(job_ids) > 1:
            log.info("run %s: jobs %s share one ansible-playbook, limit %r", claim.run_id,
                     ", ".join(map(str, job_ids)), spec.limit)
        output = RunOutput(hosts, {job_id: plan.counters.get(job_id, 0) for job_id in job_ids})
        return endings | await self._run_playbook(claim.run_id, config, output, plan.first_attempt(job_ids))

    async def _run_playbook(
        self, run_id: str, config: RunnerConfig, output: RunOutput, first_attempt: bool
    ) -> dict[int, Ending]:
        events: queue.SimpleQueue[dict[str, Any]] = queue.SimpleQueue()
        cancel = threading.Event()

        runner = UntrustingRunner(config, event_handler=events.put, cancel_callback=cancel.is_set)
        thread = threading.Thread(target=runner.run, name=f"run-{run_id}")
        thread.start()
        reason = ""
        job_ids = set(output.job_ids)
        lost: set[int] = set()
        canceled: set[int] = set()
        next_renewal = time.monotonic() + self.renew_seconds
        try:
            while thread.is_alive():
                await asyncio.sleep(FLUSH_SECONDS)
                await self._flush(output, events)
                if self._stop.is_set() and not cancel.is_set():
                    reason = EXPLAIN_SHUTDOWN
                    cancel.set()
                if time.monotonic() >= next_renewal:
                    next_renewal = time.monotonic() + self.renew_seconds
                    ours, cancel_requested = await self._renew(job_ids)
                    lost |= job_ids - ours
                    canceled |= cancel_requested
                    if (lost or canceled) and not cancel.is_set():
                        reason = EXPLAIN_CANCELED if canceled else EXPLAIN_LEASE_LOST
                        cancel.set()
        finally:
            if thread.is_alive():  # we failed while it ran: never leave a playbook unattended
                cancel.set()
            await asyncio.to_thread(thread.join)
        while not events.empty():
            await self._flush(output, events)
        if lost:
            log.warning("run %s: the lease of job(s) %s was lost while it ran; playbook stopped",
                        run_id, ", ".join(map(str, sorted(lost))))
        endings = output.endings(runner.status, reason, canceled, run_id)
        alone = output.job_ids[0]
        if first_attempt and alone in endings:
            # A job run alone, the first time: the run's complete output (with lines no event carried).
            ending = endings[alone]
            endings[alone] = Ending(ending.status, ending.explanation, await asyncio.to_thread(_read_stdout, runner))
        return {job_id: ending for job_id, ending in endings.items() if job_id not in lost}

    async def _renew(self, job_ids: set[int]) -> tuple[set[int], set[int]]:
        """(those still ours, those to cancel). A database hiccup loses no job: the lease has slack."""
        try:
            async with self.db.session() as session:
                return await job_queue.renew_leases(session, job_ids, self.worker_id, self.lease)
        except (SQLAlchemyError, OSError) as e:
            log.warning("job(s) %s: cannot renew leases: %s", ", ".join(map(str, sorted(job_ids))), e)
            return job_ids, set()

    async def _flush(self, output: RunOutput, events: queue.SimpleQueue[dict[str, Any]]) -> None:
        rows: list[dict[str, Any]] = []
        while len(rows) < MAX_EVENTS_PER_FLUSH:
            try:
                rows += output.rows([events.get_nowait()])
            except queue.Empty:
                break
        if not rows:
            return
        text: dict[int, str] = {}
        for row in rows:
            if row["stdout"]:
                text[row["job_id"]] = text.get(row["job_id"], "") + row["stdout"] + "\n"
        async with self.db.session() as session:
            await job_queue.append_output(session, rows, text)


@dataclass
class RunPlan:
    """What the store says of a claim's jobs, read once for their run."""

    jobs: list[Job]
    template: JobTemplate
    inventory: dict[str, Any]
    secrets: SshSecrets | None
    # Each job's last stored event number (a job run before has some).
    counters: dict[int, int]

    def refused(self) -> dict[int, Ending]:
        """The callback jobs whose host's name cannot be a limit: they end at once, the others run."""
        return {
            job.id: Ending("error", problem) for job in self.jobs
            if job.launch_type == "callback" and (problem := host_limit_problem(job.limit, self.inventory))
        }

    def first_attempt(self, job_ids: list[int]) -> bool:
        """A job that runs alone and ran never before: neither events nor output (a job sent
        back to the queue may have no event yet, but has the note that says why)."""
        return len(job_ids) == 1 and not self.counters.get(job_ids[0]) and not next(
            job.result_stdout for job in self.jobs if job.id == job_ids[0])

    def hosts(self, job_ids: list[int]) -> dict[str, int]:
        """The callback jobs' hosts, each with its job."""
        return {job.limit: job.id for job in self.jobs if job.id in job_ids and job.launch_type == "callback"}

    def spec(self, job_ids: list[int]) -> RunSpec:
        """The run of ``job_ids``, which share their template, inventory and variables."""
        first = next(job for job in self.jobs if job.id in job_ids)
        hosts = self.hosts(job_ids)
        template = self.template
        # The job's id is each host's own variable: in a shared run, each host has its job's.
        for name, variables in self.inventory["all"]["hosts"].items():
            job_id = hosts.get(name, first.id if len(job_ids) == 1 else None)
            if job_id is not None:
                variables.update(prefixed({"job_id": job_id}))
        return RunSpec(
            ident=first.id,
            template_name=template.name,
            project_dir=template.project_dir,
            playbook=template.playbook,
            inventory=self.inventory,
            limit=",".join(hosts) if hosts else first.limit,
            configured_vars={k: v for k, v in (first.extra_vars or {}).items() if k not in (first.launch_vars or {})},
            # The job's own facts are data too: a template's name is not a template. None given
            # at launch may stand in for them, its id (each host's variable) included.
            launch_vars={**{k: v for k, v in (first.launch_vars or {}).items() if k not in JOB_ID_VARIABLES},
                         **awx_variables(first)},
            # Unless the template sets its forks, a shared run configures all its hosts at once.
            forks=template.forks or (len(job_ids) if len(job_ids) > 1 else 0),
            verbosity=template.verbosity,
            job_tags=template.job_tags,
            skip_tags=template.skip_tags,
            timeout=template.timeout,
            secrets=self.secrets,
        )


def _read_stdout(runner: Any) -> str | None:
    """The run's complete output (including lines no event carried), if ansible-runner kept it."""
    try:
        with runner.stdout as f:
            return f.read()
    except (AnsibleRunnerException, OSError):
        return None


async def wait_for_any(seconds: float, *events: asyncio.Event) -> None:
    """Sleep ``seconds``, or less if one of ``events`` is set."""
    waiters = [asyncio.create_task(event.wait()) for event in events]
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
