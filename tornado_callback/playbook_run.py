"""One job as an ansible-runner invocation: the private directory, the environment, the sandbox.

Everything a run needs (inventory, extra vars, the SSH key) is written into the
run's private directory (files 0600) that the executor removes after the run.
Secrets are never put on a command line, where ``ps`` would show them, nor in
the environment, which ansible-runner writes to its ``command`` artifact:
passwords go to the prompts through ansible-runner's pexpect, never to disk.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ansible_runner import RunnerConfig
from ansible_runner.exceptions import ConfigurationError

from tornado_callback.ansible_vars import extravars_document
from tornado_callback.credentials import SshSecrets
from tornado_callback.sandbox import Sandbox, job_environment

# ansible-runner answers these prompts (pexpect) with the credential's secrets.
SSH_PASSWORD_PROMPT = r"SSH password:\s*?$"
BECOME_PASSWORD_PROMPT = r"BECOME password.*:\s*?$"
KEY_UNLOCK_PROMPT = r"Enter passphrase for .*:\s*?$"
# How often ansible-runner's loop checks for a cancel request, in seconds.
CANCEL_CHECK_SECONDS = 0.25


class RunSetupError(Exception):
    """The job cannot be started (the message is the job's explanation)."""


@dataclass(frozen=True)
class RunSpec:
    job_id: int
    template_name: str
    project_dir: str
    playbook: str
    inventory: dict[str, Any]
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

    def playbook_path(self) -> Path:
        path = Path(self.project_dir or ".") / self.playbook
        if not self.playbook or not path.is_file():
            raise RunSetupError(f"Playbook not found: {path}")
        return path.resolve()


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)


def runner_config(spec: RunSpec, private_dir: Path, sandbox: Sandbox | None) -> RunnerConfig:
    """Write the private files and return the prepared ansible-runner configuration.

    Blocking file I/O: call it off the event loop.
    """
    playbook = spec.playbook_path()
    project_dir = Path(spec.project_dir).resolve() if spec.project_dir else playbook.parent
    inventory = private_dir / "inventory" / "hosts.json"
    _write_private(inventory, json.dumps(spec.inventory))
    # ansible-runner passes env/extravars as ``-e @FILE``; passing them as an
    # argument would put them on the command line.
    _write_private(private_dir / "env" / "extravars", extravars_document(spec.configured_vars, spec.launch_vars))
    home = private_dir / "home"
    home.mkdir(mode=0o700)
    envvars = {
        # From a virtualenv, ansible-playbook sits beside the interpreter.
        "PATH": os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", os.defpath)]),
        "HOME": str(home),
        "ANSIBLE_LOCAL_TEMP": str(private_dir / "tmp"),
        "ANSIBLE_NOCOLOR": "1",
    }
    cmdline: list[str] = []
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
        ident=str(spec.job_id),
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
        settings={"pexpect_timeout": CANCEL_CHECK_SECONDS, "suppress_ansible_output": True},
        cmdline=" ".join(cmdline) or None,
        quiet=True,
    )
    try:
        config.prepare()
    except ConfigurationError as e:
        raise RunSetupError(f"ansible-runner: {e}") from e
    config.env = job_environment(config.env, envvars)
    if sandbox is not None:
        config.command = sandbox.command(
            config.command, readable=(project_dir, playbook.parent), writable=(private_dir,), chdir=project_dir
        )
    return config
