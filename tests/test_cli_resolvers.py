"""``tornado-callback plugins list`` and ``tornado-callback explain``, run as a user runs them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


def cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tornado_callback", *args],
        cwd=cwd, capture_output=True, text=True, timeout=60,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(Path(__file__).parents[1])},
    )


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    (tmp_path / "plugins.toml").write_text(
        "[resolvers.reverse_dns]\nenabled = false\n"
        "[resolvers.ip_match]\npriority = 350\n"
        '[resolvers.x_forwarded_for]\ntrusted_proxies = ["127.0.0.1/32"]\n'
    )
    return tmp_path


def table(stdout: str) -> list[list[str]]:
    return [line.split() for line in stdout.splitlines() if line.strip()]


def test_plugins_list_shows_run_order_from_plugins_toml(workdir):
    result = cli(workdir, "plugins", "list")
    assert result.returncode == 0, result.stderr
    assert table(result.stdout) == [
        ["RESOLVER", "PRIORITY", "ENABLED", "SOURCE"],
        ["cloud_metadata", "400", "yes", "resolvers.cloud_metadata"],
        ["ip_match", "350", "yes", "resolvers.ip_match"],
        ["x_forwarded_for", "300", "yes", "resolvers.x_forwarded_for"],
        ["forward_dns", "150", "yes", "resolvers.forward_dns"],
        ["reverse_dns", "100", "no", "resolvers.reverse_dns"],
    ]
    assert not (workdir / "tornado-callback.db").exists()  # no database needed


def test_a_configured_resolver_that_is_not_installed_is_a_startup_error(workdir):
    (workdir / "plugins.toml").write_text("[resolvers.my_team_resolver]\npriority = 250\n")
    result = cli(workdir, "plugins", "list")
    assert result.returncode == 2
    assert "not installed: my_team_resolver" in result.stderr


def test_explain_prints_the_trace_as_a_table(workdir):
    (workdir / "plugins.toml").write_text(
        '[resolvers.reverse_dns]\nenabled = false\n'
        '[resolvers.x_forwarded_for]\ntrusted_proxies = ["127.0.0.1/32"]\n'
    )
    for args in (("inventory", "create", "inv"),
                 ("host", "add", "inv", "web1", "--var", "ansible_host=10.0.0.5"),
                 ("template", "create", "tpl", "--inventory", "inv", "--playbook", "site.yml")):
        assert cli(workdir, *args).returncode == 0
    result = cli(workdir, "explain", "tpl", "--address", "127.0.0.1",
                 "--header", "X-Forwarded-For: 10.0.0.9, 10.0.0.5")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "client:    10.0.0.5" in lines
    assert "matching:  web1" in lines
    rows = {row[0]: row for row in table(result.stdout)[5:]}
    assert list(rows) == ["RESOLVER", "cloud_metadata", "x_forwarded_for", "ip_match"]
    assert rows["x_forwarded_for"][1:3] == ["300", "no_match"]
    assert " ".join(rows["x_forwarded_for"][4:]) == (
        "peer 127.0.0.1 is a trusted proxy; client 10.0.0.5")
    assert rows["ip_match"][1:4] == ["200", "matched", "web1"]
    assert " ".join(rows["ip_match"][5:]) == "client address 10.0.0.5"

    result = cli(workdir, "explain", "tpl", "--address", "not-an-ip")
    assert (result.returncode, result.stderr.splitlines()[-1]) == (
        2, "tornado-callback: error: address 'not-an-ip' is not an IP address.")
