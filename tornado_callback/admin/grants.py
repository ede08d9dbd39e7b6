"""Roles on one template or inventory: ``/{resource}/{id}/roles/``.

GET lists who holds which role; POST ``{"user": ID or "username": NAME,
"role": ROLE}`` grants, with ``"disassociate": true`` revokes. Only the
object's admins (and superusers) may do either.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, func, select

from tornado_callback.accounts.service import ROLE_IMPLIES, Principal
from tornado_callback.admin.fields import (
    DateTime,
    Invalid,
    String,
    ValidationError,
)
from tornado_callback.admin.resource import RoleScoped
from tornado_callback.admin.service import AdminService, ListQuery, Page
from tornado_callback.errors import ServiceError
from tornado_callback.http.values import INT_MAX
from tornado_callback.store import queries
from tornado_callback.store.models import RoleAssignment, User

GRANT_KEYS = frozenset({"user", "username", "role", "disassociate"})
USERNAME = String("username", max_length=150)


def grant_schema(resource_type: str) -> dict[str, Any]:
    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["role"],
        "properties": {
            "user": {"type": "integer", "minimum": 1, "maximum": INT_MAX},
            "username": {"type": "string", "maxLength": 150},
            "role": {"type": "string", "enum": sorted(ROLE_IMPLIES[resource_type])},
            "disassociate": {"type": "boolean"},
        },
    }


ROLE_ENTRY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["id", "type", "user", "username", "role", "created"],
    "properties": {
        "id": {"type": "integer"},
        "type": {"type": "string", "enum": ["role_assignment"]},
        "user": {"type": "integer"},
        "username": {"type": "string"},
        "role": {"type": "string"},
        "created": DateTime("created").value_schema(),
    },
}


def owner_type(admin: AdminService, resource_name: str) -> str:
    access = admin.resource(resource_name).access
    assert isinstance(access, RoleScoped) and access.owner == "id"
    return access.resource_type


async def list_roles(
    admin: AdminService, resource_name: str, principal: Principal, obj_id: int, query: ListQuery
) -> Page:
    resource_type = owner_type(admin, resource_name)
    async with admin.db.session() as session:
        await admin.visible_object(session, admin.resource(resource_name), principal, obj_id, "change")
        stmt = (
            select(RoleAssignment, User.username)
            .join(User, User.id == RoleAssignment.user_id)
            .where(RoleAssignment.resource_type == resource_type, RoleAssignment.resource_id == obj_id)
            .order_by(RoleAssignment.id)
        )
        count = await session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
        rows = (await session.execute(
            stmt.limit(query.page_size).offset((query.page - 1) * query.page_size)
        )).all()
    if query.page > 1 and (query.page - 1) * query.page_size >= count:
        raise ServiceError.detail("Invalid page.", status=404)
    return Page(count, [{
        "id": assignment.id, "type": "role_assignment", "user": assignment.user_id,
        "username": username, "role": assignment.role,
        "created": DateTime("created").render(assignment.created),
    } for assignment, username in rows])


def parse_grant(resource_type: str, body: Any) -> tuple[int | None, str | None, str, bool]:
    if not isinstance(body, dict):
        raise ServiceError.detail("The body must be a JSON object.")
    errors: dict[str, list[str]] = {key: ["Unknown field."] for key in sorted(set(body) - GRANT_KEYS)}
    user_id, username = body.get("user"), body.get("username")
    if user_id is not None and (isinstance(user_id, bool) or not isinstance(user_id, int)
                                or not 0 < user_id <= INT_MAX):
        errors["user"] = ["A valid integer id is required."]
    if username is not None:
        try:
            USERNAME.parse(username)
        except Invalid as e:
            errors["username"] = [str(e)]
    if user_id is None and username is None:
        errors["user"] = ["Give a user id (user) or a user name (username)."]
    role = body.get("role")
    if role not in ROLE_IMPLIES[resource_type]:
        errors["role"] = [f'"{role}" is not a valid choice.']
    disassociate = body.get("disassociate", False)
    if not isinstance(disassociate, bool):
        errors["disassociate"] = ["Must be a valid boolean."]
    if errors:
        raise ValidationError(errors)
    return user_id, username, role, disassociate


async def change_role(
    admin: AdminService, resource_name: str, principal: Principal, obj_id: int, body: Any
) -> None:
    resource_type = owner_type(admin, resource_name)
    user_id, username, role, disassociate = parse_grant(resource_type, body)
    async with admin.db.session() as session:
        await admin.visible_object(session, admin.resource(resource_name), principal, obj_id, "change")
        user = (await session.get(User, user_id) if user_id is not None
                else await queries.user_by_name(session, username or ""))
        if user is None:
            raise ValidationError.one("user" if user_id is not None else "username", "No such user.")
        where = (RoleAssignment.user_id == user.id, RoleAssignment.resource_type == resource_type,
                 RoleAssignment.resource_id == obj_id, RoleAssignment.role == role)
        if disassociate:
            await session.execute(delete(RoleAssignment).where(*where))
        elif await session.scalar(select(RoleAssignment.id).where(*where)) is None:
            session.add(RoleAssignment(user_id=user.id, resource_type=resource_type,
                                       resource_id=obj_id, role=role))
        await session.commit()
