"""Helpers for tests that drive the real command line and server processes."""

from __future__ import annotations

import os
import select
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


OFFLINE_PLUGINS = REPO / "tests" / "offline-plugins.toml"


def cli_env(**extra: str) -> dict[str, str]:
    """The environment for a CLI subprocess: this checkout first on the path, no inherited
    settings, and no resolver that would ask a nameserver off loopback (``--plugins`` overrides)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TORNADO_CALLBACK_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env["TORNADO_CALLBACK_PLUGINS"] = str(OFFLINE_PLUGINS)
    env.update(extra)
    return env


def run_cli(*args: str, cwd: Path, input: str | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tornado_callback", *args],
        cwd=cwd, env=cli_env(**env), input=input, capture_output=True, text=True, timeout=120,
    )


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A loopback port the kernel has just given out as free (TCP, or ``kind``)."""
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class CliProcess:
    """``tornado-callback ARGS`` in a subprocess (run by ``wrapper``, e.g. ``prlimit ...``); collects
    what it prints."""

    def __init__(self, *args: str, cwd: Path, wrapper: Sequence[str] = (), **env: str) -> None:
        self.proc = subprocess.Popen(
            [*wrapper, sys.executable, "-m", "tornado_callback", *args],
            cwd=cwd, env=cli_env(**env), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )
        self.output = ""

    def wait_for(self, text: str, timeout: float = 60) -> str:
        """Read output until ``text`` appears; fail with what was printed if the process ends first."""
        deadline = time.monotonic() + timeout
        assert self.proc.stdout is not None
        while text not in self.output:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self.proc.poll() is not None:
                raise AssertionError(f"server did not print {text!r}; output:\n{self.output}")
            # os.read, not readline: a buffered reader would hide lines from select().
            ready, _, _ = select.select([self.proc.stdout], [], [], min(remaining, 0.5))
            if ready:
                self.output += os.read(self.proc.stdout.fileno(), 65536).decode(errors="replace")
        return self.output

    def stop(self) -> int:
        """SIGTERM and wait; safe to call again (a test may stop it before its fixture does)."""
        assert self.proc.stdout is not None
        if self.proc.stdout.closed:
            return self.proc.returncode
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            code = self.proc.wait(timeout=30)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
        assert self.proc.stdout is not None
        self.output += self.proc.stdout.read().decode(errors="replace")
        self.proc.stdout.close()
        return code


class ServerProcess(CliProcess):
    """``tornado-callback serve`` on a free port."""

    def __init__(self, *args: str, cwd: Path, wrapper: Sequence[str] = (), **env: str) -> None:
        self.port = free_port()
        super().__init__("serve", "--port", str(self.port), *args, cwd=cwd, wrapper=wrapper, **env)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"
