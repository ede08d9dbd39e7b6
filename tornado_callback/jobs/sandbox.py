"""Playbook runs sealed in a bubblewrap sandbox, and the environment they get.

A playbook is code from a project and variables from many hands; it runs on
this server. In the sandbox it sees the system (``/usr``, ``/etc``) and the
Python that runs Ansible read-only, its project read-only, its own private
directory, the paths the admin exposed, and a private ``/tmp``; never the
server's state (database file, key file, plugins.toml, working directory,
other jobs' directories). It runs in a PID namespace of its own that the
kernel tears down, every process in it, when bwrap or its parent dies: so a
cancel, a timeout or a dead worker leaves nothing running (ansible's forked
workers call ``setsid()``, which a process-group kill misses). It keeps no
capabilities, even when the server runs as root, so it cannot remount what
it was given read-only.

We build bwrap's command line ourselves rather than use ansible-runner's
``process_isolation``: that one passes the server's whole environment through
and hides only what it is told to, where this one shows only what it is told to.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from tornado_callback.config import ConfigError, Settings

INSTALL_HINT = (
    "install bubblewrap (Debian/Ubuntu: apt-get install bubblewrap; Fedora/RHEL: dnf install bubblewrap), "
    "or set TORNADO_CALLBACK_JOB_ISOLATION=off to run playbooks without a sandbox"
)

# The system a playbook needs, read-only: programs, libraries, /etc (users, DNS, SSH and TLS settings).
SYSTEM_PATHS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc")

# What a run takes from the server's environment: where programs are, and the locale.
INHERITED_VARIABLES = ("PATH", "LANG", "LANGUAGE", "LC_ALL", "LC_CTYPE", "TZ")
# What ansible-runner sets for its event-collecting callback plugin.
RUNNER_VARIABLES = (
    "ANSIBLE_CALLBACK_PLUGINS", "ANSIBLE_STDOUT_CALLBACK", "ORIGINAL_STDOUT_CALLBACK",
    "ANSIBLE_RETRY_FILES_ENABLED", "ANSIBLE_HOST_KEY_CHECKING", "AWX_ISOLATED_DATA_DIR",
    "RUNNER_OMIT_EVENTS", "RUNNER_ONLY_FAILED_EVENTS", "ANSIBLE_CACHE_PLUGIN", "ANSIBLE_CACHE_PLUGIN_CONNECTION",
)

log = logging.getLogger("tornado_callback.jobs.sandbox")

# Under the run's own /proc: what uid 0 could write (read-only) and what tells of the host (masked).
PROC_READ_ONLY = ("sys", "sysrq-trigger", "irq", "bus", "fs")
PROC_MASKED = ("kcore", "keys", "timer_list", "sched_debug", "latency_stats", "acpi", "scsi")
PSEUDO_FILESYSTEMS = ("/proc", "/sys", "/dev")

# How long bwrap may take to show it works at start.
PROBE_SECONDS = 10


def job_environment(runner_env: Mapping[str, str], chosen: Mapping[str, str]) -> dict[str, str]:
    """A run's environment: an allow-list, never the server's own (its key, its database URL).

    ``runner_env`` is what ansible-runner prepared (the server's environment
    plus its own settings); ``chosen`` is what the executor sets for this run.
    """
    allowed = {name: runner_env[name] for name in (*INHERITED_VARIABLES, *RUNNER_VARIABLES) if name in runner_env}
    return {**allowed, **chosen}


@functools.cache
def python_paths() -> tuple[Path, ...]:
    """Where the Python running Ansible, and the packages it imports, live."""
    paths = {Path(sys.prefix), Path(sys.base_prefix)}
    for package in ("ansible", "ansible_runner"):
        spec = importlib.util.find_spec(package)
        if spec is not None and spec.submodule_search_locations:
            paths.update(Path(location).parent for location in spec.submodule_search_locations)
    return tuple(sorted(p.resolve() for p in paths))


def _covers(ancestor: Path, path: Path) -> bool:
    return path == ancestor or ancestor in path.parents


def restricted_paths(root: Path) -> list[Path]:
    """What under ``root`` the system keeps from other users (``/etc/shadow``, SSH host keys):
    runs see it as root, without capabilities, so it is hidden from them instead."""
    found = []
    for directory, subdirectories, files in os.walk(root):
        for name in list(subdirectories):
            if _mode(Path(directory, name)) & 0o005 != 0o005:
                found.append(Path(directory, name))
                subdirectories.remove(name)
        found += [Path(directory, name) for name in files if not _mode(Path(directory, name)) & 0o004]
    return found


def _mode(path: Path) -> int:
    """The permission bits of ``path``; a link or a file that vanished counts as open to all."""
    try:
        info = path.lstat()
    except OSError:
        return 0o777
    return 0o777 if stat.S_ISLNK(info.st_mode) else info.st_mode


class SandboxRefused(ValueError):
    """A run would be shown what it must not see (the message says what and why)."""


@dataclass(frozen=True)
class Sandbox:
    """How runs are sealed on this server: the bwrap program, what to hide, what to show."""

    bwrap: str
    # The server's state and the system's secrets: hidden wherever they lie inside something shown.
    hidden: tuple[Path, ...] = ()
    # Never shown, nor anything inside: other runs' directories, the system's secrets.
    sealed: tuple[Path, ...] = ()
    # Paths the admin chose to give every run, writable.
    show_paths: tuple[Path, ...] = ()

    def command(self, argv: Sequence[str], *, project: Path, private_dir: Path, writable: Iterable[Path]) -> list[str]:
        """``argv`` wrapped in bwrap, run in ``project``: it sees the system, Python, ``project``
        and ``private_dir`` read-only, and ``writable`` (inside ``private_dir``) and the show paths.

        Raises ``SandboxRefused`` for a project that is a system path or the server's state.
        """
        project = project.resolve()
        self._check_project(project)
        # (path, how): applied parents first, so that a path shown inside a
        # hidden directory (a project in the server's working directory) shows,
        # and state inside a shown directory (a database in the project) hides.
        mounts: list[tuple[Path, str]] = [(Path("/tmp"), "--tmpfs")]
        links: list[str] = []
        for name in SYSTEM_PATHS:
            path = Path(name)
            if path.is_symlink():  # merged /usr: /bin -> usr/bin
                links += ["--symlink", os.readlink(path), name]
            elif path.is_dir():
                mounts.append((path, "--ro-bind"))
        mounts += [(p, "--ro-bind") for p in (*python_paths(), project, private_dir.resolve())]
        mounts += [(p.resolve(), "--bind") for p in (*writable, *self.show_paths)]
        for path in sorted((p.resolve() for p in self.hidden), key=lambda p: len(p.parts)):
            if path.exists() and self._shown(path, mounts):
                mounts.append((path, "--tmpfs" if path.is_dir() else "--hide-file"))
        args = [
            self.bwrap, "--die-with-parent", "--unshare-pid", "--unshare-ipc", "--cap-drop", "ALL",
            "--dev", "/dev", "--proc", "/proc", *self._proc_guards(), *links,
        ]
        # At the same depth the hidden win: a path both shown and hidden stays hidden.
        order = {"--ro-bind": 0, "--bind": 1, "--tmpfs": 2, "--hide-file": 2}
        for path, how in sorted(mounts, key=lambda m: (len(m[0].parts), order[m[1]])):
            if how == "--tmpfs":
                args += [how, str(path)]
            elif how == "--hide-file":
                args += ["--ro-bind", os.devnull, str(path)]
            else:
                args += [how, str(path), str(path)]
        return [*args, "--chdir", str(project), "--", *argv]

    def _check_project(self, project: Path) -> None:
        if project == Path("/") or any(_covers(Path(p), project) for p in PSEUDO_FILESYSTEMS):
            raise SandboxRefused(f"The project directory {project} is a system path, which runs are not shown.")
        if any(project == p.resolve() for p in self.hidden) or any(_covers(p.resolve(), project) for p in self.sealed):
            raise SandboxRefused(
                f"The project directory {project} holds the server's state or lies inside what runs may "
                "never see (the working directory, the run directory, restricted system files): "
                "give the template a directory of its own.")

    @staticmethod
    def _proc_guards() -> list[str]:
        """Without capabilities, uid 0 may still write some of /proc (kernel.core_pattern runs a
        program outside any sandbox): those are bound read-only, and what tells of the host masked,
        as container runtimes do."""
        args = []
        for name in PROC_READ_ONLY:
            if os.path.exists(f"/proc/{name}"):
                args += ["--ro-bind", f"/proc/{name}", f"/proc/{name}"]
        for name in PROC_MASKED:
            path = f"/proc/{name}"
            if os.path.isdir(path):
                args += ["--tmpfs", path]
            elif os.path.exists(path):
                args += ["--ro-bind", os.devnull, path]
        return args

    @staticmethod
    def _shown(path: Path, mounts: list[tuple[Path, str]]) -> bool:
        """Whether ``path`` is visible under ``mounts``: the deepest one covering it decides."""
        covering = [(m, how) for m, how in mounts if _covers(m, path)]
        if not covering:
            return False
        _, how = max(covering, key=lambda m: (len(m[0].parts), m[1] in ("--tmpfs", "--hide-file")))
        return how in ("--ro-bind", "--bind")

    def probe(self) -> None:
        """Raise ``ConfigError`` unless bwrap runs a sandbox here as ``command`` builds it."""
        with tempfile.TemporaryDirectory() as scratch:
            command = self.command(["true"], project=Path(scratch), private_dir=Path(scratch), writable=())
            try:
                done = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                                      timeout=PROBE_SECONDS)
            except (OSError, subprocess.TimeoutExpired) as e:
                raise ConfigError(f"job isolation: cannot run {self.bwrap}: {e}; {INSTALL_HINT}") from e
        if done.returncode != 0:
            reason = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
            raise ConfigError(f"job isolation: {self.bwrap} cannot make a sandbox here ({reason}); {INSTALL_HINT}")


def job_sandbox(settings: Settings) -> Sandbox | None:
    """The sandbox runs get on this server, seen to work; None when the admin turned isolation off.

    Raises ``ConfigError`` (one line that says how to install bubblewrap) when
    isolation is on and bwrap is missing or cannot make a sandbox here.
    """
    if not settings.job_isolation:
        log.warning("job isolation is off (TORNADO_CALLBACK_JOB_ISOLATION=off): playbooks run without a "
                    "sandbox, with this server's files, environment and permissions")
        return None
    bwrap = shutil.which(settings.bwrap)
    if bwrap is None:
        raise ConfigError(f"job isolation needs bubblewrap, and {settings.bwrap!r} was not found: {INSTALL_HINT}")
    show_paths = tuple(Path(p).resolve() for p in settings.job_show_paths)
    restricted = tuple(restricted_paths(Path("/etc")))
    hidden = (*(p.resolve() for p in settings.server_state_paths()), *restricted)
    for path in show_paths:
        for state in hidden:
            if _covers(path, state):
                raise ConfigError(f"job_show_paths: {path} holds the server's state ({state}); "
                                  "show the jobs a directory of their own")
    sandbox = Sandbox(bwrap, hidden, sealed=(settings.run_dir_path.resolve(), *restricted), show_paths=show_paths)
    sandbox.probe()
    return sandbox
