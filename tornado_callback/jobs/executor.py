"""Workers: claim pending jobs, run them with ansible-runner, stream results to the store.

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
from pathlib import Path
from typing import Any

from ansible_runner import RunnerConfig
from ansible_runner.exceptions import AnsibleRunnerException
from sqlalchemy.exc import SQLAlchemyError

from tornado_callback.accounts.credentials import Credentials
from tornado_callback.accounts.secrets import SecretsUnreadable
from tornado_callback.config import Settings
from tornado_callback.inventory.export import inventory_document
from tornado_callback.jobs import queue as job_queue
from tornado_callback.jobs.playbook_run import RunSetupError, RunSpec, UntrustingRunner, runner_config
from tornado_callback.jobs.run_dirs import RunDirectories
from tornado_callback.jobs.sandbox import Sandbox
from tornado_callback.store.database import Database
from tornado_callback.store.models import Credential, Job, JobTemplate

log = logging.getLogger("tornado_callback.jobs.executor")

# How often a running job's new events and text are written to the store.
FLUSH_SECONDS = 0.25
# Events written per transaction at most, so one chatty task cannot stall the loop.
MAX_EVENTS_PER_FLUSH = 500

EXPLAIN_LEASE_EXPIRED = "Job terminated: its worker stopped renewing its lease (the worker died or lost the database)."
EXPLAIN_TIMEOUT = "Job terminated due to timeout"
EXPLAIN_CANCELED = "Job canceled at the request of a user."
EXPLAIN_SHUTDOWN = "Job terminated: the worker shut down while it ran."

FAILED_EVENTS = frozenset({"runner_on_failed", "runner_on_unreachable"})


def new_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def event_row(event: dict[str, Any]) -> dict[str, Any]:
    """A JobEvent row from one ansible-runner event."""
    data = event.get("event_data") or {}
    result = data.get("res")
    return {
        "counter": int(event.get("counter", 0)),
        "event": str(event.get("event", ""))[:100],
        "host_name": str(data.get("host") or "")[:512],
        "task": str(data.get("task") or ""),
        # PostgreSQL text cannot hold NUL; a playbook may print one.
        "stdout": str(event.get("stdout") or "").replace("\x00", ""),
        "event_data": data,
        "failed": event.get("event") in FAILED_EVENTS and not data.get("ignore_errors"),
        "changed": bool(isinstance(result, dict) and result.get("changed")),
    }


def awx_variables(job: Job) -> dict[str, Any]:
    """The job's own variables that AWX gives every playbook (``awx_*`` and the older ``tower_*``)."""
    values = {
        "job_id": job.id,
        "job_template_id": job.job_template_id,
        "job_launch_type": job.launch_type,
        "job_template_name": job.name,
    }
    return {f"{prefix}_{name}": value for prefix in ("awx", "tower") for name, value in values.items()}


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
            try:
                async with self.db.session() as session:
                    job_id = await job_queue.claim_next(session, self.worker_id, self.lease)
            except (SQLAlchemyError, OSError) as e:
                log.warning("worker %s: cannot claim jobs: %s", self.worker_id, e)
                job_id = None
            if job_id is None:
                self._wake.clear()
                await wait_for_any(self.settings.job_poll_interval, self._stop, self._wake)
                continue
            try:
                await self.run_job(job_id)
            except Exception:
                log.exception("job %s: internal error", job_id)
                # If even this fails (database gone), the lease sweeper ends the job.
                with contextlib.suppress(SQLAlchemyError, OSError):
                    await self._finish(job_id, "error", "Internal error while running the job; see the server log.")

    async def _finish(self, job_id: int, status: str, explanation: str, stdout: str | None = None) -> None:
        async with self.db.session() as session:
            if not await job_queue.finish(session, job_id, self.worker_id, status, explanation, stdout):
                log.warning("job %s: no longer ours (its lease expired); outcome %s dropped", job_id, status)

    async def _spec(self, job_id: int) -> RunSpec:
        async with self.db.session() as session:
            job = await session.get(Job, job_id)
            if job is None:
                raise RunSetupError("The job was deleted before it could run.")
            template = await session.get(JobTemplate, job.job_template_id) if job.job_template_id else None
            if template is None:
                raise RunSetupError("The job template was deleted before the job could run.")
            if job.inventory_id is None:
                raise RunSetupError("The inventory was deleted before the job could run.")
            try:
                inventory = await inventory_document(session, job.inventory_id)
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
        return RunSpec(
            job_id=job.id,
            template_name=template.name,
            project_dir=template.project_dir,
            playbook=template.playbook,
            inventory=inventory,
            limit=job.limit,
            limit_is_host=job.launch_type == "callback",
            configured_vars={k: v for k, v in (job.extra_vars or {}).items() if k not in (job.launch_vars or {})},
            # The job's own facts are data too: a template's name is not a template.
            launch_vars={**(job.launch_vars or {}), **awx_variables(job)},
            forks=template.forks,
            verbosity=template.verbosity,
            job_tags=template.job_tags,
            skip_tags=template.skip_tags,
            timeout=template.timeout,
            secrets=secrets,
        )

    async def run_job(self, job_id: int) -> None:
        """Run one job this worker has claimed, from ``waiting`` to its final status."""
        started = time.monotonic()
        private_dir = await asyncio.to_thread(self.run_dirs.create, job_id)
        try:
            result = await self._execute(job_id, private_dir.path)
        finally:
            # The private directory holds the decrypted key: it is gone before
            # anyone can see the job finished.
            await asyncio.to_thread(private_dir.remove)
        if result is None:
            return
        status, explanation, _ = result
        await self._finish(job_id, *result)
        log.log(logging.WARNING if status == "error" else logging.INFO, "job %s finished: %s after %.1f s%s",
                job_id, status, time.monotonic() - started, f" ({explanation})" if explanation else "")

    async def _execute(self, job_id: int, private_dir: Path) -> tuple[str, str, str | None] | None:
        """(status, explanation, stdout) of the run, or None if the job is no longer ours."""
        try:
            spec = await self._spec(job_id)
            config = await asyncio.to_thread(runner_config, spec, private_dir, self.sandbox)
        except RunSetupError as e:
            return "error", str(e), None
        async with self.db.session() as session:
            if not await job_queue.mark_running(session, job_id, self.worker_id):
                return None
        log.info("job %s started by worker %s: template %r, limit %r%s", job_id, self.worker_id,
                 spec.template_name, spec.limit, "" if self.sandbox else ", without the sandbox")
        return await self._run_playbook(job_id, config)

    async def _run_playbook(self, job_id: int, config: RunnerConfig) -> tuple[str, str, str | None] | None:
        events: queue.SimpleQueue[dict[str, Any]] = queue.SimpleQueue()
        cancel = threading.Event()

        runner = UntrustingRunner(config, event_handler=events.put, cancel_callback=cancel.is_set)
        thread = threading.Thread(target=runner.run, name=f"job-{job_id}")
        thread.start()
        reason = ""
        lost = False
        next_renewal = time.monotonic() + self.renew_seconds
        try:
            while thread.is_alive():
                await asyncio.sleep(FLUSH_SECONDS)
                await self._flush(job_id, events)
                if self._stop.is_set() and not cancel.is_set():
                    reason = EXPLAIN_SHUTDOWN
                    cancel.set()
                if time.monotonic() >= next_renewal:
                    next_renewal = time.monotonic() + self.renew_seconds
                    ours, cancel_requested = await self._renew(job_id)
                    lost = lost or not ours
                    if (lost or cancel_requested) and not cancel.is_set():
                        reason = EXPLAIN_CANCELED
                        cancel.set()
        finally:
            if thread.is_alive():  # we failed while it ran: never leave a playbook unattended
                cancel.set()
            await asyncio.to_thread(thread.join)
        while not events.empty():
            await self._flush(job_id, events)
        if lost:
            log.warning("job %s: lease lost while running; playbook stopped", job_id)
            return None
        status, explanation = outcome(runner.status, reason)
        return status, explanation, await asyncio.to_thread(_read_stdout, runner)

    async def _renew(self, job_id: int) -> tuple[bool, bool]:
        """(still ours, cancel requested). A database hiccup is not a lost job: the lease has slack."""
        try:
            async with self.db.session() as session:
                return await job_queue.renew_lease(session, job_id, self.worker_id, self.lease)
        except (SQLAlchemyError, OSError) as e:
            log.warning("job %s: cannot renew lease: %s", job_id, e)
            return True, False

    async def _flush(self, job_id: int, events: queue.SimpleQueue[dict[str, Any]]) -> None:
        rows = []
        while len(rows) < MAX_EVENTS_PER_FLUSH:
            try:
                rows.append(event_row(events.get_nowait()))
            except queue.Empty:
                break
        if not rows:
            return
        text = "".join(row["stdout"] + "\n" for row in rows if row["stdout"])
        async with self.db.session() as session:
            await job_queue.append_output(session, job_id, text, rows)


def outcome(runner_status: str, reason: str) -> tuple[str, str]:
    """Our status and explanation from ansible-runner's final status."""
    if runner_status == "successful":
        return "successful", ""
    if runner_status == "failed":
        return "failed", ""
    if runner_status == "timeout":
        return "failed", EXPLAIN_TIMEOUT
    if runner_status == "canceled":
        return ("error", reason) if reason == EXPLAIN_SHUTDOWN else ("canceled", reason or EXPLAIN_CANCELED)
    return "error", f"ansible-runner ended with status {runner_status!r}."


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
