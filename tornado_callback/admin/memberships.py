"""AWX-style association: POST ``{"id": N}`` links, ``{"id": N, "disassociate": true}`` unlinks.

Both ends must be in the same inventory, and group nesting must stay a tree
without cycles (Ansible would loop over it forever).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from tornado_callback.accounts.service import Principal
from tornado_callback.admin.fields import ValidationError
from tornado_callback.admin.resource import Membership
from tornado_callback.admin.service import AdminService
from tornado_callback.errors import ServiceError
from tornado_callback.http.values import INT_MAX
from tornado_callback.store.models import GroupChild

ASSOCIATION_KEYS = frozenset({"id", "disassociate"})


def parse_association(body: Any) -> tuple[int, bool]:
    if not isinstance(body, dict):
        raise ServiceError.detail("The body must be a JSON object.")
    unknown = sorted(set(body) - ASSOCIATION_KEYS)
    if unknown:
        raise ValidationError({key: ["Unknown field."] for key in unknown})
    member_id = body.get("id")
    if isinstance(member_id, bool) or not isinstance(member_id, int) or not 0 < member_id <= INT_MAX:
        raise ValidationError.one("id", "A valid integer id is required.")
    disassociate = body.get("disassociate", False)
    if not isinstance(disassociate, bool):
        raise ValidationError.one("disassociate", "Must be a valid boolean.")
    return member_id, disassociate


async def descendants(session: AsyncSession, group_id: int) -> set[int]:
    """Every group below ``group_id`` (one query per level)."""
    found: set[int] = set()
    level = {group_id}
    while level:
        level = set(await session.scalars(
            select(GroupChild.child_id).where(GroupChild.parent_id.in_(level))
        )) - found
        found |= level
    return found


async def change_membership(
    admin: AdminService, spec: Membership, principal: Principal, parent_id: int, body: Any
) -> None:
    member_id, disassociate = parse_association(body)
    parent_resource = admin.resource(spec.parent)
    child_resource = admin.resource(spec.child)
    async with admin.db.session() as session:
        parent = await admin.visible_object(session, parent_resource, principal, parent_id, "change")
        member = await session.get(child_resource.model, member_id)
        if member is None or not await child_resource.access.allowed(session, principal, member, "read"):
            raise ValidationError.one("id", f'Invalid pk "{member_id}" - object does not exist.')
        link = {spec.parent_column: parent_id, spec.child_column: member_id}
        table = spec.table
        if disassociate:
            await session.execute(delete(table).where(
                *(getattr(table, column) == value for column, value in link.items())
            ))
            await session.commit()
            return
        if member.inventory_id != parent.inventory_id:
            raise ValidationError.one("id", "Hosts and groups must be in the same inventory.")
        if table is GroupChild:
            group, child = link["parent_id"], link["child_id"]
            if group == child or group in await descendants(session, child):
                raise ValidationError.one("id", "Cyclical group association.")
        exists = await session.scalar(select(getattr(table, spec.child_column)).where(
            *(getattr(table, column) == value for column, value in link.items())
        ))
        if exists is None:
            session.add(table(**link))
            await session.commit()
