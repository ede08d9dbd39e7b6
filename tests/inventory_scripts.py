"""A real inventory script for tests: an executable whose output the test changes.

It lists the hosts in ``hosts.json`` beside it (``{name: variables}``) in group
``provisioned``, appends its pid to ``calls`` on every ``--list`` run, and
obeys ``mode``: ``ok``, ``slow`` (answers after 2 s), ``hang`` (sleeps),
``garbage`` (prints non-JSON), ``fail`` (exits non-zero with a message on stderr).
"""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path
from typing import Any

SCRIPT = '''#!{python}
import json, os, pathlib, sys, time
here = pathlib.Path(__file__).parent
if "--list" in sys.argv:
    with open(here / "calls", "a") as calls:
        calls.write(f"{{os.getpid()}}\\n")
mode = (here / "mode").read_text().strip()
if mode == "hang":
    time.sleep(3600)
if mode == "slow":
    time.sleep(2)
if mode == "garbage":
    print("this is not an inventory <html>")
    sys.exit(0)
if mode == "fail":
    print("cloud API said: 503 boom", file=sys.stderr)
    sys.exit(3)
hosts = json.loads((here / "hosts.json").read_text())
groups = json.loads((here / "groups.json").read_text())
groups.setdefault("provisioned", {{}})["hosts"] = sorted(hosts)
print(json.dumps({{"_meta": {{"hostvars": hosts}}, **groups}}))
'''


class InventoryScript:
    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.path = directory / "inventory.py"
        self.path.write_text(SCRIPT.format(python=sys.executable))
        self.path.chmod(self.path.stat().st_mode | stat.S_IXUSR)
        self.set_hosts({})
        self.set_groups({})
        self.set_mode("ok")

    def set_hosts(self, hosts: dict[str, dict[str, Any]]) -> None:
        (self.directory / "hosts.json").write_text(json.dumps(hosts))

    def set_groups(self, groups: dict[str, Any]) -> None:
        (self.directory / "groups.json").write_text(json.dumps(groups))

    def set_mode(self, mode: str) -> None:
        (self.directory / "mode").write_text(mode)

    def pids(self) -> list[int]:
        """One pid per ``--list`` run so far."""
        calls = self.directory / "calls"
        return [int(line) for line in calls.read_text().split()] if calls.exists() else []

    @property
    def runs(self) -> int:
        return len(self.pids())


def is_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie has exited; it only waits for its parent to reap it.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except FileNotFoundError:
        return False
