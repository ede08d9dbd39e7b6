"""A thread that copies SQLite's write-ahead log back into the database file.

SQLite does it on its own (the automatic checkpoint) in the commit that finds
the log over 1,000 pages: the writer's thread copied the pages and synced both
files, and the callbacks of that batch, and of every batch queued behind it,
waited. Here the writer's connection checkpoints only far beyond that
(``FALLBACK_PAGES``: should this thread fall behind, the log still stops
growing), and this thread, on a connection of its own, runs a passive
checkpoint at most every ``CHECKPOINT_SECONDS`` while there are writes. A
passive checkpoint takes no lock a writer or a reader waits for (SQLite's WAL
documentation), and pysqlite lets go of the GIL while it runs. Under 15 s of
callback POSTs at 100,000 hosts the writer's time in commits fell from 231 and
260 ms to 177 and 141 ms, its commits over 10 ms from 6 and 7 to 4 and 3
(bench/NOTES.md, issue 18).
"""

from __future__ import annotations

import logging
import threading

from sqlalchemy import Engine

# How often the log is copied back while there are writes. Not more often: once a
# checkpoint has copied the whole log, the writer's next commit starts it over, and
# syncs its header then; at every 0.5 s the writer synced about as often as when it
# checkpointed itself. Under the bench's POSTs the log grows by about 1,000 pages a second.
CHECKPOINT_SECONDS = 2.0
# The writer's own automatic checkpoint, in pages (SQLite's default is 1,000).
FALLBACK_PAGES = 20_000

log = logging.getLogger("tornado_callback.store")


class WalCheckpointer:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._written = threading.Event()
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="sqlite-checkpoint", daemon=True)
        self._thread.start()

    def written(self) -> None:
        """A write was committed: the log has pages to copy back."""
        self._written.set()

    def close(self) -> None:
        """Stop the thread (a checkpoint under way finishes first; closing the database does the last)."""
        self._closing.set()
        self._written.set()
        self._thread.join()

    def _serve(self) -> None:
        connection = None
        try:
            while self._written.wait() and not self._closing.is_set():
                self._written.clear()
                try:
                    if connection is None:
                        connection = self.engine.raw_connection()
                    connection.driver_connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except Exception as e:  # e.g. disk full: the writer's fallback checkpoint remains
                    log.warning("the SQLite checkpoint failed: %s", e)
                self._closing.wait(CHECKPOINT_SECONDS)
        finally:
            if connection is not None:
                connection.close()
