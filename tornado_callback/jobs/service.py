"""Reading and canceling jobs for the API and the CLI (running them is the executor's job).

Who may see a job: a superuser, or a user with any role on its template
(``read`` is implied by ``execute`` and ``admin``); to anyone else a job
does not exist (404). Canceling needs ``execute``, as launching does.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from tornado_callback.accounts.service import Accounts, Principal, roles_granting
from tornado_callback.errors import NotFound, ServiceError
from tornado_callback.http.values import api_datetime
from tornado_callback.jobs import queue as job_queue
from tornado_callback.jobs.launch import job_url
from tornado_callback.jobs.stats import JobTableStats, job_table_stats
from tornado_callback.store import queries
from tornado_callback.store.database import Database
from tornado_callback.store.models import (
    ACTIVE_JOB_STATUSES,
    JOB_STATUSES,
    Job,
    JobEvent,
    RoleAssignment,
)

LAUNCH_TYPES = ("callback", "manual")
EXPLAIN_CANCELED_PENDING = "Job canceled before it started, at the request of a user."


@dataclass(frozen=True)
class JobFilters:
    job_template: int | None = None
    status: str | None = None
    launch_type: str | None = None

    def validate(self) -> None:
        if self.status is not None and self.status not in JOB_STATUSES:
            raise ServiceError.detail(f"status must be one of {', '.join(JOB_STATUSES)}.")
        if self.launch_type is not None and self.launch_type not in LAUNCH_TYPES:
            raise ServiceError.detail(f"launch_type must be one of {', '.join(LAUNCH_TYPES)}.")


def job_summary(job: Job) -> dict[str, Any]:
    """A job as API.md section 2 shows it."""
    url = job_url(job.id)
    related = {"stdout": f"{url}stdout/", "cancel": f"{url}cancel/"}
    if job.job_template_id is not None:
        related["job_template"] = f"/api/v2/job_templates/{job.job_template_id}/"
    return {
        "id": job.id,
        "type": "job",
        "url": url,
        "related": related,
        "name": job.name,
        "job_template": job.job_template_id,
        "inventory": job.inventory_id,
        "status": job.status,
        "launch_type": job.launch_type,
        "limit": job.limit,
        "extra_vars": json.dumps(job.extra_vars or {}),
        "created": api_datetime(job.created),
        "modified": api_datetime(job.modified),
        "started": api_datetime(job.started),
        "finished": api_datetime(job.finished),
        "elapsed": job.elapsed,
        "failed": job.failed,
        "job_explanation": job.job_explanation,
        "resolved_by": job.resolved_by,
        # The ansible-playbook run it had (last), and how many jobs shared that run.
        "run_id": job.run_id,
        "run_job_count": job.run_job_count,
    }


def event_summary(event: JobEvent) -> dict[str, Any]:
    return {
        "counter": event.counter,
        "event": event.event,
        "host_name": event.host_name,
        "task": event.task,
        "stdout": event.stdout,
        "failed": event.failed,
        "changed": event.changed,
        "created": api_datetime(event.created),
    }


def can_cancel(job: Job) -> bool:
    return job.status in ACTIVE_JOB_STATUSES


class JobsService:
    def __init__(self, db: Database, accounts: Accounts) -> None:
        self.db = db
        self.accounts = accounts

    async def table_stats(self) -> JobTableStats:
        """Jobs by status and the pending queue's oldest job, for /metrics (no one's jobs in particular)."""
        return await self.db.read(job_table_stats)

    def _visible(self, stmt: Any, principal: Principal) -> Any:
        if principal.is_superuser:
            return stmt
        readable = select(RoleAssignment.resource_id).where(
            RoleAssignment.user_id == principal.id,
            RoleAssignment.resource_type == "job_template",
            RoleAssignment.role.in_(roles_granting("job_template", "read")),
        )
        return stmt.where(Job.job_template_id.in_(readable))

    async def page(
        self, principal: Principal, filters: JobFilters | None = None, page: int = 1, page_size: int = 50
    ) -> tuple[int, list[Job]]:
        """The jobs of the templates ``principal`` may read, newest first."""
        filters = filters or JobFilters()
        filters.validate()
        stmt = self._visible(select(Job), principal).order_by(Job.id.desc())
        if filters.job_template is not None:
            stmt = stmt.where(Job.job_template_id == filters.job_template)
        if filters.status is not None:
            stmt = stmt.where(Job.status == filters.status)
        if filters.launch_type is not None:
            stmt = stmt.where(Job.launch_type == filters.launch_type)
        async with self.db.session() as session:
            return await queries.page_of(session, stmt, page, page_size)

    async def get(self, job_id: int) -> Job:
        """A job for a trusted caller (the CLI)."""
        async with self.db.session() as session:
            job = await session.get(Job, job_id)
        if job is None:
            raise NotFound()
        return job

    async def get_for(self, principal: Principal, job_id: int, role: str = "read") -> Job:
        """The job, if the caller holds ``role`` on its template (``Accounts.require_role``)."""
        job = await self.get(job_id)
        if principal.is_superuser:
            return job
        if job.job_template_id is None:  # its template is gone, and every role on it
            raise NotFound()
        await self.accounts.require_role(principal, "job_template", job.job_template_id, role)
        return job

    async def events(self, job_id: int) -> Iterable[JobEvent]:
        async with self.db.session() as session:
            return list(await session.scalars(
                select(JobEvent).where(JobEvent.job_id == job_id).order_by(JobEvent.counter)
            ))

    async def cancel(self, principal: Principal | None, job_id: int) -> None:
        """Cancel a pending job now, or ask its worker to stop the playbook.

        ``principal`` None is a trusted caller (the CLI). A job that already
        ended answers 405, as AWX does.
        """
        if principal is None:
            await self.get(job_id)
        else:
            await self.get_for(principal, job_id, "execute")
        async with self.db.session() as session:
            if not await job_queue.request_cancel(session, job_id, EXPLAIN_CANCELED_PENDING):
                raise ServiceError.detail("This job has already finished and cannot be canceled.", status=405)
