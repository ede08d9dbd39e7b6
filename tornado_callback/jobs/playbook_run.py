"""One job as an ansible-runner invocation: the private directory, the environment, the sandbox.

Everything a run needs (inventory, extra vars, the SSH key) is written into the
run's private directory (files 0600) that the executor removes after the run.
Secrets are never put on a command line, where ``ps`` would show them, nor in
the environment, which ansible-runner writes to its ``command`` artifact:
passwords go to the prompts through ansible-runner's pexpect, never to disk.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
import re
import shlex
import stat
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ansible_runner import Runner, RunnerConfig
from ansible_runner.exceptions import ConfigurationError

from tornado_callback.accounts.credentials import SshSecrets
from tornado_callback.jobs.ansible_vars import configured_document, given_document
from tornado_callback.jobs.sandbox import Sandbox, SandboxRefused, job_environment

# ansible-runner answers these prompts (pexpect) with the credential's secrets.
SSH_PASSWORD_PROMPT = r"SSH password:\s*?$"
BECOME_PASSWORD_PROMPT = r"BECOME password.*:\s*?$"
KEY_UNLOCK_PROMPT = r"Enter passphrase for .*:\s*?$"
# How often ansible-runner's loop checks for a cancel request, in seconds.
CANCEL_CHECK_SECONDS = 0.25
# What Ansible reads in a host pattern: separators, negation, intersection, regex, files, globs, ranges.
PATTERN_CHARACTERS = re.compile(r"[,:!&~@*?\[\]\s]")
# One event's details (a task's result) as the playbook's side wrote them; larger ones are dropped.
MAX_EVENT_DETAILS_BYTES = 32 * 1024 * 1024


class RunSetupError(Exception):
    """The job cannot be started (the message is the job's explanation)."""


@dataclass(frozen=True)
class RunSpec:
    # Names the run's directories: the id of its first job.
    ident: int
    template_name: str
    project_dir: str
    playbook: str
    inventory: dict[str, Any]
    # Host patterns; for callback jobs, their hosts' names, each checked by
    # host_limit_problem before the run is planned (executor.py).
    limit: str
    # The template's own variables, which may template, and those given at
    # launch, which reach Ansible as data (ansible_vars.py).
    configured_vars: dict[str, Any]
    launch_vars: dict[str, Any]
    forks: int
    verbosity: int
    job_tags: str
    skip_tags: str
    timeout: int
    secrets: SshSecrets | None


def project_path(project_dir: str) -> Path:
    if not project_dir:
        raise RunSetupError("The job template has no project_dir: set it to the directory that holds the playbook.")
    return Path(project_dir).resolve()


def playbook_path(project_dir: str, playbook: str) -> Path:
    """Where a template's playbook is (inside its project directory); RunSetupError says why not."""
    project = project_path(project_dir)
    path = (project / playbook).resolve()
    if not playbook or not path.is_file():
        raise RunSetupError(f"Playbook not found: {project / playbook}")
    if project not in path.parents:
        raise RunSetupError(f"The playbook {playbook!r} lies outside the project directory {project}.")
    return path


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)


def _check_limit(spec: RunSpec) -> None:
    """A limit is host patterns; ``@FILE`` would make Ansible read a file and print its lines."""
    if any(pattern.strip().startswith("@") for pattern in re.split(r"[,:]", spec.limit)):
        raise RunSetupError(f"The limit {spec.limit!r} names a file (@...); give host patterns.")


