"""The job queue is the ``jobs`` table: claiming, leases, progress and the end of a run.

Every state change is one conditional UPDATE, so two workers (threads,
processes or machines) can never both move the same job: the loser's UPDATE
matches no row.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tornado_callback.store.models import Job, JobEvent, utcnow

RUNNING_STATUSES = ("waiting", "running")


async def claim_next(session: AsyncSession, worker_id: str, lease: dt.timedelta) -> int | None:
    """Move the oldest pending job to ``waiting`` for ``worker_id``; its id, or None.

    On PostgreSQL the candidate row is locked with SKIP LOCKED, so concurrent
    claimers take different jobs instead of queueing on the same one. On
    SQLite the UPDATE runs under the database's single writer lock, and
    ``status = 'pending'`` is re-checked by the UPDATE itself.
    """
    now = utcnow()
    candidate = (
        select(Job.id)
        .where(Job.status == "pending")
        .order_by(Job.id)
        .limit(1)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    stmt = (
        update(Job)
        .where(Job.id == candidate, Job.status == "pending")
        .values(status="waiting", worker_id=worker_id, lease_expires=now + lease, modified=now)
        .returning(Job.id)
        .execution_options(synchronize_session=False)
    )
    job_id = await session.scalar(stmt)
    await session.commit()
    return job_id


def _owned(job_id: int, worker_id: str) -> Any:
    return (Job.id == job_id, Job.worker_id == worker_id, Job.status.in_(RUNNING_STATUSES))


async def mark_running(session: AsyncSession, job_id: int, worker_id: str) -> bool:
    now = utcnow()
    result = await session.execute(
        update(Job).where(*_owned(job_id, worker_id))
        .values(status="running", started=now, modified=now)
        .execution_options(synchronize_session=False)
    )
    await session.commit()
    return result.rowcount == 1


async def renew_lease(
    session: AsyncSession, job_id: int, worker_id: str, lease: dt.timedelta
) -> tuple[bool, bool]:
    """Extend the lease; (still ours, cancel requested). Not ours: the sweeper gave up on us."""
    result = await session.execute(
        update(Job).where(*_owned(job_id, worker_id))
        .values(lease_expires=utcnow() + lease)
        .returning(Job.cancel_requested)
        .execution_options(synchronize_session=False)
    )
    row = result.first()
    await session.commit()
    return (row is not None, bool(row and row[0]))


async def append_output(
    session: AsyncSession, job_id: int, stdout: str, events: Sequence[dict[str, Any]]
) -> None:
    """Add a batch of task events and their text to a job, in one transaction."""
    if events:
        await session.execute(insert(JobEvent), [{"job_id": job_id, **e} for e in events])
    if stdout:
        await session.execute(
            update(Job).where(Job.id == job_id)
            .values(result_stdout=Job.result_stdout + stdout)
            .execution_options(synchronize_session=False)
        )
    await session.commit()


async def finish(
    session: AsyncSession,
    job_id: int,
    worker_id: str,
    status: str,
    explanation: str = "",
    stdout: str | None = None,
) -> bool:
    """Record the outcome, unless the job is no longer ours (then nothing changes)."""
    now = utcnow()
    values: dict[str, Any] = {
        "status": status,
        "failed": status != "successful",
        "finished": now,
        "modified": now,
        "job_explanation": explanation,
        "lease_expires": None,
    }
    if stdout is not None:
        values["result_stdout"] = stdout
    result = await session.execute(
        update(Job).where(*_owned(job_id, worker_id)).values(**values)
        .execution_options(synchronize_session=False)
    )
    await session.commit()
    return result.rowcount == 1


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
