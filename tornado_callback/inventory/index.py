"""The host index (``host_keys``), which matching reads instead of the hosts: written here only.

Whoever saves hosts writes their keys with ``HostIndexWriter.write``, in the
transaction that saves them: the admin service (``/api/v2/hosts/``, an
inventory's ``hosts/``, and ``host add`` and ``serve --demo``, which call it),
a sync, the rebuild at start. Writing a host's keys wipes those that take DNS
(``forward_dns``); once that transaction commits, the refresher is told to
resolve these hosts again, so that no path can forget to. The refresher itself
writes only the kinds it resolves (``replace_refreshed_keys``), which asks for
no further refresh.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from typing import Any, Protocol, TypeVar

from sqlalchemy import delete, event, insert, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from tornado_callback.plugin.chain import ResolverChain
from tornado_callback.plugin.resolver import IndexKey
from tornado_callback.store.models import Host, HostKey

# SQLite allows 32,766 bound parameters per statement; stay well below.
CHUNK = 5000
T = TypeVar("T")
# session.info key: hosts whose keys the session wrote, to refresh once it commits.
_KEYS_WRITTEN = "tornado_callback.host_keys_written"
_keys = HostKey.__table__


def chunks(items: Sequence[T]) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), CHUNK):
        yield items[start:start + CHUNK]


class SavedHost(Protocol):
    """What a host's keys are computed from: a ``Host`` row, or a row a sync wrote."""

    @property
    def id(self) -> int: ...

    @property
    def inventory_id(self) -> int: ...

    @property
    def name(self) -> str: ...

    @property
    def variables(self) -> Mapping[str, Any] | None: ...


class HostIndexWriter:
    """``on_committed`` is told the ids of hosts whose keys were written, once their transaction commits."""

    def __init__(self, chain: ResolverChain, on_committed: Callable[[Collection[int]], None]) -> None:
        self.chain = chain
        self.on_committed = on_committed

    async def write(self, session: AsyncSession, hosts: Sequence[SavedHost]) -> None:
        """Replace these hosts' keys in the session's transaction (the caller commits): one
        statement per few thousand hosts, so that a sync of 10,000 hosts takes seconds."""
        host_ids = [host.id for host in hosts]
        # New hosts have no keys yet; deleting by their ids too is cheaper than telling them apart.
        for chunk in chunks(host_ids):
            await session.execute(delete(_keys).where(_keys.c.host_id.in_(chunk)))
        rows = [
            {"inventory_id": host.inventory_id, "host_id": host.id, "kind": kind, "value": value}
            for host in hosts
            for kind, value in sorted(self.chain.index_keys(host.name, host.variables or {}))
        ]
        for chunk in chunks(rows):
            await session.execute(insert(_keys), list(chunk))
        written = session.info.get(_KEYS_WRITTEN)
        if written is None:
            written = session.info[_KEYS_WRITTEN] = set()
            event.listen(session.sync_session, "after_commit", self._committed, once=True)
        written.update(host_ids)

    def _committed(self, session: Session) -> None:
        # The refresher reads committed hosts: told any earlier, it could miss this save.
        self.on_committed(session.info.pop(_KEYS_WRITTEN))


async def replace_refreshed_keys(
    session: AsyncSession, host_id: int, kinds: Iterable[str], keys: Iterable[IndexKey]
) -> bool:
    """The refresher's write: a host's keys of ``kinds`` only; False when the host no longer exists."""
    inventory_id = await session.scalar(select(Host.inventory_id).where(Host.id == host_id))
    if inventory_id is None:
        return False
    kinds = sorted(set(kinds))
    await session.execute(delete(_keys).where(_keys.c.host_id == host_id, _keys.c.kind.in_(kinds)))
    rows = [
        {"inventory_id": inventory_id, "host_id": host_id, "kind": kind, "value": value}
        for kind, value in sorted(set(keys))
        if kind in kinds
    ]
    if rows:
        await session.execute(insert(_keys), rows)
    return True
