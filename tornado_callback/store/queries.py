"""Queries shared by the services; none commits.

Most take an ``AsyncSession``. The callback's take a sync ``Connection`` and
run inside ``Database.read``/``write``, several statements to one hop.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Compiled, Connection, Executable, Row, bindparam, delete, func, insert, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from tornado_callback.store.models import (
    ACTIVE_JOB_STATUSES,
    CallbackAttempt,
    Credential,
    Host,
    HostKey,
    IndexState,
    Job,
    JobTemplate,
    RoleAssignment,
    Token,
    User,
)

# The callback's lookups are built once as Core statements over the tables: per
# request, building an ORM select and loading through the session cost more
# than the indexed query itself (profiled in the README, "Benchmark").
_hosts = Host.__table__
_host_keys = HostKey.__table__
_tokens = Token.__table__
_users = User.__table__
_jobs = Job.__table__
_attempts = CallbackAttempt.__table__
_roles = RoleAssignment.__table__


class DriverStatement:
    """A Core statement compiled once per dialect and run with ``exec_driver_sql``.

    For the statement every callback runs: compiling it and processing its
    parameters and rows on each execution cost more than the indexed query
    (README, "Benchmark"). Only for statements whose parameters and columns
    need no type processing (integers and text; booleans come back as 0/1 on
    SQLite).
    """

    def __init__(self, statement: Executable) -> None:
        self.statement = statement
        self._compiled: dict[str, Compiled] = {}

    def rows(self, db: Connection, params: dict[str, Any]) -> Sequence[Row[Any]]:
        compiled = self._compiled.get(db.dialect.name)
        if compiled is None:
            compiled = self._compiled[db.dialect.name] = self.statement.compile(dialect=db.dialect)
        positional = tuple(params[name] for name in compiled.positiontup or ())
        return db.exec_driver_sql(compiled.string, positional).all()


HOSTS_BY_KEY = DriverStatement(
    select(_hosts.c.id, _hosts.c.name, _hosts.c.enabled)
    .join(_host_keys, _host_keys.c.host_id == _hosts.c.id)
    .where(
        _host_keys.c.inventory_id == bindparam("inventory_id"),
        _host_keys.c.kind == bindparam("kind"),
        _host_keys.c.value == bindparam("value"),
    )
)

TOKEN_PRINCIPAL = (
    select(_users.c.id, _users.c.username, _users.c.is_superuser, _tokens.c.expires)
    .join(_users, _users.c.id == _tokens.c.user_id)
    .where(_tokens.c.token_hash == bindparam("token_hash"))
)


TEMPLATE_BY_ID = select(JobTemplate.__table__).where(JobTemplate.__table__.c.id == bindparam("id"))

ROLES_HELD = select(_roles.c.role).where(
    _roles.c.user_id == bindparam("user_id"),
    _roles.c.resource_type == bindparam("resource_type"),
    _roles.c.resource_id == bindparam("resource_id"),
)

ACTIVE_CALLBACK_JOB = select(_jobs.c.id).where(
    _jobs.c.job_template_id == bindparam("template_id"),
    _jobs.c.host_id == bindparam("host_id"),
    _jobs.c.status.in_(ACTIVE_JOB_STATUSES),
)

CREDENTIAL_ASKS_AT_LAUNCH = select(Credential.__table__.c.ask_at_launch).where(
    Credential.__table__.c.id == bindparam("id"))

INSERT_JOB = insert(_jobs).returning(_jobs.c.id)
# Skips the row, rather than failing, when the host already has an active
# callback job of the template (uq_jobs_active_callback): no savepoint needed.
INSERT_CALLBACK_JOB = {
    "sqlite": sqlite_insert(_jobs).on_conflict_do_nothing().returning(_jobs.c.id),
    "postgresql": postgresql_insert(_jobs).on_conflict_do_nothing().returning(_jobs.c.id),
}
INSERT_ATTEMPT = insert(_attempts)


def template_by_id(db: Connection, template_id: int) -> JobTemplate | None:
    """A detached template (the callback only reads it)."""
    row = db.execute(TEMPLATE_BY_ID, {"id": template_id}).first()
    return None if row is None else JobTemplate(**row._mapping)


def find_hosts_by_keys(
    db: Connection, inventory_id: int, kind: str, values: Iterable[str]
) -> list[tuple[int, str, bool]]:
    """(id, name, enabled) of the hosts of one inventory with an index key (kind, any of
    values), by name: one indexed query per value (a callback asks about one or two)."""
    found = {}
    for value in values:
        for host_id, name, enabled in HOSTS_BY_KEY.rows(
            db, {"inventory_id": inventory_id, "kind": kind, "value": value}
        ):
            found[host_id] = (host_id, name, bool(enabled))
    return sorted(found.values(), key=lambda host: host[1])


async def replace_host_keys(
    session: AsyncSession, host: Host, keys: Iterable[tuple[str, str]]
) -> None:
    await session.execute(delete(HostKey).where(HostKey.host_id == host.id))
    rows = [
        {"inventory_id": host.inventory_id, "host_id": host.id, "kind": kind, "value": value}
        for kind, value in sorted(set(keys))
    ]
    if rows:
        await session.execute(insert(HostKey), rows)


async def replace_host_keys_of_kinds(
    session: AsyncSession, host_id: int, kinds: Iterable[str], keys: Iterable[tuple[str, str]]
) -> bool:
    """Replace a host's keys of ``kinds`` only; False when the host no longer exists."""
    inventory_id = await session.scalar(select(Host.inventory_id).where(Host.id == host_id))
    if inventory_id is None:
        return False
    kinds = sorted(set(kinds))
    await session.execute(
        delete(HostKey).where(HostKey.host_id == host_id, HostKey.kind.in_(kinds))
    )
    rows = [
        {"inventory_id": inventory_id, "host_id": host_id, "kind": kind, "value": value}
        for kind, value in sorted(set(keys))
        if kind in kinds
    ]
    if rows:
        await session.execute(insert(HostKey), rows)
    return True


