"""Writing a synced inventory into the store: set-based, in the caller's transaction.

Every step is one statement or one executemany over all rows (chunked where a
backend caps bound parameters), never a round trip per host, so that 10,000
hosts take seconds. The host lookup index (``host_keys``) is rewritten for
exactly the hosts created or changed, in the same transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import bindparam, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tornado_callback.ansible_inventory import InventoryData
from tornado_callback.resolution import IndexKey
from tornado_callback.store.models import Group, GroupChild, GroupHost, Host, HostKey, Inventory, utcnow

# SQLite allows 32,766 bound parameters per statement; stay well below.
CHUNK = 5000
T = TypeVar("T")

IndexKeys = Callable[[str, Mapping[str, Any]], Iterable[IndexKey]]


@dataclass(frozen=True)
class SyncOptions:
    source_id: int
    overwrite: bool
    overwrite_vars: bool


@dataclass(frozen=True)
class ApplyCounts:
    hosts_added: int
    hosts_updated: int
    hosts_removed: int
    groups: int


def _chunks(items: Sequence[T]) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), CHUNK):
        yield items[start:start + CHUNK]


def _new_variables(old: Mapping[str, Any], given: Mapping[str, Any], replace: bool) -> dict[str, Any]:
    return dict(given) if replace else {**old, **given}


async def apply_inventory(
    session: AsyncSession,
    inventory_id: int,
    data: InventoryData,
    options: SyncOptions,
    index_keys: IndexKeys,
) -> ApplyCounts:
    """Upsert ``data`` into inventory ``inventory_id``; the caller commits."""
    host_ids, counts = await _apply_hosts(session, inventory_id, data, options, index_keys)
    group_ids = await _apply_groups(session, inventory_id, data, options)
    await _apply_memberships(
        session, inventory_id, options,
        GroupHost.__table__, "group_id", "host_id",
        {(group_ids[g], host_ids[h]) for g, group in data.groups.items() for h in group.hosts},
    )
    await _apply_memberships(
        session, inventory_id, options,
        GroupChild.__table__, "parent_id", "child_id",
        {(group_ids[g], group_ids[c]) for g, group in data.groups.items()
         for c in group.children if c in group_ids},
    )
    inventory = await session.get(Inventory, inventory_id)
    assert inventory is not None
    variables = _new_variables(inventory.variables or {}, data.variables, options.overwrite_vars)
    if variables != inventory.variables:
        inventory.variables = variables
    return ApplyCounts(*counts, groups=len(group_ids))


async def _apply_hosts(
    session: AsyncSession,
    inventory_id: int,
    data: InventoryData,
    options: SyncOptions,
    index_keys: IndexKeys,
) -> tuple[dict[str, int], tuple[int, int, int]]:
    hosts = Host.__table__
    now = utcnow()
    existing = {
        row.name: row for row in await session.execute(
            select(hosts.c.id, hosts.c.name, hosts.c.variables, hosts.c.inventory_source_id)
            .where(hosts.c.inventory_id == inventory_id)
        )
    }
    new_rows: list[dict[str, Any]] = []
    changed: list[dict[str, Any]] = []
    for name, given in data.hosts.items():
        row = existing.get(name)
        if row is None:
            new_rows.append({
                "inventory_id": inventory_id, "name": name, "description": "", "enabled": True,
                "variables": dict(given), "inventory_source_id": options.source_id,
                "created": now, "modified": now,
            })
            continue
        variables = _new_variables(row.variables or {}, given, options.overwrite_vars)
        if variables != row.variables or row.inventory_source_id != options.source_id:
            changed.append({"b_id": row.id, "b_name": name, "b_variables": variables})

    ids = {name: row.id for name, row in existing.items()}
    for chunk in _chunks(new_rows):
        inserted = await session.execute(
            insert(hosts).returning(hosts.c.id, hosts.c.name), list(chunk)
        )
        ids.update({row.name: row.id for row in inserted})
    if changed:
        await session.execute(
            update(hosts)
            .where(hosts.c.id == bindparam("b_id"))
            .values(variables=bindparam("b_variables"), inventory_source_id=options.source_id,
                    modified=now),
            changed,
        )

    removed = [
        row.id for name, row in existing.items()
        if options.overwrite and name not in data.hosts and row.inventory_source_id == options.source_id
    ]
    for chunk in _chunks(removed):
        await session.execute(delete(hosts).where(hosts.c.id.in_(chunk)))

    # The lookup index follows every host created or changed, in this transaction.
    reindexed = [(ids[r["name"]], r["name"], r["variables"]) for r in new_rows]
    reindexed += [(r["b_id"], r["b_name"], r["b_variables"]) for r in changed]
    await _replace_keys(session, inventory_id, reindexed, [r["b_id"] for r in changed], index_keys)
    updated = sum(1 for r in changed if r["b_variables"] != existing[r["b_name"]].variables)
    return ids, (len(new_rows), updated, len(removed))


async def _replace_keys(
    session: AsyncSession,
    inventory_id: int,
    reindexed: list[tuple[int, str, dict[str, Any]]],
    stale_host_ids: list[int],
    index_keys: IndexKeys,
) -> None:
    keys = HostKey.__table__
    for chunk in _chunks(stale_host_ids):
        await session.execute(delete(keys).where(keys.c.host_id.in_(chunk)))
    rows = [
        {"inventory_id": inventory_id, "host_id": host_id, "kind": kind, "value": value}
        for host_id, name, variables in reindexed
        for kind, value in sorted(set(index_keys(name, variables)))
    ]
    for chunk in _chunks(rows):
        await session.execute(insert(keys), list(chunk))


async def _apply_groups(
    session: AsyncSession, inventory_id: int, data: InventoryData, options: SyncOptions
) -> dict[str, int]:
    groups = Group.__table__
    now = utcnow()
    existing = {
        row.name: row for row in await session.execute(
            select(groups.c.id, groups.c.name, groups.c.variables, groups.c.inventory_source_id)
            .where(groups.c.inventory_id == inventory_id)
        )
    }
    new_rows = [
        {"inventory_id": inventory_id, "name": name, "description": "",
         "variables": dict(group.variables), "inventory_source_id": options.source_id,
         "created": now, "modified": now}
        for name, group in data.groups.items() if name not in existing
    ]
    changed = []
    for name, group in data.groups.items():
        row = existing.get(name)
        if row is None:
            continue
        variables = _new_variables(row.variables or {}, group.variables, options.overwrite_vars)
        if variables != row.variables or row.inventory_source_id != options.source_id:
            changed.append({"b_id": row.id, "b_variables": variables})

    ids = {name: row.id for name, row in existing.items()}
    for chunk in _chunks(new_rows):
        inserted = await session.execute(
            insert(groups).returning(groups.c.id, groups.c.name), list(chunk)
        )
        ids.update({row.name: row.id for row in inserted})
    if changed:
        await session.execute(
            update(groups)
            .where(groups.c.id == bindparam("b_id"))
            .values(variables=bindparam("b_variables"), inventory_source_id=options.source_id,
                    modified=now),
            changed,
        )
    removed = [
        row.id for name, row in existing.items()
        if options.overwrite and name not in data.groups and row.inventory_source_id == options.source_id
    ]
    for chunk in _chunks(removed):
        await session.execute(delete(groups).where(groups.c.id.in_(chunk)))
    return {name: group_id for name, group_id in ids.items() if name in data.groups}


async def _apply_memberships(
    session: AsyncSession,
    inventory_id: int,
    options: SyncOptions,
    table: Any,
    left: str,
    right: str,
    wanted: set[tuple[int, int]],
) -> None:
    """Add the pairs the source lists; with overwrite, drop pairs of its groups it no longer lists."""
    groups = Group.__table__
    rows = await session.execute(
        select(table.c[left], table.c[right], groups.c.inventory_source_id)
        .join(groups, groups.c.id == table.c[left])
        .where(groups.c.inventory_id == inventory_id)
    )
    present: set[tuple[int, int]] = set()
    stale: list[dict[str, int]] = []
    for a, b, source_id in rows:
        present.add((a, b))
        if options.overwrite and source_id == options.source_id and (a, b) not in wanted:
            stale.append({"b_left": a, "b_right": b})
    if stale:
        await session.execute(
            delete(table).where(table.c[left] == bindparam("b_left"),
                                table.c[right] == bindparam("b_right")),
            stale,
        )
    missing = [{left: a, right: b} for a, b in sorted(wanted - present)]
    for chunk in _chunks(missing):
        await session.execute(insert(table), list(chunk))
