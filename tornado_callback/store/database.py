"""Engine, sessions and schema upgrades. One ``Database`` per process, built by a factory."""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, Engine, create_engine, event, make_url, text
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import ORMExecuteState, Session, UOWTransaction

from tornado_callback.store.driver import run_on_driver
from tornado_callback.store.sqlite_worker import SQLiteWorker

MIGRATIONS = Path(__file__).parent / "migrations"
SQLITE_BUSY_TIMEOUT_MS = 30_000
# Read the file through a memory map rather than a read() per page: random host
# lookups in a large inventory otherwise spend their time copying pages in.
SQLITE_MMAP_BYTES = 1 << 30

# SQLite would create the file 0644 (less the umask), readable by every local user:
# password hashes, tokens' hashes and the audit trail are in it. Its -wal and -shm
# files take the database file's mode.
PRIVATE_FILE_MODE = 0o600

log = logging.getLogger("tornado_callback.store")
P = ParamSpec("P")
T = TypeVar("T")
Work = Callable[Concatenate[Connection, P], T]


class DatabaseUnavailable(Exception):
    """The database cannot be opened or reached; the message says which and why, in one line."""


def _sqlite_file(url: str) -> Path | None:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database and parsed.database != ":memory:":
        return Path(parsed.database).absolute()
    return None


def describe(url: str) -> str:
    """The database as its owner knows it: a SQLite file's absolute path, else the URL without password."""
    sqlite_file = _sqlite_file(url)
    return str(sqlite_file) if sqlite_file else make_url(url).render_as_string(hide_password=True)


def _unavailable(url: str, error: Exception) -> DatabaseUnavailable:
    if isinstance(error, DBAPIError):
        reason = str(error.orig).splitlines()[0]
    else:
        reason = getattr(error, "strerror", None) or str(error) or type(error).__name__
    sqlite_file = _sqlite_file(url)
    if sqlite_file is not None and not sqlite_file.parent.is_dir():
        reason = f"there is no directory {sqlite_file.parent}"  # SQLite says "unable to open database file"
    return DatabaseUnavailable(f"cannot open the database {describe(url)}: {reason}")


def alembic_config(connection: Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers run beside the one writer; the busy timeout makes
    # concurrent writers queue instead of failing with "database is locked".
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute(f"PRAGMA mmap_size={SQLITE_MMAP_BYTES}")
    cursor.close()


def _create_private_file(_dialect: Any, _record: Any, cargs: list[Any], cparams: dict[str, Any]) -> None:
    """Create the database file, readable by its owner only, just before SQLite would."""
    path = cargs[0] if cargs else ""
    if not path or path == ":memory:" or cparams.get("uri"):
        return
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE))
    except OSError:
        pass  # it exists (and keeps its mode), or SQLite says in its own words why it cannot open it


def _warn_if_others_may_read(url: str) -> None:
    """An existing file keeps the mode it has (its owner may have chosen it, for a backup
    user's group say): changing it behind the administrator's back could break that, so
    a file others may read is named in a warning instead."""
    path = make_url(url).database
    if not path or path == ":memory:":
        return
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except OSError:  # not there yet: it is created private
        return
    if mode & 0o077:
        log.warning("the database file %s (and its -wal, -shm) may be read by other users (mode %04o): "
                    "chmod 600 them", path, mode)


def _sqlite_explicit_transactions(dbapi_connection: Any, _record: Any) -> None:
    # pysqlite begins transactions by guessing from the statement (and defers
    # the write lock); SQLAlchemy's documented remedy: switch that off and emit
    # BEGIN ourselves (_sqlite_begin).
    dbapi_connection.isolation_level = None


def _sqlite_begin(connection: Connection) -> None:
    """BEGIN as the connection's ``sqlite_begin`` option says; None: none (autocommit reads).

    A writer says BEGIN IMMEDIATE, taking the write lock at once: a deferred
    transaction that read first could not upgrade once another process had
    written (SQLITE_BUSY). Sent by ``run_on_driver``: through SQLAlchemy's
    statement machinery it cost as much as the query it opened.
    """
    statement = connection.get_execution_options().get("sqlite_begin", "BEGIN")
    if statement:
        run_on_driver(connection, statement)


def make_sync_sqlite_engine(url: str) -> Engine:
    """The plain pysqlite engine behind ``Database.read``/``write`` on SQLite."""
    engine = create_engine(url.replace("sqlite+aiosqlite://", "sqlite://", 1),
                           connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})
    event.listen(engine, "do_connect", _create_private_file)
    event.listen(engine, "connect", _sqlite_pragmas)
    event.listen(engine, "connect", _sqlite_explicit_transactions)
    event.listen(engine, "begin", _sqlite_begin)
    return engine


def make_engine(url: str) -> AsyncEngine:
    if url.startswith("sqlite"):
        engine = create_async_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})
        event.listen(engine.sync_engine, "do_connect", _create_private_file)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    return create_async_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True)


