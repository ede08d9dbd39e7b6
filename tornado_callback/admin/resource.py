"""What a resource of the admin API is: its model, fields, lists, links and who may do what.

Each resource is declared once (``catalog.py``); the generic service, the
route table and the OpenAPI document all read the same declaration.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from tornado_callback.accounts.secrets import SecretsBox
from tornado_callback.accounts.service import Accounts, Principal, roles_granting
from tornado_callback.admin.fields import Field, ForeignKey
from tornado_callback.inventory.index import HostIndexWriter
from tornado_callback.store.models import Base, RoleAssignment

API = "/api/v2"


async def holds_role(
    session: AsyncSession, principal: Principal, resource_type: str, resource_id: int | None, role: str
) -> bool:
    # In the admin request's own transaction, not through Accounts.has_role's
    # one-second cache: a change is allowed or refused on what is committed now.
    if principal.is_superuser:
        return True
    if resource_id is None:
        return False
    found = await session.scalar(select(RoleAssignment.id).where(
        RoleAssignment.user_id == principal.id,
        RoleAssignment.resource_type == resource_type,
        RoleAssignment.resource_id == resource_id,
        RoleAssignment.role.in_(roles_granting(resource_type, role)),
    ).limit(1))
    return found is not None


class Access(Protocol):
    """Who may list, see, change and create objects of one resource."""

    def lists(self, principal: Principal) -> bool:
        """Whether the caller may list the collection at all (403 otherwise)."""

    def visible(self, stmt: Select[Any], principal: Principal) -> Select[Any]:
        """``stmt`` narrowed to the objects the caller can see."""

    async def allowed(self, session: AsyncSession, principal: Principal, obj: Any, action: str) -> bool:
        """``action`` is ``read``, ``change`` or a role name (``use``, ``execute``...)."""

    async def may_create(self, session: AsyncSession, principal: Principal, values: Mapping[str, Any]) -> bool:
        """Whether the caller may create an object with these (parsed) attribute values."""


@dataclass(frozen=True)
class SuperuserOnly:
    def lists(self, principal: Principal) -> bool:
        return principal.is_superuser

    def visible(self, stmt: Select[Any], principal: Principal) -> Select[Any]:
        return stmt

    async def allowed(self, session: AsyncSession, principal: Principal, obj: Any, action: str) -> bool:
        return principal.is_superuser

    async def may_create(self, session: AsyncSession, principal: Principal, values: Mapping[str, Any]) -> bool:
        return principal.is_superuser


class SeenInPart:
    """Everyone may list; superusers see every object, others those ``narrowed`` leaves them."""

    def lists(self, principal: Principal) -> bool:
        return True

    def visible(self, stmt: Select[Any], principal: Principal) -> Select[Any]:
        if principal.is_superuser:
            return stmt
        return self.narrowed(stmt, stmt.column_descriptions[0]["entity"], principal)

    def narrowed(self, stmt: Select[Any], model: Any, principal: Principal) -> Select[Any]:
        raise NotImplementedError


@dataclass(frozen=True)
class RoleScoped(SeenInPart):
    """Access by the roles held on an owning object: the object itself (``owner=id``)
    or its inventory (``owner=inventory_id``). ``read_role`` lets only admins see
    sensitive records (the callback audit trail)."""

    resource_type: str
    owner: str
    read_role: str = "read"
    change_role: str = "admin"

    def narrowed(self, stmt: Select[Any], model: Any, principal: Principal) -> Select[Any]:
        held = select(RoleAssignment.resource_id).where(
            RoleAssignment.user_id == principal.id,
            RoleAssignment.resource_type == self.resource_type,
            RoleAssignment.role.in_(roles_granting(self.resource_type, self.read_role)),
        )
        return stmt.where(getattr(model, self.owner).in_(held))

    def role_for(self, action: str) -> str:
        return {"read": self.read_role, "change": self.change_role}.get(action, action)

    async def allowed(self, session: AsyncSession, principal: Principal, obj: Any, action: str) -> bool:
        return await holds_role(
            session, principal, self.resource_type, getattr(obj, self.owner), self.role_for(action)
        )

    async def may_create(self, session: AsyncSession, principal: Principal, values: Mapping[str, Any]) -> bool:
        if self.owner == "id":  # a new top-level object: nobody holds a role on it yet
            return principal.is_superuser
        return await holds_role(
            session, principal, self.resource_type, values.get(self.owner), self.change_role
        )


@dataclass(frozen=True)
class OwnedByUser(SeenInPart):
    """Objects that belong to one user (tokens): theirs alone, and superusers'."""

    def narrowed(self, stmt: Select[Any], model: Any, principal: Principal) -> Select[Any]:
        return stmt.where(model.user_id == principal.id)

    async def allowed(self, session: AsyncSession, principal: Principal, obj: Any, action: str) -> bool:
        return principal.is_superuser or obj.user_id == principal.id

    async def may_create(self, session: AsyncSession, principal: Principal, values: Mapping[str, Any]) -> bool:
        return True


