"""Reading the callback audit trail (attempts are written where the callback is answered)."""

from __future__ import annotations

from tornado_callback.store import queries
from tornado_callback.store.database import Database
from tornado_callback.store.models import CallbackAttempt


class CallbackAttempts:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def page(
        self, template_id: int | None = None, page: int = 1, page_size: int = 50
    ) -> tuple[int, list[CallbackAttempt]]:
        """The attempts on one template (or on all), newest first."""
        async with self.db.session() as session:
            return await queries.page_of(session, queries.attempts_query(template_id), page, page_size)
