"""Running ``ansible-inventory`` and reading its ``--list`` JSON.

Both source kinds go through ``ansible-inventory -i PATH --list --export``:
a ``file`` source may be anything ansible understands (INI, YAML, a
directory, an inventory plugin config), a ``script`` source is run by
ansible's ``script`` plugin alone (so garbage output is an error rather than
something the INI parser half-accepts). ``--export`` keeps group variables on
their groups instead of copying them onto every host, as AWX does.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tornado_callback.config import ENV_PREFIX

SOURCE_KINDS = ("file", "script")
MAX_NAME_LENGTH = 512
# Groups that every inventory has implicitly; their hosts are hosts, not members.
IMPLICIT_GROUPS = ("all", "ungrouped")


class InventoryRunError(Exception):
    """ansible-inventory could not produce an inventory; ``output`` is what it printed."""

    def __init__(self, reason: str, output: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.output = output


@dataclass(frozen=True)
class GroupData:
    variables: dict[str, Any] = field(default_factory=dict)
    hosts: tuple[str, ...] = ()
    children: tuple[str, ...] = ()


@dataclass(frozen=True)
class InventoryData:
    """An inventory as a source lists it: hosts with their own variables, groups, ``all`` vars."""

    hosts: dict[str, dict[str, Any]]
    groups: dict[str, GroupData]
    variables: dict[str, Any]


@dataclass(frozen=True)
class RunOutput:
    stdout: str
    stderr: str


def ansible_inventory_program() -> str:
    """The ansible-inventory of this interpreter's environment first (a venv need not be on PATH)."""
    beside = Path(sys.executable).parent / "ansible-inventory"
    if beside.exists():
        return str(beside)
    return shutil.which("ansible-inventory") or "ansible-inventory"


def inventory_environment(source: str) -> dict[str, str]:
    # Our own settings (the database URL may carry a password) are none of the script's business.
    env = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}
    env.update({
        # Without these an unreadable source is a warning and an empty
        # inventory, which an overwrite would turn into deleting every host.
        "ANSIBLE_INVENTORY_UNPARSED_FAILED": "True",
        "ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED": "True",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
    })
    if source == "script":
        env["ANSIBLE_INVENTORY_ENABLED"] = "script"
    return env


async def run_ansible_inventory(source: str, path: str, timeout: float) -> RunOutput:
    """Run ansible-inventory on ``path``; raise ``InventoryRunError`` on failure or timeout.

    It runs in a session of its own so that a timeout kills the whole process
    group: a hung script is a grandchild of ansible-inventory.
    """
    if not path:
        raise InventoryRunError("the inventory source has no source_path")
    try:
        process = await asyncio.create_subprocess_exec(
            ansible_inventory_program(), "-i", path, "--list", "--export",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=inventory_environment(source),
            start_new_session=True,
        )
    except OSError as e:
        raise InventoryRunError(f"cannot run ansible-inventory (is ansible-core installed?): {e}") from e
    assert process.stdout is not None and process.stderr is not None
    readers = asyncio.gather(process.stdout.read(), process.stderr.read())
    try:
        await asyncio.wait_for(process.wait(), timeout)
    except TimeoutError:
        _kill_group(process)
        await process.wait()
        stdout, stderr = await readers
        raise InventoryRunError(
            f"ansible-inventory did not finish within {timeout:g}s and was killed",
            _join(stdout, stderr),
        ) from None
    except BaseException:
        _kill_group(process)
        readers.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await readers
        await process.wait()
        raise
    stdout, stderr = await readers
    if process.returncode != 0:
        raise InventoryRunError(
            f"ansible-inventory exited with status {process.returncode}", _join(stdout, stderr)
        )
    return RunOutput(stdout.decode("utf-8", "replace"), stderr.decode("utf-8", "replace"))


def _kill_group(process: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


def _join(stdout: bytes, stderr: bytes) -> str:
    return (stderr + stdout).decode("utf-8", "replace")


def parse_inventory_json(text: str) -> InventoryData:
    """``ansible-inventory --list`` JSON (or an inventory script's) as ``InventoryData``.

    Raises ``InventoryRunError`` naming what is wrong; never guesses.
    """
    try:
        data = json.loads(text)
    except ValueError as e:
        raise InventoryRunError(f"output is not JSON: {e}", text) from e
    if not isinstance(data, dict):
        raise InventoryRunError("output is not a JSON object of groups", text)
    meta = data.get("_meta", {})
    hostvars = meta.get("hostvars", {}) if isinstance(meta, Mapping) else None
    if not isinstance(hostvars, Mapping):
        raise InventoryRunError("_meta.hostvars is not an object", text)

    hosts: dict[str, dict[str, Any]] = {}
    for name, variables in hostvars.items():
        hosts[_name(name, "host", text)] = _variables(variables, f"host {name}", text)
    groups: dict[str, GroupData] = {}
    variables: dict[str, Any] = {}
    for name, body in data.items():
        if name == "_meta":
            continue
        group = _group(_name(name, "group", text), body, text)
        for host in group.hosts:
            hosts.setdefault(host, {})
        if name == "all":
            variables = group.variables
        elif name != "ungrouped":
            groups[name] = group
    for group in list(groups.values()):
        for child in group.children:
            if child not in IMPLICIT_GROUPS:
                groups.setdefault(child, GroupData())
    return InventoryData(hosts=hosts, groups=groups, variables=variables)


def _group(name: str, body: Any, text: str) -> GroupData:
    # Inventory scripts may list a group as a bare list of hosts.
    if isinstance(body, list):
        body = {"hosts": body}
    if not isinstance(body, Mapping):
        raise InventoryRunError(f"group {name} is neither an object nor a list of hosts", text)
    return GroupData(
        variables=_variables(body.get("vars", {}), f"group {name}", text),
        hosts=tuple(_name(h, "host", text) for h in _list(body.get("hosts", []), name, "hosts", text)),
        children=tuple(
            _name(c, "group", text) for c in _list(body.get("children", []), name, "children", text)
        ),
    )


def _list(value: Any, group: str, key: str, text: str) -> list[Any]:
    if not isinstance(value, list):
        raise InventoryRunError(f"group {group}: {key} is not a list", text)
    return value


def _variables(value: Any, owner: str, text: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InventoryRunError(f"{owner}: variables are not an object", text)
    return dict(value)


def _name(value: Any, kind: str, text: str) -> str:
    if not isinstance(value, str) or not value or value != value.strip() or len(value) > MAX_NAME_LENGTH:
        raise InventoryRunError(f"{kind} name {value!r} is not usable", text)
    return value
