"""Queries shared by the services; none commits.

Most take an ``AsyncSession``. The callback's take a sync ``Connection`` and
run inside ``Database.read``/``write``, several statements to one hop.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import (
    Compiled,
    Connection,
    Executable,
    Insert,
    Row,
    Table,
    bindparam,
    delete,
    func,
    insert,
    select,
)
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncSession

from tornado_callback.store.driver import run_on_driver
from tornado_callback.store.models import (
    ACTIVE_JOB_STATUSES,
    AuthFailure,
    CallbackAttempt,
    Credential,
    Host,
    HostKey,
    IndexState,
    Inventory,
    Job,
    JobTemplate,
    RoleAssignment,
    Token,
    User,
)

# The callback's lookups are built once as Core statements over the tables: per
# request, building an ORM select and loading through the session cost more
# than the indexed query itself (profiled in bench/NOTES.md).
_hosts = Host.__table__
_host_keys = HostKey.__table__
_tokens = Token.__table__
_users = User.__table__
_jobs = Job.__table__
_attempts = CallbackAttempt.__table__
_roles = RoleAssignment.__table__
_auth_failures = AuthFailure.__table__


class DriverStatement:
    """A Core statement compiled once per dialect, run by ``run_on_driver``.

    For the statements every callback runs: SQLAlchemy's per-execution work
    (compiling or looking up the statement, processing parameters, building
    result metadata from the cursor for each execution) cost several times
    the work in the database (bench/NOTES.md). Event listeners still see
    each statement, with a real execution context (see ``driver``), and
    driver errors are raised as SQLAlchemy's (``IntegrityError``...).
    Parameters go to the driver as given and rows come back as the driver
    gives them, so only for statements whose parameters and columns need no
    type processing (integers and text; booleans come back as 0/1 on SQLite).
    ``statement`` may name one statement per dialect name.
    """

    def __init__(self, statement: Executable | Mapping[str, Executable]) -> None:
        self.statement = statement
        self._compiled: dict[str, Compiled] = {}

    def compiled(self, dialect: Dialect) -> Compiled:
        compiled = self._compiled.get(dialect.name)
        if compiled is None:
            statement = self.statement[dialect.name] if isinstance(self.statement, Mapping) else self.statement
            compiled = self._compiled[dialect.name] = self._compile(statement, dialect)
        return compiled

    def _compile(self, statement: Executable, dialect: Dialect) -> Compiled:
        return statement.compile(dialect=dialect)

    def parameters(self, compiled: Compiled, params: Mapping[str, Any]) -> tuple[Any, ...]:
        return tuple(params[name] for name in compiled.positiontup or ())

    def run(self, db: Connection, params: Mapping[str, Any]) -> list[Any]:
        """Execute the statement in ``db``'s transaction; the rows it returns (none without RETURNING)."""
        compiled = self.compiled(db.dialect)
        return run_on_driver(db, compiled.string, self.parameters(compiled, params))


