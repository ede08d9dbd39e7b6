"""Inventories and hosts, and the host lookup index that matching reads.

Every host saved has its index keys written by ``HostIndexWriter`` (``index.py``)
in the same transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tornado_callback.http.values import parse_id
from tornado_callback.inventory.index import HostIndexWriter
from tornado_callback.inventory.index_refresh import IndexRefresher
from tornado_callback.plugin.chain import ResolverChain
from tornado_callback.plugin.resolver import HostRef, IndexEntry
from tornado_callback.store import queries
from tornado_callback.store.database import Database
from tornado_callback.store.models import Host, Inventory

REINDEX_BATCH = 1000


class InventoryError(ValueError):
    """An inventory or host request that cannot be carried out (the message says why)."""


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

    async def create(self, name: str, description: str = "") -> Inventory:
        async with self.db.session() as session:
            if await session.scalar(select(Inventory.id).where(Inventory.name == name)):
                raise InventoryError(f"inventory {name!r} already exists")
            inventory = Inventory(name=name, description=description)
            session.add(inventory)
            await session.commit()
            return inventory

    async def get_by_name_or_id(self, ref: str) -> Inventory:
        async with self.db.session() as session:
            inventory = await _by_name_or_id(session, ref)
        if inventory is None:
            raise InventoryError(f"no inventory {ref!r}")
        return inventory

    async def save_host(
        self,
        inventory_id: int,
        name: str,
        variables: Mapping[str, Any] | None = None,
        *,
        enabled: bool = True,
        description: str = "",
    ) -> Host:
        """Create or update host ``name`` of an inventory, and its index keys, in one transaction."""
        if not name or name != name.strip():
            raise InventoryError("a host name must be non-empty, without surrounding spaces")
        async with self.db.session() as session:
            host = await session.scalar(
                select(Host).where(Host.inventory_id == inventory_id, Host.name == name)
            )
            if host is None:
                host = Host(inventory_id=inventory_id, name=name)
                session.add(host)
            host.variables = dict(variables or {})
            host.enabled = enabled
            host.description = description
            await session.flush()
            await self.index_writer.write(session, [host])
            await session.commit()
        return host

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


async def _by_name_or_id(session: AsyncSession, ref: str) -> Inventory | None:
    if (inventory_id := parse_id(ref)) is not None:
        found = await session.get(Inventory, inventory_id)
        if found is not None:
            return found
    return await session.scalar(select(Inventory).where(Inventory.name == ref))
