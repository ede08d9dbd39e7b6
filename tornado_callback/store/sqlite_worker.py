"""A thread with one SQLite connection that runs units of work for the event loop.

``Database.read`` and ``write`` hand it their units on SQLite. Why not
aiosqlite or ``run_in_executor``: aiosqlite makes several thread hops per
statement, and even one hop per unit costs more than the indexed query it
carries (a future, a wake-up of the thread, a wake-up of the loop). Here the
units a loop submits in one turn are handed over together at its end, those
queued while the thread was busy run back to back, and their results go back
to each loop in one wake-up, so under load the hop is shared (bench/NOTES.md
has the figures).

A writer also commits such a batch once (group commit): SQLite's commit,
which writes the changed pages to the WAL, cost as much as the two inserts of
a callback. Each unit runs in a savepoint, so one that raises undoes only its
own work; no result is handed back before the commit it depends on. The
writer leaves copying the log back into the database file to a thread of its
own (``WalCheckpointer``), so that no batch waits for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection, Engine

from tornado_callback.store.driver import run_on_driver
from tornado_callback.store.wal_checkpointer import FALLBACK_PAGES, WalCheckpointer

Unit = tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any], asyncio.Future[Any]]
Batch = list[Unit]
Outcome = tuple[asyncio.Future[Any], Any, BaseException | None]


class SQLiteWorker:
    def __init__(self, engine: Engine, name: str, *, writer: bool) -> None:
        """A writer runs each batch in one transaction taking SQLite's write lock at
        once (group commit); a reader runs its units in autocommit."""
        self.engine = engine
        # The statement that opens each transaction (see database._sqlite_begin).
        self.begin = "BEGIN IMMEDIATE" if writer else None
        self._run_units = _run_together if writer else _run_in_autocommit
        self._checkpointer = WalCheckpointer(engine) if writer else None
        # None in the queue: close() was called.
        self._queue: queue.SimpleQueue[Batch | None] = queue.SimpleQueue()
        # Units submitted in the current turn of each event loop, handed over at its end.
        self._submitted: dict[asyncio.AbstractEventLoop, Batch] = {}
        self._closed = False
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()

    def submit(self, work: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> asyncio.Future[Any]:
        """The future of ``work(connection, *args, **kwargs)``, committed when it returns."""
        if self._closed:
            raise RuntimeError("the database is closed")
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        batch = self._submitted.get(loop)
        if batch is None:
            # Wake the thread once per turn of the loop, not once per unit: each
            # wake-up is a context switch, and the thread then takes the GIL
            # from the loop; under load a turn answers many requests.
            batch = self._submitted[loop] = []
            loop.call_soon(self._hand_over, loop)
        batch.append((work, args, kwargs, future))
        return future

    def _hand_over(self, loop: asyncio.AbstractEventLoop) -> None:
        self._queue.put(self._submitted.pop(loop))

    async def close(self) -> None:
        """Run the units already queued, then stop the thread and close its connection."""
        self._closed = True
        await asyncio.sleep(0)  # this loop's last turn hands its units over
        self._queue.put(None)
        await asyncio.to_thread(self._thread.join)
        if self._checkpointer is not None:
            await asyncio.to_thread(self._checkpointer.close)

    def _serve(self) -> None:
        connection: Connection | None = None
        try:
            closing = False
            while not closing:
                units, closing = self._next_units()
                if not units:
                    continue
                try:
                    if connection is None:
                        connection = self._connect()
                except Exception as e:  # e.g. the file cannot be opened: each unit fails with it
                    _deliver([(unit[3], None, e) for unit in units])
                    continue
                _deliver(self._run_units(connection, units))
                if self._checkpointer is not None:
                    self._checkpointer.written()
        finally:
            if connection is not None:
                connection.close()

    def _connect(self) -> Connection:
        connection = self.engine.connect().execution_options(sqlite_begin=self.begin)
        if self._checkpointer is not None:
            # Its commits leave the checkpoints to the checkpointer's thread.
            connection.connection.driver_connection.execute(f"PRAGMA wal_autocheckpoint={FALLBACK_PAGES}")
        return connection

    def _next_units(self) -> tuple[list[Unit], bool]:
        """Every unit queued so far, waiting for the first; and whether close() was called."""
        items = [self._queue.get()]
        with contextlib.suppress(queue.Empty):
            while True:
                items.append(self._queue.get_nowait())
        units = [unit for batch in items if batch is not None for unit in batch]
        return units, None in items


def _run_in_autocommit(connection: Connection, units: list[Unit]) -> list[Outcome]:
    """Each unit on its own, every statement seeing what was committed before it.

    No transaction is opened for a unit (on this connection one would emit no
    BEGIN: it was SQLAlchemy's bookkeeping alone, and cost more than the
    query); the one SQLAlchemy begins when a unit executes through the
    Connection is ended after it.
    """
    outcomes: list[Outcome] = []
    for work, args, kwargs, future in units:
        try:
            outcomes.append((future, work(connection, *args, **kwargs), None))
        except BaseException as e:  # handed to the coroutine awaiting it, raised there
            outcomes.append((future, None, e))
        finally:
            if connection.in_transaction():
                connection.commit()
    return outcomes


def _run_together(connection: Connection, units: list[Unit]) -> list[Outcome]:
    """All units in one transaction, each in a savepoint of its own."""
    driver = connection.connection.driver_connection
    outcomes: list[Outcome] = []
    try:
        with connection.begin():
            for work, args, kwargs, future in units:
                run_on_driver(connection, "SAVEPOINT unit")
                try:
                    value = work(connection, *args, **kwargs)
                except BaseException as e:
                    if not driver.in_transaction:  # SQLite dropped the whole transaction (e.g. disk full)
                        raise
                    run_on_driver(connection, "ROLLBACK TO unit")
                    outcomes.append((future, None, e))
                else:
                    outcomes.append((future, value, None))
                run_on_driver(connection, "RELEASE unit")
    except BaseException as e:  # nothing of the batch was committed: every unit fails with it
        return [(unit[3], None, e) for unit in units]
    return outcomes


def _deliver(outcomes: list[Outcome]) -> None:
    by_loop: dict[asyncio.AbstractEventLoop, list[Outcome]] = defaultdict(list)
    for outcome in outcomes:
        by_loop[outcome[0].get_loop()].append(outcome)
    for loop, batch in by_loop.items():
        try:
            loop.call_soon_threadsafe(_settle, batch)
        except RuntimeError:  # that loop is closed: nobody is waiting any more
            pass


def _settle(outcomes: list[Outcome]) -> None:
    for future, value, error in outcomes:
        if future.cancelled():  # e.g. a resolver's timeout gave up on it
            continue
        if error is None:
            future.set_result(value)
        else:
            future.set_exception(error)
