"""The account, inventory and template commands, run as a user runs them."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import time

import pytest

from tests.helpers import ServerProcess, run_cli


@pytest.fixture
def cli(database_url, tmp_path):
    def run(*args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        return run_cli(*args, "--database-url", database_url, cwd=tmp_path, input=input)
    return run


def test_setup_from_the_command_line_then_callback(cli, database_url, tmp_path):
    assert cli("db", "upgrade").returncode == 0
    created = cli("user", "create", "alice", "--superuser", "--password-stdin", input="alicepw\n")
    assert created.returncode == 0, created.stderr
    assert "superuser" in created.stdout
    token = cli("token", "create", "alice")
    assert token.returncode == 0 and "shown only now" in token.stderr
    assert cli("inventory", "create", "prod").returncode == 0
    added = cli("host", "add", "prod", "web1", "--var", "ansible_host=127.0.0.1", "--var", "port=22")
    assert added.returncode == 0, added.stderr
    template = cli("template", "create", "site", "--inventory", "prod", "--playbook", "site.yml",
                   "--host-config-key", "k3y", "--ask-variables-on-launch")
    assert template.returncode == 0, template.stderr
    assert "host_config_key: k3y" in template.stdout
    url = re.search(r"callback URL:\s+(\S+)", template.stdout).group(1)
    assert url.endswith("/api/v2/job_templates/1/callback/")

    # --no-worker: the job stays pending for the listing below (running it is tested elsewhere).
    server = ServerProcess("--database-url", database_url, "--no-worker", cwd=tmp_path)
    try:
        server.wait_for("listening on")
        callback = url.replace("http://127.0.0.1:8052", server.base_url)
        posted = subprocess.run(
            ["curl", "-s", "-H", "Content-Type: application/json",
             "-d", '{"host_config_key": "k3y", "extra_vars": "a: 1"}', callback],
            capture_output=True, text=True, timeout=30)
        assert json.loads(posted.stdout)["job"] == 1
        explained = subprocess.run(
            ["curl", "-s", "-H", f"Authorization: Bearer {token.stdout.strip()}", callback],
            capture_output=True, text=True, timeout=30)
        assert json.loads(explained.stdout)["matching_hosts"] == ["web1"]
    finally:
        assert server.stop() == 0, server.output

    jobs = cli("jobs", "list")
    assert re.search(r"^1\s+1\s+pending\s+callback\s+web1\s+ip_match", jobs.stdout, re.M), jobs.stdout
    attempts = cli("attempts", "--template", "1")
    assert re.search(r"127\.0\.0\.1\s+127\.0\.0\.1\s+202\s+web1\s+1", attempts.stdout), attempts.stdout
    assert "k3y" not in attempts.stdout


@pytest.mark.parametrize("args, message", [
    (("host", "add", "nope", "web1"), "no inventory 'nope'"),
    (("user", "create", "bob"), None),
    (("token", "create", "nobody"), "no user 'nobody'"),
    (("template", "create", "t", "--inventory", "missing", "--playbook", "x.yml"), "no inventory"),
    (("host", "add", "1", "web1", "--var", "novalue"), "expected KEY=VALUE"),
])
def test_mistakes_are_reported_without_traceback(cli, args, message):
    result = cli(*args)
    if message is None:  # creating a user without a password is allowed (token-only accounts)
        assert result.returncode == 0, result.stderr
        return
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_unknown_resolver_in_plugins_file_refuses_to_start(tmp_path):
    plugins = tmp_path / "plugins.toml"
    plugins.write_text("[resolvers.not_installed]\npriority = 5\n")
    result = run_cli("serve", "--plugins", str(plugins), "--port", "1", cwd=tmp_path)
    assert result.returncode == 2
    assert "not_installed" in result.stderr and "not installed" in result.stderr
    assert "Traceback" not in result.stderr


def test_unusable_database_url_is_a_clear_error(tmp_path):
    result = run_cli("jobs", "list", "--database-url", "mysql://x@y/z", cwd=tmp_path)
    assert result.returncode == 2
    assert "unsupported database URL" in result.stderr


def test_a_callback_in_flight_when_the_server_stops_is_answered(cli, database_url, tmp_path):
    assert cli("db", "upgrade").returncode == 0
    assert cli("inventory", "create", "prod").returncode == 0
    assert cli("host", "add", "prod", "web1", "--var", "ansible_host=127.0.0.1").returncode == 0
    assert cli("template", "create", "site", "--inventory", "prod", "--playbook", "site.yml",
               "--host-config-key", "k3y").returncode == 0
    server = ServerProcess("--database-url", database_url, "--no-worker", cwd=tmp_path)
    try:
        server.wait_for("listening on")
        body = b'{"host_config_key": "k3y"}'
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as client:
            client.sendall(b"POST /api/v2/job_templates/1/callback/ HTTP/1.1\r\nHost: x\r\n"
                           b"Content-Type: application/json\r\n"
                           b"Content-Length: %d\r\n\r\n" % len(body) + body[:10])
            time.sleep(0.5)  # the request is in flight: headers read, body incomplete
            server.proc.terminate()
            time.sleep(0.5)
            client.sendall(body[10:])
            answer = client.recv(65536).decode()
        assert answer.startswith("HTTP/1.1 202"), answer
        assert json.loads(answer.partition("\r\n\r\n")[2]) == {"job": 1, "url": "/api/v2/jobs/1/"}
        assert server.proc.wait(timeout=30) == 0
    finally:
        assert server.stop() == 0, server.output
    assert "Traceback" not in server.output, server.output
    assert re.search(r"^1\s+1\s+pending\s+callback\s+web1", cli("jobs", "list").stdout, re.M)