async def hosts_page(
    session: AsyncSession, after_id: int, limit: int, host_ids: Sequence[int] | None = None
) -> Sequence[Row[tuple[int, str, dict]]]:
    """(id, name, variables) of hosts by id, ``limit`` at a time after ``after_id``."""
    stmt = select(Host.id, Host.name, Host.variables).where(Host.id > after_id)
    if host_ids is not None:
        stmt = stmt.where(Host.id.in_(list(host_ids)))
    return (await session.execute(stmt.order_by(Host.id).limit(limit))).all()


INDEX_REBUILD_LOCK = 0x74636278  # an application-wide PostgreSQL advisory lock key


async def lock_index_rebuild(session: AsyncSession) -> None:
    """Hold the index-rebuild lock until the session's transaction ends (PostgreSQL only)."""
    if session.bind.dialect.name == "postgresql":
        await session.execute(select(func.pg_advisory_xact_lock(INDEX_REBUILD_LOCK)))


async def index_fingerprint(session: AsyncSession) -> str | None:
    return await session.scalar(select(IndexState.fingerprint).where(IndexState.id == 1))


async def set_index_fingerprint(session: AsyncSession, fingerprint: str) -> None:
    state = await session.get(IndexState, 1)
    if state is None:
        session.add(IndexState(id=1, fingerprint=fingerprint))
    else:
        state.fingerprint = fingerprint


def active_callback_job_id(db: Connection, template_id: int, host_id: int) -> int | None:
    return db.scalar(ACTIVE_CALLBACK_JOB, {"template_id": template_id, "host_id": host_id})


def credential_asks_at_launch(db: Connection, credential_id: int) -> bool:
    return bool(db.scalar(CREDENTIAL_ASKS_AT_LAUNCH, {"id": credential_id}))


def insert_job(db: Connection, values: dict[str, Any]) -> int:
    """A new job row (Core: the callback path loads no ORM objects); its id."""
    return db.execute(INSERT_JOB, values).scalar_one()


def insert_callback_job(db: Connection, values: dict[str, Any]) -> int | None:
    """The id of a new callback job, or None when the host already has one active."""
    return db.execute(INSERT_CALLBACK_JOB[db.dialect.name], values).scalar()


def insert_attempt(db: Connection, values: dict[str, Any]) -> None:
    db.execute(INSERT_ATTEMPT, values)


async def user_by_name(session: AsyncSession, username: str) -> User | None:
    return await session.scalar(select(User).where(User.username == username))


TokenPrincipal = Row[tuple[int, str, bool, dt.datetime | None]]


def token_principal(db: Connection, token_hash: str) -> TokenPrincipal | None:
    """(id, username, is_superuser, expires): the user of a token and its expiry, by its hash."""
    return db.execute(TOKEN_PRINCIPAL, {"token_hash": token_hash}).first()


def user_roles(db: Connection, user_id: int, resource_type: str, resource_id: int) -> frozenset[str]:
    params = {"user_id": user_id, "resource_type": resource_type, "resource_id": resource_id}
    return frozenset(db.scalars(ROLES_HELD, params))


async def page_of(
    session: AsyncSession, stmt: select, page: int, page_size: int
) -> tuple[int, list]:
    """(total count, rows of one page) for a select of ORM entities."""
    count = await session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery()))
    rows = await session.scalars(stmt.limit(page_size).offset((page - 1) * page_size))
    return count or 0, list(rows)


def attempts_query(template_id: int | None) -> select:
    stmt = select(CallbackAttempt).order_by(CallbackAttempt.id.desc())
    if template_id is not None:
        stmt = stmt.where(CallbackAttempt.job_template_id == template_id)
    return stmt
