"""Index keys that take I/O to compute (DNS answers), kept fresh in the background.

Resolvers with ``refreshed_kinds`` (``forward_dns``) compute those index keys
asynchronously. This task does it off the request path: soon after a host is
saved (whichever way: ``HostIndexWriter``, the one writer of host keys, tells it
once the save commits), and for every host every ``refresh_interval`` seconds.
The request path only ever reads the index. ``serve`` starts it; commands do not, and the
first full pass of the next ``serve`` covers what they saved.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection, Mapping, Sequence
from contextlib import suppress
from typing import Any

from tornado_callback.inventory.index import replace_refreshed_keys
from tornado_callback.plugin.chain import RankedResolver, ResolverChain
from tornado_callback.plugin.resolver import IndexKey
from tornado_callback.store import queries
from tornado_callback.store.database import Database

log = logging.getLogger(__name__)
BATCH = 200
# Lookups in flight at once during a pass: enough to refresh thousands of hosts
# quickly, few enough not to flood the DNS server.
CONCURRENCY = 16


class IndexRefresher:
    def __init__(self, db: Database, chain: ResolverChain) -> None:
        self.db = db
        self.resolvers: tuple[RankedResolver, ...] = tuple(
            r for r in chain.resolvers if r.resolver.refreshed_kinds
        )
        self._pending: set[int] = set()
        self._wake = asyncio.Event()
        self._limit = asyncio.Semaphore(CONCURRENCY)
        self._task: asyncio.Task[None] | None = None
        # Saves told so far, and how many of them passes have covered: ``caught_up``
        # waits for the second to reach what the first was.
        self._saves = 0
        self._covered = 0
        self._progress = asyncio.Condition()

    def hosts_saved(self, host_ids: Collection[int]) -> None:
        """Told (after the commit) of hosts whose save has just wiped their refreshed keys."""
        if self.resolvers and self._task is not None:
            self._pending.update(host_ids)
            self._saves += 1
            self._wake.set()

    async def caught_up(self) -> None:
        """Return once the hosts saved before this call have their refreshed keys (or
        their refresh failed); at once when the refresher is not running."""
        saves = self._saves
        async with self._progress:
            await self._progress.wait_for(lambda: self._task is None or self._covered >= saves)

    def start(self) -> None:
        if self.resolvers and self._task is None:
            self._task = asyncio.create_task(self._run(), name="index-refresher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task
            self._task = None
            async with self._progress:
                self._progress.notify_all()  # nothing will catch up now

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        interval = min(r.resolver.refresh_interval for r in self.resolvers)
        next_full_pass = loop.time()
        while True:
            self._wake.clear()
            covering = self._saves  # what the pending hosts cleared below stand for
            try:
                if loop.time() >= next_full_pass:
                    self._pending.clear()  # the full pass covers them
                    count = await self.refresh()
                    log.info("refreshed resolved index keys of %d host(s)", count)
                    next_full_pass = loop.time() + interval
                elif self._pending:
                    saved = sorted(self._pending)
                    self._pending.clear()
                    await self.refresh(saved)
            except Exception:  # the database may be briefly away: try again next round
                log.exception("refreshing resolved index keys failed")
            async with self._progress:
                self._covered = covering
                self._progress.notify_all()
            if self._pending:
                continue
            with suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), max(0.0, next_full_pass - loop.time()))

    async def refresh(self, host_ids: Sequence[int] | None = None) -> int:
        """Recompute the refreshed keys of these hosts (all when None); returns hosts updated."""
        updated = 0
        last_id = 0
        while True:
            async with self.db.session() as session:
                page = await queries.hosts_page(session, last_id, BATCH, host_ids)
            if not page:
                return updated
            last_id = page[-1].id
            computed = await asyncio.gather(
                *(self._keys_of(row.name, row.variables or {}) for row in page)
            )
            async with self.db.session() as session:
                for row, (kinds, keys) in zip(page, computed, strict=True):
                    if kinds and await replace_refreshed_keys(session, row.id, kinds, keys):
                        updated += 1
                await session.commit()

    async def _keys_of(
        self, name: str, variables: Mapping[str, Any]
    ) -> tuple[set[str], set[IndexKey]]:
        """The kinds to replace and their new keys; a resolver that fails keeps its current keys."""
        kinds: set[str] = set()
        keys: set[IndexKey] = set()
        for ranked in self.resolvers:
            resolver = ranked.resolver
            try:
                async with self._limit:
                    found = await asyncio.wait_for(
                        resolver.refreshed_index_keys(name, variables), ranked.timeout
                    )
            except Exception as e:
                log.warning("%s: index keys of host %s kept: %s", ranked.name, name, e or type(e).__name__)
                continue
            kinds |= resolver.refreshed_kinds
            keys.update(k for k in found if k[0] in resolver.refreshed_kinds)
        return kinds, keys
