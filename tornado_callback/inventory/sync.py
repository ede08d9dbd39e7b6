"""Inventory syncs: a source's hosts into the store, on demand and on a callback's behalf.

Every sync, whoever asks (``POST .../update/``, the CLI, a callback), is an
``InventoryUpdate`` record run by ``_execute``: ansible-inventory under a
timeout, its JSON parsed, then one transaction that writes hosts, groups,
memberships, the host index, the update's counts and the source's
``last_successful_update``. A failed sync changes no host.

Update on launch (AWX's rule, without AWX's faults): a callback that matched
no single host syncs the inventory's ``update_on_launch`` sources whose last
success is older than ``update_cache_timeout``, then matches again. Concurrent
callbacks share one in-flight sync per source (a task per source in this
process; a PostgreSQL advisory lock across processes, after which freshness
is checked again); a callback waits at most ``inventory_sync_wait`` seconds,
and the sync carries on in the background when it gives up waiting.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from contextlib import asynccontextmanager, suppress
from functools import partial
from pathlib import Path
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.exc import SQLAlchemyError

from tornado_callback.config import Settings
from tornado_callback.errors import NotFound
from tornado_callback.inventory.ansible_inventory import (
    InventoryData,
    InventoryRunError,
    parse_inventory_json,
    run_ansible_inventory,
)
from tornado_callback.inventory.apply import SyncOptions, apply_inventory
from tornado_callback.inventory.service import Inventories
from tornado_callback.store.database import Database
from tornado_callback.store.models import InventorySource, InventoryUpdate, utcnow
from tornado_callback.telemetry import metrics

log = logging.getLogger("tornado_callback.inventory.sync")

OUTPUT_CAP = 64 * 1024
# First key of the two-key advisory lock: our own namespace ("tc"), so that
# other applications' advisory locks on the same database cannot collide.
ADVISORY_NAMESPACE = 0x7463
STDIN_SOURCE_NAME = "import (stdin)"


def _source_gone(update_id: int) -> None:
    log.info("inventory update %s: its source was deleted during the sync; nothing stored", update_id)


def _ended(update: InventoryUpdate) -> float:
    """Counts an update whose end is committed on /metrics; the seconds it ran."""
    seconds = (update.finished - update.started).total_seconds() if update.finished and update.started else 0.0
    metrics.sync_finished(update.status, seconds)
    return seconds


def import_source(path: str | None) -> tuple[str, str]:
    """(name, source_path) of the source an import of ``path`` is recorded under: ``import PATH``
    (absolute), or ``import (stdin)`` when ``path`` is None."""
    if path is None:
        return STDIN_SOURCE_NAME, ""
    absolute = str(Path(path).resolve())
    return f"import {absolute}", absolute


def excerpt(output: str, cap: int = OUTPUT_CAP) -> str:
    """Head and tail of long output: where errors usually are."""
    if len(output) <= cap:
        return output
    half = cap // 2
    return f"{output[:half]}\n... ({len(output) - cap} characters left out) ...\n{output[-half:]}"


def is_due(source: InventorySource, now: dt.datetime) -> bool:
    last = source.last_successful_update
    return last is None or last + dt.timedelta(seconds=source.update_cache_timeout) <= now


class InventorySync:
    def __init__(self, db: Database, inventories: Inventories, settings: Settings) -> None:
        self.db = db
        self.inventories = inventories
        self.settings = settings
        # The sync of each source running (or queued) in this process, which callbacks join.
        self._inflight: dict[int, asyncio.Task[InventoryUpdate | None]] = {}
        # Runs of one source never overlap in this process (the advisory lock does it across).
        self._serial: dict[int, asyncio.Lock] = {}
        self._tasks: set[asyncio.Task[Any]] = set()

    # -- sources and updates -------------------------------------------------

    async def get_source(self, source_id: int) -> InventorySource | None:
        async with self.db.session() as session:
            return await session.get(InventorySource, source_id)

    async def get_update(self, update_id: int) -> InventoryUpdate | None:
        async with self.db.session() as session:
            return await session.get(InventoryUpdate, update_id)

    async def latest_updates(self, source_ids: Collection[int], limit: int) -> list[InventoryUpdate]:
        """The newest ``limit`` updates of these sources, newest first (the console's list of syncs)."""
        async with self.db.session() as session:
            return list(await session.scalars(
                select(InventoryUpdate).where(InventoryUpdate.inventory_source_id.in_(source_ids))
                .order_by(InventoryUpdate.id.desc()).limit(limit)))

    async def start_update(self, source_id: int, launch_type: str = "manual") -> InventoryUpdate:
        """Record a pending update of a source and run it in the background."""
        update, _ = await self._start(source_id, launch_type)
        return update

    async def update(self, source_id: int, launch_type: str = "manual") -> InventoryUpdate:
        """Run an update of a source to its end (the CLI's ``inventory sync``)."""
        update, task = await self._start(source_id, launch_type)
        await asyncio.wait([task])
        finished = await self.get_update(update.id)
        if finished is None:
            raise NotFound(f"inventory source {source_id} was deleted during its sync")
        return finished

    async def _start(
        self, source_id: int, launch_type: str
    ) -> tuple[InventoryUpdate, asyncio.Task[InventoryUpdate | None]]:
        update = await self._new_update(source_id, launch_type)
        task = self._spawn(source_id, self._serialized(source_id, partial(self._execute, update.id)))
        return update, task

    async def import_into(self, source_id: int, payload: str | None = None) -> InventoryUpdate:
        """``inventory import``: a sync of an import source (see ``import_source``), of ``payload``
        (JSON read from stdin) when given, run to its end."""
        update = await self._new_update(source_id, "manual")
        result = await self._serialized(source_id, partial(self._execute, update.id, payload))
        if result is None:
            raise NotFound(f"inventory source {source_id} was deleted during the import")
        return result

    async def _new_update(self, source_id: int, launch_type: str) -> InventoryUpdate:
        async with self.db.session() as session:
            if await session.get(InventorySource, source_id) is None:
                raise NotFound(f"no inventory source {source_id}")
            update = InventoryUpdate(inventory_source_id=source_id, launch_type=launch_type)
            session.add(update)
            await session.commit()
            return update

    # -- update on launch ----------------------------------------------------

    async def refresh_for_callback(self, inventory_id: int) -> bool:
        """Sync the inventory's due update-on-launch sources; True when matching should run again.

        That is whenever the inventory has such sources: even when none is
        due, one may have been synced since the caller matched. Waits at most
        ``settings.inventory_sync_wait``; the syncs are tasks of their own,
        so they finish in the background after that, and even if the waiting
        request goes away.
        """
        requested_at = utcnow()
        async with self.db.session() as session:
            sources = list(await session.scalars(select(InventorySource).where(
                InventorySource.inventory_id == inventory_id,
                InventorySource.update_on_launch.is_(True),
            )))
        due = [s.id for s in sources if is_due(s, requested_at)]
        if due:
            tasks = [
                self._inflight.get(source_id) or self._spawn(
                    source_id,
                    self._serialized(source_id, partial(self._callback_update, source_id, requested_at)),
                )
                for source_id in due
            ]
            deadline = asyncio.get_running_loop().time() + self.settings.inventory_sync_wait
            await asyncio.wait(tasks, timeout=self.settings.inventory_sync_wait)
            # The names of the hosts synced are resolved (forward_dns) after the
            # sync commits: this callback matches again once they are, so a new
            # host whose name resolves to the caller is matched by it.
            with suppress(TimeoutError):
                async with asyncio.timeout_at(deadline):
                    await self.inventories.refresher.caught_up()
        return bool(sources)

    async def _callback_update(self, source_id: int, requested_at: dt.datetime) -> InventoryUpdate | None:
        """Runs under the source's locks: None when another process just synced it."""
        async with self.db.session() as session:
            source = await session.get(InventorySource, source_id)
        if source is None:
            return None
        last = source.last_successful_update
        if not is_due(source, utcnow()) or (last is not None and last >= requested_at):
            return None
        update = await self._new_update(source_id, "callback")
        return await self._execute(update.id)

    # -- running -------------------------------------------------------------

    def _spawn(
        self, source_id: int, run: Awaitable[InventoryUpdate | None]
    ) -> asyncio.Task[InventoryUpdate | None]:
        task = asyncio.get_running_loop().create_task(run)
        self._inflight[source_id] = task
        self._tasks.add(task)
        task.add_done_callback(partial(self._forget, source_id))
        return task

    def _forget(self, source_id: int, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if self._inflight.get(source_id) is task:
            del self._inflight[source_id]
        if not task.cancelled() and task.exception() is not None:
            log.error("inventory source %s: sync crashed", source_id, exc_info=task.exception())

    async def _serialized(self, source_id: int, run: Callable[[], Awaitable[Any]]) -> Any:
        lock = self._serial.setdefault(source_id, asyncio.Lock())
        async with lock, self._cross_process_lock(source_id):
            return await run()

    @asynccontextmanager
    async def _cross_process_lock(self, source_id: int) -> AsyncIterator[None]:
        """PostgreSQL: one sync of a source at a time across every process and machine."""
        if not self.db.is_postgresql:
            yield
            return
        args = {"namespace": ADVISORY_NAMESPACE, "source": source_id}
        async with self.db.engine.connect() as connection:
            # Autocommit: waiting for (and holding) the lock must not hold a transaction open.
            connection = await connection.execution_options(isolation_level="AUTOCOMMIT")
            await connection.execute(text("SELECT pg_advisory_lock(:namespace, :source)"), args)
            try:
                yield
            finally:
                try:
                    await connection.execute(text("SELECT pg_advisory_unlock(:namespace, :source)"), args)
                except (SQLAlchemyError, OSError):
                    # Never hand a connection that may still hold the lock back to the pool.
                    await connection.invalidate()

    async def _execute(self, update_id: int, payload: str | None = None) -> InventoryUpdate | None:
        """Run one update; None when its source was deleted meanwhile (its updates go with it)."""
        async with self.db.session() as session:
            update = await session.get(InventoryUpdate, update_id)
            source = await session.get(InventorySource, update.inventory_source_id) if update else None
            if update is None or source is None:
                return _source_gone(update_id)
            update.status = "running"
            update.started = utcnow()
            source.last_update_id = update.id
            await session.commit()
        log.info("inventory update %s started: source %s of inventory %s, %s launch",
                 update_id, source.id, source.inventory_id, update.launch_type)
        stderr = ""
        try:
            if payload is None:
                timeout = source.timeout or self.settings.inventory_sync_timeout
                output = await run_ansible_inventory(source.source, source.source_path, timeout)
                payload, stderr = output.stdout, output.stderr
            data = parse_inventory_json(payload)
        except InventoryRunError as e:
            return await self._finish(update_id, "failed", e.output, e.reason)
        except asyncio.CancelledError:
            await self._finish(update_id, "canceled", stderr, "canceled: the server is shutting down")
            raise
        try:
            return await self._store(source, update_id, data, stderr)
        except Exception as e:  # the transaction rolled back: no host changed
            if await self.get_source(source.id) is None:  # deleted meanwhile: its rows were refused
                return _source_gone(update_id)
            log.exception("inventory source %s: storing the sync failed", source.id)
            return await self._finish(
                update_id, "failed", stderr, f"could not store the inventory: {type(e).__name__}: {e}"
            )

    async def _store(
        self, source: InventorySource, update_id: int, data: InventoryData, stderr: str
    ) -> InventoryUpdate | None:
        """Hosts, groups, index, the update's record and the source's freshness: one transaction."""
        options = SyncOptions(source.id, source.overwrite, source.overwrite_vars)
        async with self.db.session() as session:
            # Locks the source row on PostgreSQL, so it cannot be deleted under the sync.
            if await session.get(InventorySource, source.id, with_for_update=True) is None:
                return _source_gone(update_id)
            counts = await apply_inventory(session, source.inventory_id, data, options, self.inventories.index_writer)
            update = await session.get(InventoryUpdate, update_id)
            fresh_source = await session.get(InventorySource, source.id)
            if update is None or fresh_source is None:
                return _source_gone(update_id)  # rolled back: nothing of a deleted source is stored
            summary = (f"{len(data.hosts)} hosts, {counts.groups} groups listed; "
                       f"{counts.hosts_added} added, {counts.hosts_updated} updated, "
                       f"{counts.hosts_removed} removed\n")
            update.status = "successful"
            update.finished = utcnow()
            update.hosts_added = counts.hosts_added
            update.hosts_updated = counts.hosts_updated
            update.hosts_removed = counts.hosts_removed
            update.result_stdout = excerpt(stderr + summary)
            fresh_source.last_successful_update = update.finished
            await session.commit()
        seconds = _ended(update)
        log.info("inventory update %s finished: successful after %.1f s; source %s of inventory %s: %s",
                 update_id, seconds, source.id, source.inventory_id, summary.strip())
        return update

    async def _finish(
        self, update_id: int, status: str, output: str, explanation: str
    ) -> InventoryUpdate | None:
        async with self.db.session() as session:
            update = await session.get(InventoryUpdate, update_id)
            if update is None:
                return _source_gone(update_id)
            update.status = status
            update.finished = utcnow()
            update.result_stdout = excerpt(output)
            update.job_explanation = explanation
            await session.commit()
        log.warning("inventory update %s finished: %s after %.1f s: %s", update_id, status, _ended(update), explanation)
        return update

    async def close(self) -> None:
        """Stop syncs still running (their subprocesses are killed) before the database goes."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

