"""Private run directories: where a job's secrets live for the length of its run, and no longer.

A run's directory holds its decrypted SSH key, its inventory and its
variables. It is made 0700 in a root directory of this server's own (0700,
owned by this user, not a link) and removed when the run ends. A process
killed mid-run cannot remove it, so each directory is locked (``flock``) by
the process running it; the kernel drops the lock when that process dies, and
the next sweep (at the start of ``serve`` and ``worker``, and with every lease
sweep) removes every directory nobody holds, on this machine, whichever
process made it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

from tornado_callback.config import ConfigError

# Held while a directory is made and locked, and while the sweep looks: a
# sweep never sees a new directory before its owner holds it.
ROOT_LOCK = ".lock"


class RunDirectories:
    def __init__(self, root: Path) -> None:
        self.root = root

    def prepare(self) -> None:
        """Make the root (0700) or check that it is ours alone; ConfigError if it is not."""
        try:
            self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
            info = self.root.lstat()
        except OSError as e:
            raise ConfigError(f"run directory {self.root}: {e.strerror}") from e
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & 0o077:
            # Someone else's, or open to others: they could read a run's key.
            raise ConfigError(
                f"run directory {self.root} must be a directory owned by this user with mode 0700 "
                "(set TORNADO_CALLBACK_RUN_DIR to another)"
            )

    @contextlib.contextmanager
    def _root_locked(self) -> Iterator[None]:
        fd = os.open(self.root / ROOT_LOCK, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def create(self, job_id: int) -> PrivateDirectory:
        """A new 0700 directory for one run, held by this process until ``remove()``. Blocking."""
        with self._root_locked():
            path = Path(tempfile.mkdtemp(prefix=f"job-{job_id}-", dir=self.root))
            held = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
            fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return PrivateDirectory(path, held)

    def sweep(self) -> list[str]:
        """Remove the directories of runs whose process is gone; their names. Blocking."""
        removed = []
        with self._root_locked():
            for entry in os.scandir(self.root):
                if entry.name == ROOT_LOCK or not entry.is_dir(follow_symlinks=False):
                    continue
                try:
                    fd = os.open(entry.path, os.O_RDONLY | os.O_DIRECTORY)
                except OSError:
                    continue
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # a live run holds it
                finally:
                    os.close(fd)
                shutil.rmtree(entry.path, ignore_errors=True)
                removed.append(entry.name)
        return removed


class PrivateDirectory:
    """One run's directory, and the descriptor whose lock says its run is alive."""

    def __init__(self, path: Path, held: int) -> None:
        self.path = path
        self._held = held

    def remove(self) -> None:
        """Remove the directory and everything in it, then let go of it. Blocking."""
        try:
            shutil.rmtree(self.path, ignore_errors=True)
        finally:
            os.close(self._held)