def host_limit_problem(host: str, inventory: dict[str, Any]) -> str | None:
    """Why a callback job's host cannot be its limit, if it cannot (the job then ends
    ``error``, and the others of its run go on).

    The limit must select that host alone: Ansible would read ``web1,db1`` as
    two hosts, ``web*`` as a wildcard, ``@FILE`` as a file to read and a
    group's name as the group. And it must select it at all: in a run shared with
    others, a host no longer there would be left out without an error.
    """
    if host not in inventory["all"]["hosts"]:
        return f"The host {host!r} is not in the inventory any more (deleted, renamed or disabled)."
    if host in {"all", "ungrouped", *inventory["all"]["children"]} or (
        PATTERN_CHARACTERS.search(host) and not _is_address(host)
    ):
        return (f"The host's name {host!r} would select other hosts as an Ansible limit "
                "(it is a group's name, or holds pattern characters): rename the host.")
    return None


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def runner_config(spec: RunSpec, private_dir: Path, sandbox: Sandbox | None) -> RunnerConfig:
    """Write the private files and return the prepared ansible-runner configuration.

    Blocking file I/O: call it off the event loop.
    """
    project_dir = project_path(spec.project_dir)
    playbook = playbook_path(spec.project_dir, spec.playbook)
    _check_limit(spec)
    inventory = private_dir / "inventory" / "hosts.json"
    _write_private(inventory, json.dumps(spec.inventory))
    # Variables go in files (``-e @FILE``): on the command line ``ps`` would show them.
    # The template's own come first, so that those given at launch override them.
    configured = private_dir / "env" / "configured_vars.json"
    _write_private(configured, configured_document(spec.configured_vars))
    _write_private(private_dir / "env" / "extravars", given_document(spec.launch_vars))
    # ansible-runner reads its settings from this file only (a settings argument is dropped when it is missing).
    _write_private(private_dir / "env" / "settings", json.dumps(
        {"pexpect_timeout": CANCEL_CHECK_SECONDS, "suppress_ansible_output": True}))
    artifacts = private_dir / "artifacts" / str(spec.ident)
    # What the run itself writes (inside the sandbox, these alone are writable).
    writable = [private_dir / "home", private_dir / "tmp", artifacts / "job_events", artifacts / "fact_cache"]
    for path in writable:
        path.mkdir(mode=0o700, parents=True)
    envvars = {
        # From a virtualenv, ansible-playbook sits beside the interpreter.
        "PATH": os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", os.defpath)]),
        "HOME": str(private_dir / "home"),
        "ANSIBLE_LOCAL_TEMP": str(private_dir / "tmp"),
        "ANSIBLE_NOCOLOR": "1",
    }
    cmdline = ["-e", f"@{configured}"]
    passwords: dict[str, str] = {}
    secrets = spec.secrets
    if secrets is not None:
        if secrets.username:
            envvars["ANSIBLE_REMOTE_USER"] = secrets.username
        if secrets.ssh_key_data:
            key_path = private_dir / "credential" / "ssh_key"
            _write_private(key_path, secrets.ssh_key_data.rstrip("\n") + "\n")
            envvars["ANSIBLE_PRIVATE_KEY_FILE"] = str(key_path)
        if secrets.ssh_key_unlock:
            passwords[KEY_UNLOCK_PROMPT] = secrets.ssh_key_unlock
        if secrets.password:
            cmdline.append("--ask-pass")
            passwords[SSH_PASSWORD_PROMPT] = secrets.password
        if secrets.become_method:
            envvars["ANSIBLE_BECOME_METHOD"] = secrets.become_method
        if secrets.become_username:
            envvars["ANSIBLE_BECOME_USER"] = secrets.become_username
        if secrets.become_password:
            cmdline.append("--ask-become-pass")
            passwords[BECOME_PASSWORD_PROMPT] = secrets.become_password
    config = RunnerConfig(
        private_data_dir=str(private_dir),
        ident=str(spec.ident),
        playbook=str(playbook),
        project_dir=str(project_dir),
        inventory=str(inventory),
        limit=spec.limit or None,
        forks=spec.forks or None,
        verbosity=spec.verbosity or None,
        tags=spec.job_tags or None,
        skip_tags=spec.skip_tags or None,
        timeout=spec.timeout or None,
        envvars=envvars,
        passwords=passwords,
        cmdline=shlex.join(cmdline),
        quiet=True,
    )
    try:
        config.prepare()
    except ConfigurationError as e:
        raise RunSetupError(f"ansible-runner: {e}") from e
    config.env = job_environment(config.env, envvars)
    if sandbox is not None:
        try:
            config.command = sandbox.command(
                config.command, project=project_dir, private_dir=private_dir, writable=writable)
        except SandboxRefused as e:
            raise RunSetupError(str(e)) from e
    return config


class UntrustingRunner(Runner):
    """ansible-runner's Runner, reading what the playbook's side wrote as untrusted input.

    Ansible's side of the run (in the sandbox) leaves each event's details in
    ``job_events/UUID-partial.json``, and the event stream names the UUID.
    ansible-runner would open whatever name the stream gives, following links,
    and write the merged event beside it, as this server's user; a playbook
    controls both the stream and that directory. Here the UUID must be one, the
    file is opened without following links and read up to a limit, and nothing
    is written back: the executor stores events in the database.
    """

    def event_callback(self, event_data: dict[str, Any]) -> None:
        self.last_stdout_update = time.time()
        if "uuid" not in event_data:  # the end of the stream, as for ansible-runner's own
            return
        event_data.update(self._details(event_data["uuid"]))
        event_data.setdefault("created", dt.datetime.now(dt.UTC).isoformat())
        if self.event_handler is not None:
            self.event_handler(event_data)

    def _details(self, event_uuid: Any) -> dict[str, Any]:
        try:
            if str(uuid.UUID(str(event_uuid))) != event_uuid:
                return {}
        except ValueError:
            return {}
        path = Path(self.config.artifact_dir, "job_events", f"{event_uuid}-partial.json")
        try:
            # O_NONBLOCK: a FIFO left there must not hang the server.
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError:
            path.unlink(missing_ok=True)  # a link (ELOOP) goes, its target stays
            return {}
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return {}
            with os.fdopen(os.dup(fd), "rb") as f:
                text = f.read(MAX_EVENT_DETAILS_BYTES + 1)
        finally:
            os.close(fd)
            path.unlink(missing_ok=True)
        if len(text) > MAX_EVENT_DETAILS_BYTES:
            return {}
        try:
            details = json.loads(text)
        except ValueError:
            return {}
        return details if isinstance(details, dict) else {}
