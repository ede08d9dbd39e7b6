"""The generic admin service: list, read, create, update, delete any declared resource.

Access rules come from the declaration: 404 for objects the caller cannot see
at all, 403 for those it can see but not change. Every write happens in one
transaction together with its hooks (a host's index keys, role clean-up).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, Select, delete, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from tornado_callback.accounts.secrets import SecretsBox
from tornado_callback.accounts.service import Accounts, Principal
from tornado_callback.admin.fields import (
    DateTime,
    Field,
    ForeignKey,
    Invalid,
    Secret,
    ValidationError,
    masked,
    storable_text,
)
from tornado_callback.admin.resource import (
    Membership,
    Resource,
    RoleScoped,
    SubList,
    WriteContext,
)
from tornado_callback.errors import (
    NotAuthenticated,
    NotFound,
    PermissionDenied,
    ServiceError,
)
from tornado_callback.http.values import parse_id
from tornado_callback.inventory.service import Inventories
from tornado_callback.store import queries
from tornado_callback.store.database import Database
from tornado_callback.store.models import RoleAssignment, User

# Names a client may send back from a GET (PUT of a fetched object); never written.
ALWAYS_READ_ONLY = frozenset({"id", "type", "url", "related", "created", "modified"})
TIMESTAMPS = (DateTime("created"), DateTime("modified"))


@dataclass(frozen=True)
class ListQuery:
    page: int = 1
    page_size: int = 25
    search: str = ""
    order_by: str = ""
    filters: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Page:
    count: int
    results: list[dict[str, Any]]


def timestamps(resource: Resource) -> tuple[DateTime, ...]:
    return tuple(f for f in TIMESTAMPS if hasattr(resource.model, f.name))


def render(resource: Resource, obj: Any, hidden: Collection[str] = ()) -> dict[str, Any]:
    """An object in AWX's shape: id, type, url, related, fields, created, modified.
    The fields named in ``hidden`` show only whether they are set."""
    related = {
        fk.name: f"/api/v2/{fk.resource}/{getattr(obj, fk.attr)}/"
        for fk in resource.foreign_keys
        if getattr(obj, fk.attr) is not None
    }
    if resource.has_detail:
        related.update({name: resource.url(obj.id) + suffix for name, suffix in resource.related})
    out: dict[str, Any] = {
        "id": obj.id,
        "type": resource.type,
        "url": resource.url(obj.id) if resource.has_detail else "",
        "related": related,
    }
    for f in resource.fields + timestamps(resource):
        if not f.write_only:
            value = getattr(obj, f.attr)
            out[f.name] = masked(value) if f.name in hidden else f.render(value)
    return out


class AdminService:
    def __init__(self, db: Database, accounts: Accounts, inventories: Inventories, secrets: SecretsBox,
                 resources: Mapping[str, Resource]) -> None:
        self.db = db
        self.accounts = accounts
        self.inventories = inventories
        self.secrets = secrets
        self.resources = resources

    def resource(self, name: str) -> Resource:
        return self.resources[name]

    # -- reading -----------------------------------------------------------

    async def visible_object(
        self, session: AsyncSession, resource: Resource, principal: Principal, obj_id: int, action: str = "read"
    ) -> Any:
        """The object, or 404 when the caller cannot see it (as if it did not exist: ids cannot
        be probed), or 403 when it may see but not ``action``."""
        obj = await session.get(resource.model, obj_id)
        if obj is None or not await resource.access.allowed(session, principal, obj, "read"):
            raise NotFound()
        if action != "read" and not await resource.access.allowed(session, principal, obj, action):
            raise PermissionDenied()
        return obj

    async def shown(self, session: AsyncSession, resource: Resource, principal: Principal, obj: Any) -> dict[str, Any]:
        """The object as this caller may read it: every answer that carries an object comes
        through here, so a field kept from some callers (``Field.shown_to``) is kept everywhere.
        Decided per object: a caller may administer one template and only read the next."""
        hidden = [
            f.name for f in resource.fields
            if f.shown_to and getattr(obj, f.attr)
            and not await resource.access.allowed(session, principal, obj, f.shown_to)
        ]
        return render(resource, obj, hidden)

    async def named(self, name: str, principal: Principal, ref: str) -> dict[str, Any]:
        """An object by id or, when no object has that id, by name: the command line's way of
        naming inventories and templates. A missing one is named in the error."""
        resource = self.resource(name)
        async with self.db.session() as session:
            obj = None
            if (obj_id := parse_id(ref)) is not None:
                obj = await session.get(resource.model, obj_id)
            if obj is None:
                obj = await session.scalar(select(resource.model).where(resource.model.name == ref).limit(1))
            if obj is None or not await resource.access.allowed(session, principal, obj, "read"):
                raise NotFound(f"no {resource.type.replace('_', ' ')} {ref!r}")
            return await self.shown(session, resource, principal, obj)

    async def me(self, principal: Principal) -> Page:
        """The caller's own user as a one-item page (AWX's /me/ is a list)."""
        async with self.db.session() as session:
            user = await session.get(User, principal.id)
            if user is None:  # deleted since the credentials were cached
                raise NotAuthenticated()
            return Page(1, [await self.shown(session, self.resource("users"), principal, user)])

    async def get(self, name: str, principal: Principal, obj_id: int) -> dict[str, Any]:
        resource = self.resource(name)
        async with self.db.session() as session:
            obj = await self.visible_object(session, resource, principal, obj_id)
            return await self.shown(session, resource, principal, obj)

    async def list(self, name: str, principal: Principal, query: ListQuery) -> Page:
        """One page of the objects the caller can see."""
        return await self._page(self.resource(name), principal, query)

    async def sub_list(self, spec: SubList, principal: Principal, parent_id: int, query: ListQuery) -> Page:
        """One page of a parent's children (``/inventories/{id}/hosts/``)."""
        child = self.resource(spec.child)
        link = getattr(child.model, child.field(spec.link).attr)
        return await self._page(child, principal, query, (spec.parent, parent_id, spec.parent_action),
                                link == parent_id)

    async def members(self, spec: Membership, principal: Principal, parent_id: int, query: ListQuery) -> Page:
        """One page of an association's members (``/groups/{id}/hosts/``)."""
        child = self.resource(spec.child)
        member_ids = select(getattr(spec.table, spec.child_column)).where(
            getattr(spec.table, spec.parent_column) == parent_id
        )
        return await self._page(child, principal, query, (spec.parent, parent_id, "read"),
                                child.model.id.in_(member_ids))

    async def _page(
        self,
        resource: Resource,
        principal: Principal,
        query: ListQuery,
        parent: tuple[str, int, str] | None = None,
        where: ColumnElement[bool] | None = None,
    ) -> Page:
        if not resource.access.lists(principal):
            raise PermissionDenied()
        async with self.db.session() as session:
            if parent is not None:
                parent_name, parent_id, action = parent
                await self.visible_object(session, self.resource(parent_name), principal, parent_id, action)
            stmt = resource.access.visible(select(resource.model), principal)
            if where is not None:
                stmt = stmt.where(where)
            stmt = self._narrowed(resource, stmt, query)
            count, rows = await queries.page_of(session, stmt, query.page, query.page_size)
            if query.page > 1 and (query.page - 1) * query.page_size >= count:
                raise ServiceError.detail("Invalid page.", status=404)
            return Page(count, [await self.shown(session, resource, principal, row) for row in rows])

    def _narrowed(self, resource: Resource, stmt: Select[Any], query: ListQuery) -> Select[Any]:
        model = resource.model
        for name, text in query.filters.items():
            if name not in resource.filter_fields:
                raise ServiceError.detail(f"Invalid filter field: {name}.")
            f = resource.field(name)
            try:
                value = f.parse_filter(storable_text(text))
            except Invalid as e:
                raise ValidationError.one(name, str(e)) from e
            column = getattr(model, f.attr)
            stmt = stmt.where(column.is_(None) if value is None else column == value)
        if query.search:
            try:
                text = storable_text(query.search)
            except Invalid as e:
                raise ValidationError.one("search", str(e)) from e
            stmt = stmt.where(or_(*(
                getattr(model, resource.field(name).attr).icontains(text, autoescape=True)
                for name in resource.search_fields
            )))
        order = []
        for term in filter(None, (t.strip() for t in query.order_by.split(","))):
            name = term.lstrip("-")
            if name not in resource.order_fields:
                raise ServiceError.detail(f"Invalid order_by field: {name}.")
            column = getattr(model, name if name in ("id", "created", "modified") else resource.field(name).attr)
            order.append(column.desc() if term.startswith("-") else column)
        if not order and resource.newest_first:
            order.append(model.id.desc())
        return stmt.order_by(*order, model.id)

    # -- writing -----------------------------------------------------------

    def parse_body(
        self, resource: Resource, body: Any, *, creating: bool, partial: bool
    ) -> dict[str, Any]:
        """Field values by attribute name; 400 with every field's problem at once."""
        if not isinstance(body, dict):
            raise ServiceError.detail("The body must be a JSON object.")
        known = {f.name: f for f in resource.fields}
        errors: dict[str, list[str]] = {}
        values: dict[str, Any] = {}
        for key, raw in body.items():
            f = known.get(key)
            if f is None:
                if key not in ALWAYS_READ_ONLY:
                    errors[key] = ["Unknown field."]
                continue
            if f.read_only:
                continue
            if raw is None and not (isinstance(f, ForeignKey) and f.nullable):
                errors[key] = ["This field may not be null."]
                continue
            try:
                values[f.attr] = f.parse(raw)
            except Invalid as e:
                errors[key] = [str(e)]
        if not partial:
            for f in resource.writable_fields:
                # A PUT need not repeat what cannot change or cannot be read back.
                if f.required and f.name not in body and (creating or not (f.create_only or f.write_only)):
                    errors.setdefault(f.name, ["This field is required."])
        if errors:
            raise ValidationError(errors)
        return values

    async def _check_links(
        self, session: AsyncSession, resource: Resource, principal: Principal, values: Mapping[str, Any]
    ) -> None:
        """A linked object must exist and be visible (400), and the caller must hold its role (403)."""
        for fk in resource.foreign_keys:
            target_id = values.get(fk.attr)
            if fk.attr not in values or target_id is None:
                continue
            target = self.resource(fk.resource)
            obj = await session.get(target.model, target_id)
            if obj is None or not await target.access.allowed(session, principal, obj, "read"):
                raise ValidationError.one(fk.name, f'Invalid pk "{target_id}" - object does not exist.')
            if not await target.access.allowed(session, principal, obj, fk.role):
                raise PermissionDenied()

    async def _check_unique(
        self, session: AsyncSession, resource: Resource, obj: Any, merged: Mapping[str, Any]
    ) -> None:
        for names in resource.unique:
            fields = [resource.field(n) for n in names]
            stmt = select(resource.model.id).where(
                *(getattr(resource.model, f.attr) == merged.get(f.attr) for f in fields)
            )
            if obj is not None:
                stmt = stmt.where(resource.model.id != obj.id)
            if await session.scalar(stmt.limit(1)) is not None:
                label = " and ".join(n.replace("_", " ").capitalize() for n in names)
                kind = resource.type.replace("_", " ").capitalize()
                raise ValidationError.one(names[-1], f"{kind} with this {label} already exists.")

    async def create(
        self, name: str, principal: Principal, body: Any, preset: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """Create from a body; ``preset`` fills fields the URL fixes (a sub-list's parent)."""
        resource = self.resource(name)
        if isinstance(body, dict) and preset:
            body = {**body, **preset}
        values = self.parse_body(resource, body, creating=True, partial=False)
        async with self.db.session() as session:
            if not await resource.access.may_create(session, principal, values):
                raise PermissionDenied()
            obj = resource.model()
            return await self._write(session, resource, principal, obj, values, creating=True)

    async def create_or_update(self, name: str, principal: Principal, body: Any) -> dict[str, Any]:
        """Update the object that has the body's values of the resource's unique fields (a host
        by inventory and name), else create one: ``host add`` and the demo, with the checks of
        a POST or of a PATCH."""
        resource = self.resource(name)
        values = self.parse_body(resource, body, creating=True, partial=False)
        key = [resource.field(n).attr for n in resource.unique[0]]
        async with self.db.session() as session:
            found = await session.scalar(select(resource.model.id).where(
                *(getattr(resource.model, attr) == values[attr] for attr in key)
            ).limit(1))
        if found is None:
            return await self.create(name, principal, body)
        return await self.update(name, principal, found, body, partial=True)

    async def create_in(
        self, spec: SubList, principal: Principal, parent_id: int, body: Any
    ) -> dict[str, Any]:
        """Create a child through its parent's sub-list: the parent must be visible (404)."""
        async with self.db.session() as session:
            await self.visible_object(session, self.resource(spec.parent), principal, parent_id)
        return await self.create(spec.child, principal, body, preset={spec.link: parent_id})

    async def update(
        self, name: str, principal: Principal, obj_id: int, body: Any, *, partial: bool
    ) -> dict[str, Any]:
        resource = self.resource(name)
        async with self.db.session() as session:
            obj = await self.visible_object(session, resource, principal, obj_id, "change")
            values = self.parse_body(resource, body, creating=False, partial=partial)
            for f in resource.writable_fields:
                if f.create_only and f.attr in values and values[f.attr] != getattr(obj, f.attr):
                    raise ValidationError.one(f.name, "This field cannot be changed once set.")
            return await self._write(session, resource, principal, obj, values, creating=False)

    async def _write(
        self,
        session: AsyncSession,
        resource: Resource,
        principal: Principal,
        obj: Any,
        values: dict[str, Any],
        *,
        creating: bool,
    ) -> dict[str, Any]:
        await self._check_links(session, resource, principal, values)
        merged = {f.attr: _current(obj, f) for f in resource.fields}
        merged.update(values)
        for check in resource.checks:
            if errors := check(merged):
                raise ValidationError(errors)
        await self._check_unique(session, resource, None if creating else obj, merged)
        ctx = WriteContext(session, principal, creating, values, self.accounts, self.inventories.index_writer,
                           self.secrets)
        for attr, value in values.items():
            if not isinstance(resource_field_by_attr(resource, attr), Secret):
                setattr(obj, attr, value)
        await resource.hooks.before_flush(ctx, obj)
        session.add(obj)
        try:
            await session.flush()
            await resource.hooks.after_flush(ctx, obj)
            await session.commit()
        except IntegrityError as e:  # a concurrent writer won the unique name
            await session.rollback()
            raise ServiceError.detail("The object conflicts with another one; try again.") from e
        return {**await self.shown(session, resource, principal, obj), **ctx.shown_once}

    async def delete(self, name: str, principal: Principal, obj_id: int) -> None:
        resource = self.resource(name)
        async with self.db.session() as session:
            obj = await self.visible_object(session, resource, principal, obj_id, "change")
            if isinstance(obj, User):
                if obj.id == principal.id:
                    raise ServiceError.detail("You cannot delete your own user.")
                self.accounts.forget_verified()
            await session.delete(obj)
            if isinstance(resource.access, RoleScoped) and resource.access.owner == "id":
                # Ids can be reused (SQLite): roles must not outlive their object.
                await session.execute(delete(RoleAssignment).where(
                    RoleAssignment.resource_type == resource.access.resource_type,
                    RoleAssignment.resource_id == obj_id,
                ))
            await session.commit()


def resource_field_by_attr(resource: Resource, attr: str) -> Field:
    return next(f for f in resource.fields if f.attr == attr)


def _current(obj: Any, f: Field) -> Any:
    value = getattr(obj, f.attr, None)
    return f.default if value is None and not isinstance(f, ForeignKey) else value
