"""The job queue is the ``jobs`` table: claiming, leases, progress and the end of a run.

Every state change is one conditional UPDATE, so two workers (threads,
processes or machines) can never both move the same job: the loser's UPDATE
matches no row.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Text, bindparam, cast, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tornado_callback.store.models import Job, JobEvent, JobTemplate, utcnow

RUNNING_STATUSES = ("waiting", "running")


@dataclass(frozen=True)
class Launch:
    """What callback jobs share when one ansible-playbook may run them together: the
    template, the inventory and every variable of the launch (survey answers included),
    as stored. Compared as text: two launches written alike are alike (one that differs
    only in the order of its keys runs apart, never wrongly together). The run reads the
    rest (playbook, credential, forks...) from the template once for all of them, as each
    job alone would."""

    job_template_id: int
    inventory_id: int
    extra_vars: str
    launch_vars: str

    def pending(self) -> Any:
        """The pending jobs of this launch, oldest first."""
        return (
            select(Job.id)
            .where(Job.status == "pending", Job.launch_type == "callback",
                   Job.job_template_id == self.job_template_id, Job.inventory_id == self.inventory_id,
                   cast(Job.extra_vars, Text) == self.extra_vars, cast(Job.launch_vars, Text) == self.launch_vars)
            .order_by(Job.id)
            .with_for_update(skip_locked=True)
        )


@dataclass(frozen=True)
class Claim:
    """Jobs a worker took for one run: the first is the oldest pending job of the queue."""

    job_ids: list[int]
    run_id: str
    # Set when the jobs may share their run with more of the same launch (coalesced runs).
    launch: Launch | None = None
    # How many jobs the run may hold at most.
    capacity: int = 1


def run_capacity(batch_size: int, forks: int | None) -> int:
    """Jobs one run may hold: the batch size, and never more than the template's forks
    run at once (a host beyond them would wait in the run rather than start in another)."""
    return max(1, min(batch_size, forks) if forks else batch_size)


async def claim_run(
    session: AsyncSession, worker_id: str, lease: dt.timedelta, run_id: str, batch_size: int
) -> Claim:
    """Take the oldest pending job for ``worker_id``'s run ``run_id``, and with it, when it is a
    callback job of a template that allows coalesced runs, the oldest other pending jobs of
    its launch, up to the run's capacity. An empty claim when nothing is pending.

    The jobs move to ``waiting`` in one conditional UPDATE. On PostgreSQL the
    rows are locked with SKIP LOCKED, so concurrent claimers take different jobs
    (never one job twice, never one batch twice) instead of queueing on the same
    rows. On SQLite the UPDATE runs under the database's single writer lock, and
    ``status = 'pending'`` is re-checked by the UPDATE itself.
    """
    first = (await session.execute(
        select(Job.id, Job.launch_type, Job.job_template_id, Job.inventory_id, cast(Job.extra_vars, Text),
               cast(Job.launch_vars, Text), JobTemplate.forks, JobTemplate.allow_coalesced_runs)
        .outerjoin(JobTemplate, JobTemplate.id == Job.job_template_id)
        .where(Job.status == "pending")
        .order_by(Job.id)
        .limit(1)
        .with_for_update(of=Job, skip_locked=True)
    )).first()
    if first is None:
        await session.commit()
        return Claim([], run_id)
    job_id, launch_type, template_id, inventory_id, extra_vars, launch_vars, forks, allowed = first
    # The template's choice now, not at the launch: an opt-out holds for the jobs already queued.
    shared = launch_type == "callback" and allowed and inventory_id is not None
    capacity = run_capacity(batch_size, forks) if shared else 1
    launch = Launch(template_id, inventory_id, extra_vars, launch_vars) if capacity > 1 else None
    # The first job is locked by this transaction, so SKIP LOCKED keeps it among its launch's.
    members = launch.pending().limit(capacity) if launch else select(Job.id).where(Job.id == job_id)
    claim = Claim(await _take(session, worker_id, lease, run_id, members), run_id, launch, capacity)
    await session.commit()
    return claim


async def claim_more(session: AsyncSession, worker_id: str, lease: dt.timedelta, claim: Claim) -> Claim:
    """Add to ``claim`` the pending jobs of its launch that came since, up to its capacity."""
    room = claim.capacity - len(claim.job_ids)
    if claim.launch is None or room <= 0:
        return claim
    more = await _take(session, worker_id, lease, claim.run_id, claim.launch.pending().limit(room))
    await session.commit()
    return Claim(claim.job_ids + more, claim.run_id, claim.launch, claim.capacity)


async def _take(
    session: AsyncSession, worker_id: str, lease: dt.timedelta, run_id: str, members: Any
) -> list[int]:
    now = utcnow()
    # Selected once, in a materialized CTE: as a subquery of the UPDATE, PostgreSQL may
    # scan it again for each row and, skipping what is locked, find others (a claim
    # of 8 took 39 jobs).
    chosen = members.cte("chosen").prefix_with("MATERIALIZED", dialect="postgresql")
    result = await session.execute(
        update(Job)
        .where(Job.id.in_(select(chosen.c.id)), Job.status == "pending")
        .values(status="waiting", worker_id=worker_id, lease_expires=now + lease, modified=now, run_id=run_id)
        .returning(Job.id)
        .execution_options(synchronize_session=False)
    )
    return sorted(result.scalars())


def _owned(job_ids: Collection[int], worker_id: str) -> Any:
    return (Job.id.in_(job_ids), Job.worker_id == worker_id, Job.status.in_(RUNNING_STATUSES))


async def mark_running(session: AsyncSession, job_ids: Collection[int], worker_id: str) -> tuple[list[int], list[int]]:
    """Start the run of ``job_ids``: (those still ours, those of them a user asked to cancel
    while they waited, which the caller ends rather than runs)."""
    now = utcnow()
    result = await session.execute(
        update(Job).where(*_owned(job_ids, worker_id))
        .values(status="running", started=now, modified=now, run_job_count=len(job_ids))
        .returning(Job.id, Job.cancel_requested)
        .execution_options(synchronize_session=False)
    )
    rows = sorted(result.all())
    await session.commit()
    return [job_id for job_id, _ in rows], [job_id for job_id, cancel in rows if cancel]


async def renew_leases(
    session: AsyncSession, job_ids: Collection[int], worker_id: str, lease: dt.timedelta
) -> tuple[set[int], set[int]]:
    """Extend the leases of a run's jobs: (those still ours, those a user asked to cancel).

    A job not ours any more was given up by the sweeper (its lease ran out).
    """
    result = await session.execute(
        update(Job).where(*_owned(job_ids, worker_id))
        .values(lease_expires=utcnow() + lease)
        .returning(Job.id, Job.cancel_requested)
        .execution_options(synchronize_session=False)
    )
    rows = result.all()
    await session.commit()
    return {job_id for job_id, _ in rows}, {job_id for job_id, cancel in rows if cancel}


async def append_output(
    session: AsyncSession, events: Sequence[dict[str, Any]], stdout: Mapping[int, str]
) -> None:
    """Add task events (rows naming their job) and each job's new text, in one transaction."""
    if events:
        await session.execute(insert(JobEvent), list(events))
    if stdout:
        jobs = Job.__table__  # Core: the ORM would take a list of rows as a bulk UPDATE by primary key
        await session.execute(
            update(jobs).where(jobs.c.id == bindparam("job"))
            .values(result_stdout=jobs.c.result_stdout + bindparam("text")),
            [{"job": job_id, "text": text} for job_id, text in stdout.items()],
        )
    await session.commit()