class Database:
    """The store's engines. Two ways in:

    - ``session`` for the admin API, the CLI and the worker, where the ORM
      earns its cost;
    - ``read`` and ``write`` for the callback's hot path: a plain function of a
      sync ``Connection`` whose statements run as one unit (``write``: in one
      transaction). On SQLite the unit goes to a thread with its own pysqlite connection
      (``SQLiteWorker``; one for reads, one for writes, so this process's
      writers queue there rather than in SQLite's sleeping busy handler); on
      PostgreSQL it runs through ``run_sync`` on asyncpg, which needs no thread.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False, info={_DATABASE: self})
        # Told the names of the tables a session of this Database committed writes to.
        self.committed_listeners: list[Callable[[frozenset[str]], None]] = []
        self.is_postgresql = self.engine.dialect.name == "postgresql"
        if self.is_postgresql:
            return
        _warn_if_others_may_read(url)
        self._sync_engine = make_sync_sqlite_engine(url)
        # Reads run in autocommit: each statement sees what was committed before it.
        self._reader = SQLiteWorker(self._sync_engine, "sqlite-read", writer=False)
        self._writer = SQLiteWorker(self._sync_engine, "sqlite-write", writer=True)

    @property
    def sync_engines(self) -> tuple[Engine, ...]:
        """Every engine statements go through, for event listeners (e.g. to log SQL)."""
        if self.is_postgresql:
            return (self.engine.sync_engine,)
        return (self.engine.sync_engine, self._sync_engine)

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        async with self.sessions() as session:
            yield session

    def _committed(self, tables: frozenset[str]) -> None:
        for listener in self.committed_listeners:
            listener(tables)

    # read and write hand back the worker's future itself on SQLite, not a
    # coroutine awaiting it: each await in between is paid at every suspension
    # and resumption of the callback's task.

    def read(self, work: Work[P, T], *args: P.args, **kwargs: P.kwargs) -> Awaitable[T]:
        """``work(connection, ...)``'s result. Each statement reads what was committed before it
        (SQLite runs them in autocommit; on PostgreSQL they share a transaction)."""
        if self.is_postgresql:
            return self._run_on_postgresql(self.engine.connect, work, args, kwargs)
        return self._reader.submit(work, args, kwargs)

    def write(self, work: Work[P, T], *args: P.args, **kwargs: P.kwargs) -> Awaitable[T]:
        """``work(connection, ...)``'s result, committed; rolled back if it raises."""
        if self.is_postgresql:
            return self._run_on_postgresql(self.engine.begin, work, args, kwargs)
        return self._writer.submit(work, args, kwargs)

    @staticmethod
    async def _run_on_postgresql(
        connect: Callable[[], Any], work: Callable[..., T], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> T:
        async with connect() as connection:
            return await connection.run_sync(work, *args, **kwargs)

    async def ping(self) -> bool:
        try:
            async with self.engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
        except (SQLAlchemyError, OSError):
            return False
        return True

    async def upgrade(self) -> None:
        """Bring the schema to the newest migration (what ``serve`` and every command do first).

        The first contact with the database: DatabaseUnavailable when it cannot be opened.
        """

        def run(connection: Connection) -> None:
            if MigrationContext.configure(connection).get_current_revision() is None:
                # A command run in another directory than usual would otherwise
                # carry on with an empty database of its own, unnoticed.
                log.warning("creating a new database: %s", describe(self.url))
            command.upgrade(alembic_config(connection), "head")

        try:
            connection = await self.engine.connect()
        except (DBAPIError, OSError) as e:  # asyncpg's refused or timed-out connections are OSErrors
            raise _unavailable(self.url, e) from e
        try:
            async with connection.begin():
                await connection.run_sync(run)
        finally:
            await connection.close()

    async def close(self) -> None:
        if not self.is_postgresql:
            for worker in (self._reader, self._writer):
                await worker.close()
            self._sync_engine.dispose()
        await self.engine.dispose()


# Which tables a session wrote, so that caches of this process forget what a
# commit changed (see ReadCache). Sessions only: the callback's own writes
# (Database.write) touch jobs and audit records, which nothing caches.
_DATABASE = "tornado_callback.database"
_WRITTEN = "tornado_callback.tables_written"


def _note_tables(session: Session, tables: Any) -> None:
    if _DATABASE in session.info:
        session.info.setdefault(_WRITTEN, set()).update(table.name for table in tables)


@event.listens_for(Session, "after_flush")
def _flushed(session: Session, _flush: UOWTransaction) -> None:
    _note_tables(session, (obj.__table__ for obj in (*session.new, *session.dirty, *session.deleted)))


@event.listens_for(Session, "do_orm_execute")
def _executed(state: ORMExecuteState) -> None:
    if state.is_insert or state.is_update or state.is_delete:
        _note_tables(state.session, [state.statement.table])


@event.listens_for(Session, "after_commit")
def _committed(session: Session) -> None:
    # (Writes rolled back before a commit are reported too: forgetting more is harmless.)
    written = session.info.pop(_WRITTEN, None)
    if written:
        session.info[_DATABASE]._committed(frozenset(written))
