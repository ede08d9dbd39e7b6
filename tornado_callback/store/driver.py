"""Statements the callback's hot path sends to the database driver directly, and what
SQLAlchemy's event listeners see of them.

Every callback runs a few statements (its host lookups, the job and attempt inserts,
and on SQLite the BEGIN IMMEDIATE and savepoints of the writer's group commit) whose
cost through SQLAlchemy's execution (an execution context, parameter handling, result
metadata from the cursor) is several times the work in the database: measured on
SQLite (in a loop, the machine under load), a host lookup took 16 µs on the driver's
cursor and 82 µs through ``Connection.exec_driver_sql``.

What a listener sees, so that one written like OpenTelemetry's SQLAlchemy
instrumentation (state kept on the execution ``context``, ``conn.engine.url`` read)
works unchanged: while a listener of what SQLAlchemy does with these statements is
registered on the connection's Engine, or on every Engine (``before_execute``,
``after_execute``, ``before_cursor_execute``, ``after_cursor_execute``), or on its
dialect (``do_execute``, ``handle_error``), they go through ``exec_driver_sql`` and
fire every event SQLAlchemy fires, with a real execution context; while none is,
there is no event to fire, and they go to the driver's cursor. So a listener sees
every statement of the hot path, each ``before`` with its ``after``, and pays
SQLAlchemy's price for them while it listens.

Not seen, as with any SQLAlchemy engine: the PRAGMAs set on each new SQLite
connection (pool events, before there is a Connection), and commits and rollbacks,
which are driver calls, not statements (``commit``/``rollback`` events). Not
consulted: a listener registered on one Connection rather than on its Engine. The
store's connections are its own, so only an ``engine_connect`` listener could put
one there, and it would miss the hot path.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError


def _observed(db: Connection) -> bool:
    """Whether SQLAlchemy would tell a listener about, or hand to one, a statement run on ``db``.

    ``dispatch`` is the event collections' public face on an Engine and a Dialect (an
    empty collection is false; listeners added at any time count). The Engine's, not
    the Connection's: a Connection's joins its Engine's on the fly, which made this
    check cost 5.6 µs rather than 2.2 µs (measured under load, in a loop).
    """
    events, dialect_events = db.engine.dispatch, db.dialect.dispatch
    return bool(
        events.before_cursor_execute or events.after_cursor_execute
        or events.before_execute or events.after_execute
        or dialect_events.do_execute or dialect_events.handle_error
    )


def run_on_driver(db: Connection, sql: str, parameters: Sequence[Any] = ()) -> list[Any]:
    """Execute ``sql`` (in the driver's paramstyle) in ``db``'s transaction; the rows it
    returns (none without RETURNING). Driver errors are raised as SQLAlchemy's
    (``IntegrityError``...), either way."""
    if _observed(db):
        result = db.exec_driver_sql(sql, tuple(parameters))
        return result.all() if result.returns_rows else []
    cursor = db.connection.dbapi_connection.cursor()
    try:
        cursor.execute(sql, parameters)
        return cursor.fetchall() if cursor.description is not None else []
    except db.dialect.loaded_dbapi.Error as e:
        raise DBAPIError.instance(sql, parameters, e, db.dialect.loaded_dbapi.Error) from e
    finally:
        cursor.close()
