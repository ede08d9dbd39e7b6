"""Reading the callback audit trail and the job list (writing happens where things happen)."""

from __future__ import annotations

from sqlalchemy import select

from tornado_callback.store import queries
from tornado_callback.store.database import Database
from tornado_callback.store.models import CallbackAttempt, Job


class Records:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def attempts(
        self, template_id: int | None = None, page: int = 1, page_size: int = 50
    ) -> tuple[int, list[CallbackAttempt]]:
        async with self.db.session() as session:
            return await queries.page_of(session, queries.attempts_query(template_id), page, page_size)

    async def jobs(self, page: int = 1, page_size: int = 50) -> tuple[int, list[Job]]:
        async with self.db.session() as session:
            return await queries.page_of(session, select(Job).order_by(Job.id.desc()), page, page_size)
