"""Rows the callback reads on every request, kept for a moment.

Every callback POST reads its template, and every admin GET its template and
its caller's token: the same few rows, thousands of times a second under a
boot storm. ``ReadCache`` keeps such a row for ``READ_CACHE_SECONDS`` and
forgets it at once when this process commits a write to one of its tables.
Another process's change (the CLI, another server on the same database) is
therefore seen within that second, like a rotated host_config_key or a
revoked token. Only found rows are kept: a miss always asks the database.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Iterable
from typing import Generic, TypeVar

from cachetools import TTLCache

from tornado_callback.store.database import Database

READ_CACHE_SECONDS = 1.0
READ_CACHE_SIZE = 10_000

V = TypeVar("V")


class ReadCache(Generic[V]):
    def __init__(self, db: Database, tables: Iterable[str], seconds: float = READ_CACHE_SECONDS) -> None:
        self.tables = frozenset(tables)
        self._values: TTLCache[Hashable, V] = TTLCache(READ_CACHE_SIZE, seconds)
        # One read per key at a time: a burst of callbacks to one template asks once.
        self._loading: dict[Hashable, asyncio.Future[V | None]] = {}
        self._generation = 0
        db.committed_listeners.append(self._tables_committed)

    async def get(self, key: Hashable, load: Callable[[], Awaitable[V | None]]) -> V | None:
        """The value under ``key``, from the cache or else from ``load()`` (None: not found)."""
        try:
            return self._values[key]
        except KeyError:
            pass
        pending = self._loading.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[V | None] = asyncio.get_running_loop().create_future()
        self._loading[key] = future
        generation = self._generation
        try:
            value = await load()
        except BaseException as e:
            if isinstance(e, asyncio.CancelledError):
                future.cancel()
            else:
                future.set_exception(e)
                future.exception()  # retrieved here, so an unawaited failure is not reported twice
            raise
        finally:
            del self._loading[key]
        # A write committed while loading may not be in what was read: serve it, don't keep it.
        if value is not None and generation == self._generation:
            self._values[key] = value
        future.set_result(value)
        return value

    def clear(self) -> None:
        self._generation += 1
        self._values.clear()

    def _tables_committed(self, tables: frozenset[str]) -> None:
        if tables & self.tables:
            self.clear()