class DriverInsert(DriverStatement):
    """An INSERT of whole rows of ``table``, run as ``DriverStatement`` runs its statement.

    What SQLAlchemy's own execution does per row, done here with the table's
    own definitions: a column missing from the row takes its default, and
    every value goes through its column type's bind processor (JSON text,
    datetimes, booleans), so the row stored is the row Core would store.
    """

    def __init__(self, table: Table, statement: Insert | Mapping[str, Insert]) -> None:
        super().__init__(statement)
        self.columns = [column for column in table.columns if not column.primary_key]
        self._converters: dict[str, list[tuple[str, Any, Callable[[Any], Any] | None]]] = {}

    def _compile(self, statement: Executable, dialect: Dialect) -> Compiled:
        converters = []
        for column in self.columns:
            default = column.default
            # A callable default is wrapped by SQLAlchemy to take an execution context (unused here).
            make_default = default.arg if default is not None and default.is_callable else None
            value = None if default is None or default.is_callable else default.arg
            processor = column.type.dialect_impl(dialect).bind_processor(dialect)
            converters.append((column.key, make_default or value, processor))
        compiled = statement.compile(dialect=dialect, column_keys=[column.key for column in self.columns])
        order = {name: i for i, name in enumerate(compiled.positiontup or ())}
        self._converters[dialect.name] = sorted(converters, key=lambda c: order[c[0]])
        return compiled

    def parameters(self, compiled: Compiled, params: Mapping[str, Any]) -> tuple[Any, ...]:
        values = []
        for name, default, processor in self._converters[compiled.dialect.name]:
            if name in params:
                value = params[name]
            else:
                value = default(None) if callable(default) else default
            values.append(value if processor is None else processor(value))
        return tuple(values)


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
INSERT_CALLBACK_JOB = DriverInsert(_jobs, {
    "sqlite": sqlite_insert(_jobs).on_conflict_do_nothing().returning(_jobs.c.id),
    "postgresql": postgresql_insert(_jobs).on_conflict_do_nothing().returning(_jobs.c.id),
})
INSERT_ATTEMPT = DriverInsert(_attempts, insert(_attempts))


def template_by_id(db: Connection, template_id: int) -> JobTemplate | None:
    """A detached template (the callback only reads it)."""
    row = db.execute(TEMPLATE_BY_ID, {"id": template_id}).first()
    return None if row is None else JobTemplate(**row._mapping)


def index_entries(db: Connection, kind: str) -> list[tuple[str, str, str]]:
    """(inventory name, host name, value) of every host index key of ``kind``."""
    inventories = Inventory.__table__
    rows = db.execute(
        select(inventories.c.name, _hosts.c.name, _host_keys.c.value)
        .join(_hosts, _hosts.c.id == _host_keys.c.host_id)
        .join(inventories, inventories.c.id == _host_keys.c.inventory_id)
        .where(_host_keys.c.kind == kind)
    )
    return [(inventory, host, value) for inventory, host, value in rows]


def find_hosts_by_keys(
    db: Connection, inventory_id: int, kind: str, values: Iterable[str]
) -> list[tuple[int, str, bool]]:
    """(id, name, enabled) of the hosts of one inventory with an index key (kind, any of
    values), by name: one indexed query per value (a callback asks about one or two)."""
    found = {}
    for value in values:
        for host_id, name, enabled in HOSTS_BY_KEY.run(
            db, {"inventory_id": inventory_id, "kind": kind, "value": value}
        ):
            found[host_id] = (host_id, name, bool(enabled))
    return sorted(found.values(), key=lambda host: host[1])


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
    rows = INSERT_CALLBACK_JOB.run(db, values)
    return rows[0][0] if rows else None


def insert_attempt(db: Connection, values: dict[str, Any]) -> None:
    INSERT_ATTEMPT.run(db, values)


def recent_auth_failures(db: Connection, questions: Sequence[tuple[str, float, int]]) -> list[list[float]]:
    """For each ``(subject, since, count)``, the times of its newest ``count`` failures after
    ``since``, from every process."""
    at = _auth_failures.c.failed_at
    return [
        list(db.scalars(select(at).where(_auth_failures.c.subject == subject, at > since)
                        .order_by(at.desc()).limit(count)))
        for subject, since, count in questions
    ]


def record_auth_failures(
    db: Connection, questions: Sequence[tuple[str, float, int]], failed_at: float, expired_before: float
) -> list[list[float]]:
    """A failure at ``failed_at`` for each subject of ``questions``, then their answers as
    ``recent_auth_failures`` gives them. Failures from before ``expired_before`` count
    for nothing any more and are deleted."""
    db.execute(insert(_auth_failures), [{"subject": subject, "failed_at": failed_at} for subject, _, _ in questions])
    db.execute(delete(_auth_failures).where(_auth_failures.c.failed_at < expired_before))
    return recent_auth_failures(db, questions)


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