@dataclass
class WriteContext:
    """What a hook sees while an object is written (one transaction)."""

    session: AsyncSession
    principal: Principal
    creating: bool
    changes: dict[str, Any]
    # What the hooks work with: passwords and the login cache, the host index, sealed secrets.
    accounts: Accounts
    index_writer: HostIndexWriter
    secrets: SecretsBox
    # Extra fields for this one response (a token's text, shown once).
    shown_once: dict[str, Any] = field(default_factory=dict)


class Hooks:
    """Per-resource steps around the generic write; the defaults do nothing."""

    async def before_flush(self, ctx: WriteContext, obj: Any) -> None:
        """Set attributes the generic code cannot (hashes, sealed secrets)."""

    async def after_flush(self, ctx: WriteContext, obj: Any) -> None:
        """Keep derived rows in step (a host's index keys) in the same transaction."""


Check = Callable[[Mapping[str, Any]], dict[str, list[str]]]


@dataclass(frozen=True)
class Resource:
    name: str  # the URL segment, e.g. "job_templates"
    type: str  # the object's "type", e.g. "job_template"
    model: type[Base]
    fields: tuple[Field, ...]
    access: Access
    description: str = ""
    search_fields: tuple[str, ...] = ("name", "description")
    filter_fields: tuple[str, ...] = ("name",)
    # Field-name tuples that must be unique together (checked before the insert for a clear 400).
    unique: tuple[tuple[str, ...], ...] = ()
    # (name, path below the object's url) of sub-resources in "related".
    related: tuple[tuple[str, str], ...] = ()
    checks: tuple[Check, ...] = ()
    hooks: Hooks = field(default_factory=Hooks)
    writable: bool = True
    has_detail: bool = True
    newest_first: bool = False

    def url(self, obj_id: int) -> str:
        return f"{API}/{self.name}/{obj_id}/"

    @property
    def list_url(self) -> str:
        return f"{API}/{self.name}/"

    def field(self, name: str) -> Field:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(name)

    @property
    def writable_fields(self) -> tuple[Field, ...]:
        return tuple(f for f in self.fields if not f.read_only)

    @property
    def foreign_keys(self) -> tuple[ForeignKey, ...]:
        return tuple(f for f in self.fields if isinstance(f, ForeignKey))

    @property
    def order_fields(self) -> tuple[str, ...]:
        stamps = tuple(n for n in ("created", "modified") if hasattr(self.model, n))
        return ("id", *stamps, *self.filter_fields)


@dataclass(frozen=True)
class SubList:
    """``/{parent}/{id}/{segment}/``: the children whose ``link`` field names the parent.
    POST creates a child with the link filled in, as AWX does."""

    parent: str
    segment: str
    child: str
    link: str
    # What the caller needs on the parent to list (the audit trail: admin).
    parent_action: str = "read"


@dataclass(frozen=True)
class Membership:
    """``/{parent}/{id}/{segment}/``: an association (group hosts, group children).
    GET lists members; POST ``{"id": N}`` associates, ``{"id": N, "disassociate": true}`` removes."""

    parent: str
    segment: str
    child: str
    table: type[Base]
    parent_column: str
    child_column: str
