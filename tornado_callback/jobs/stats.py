"""The job table at a glance, for /metrics: jobs by status and the pending queue's oldest job.

Read from the database at each scrape, not counted in memory: jobs are queued,
claimed and finished by every process and node on the database, and the table
is the one place that knows them all.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import Connection, func, select

from tornado_callback.store.models import JOB_STATUSES, Job, utcnow


@dataclass(frozen=True)
class JobTableStats:
    # Every status, those with no job at 0: a series that vanishes would read as "no data".
    jobs_by_status: dict[str, int]
    oldest_pending_seconds: float | None


def job_table_stats(db: Connection) -> JobTableStats:
    counts = dict.fromkeys(JOB_STATUSES, 0)
    for status, count in db.execute(select(Job.status, func.count()).group_by(Job.status)):
        counts[status] = count
    oldest: dt.datetime | None = db.execute(
        select(func.min(Job.created)).where(Job.status == "pending")).scalar_one()
    if oldest is None:
        return JobTableStats(counts, None)
    return JobTableStats(counts, max(0.0, (utcnow() - oldest).total_seconds()))