@dataclass(frozen=True)
class Ending:
    """How a job's part in a run ended. ``pending``: the job goes back to the queue, to
    run again, with ``explanation`` added to its output."""

    status: str
    explanation: str = ""
    # The job's whole output, replacing what the run streamed (None: keep that).
    stdout: str | None = None


async def record_endings(session: AsyncSession, worker_id: str, endings: Mapping[int, Ending]) -> list[int]:
    """Record how each job of a run ended, in one transaction; the ids that were no longer
    ours (their lease expired), for which nothing changed."""
    lost = []
    for job_id, ending in endings.items():
        values = _requeued(ending) if ending.status == "pending" else _finished(ending)
        result = await session.execute(
            update(Job).where(*_owned((job_id,), worker_id)).values(**values)
            .execution_options(synchronize_session=False)
        )
        if result.rowcount != 1:
            lost.append(job_id)
    await session.commit()
    return lost


def _finished(ending: Ending) -> dict[str, Any]:
    now = utcnow()
    values: dict[str, Any] = {
        "status": ending.status,
        "failed": ending.status != "successful",
        "finished": now,
        "modified": now,
        "job_explanation": ending.explanation,
        "lease_expires": None,
    }
    if ending.stdout is not None:
        values["result_stdout"] = ending.stdout
    return values


def _requeued(ending: Ending) -> dict[str, Any]:
    return {
        "status": "pending",
        "worker_id": "",
        "lease_expires": None,
        "started": None,
        "modified": utcnow(),
        "result_stdout": Job.result_stdout + f"\n{ending.explanation}\n",
    }


async def expire_lost_jobs(session: AsyncSession, explanation: str) -> list[int]:
    """Mark ``error`` every waiting/running job whose lease ran out; their ids."""
    now = utcnow()
    result = await session.execute(
        update(Job)
        .where(Job.status.in_(RUNNING_STATUSES), Job.lease_expires < now)
        .values(status="error", failed=True, finished=now, modified=now,
                job_explanation=explanation, lease_expires=None)
        .returning(Job.id)
        .execution_options(synchronize_session=False)
    )
    ids = list(result.scalars())
    await session.commit()
    return ids


async def request_cancel(session: AsyncSession, job_id: int, explanation: str) -> bool:
    """Cancel a job: at once if no worker has it yet, else ask its worker. False if it already ended."""
    now = utcnow()
    pending = await session.execute(
        update(Job).where(Job.id == job_id, Job.status == "pending")
        .values(status="canceled", failed=True, finished=now, modified=now,
                cancel_requested=True, job_explanation=explanation)
        .execution_options(synchronize_session=False)
    )
    if pending.rowcount == 1:
        await session.commit()
        return True
    running = await session.execute(
        update(Job).where(Job.id == job_id, Job.status.in_(RUNNING_STATUSES))
        .values(cancel_requested=True, modified=now)
        .execution_options(synchronize_session=False)
    )
    await session.commit()
    return running.rowcount == 1
