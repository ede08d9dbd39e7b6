"""Writing a synced inventory into the store: set-based, in the caller's transaction.

Every step is one statement or one executemany over all rows (chunked where a
backend caps bound parameters), never a round trip per host, so that 10,000
hosts take seconds. The host lookup index is rewritten (by ``HostIndexWriter``,
its one writer) for exactly the hosts created or changed, in the same
transaction, and the keys that take DNS are refreshed for them once it commits.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from sqlalchemy import bindparam, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tornado_callback.inventory.ansible_inventory import InventoryData
from tornado_callback.inventory.index import HostIndexWriter, chunks
from tornado_callback.store.models import Group, GroupChild, GroupHost, Host, Inventory, utcnow


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


def _new_variables(old: Mapping[str, Any], given: Mapping[str, Any], replace: bool) -> dict[str, Any]:
    return dict(given) if replace else {**old, **given}


async def apply_inventory(
    session: AsyncSession,
    inventory_id: int,
    data: InventoryData,
    options: SyncOptions,
    index_writer: HostIndexWriter,
) -> ApplyCounts:
    """Upsert ``data`` into inventory ``inventory_id``; the caller commits."""
    hosts = await _upsert_named(session, Host.__table__, inventory_id, data.hosts, options)
    # The lookup index follows every host created or changed, in this transaction.
    await index_writer.write(session, hosts.written)
    groups = await _upsert_named(
        session, Group.__table__, inventory_id,
        {name: group.variables for name, group in data.groups.items()}, options,
    )
    await _apply_memberships(
        session, inventory_id, options,
        GroupHost.__table__, "group_id", "host_id",
        {(groups.ids[g], hosts.ids[h]) for g, group in data.groups.items() for h in group.hosts},
    )
    await _apply_memberships(
        session, inventory_id, options,
        GroupChild.__table__, "parent_id", "child_id",
        {(groups.ids[g], groups.ids[c]) for g, group in data.groups.items()
         for c in group.children if c in groups.ids},
    )
    inventory = await session.get(Inventory, inventory_id)
    assert inventory is not None
    variables = _new_variables(inventory.variables or {}, data.variables, options.overwrite_vars)
    if variables != inventory.variables:
        inventory.variables = variables
    return ApplyCounts(
        hosts_added=hosts.added, hosts_updated=hosts.updated, hosts_removed=hosts.removed,
        groups=len(groups.ids),
    )


class Written(NamedTuple):
    """A row inserted or changed (for hosts, what their index keys are computed from)."""

    id: int
    inventory_id: int
    name: str
    variables: dict[str, Any]


@dataclass(frozen=True)
class Upserted:
    """What ``_upsert_named`` did: ids of every listed name, and the rows it wrote."""

    ids: dict[str, int]
    written: list[Written]
    added: int
    updated: int
    removed: int


async def _upsert_named(
    session: AsyncSession,
    table: Any,
    inventory_id: int,
    listed: Mapping[str, Mapping[str, Any]],
    options: SyncOptions,
) -> Upserted:
    """Hosts or groups (same columns that matter here): insert new names, update changed
    variables, claim them for the source; with overwrite, delete what the source listed before
    but no longer does."""
    now = utcnow()
    existing = {
        row.name: row for row in await session.execute(
            select(table.c.id, table.c.name, table.c.variables, table.c.inventory_source_id)
            .where(table.c.inventory_id == inventory_id)
        )
    }
    new_rows = [
        {"inventory_id": inventory_id, "name": name, "variables": dict(variables),
         "inventory_source_id": options.source_id, "created": now, "modified": now}
        for name, variables in listed.items() if name not in existing
    ]
    changed = []
    updated = 0
    for name, given in listed.items():
        row = existing.get(name)
        if row is None:
            continue
        variables = _new_variables(row.variables or {}, given, options.overwrite_vars)
        if variables != row.variables or row.inventory_source_id != options.source_id:
            changed.append({"b_id": row.id, "b_name": name, "b_variables": variables})
            updated += variables != row.variables

    ids = {name: row.id for name, row in existing.items()}
    for chunk in chunks(new_rows):
        inserted = await session.execute(
            insert(table).returning(table.c.id, table.c.name), list(chunk)
        )
        ids.update({row.name: row.id for row in inserted})
    if changed:
        await session.execute(
            update(table)
            .where(table.c.id == bindparam("b_id"))
            .values(variables=bindparam("b_variables"), inventory_source_id=options.source_id,
                    modified=now),
            changed,
        )
    removed = [
        row.id for name, row in existing.items()
        if options.overwrite and name not in listed and row.inventory_source_id == options.source_id
    ]
    for chunk in chunks(removed):
        await session.execute(delete(table).where(table.c.id.in_(chunk)))
    written = [Written(ids[r["name"]], inventory_id, r["name"], r["variables"]) for r in new_rows]
    written += [Written(r["b_id"], inventory_id, r["b_name"], r["b_variables"]) for r in changed]
    return Upserted(
        ids={name: ids[name] for name in listed},
        written=written, added=len(new_rows), updated=updated, removed=len(removed),
    )


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
    for chunk in chunks(missing):
        await session.execute(insert(table), list(chunk))
