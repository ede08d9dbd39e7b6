"""deploy/systemd/tornado-callback@.service, checked by systemd's own tools (installed by
.ci/install-test-programs; they need no running systemd)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.helpers import REPO
from tests.realservers import require

UNIT = REPO / "deploy" / "systemd" / "tornado-callback@.service"
# Where the README installs the command; verify checks that ExecStart is an executable.
INSTALLED = "/opt/tornado-callback/bin/tornado-callback"


@pytest.fixture
def unit_dir(tmp_path: Path) -> Path:
    """The unit as shipped, but starting the tornado-callback installed here."""
    command = shutil.which("tornado-callback")
    assert command is not None, "tornado-callback is not installed (pip install -e .)"
    text = UNIT.read_text()
    assert f"ExecStart={INSTALLED} %i" in text
    (tmp_path / UNIT.name).write_text(text.replace(INSTALLED, command))
    return tmp_path


def systemd_analyze(unit_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([require("systemd-analyze"), *args], cwd=unit_dir, capture_output=True, text=True,
                          timeout=60)


@pytest.mark.parametrize("role", ["serve", "worker"])
def test_each_role_of_the_unit_verifies_without_a_warning(unit_dir, role):
    done = systemd_analyze(unit_dir, "verify", f"tornado-callback@{role}.service")
    assert (done.returncode, done.stderr) == (0, "")


def test_the_unit_is_hardened(unit_dir):
    # systemd rates a unit's exposure from 0 (sealed) to 10; 3.5 is still "OK" (this one: 2.9).
    done = systemd_analyze(unit_dir, "security", "--offline=true", "--threshold=35", "tornado-callback@serve.service")
    assert done.returncode == 0, done.stdout + done.stderr


def test_sysusers_makes_the_user_the_unit_runs_as(tmp_path):
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    sysusers = REPO / "deploy" / "systemd" / "tornado-callback.sysusers.conf"
    done = subprocess.run([require("systemd-sysusers"), f"--root={root}", str(sysusers)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    user = next(line.split(":") for line in (root / "etc" / "passwd").read_text().splitlines())
    assert (user[0], user[5], user[6]) == ("tornado-callback", "/var/lib/tornado-callback", "/usr/sbin/nologin")
    assert {"User=tornado-callback", "Group=tornado-callback", "StateDirectory=tornado-callback"} \
        <= set(UNIT.read_text().splitlines())
