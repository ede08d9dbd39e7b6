"""Inventories: the host lookup index that matching reads, kept in step with the resolvers.

Inventories, hosts and sources are created and changed through the admin
service (the API and the command line alike); every host saved has its index
keys written by ``HostIndexWriter`` (``index.py``) in the same transaction.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select

from tornado_callback.inventory.index import HostIndexWriter
from tornado_callback.inventory.index_refresh import IndexRefresher
from tornado_callback.plugin.chain import ResolverChain
from tornado_callback.plugin.resolver import HostRef, IndexEntry
from tornado_callback.store import queries
from tornado_callback.store.database import Database
from tornado_callback.store.models import Host

REINDEX_BATCH = 1000


class IndexedHostLookup:
    """``HostLookup`` over one inventory: each query is one indexed select."""

    def __init__(self, db: Database, inventory_id: int) -> None:
        self.db = db
        self.inventory_id = inventory_id

    async def find(self, kind: str, values: Iterable[str]) -> list[HostRef]:
        wanted = list(dict.fromkeys(values))
        if not wanted:
            return []
        rows = await self.db.read(queries.find_hosts_by_keys, self.inventory_id, kind, wanted)
        return [HostRef(id=host_id, name=name, enabled=enabled) for host_id, name, enabled in rows]


class EveryInventoryIndex:
    """``HostIndex``: the whole index, for the resolvers' checks at start."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def entries(self, kind: str) -> list[IndexEntry]:
        return [IndexEntry(*row) for row in await self.db.read(queries.index_entries, kind)]


class Inventories:
    def __init__(self, db: Database, chain: ResolverChain) -> None:
        self.db = db
        self.chain = chain
        # The index keys that take DNS (forward_dns), in the background; ``serve`` starts it.
        self.refresher = IndexRefresher(db, chain)
        self.index_writer = HostIndexWriter(chain, self.refresher.hosts_saved)

    def lookup(self, inventory_id: int) -> IndexedHostLookup:
        return IndexedHostLookup(self.db, inventory_id)

    async def startup_warnings(self) -> list[str]:
        """The resolvers' warnings about their configuration, given the hosts indexed now."""
        return await self.chain.startup_warnings(EveryInventoryIndex(self.db))

    async def ensure_index(self, rebuild: bool) -> int:
        """Keep the index in step with the resolvers that fill it; returns hosts re-indexed.

        An empty inventory is in step with any resolvers: their fingerprint is
        recorded, so that hosts imported next (e.g. ``inventory import`` before
        the first ``serve``) are not indexed twice. Otherwise, when the
        resolvers changed, the index is rebuilt only if ``rebuild``.
        """
        fingerprint = self.chain.index_fingerprint
        async with self.db.session() as session:
            # Servers starting together on one PostgreSQL database rebuild one
            # at a time; SQLite's single writer serialises them already.
            await queries.lock_index_rebuild(session)
            if await queries.index_fingerprint(session) == fingerprint:
                return 0
            if await session.scalar(select(Host.id).limit(1)) is None:
                await queries.set_index_fingerprint(session, fingerprint)
                await session.commit()
                return 0
            if not rebuild:
                return 0
            count = 0
            last_id = 0
            while True:
                batch = list(await session.scalars(
                    select(Host).where(Host.id > last_id).order_by(Host.id).limit(REINDEX_BATCH)
                ))
                if not batch:
                    break
                await self.index_writer.write(session, batch)
                count += len(batch)
                last_id = batch[-1].id
            await queries.set_index_fingerprint(session, fingerprint)
            await session.commit()
            return count

