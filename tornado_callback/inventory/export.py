"""An inventory from the store, in the shape ansible's ``yaml`` inventory plugin reads.

Groups are listed flat under ``all.children``; a child group appears in its
parent's ``children`` as an empty entry, and the plugin merges the two, so
nesting of any depth is one pass with no recursion. Disabled hosts are left
out, as AWX does.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tornado_callback.store.models import Group, GroupChild, GroupHost, Host, Inventory


async def inventory_document(session: AsyncSession, inventory_id: int) -> dict[str, Any]:
    inventory = await session.get(Inventory, inventory_id)
    if inventory is None:
        raise LookupError(f"inventory {inventory_id} no longer exists")
    hosts = {
        h.id: h for h in await session.scalars(
            select(Host).where(Host.inventory_id == inventory_id, Host.enabled.is_(True))
        )
    }
    groups = {
        g.id: g for g in await session.scalars(select(Group).where(Group.inventory_id == inventory_id))
    }
    members: dict[int, dict[str, None]] = defaultdict(dict)
    for group_id, host_id in await session.execute(
        select(GroupHost.group_id, GroupHost.host_id).where(GroupHost.group_id.in_(list(groups)))
    ):
        if host_id in hosts:
            members[group_id][hosts[host_id].name] = None
    children: dict[int, dict[str, dict[str, Any]]] = defaultdict(dict)
    for parent_id, child_id in await session.execute(
        select(GroupChild.parent_id, GroupChild.child_id).where(GroupChild.parent_id.in_(list(groups)))
    ):
        if child_id in groups:
            children[parent_id][groups[child_id].name] = {}
    return {
        "all": {
            "vars": dict(inventory.variables or {}),
            "hosts": {h.name: dict(h.variables or {}) for h in hosts.values()},
            "children": {
                g.name: {
                    "vars": dict(g.variables or {}),
                    "hosts": members[g.id],
                    "children": children[g.id],
                }
                for g in groups.values()
            },
        }
    }
