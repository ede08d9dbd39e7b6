"""The account, inventory and template commands, run as a user runs them."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import time

import pytest
from sqlalchemy.engine import make_url

from tests.helpers import ServerProcess, cli_env, free_port, run_cli


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


def assert_one_line_error(result: subprocess.CompletedProcess[str], message: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("tornado-callback: error: ")]
    assert len(errors) == 1 and message in errors[0], result.stderr


@pytest.mark.parametrize("args, message", [
    (("host", "add", "nope", "web1"), "no inventory 'nope'"),
    (("token", "create", "nobody"), "no user 'nobody'"),
    (("template", "create", "t", "--inventory", "missing", "--playbook", "x.yml"), "no inventory"),
    (("host", "add", "1", "web1", "--var", "novalue"), "expected KEY=VALUE"),
])
def test_mistakes_are_reported_without_traceback(cli, args, message):
    assert_one_line_error(cli(*args), message)


def test_host_add_of_a_host_already_there_updates_it(cli):
    assert cli("inventory", "create", "prod").returncode == 0
    first = cli("host", "add", "prod", "web1", "--var", "ansible_host=10.0.0.1")
    again = cli("host", "add", "prod", "web1", "--var", "ansible_host=10.0.0.2")
    assert first.stdout == again.stdout == "saved host web1 (id 1) in inventory prod\n", again.stderr
    assert cli("template", "create", "site", "--inventory", "prod", "--playbook", "site.yml").returncode == 0
    assert "matching:  web1\n" in cli("explain", "site", "--address", "10.0.0.2").stdout
    assert "matching:  (none)\n" in cli("explain", "site", "--address", "10.0.0.1").stdout


def test_a_user_is_not_created_without_a_password_unasked(cli):
    # No terminal to ask on (stdin is not one here), no --password-stdin: refused.
    assert_one_line_error(cli("user", "create", "bob"), "--password-stdin")
    assert_one_line_error(cli("token", "create", "bob"), "no user 'bob'")
    # An empty line on stdin is the way to a user who signs in with tokens only, and is said.
    created = cli("user", "create", "bob", "--password-stdin", input="\n")
    assert created.returncode == 0, created.stderr
    assert "without a password" in created.stdout


def test_a_sqlite_file_in_a_missing_directory(tmp_path):
    result = run_cli("jobs", "list", "--database-url", f"sqlite:///{tmp_path}/nowhere/callback.db", cwd=tmp_path)
    assert_one_line_error(result, f"cannot open the database {tmp_path}/nowhere/callback.db: "
                                  f"there is no directory {tmp_path}/nowhere")


def test_postgresql_unreachable(tmp_path):
    url = f"postgresql://tcb:s3cret@127.0.0.1:{free_port()}/callbacks"  # nothing listens there
    result = run_cli("jobs", "list", "--database-url", url, cwd=tmp_path)
    assert_one_line_error(result, f"cannot open the database postgresql+asyncpg://tcb:***@127.0.0.1:"
                                  f"{make_url(url).port}/callbacks: Connect call failed")
    assert "s3cret" not in result.stderr


@pytest.mark.parametrize("args, message", [
    (("--certfile", "missing.pem"), "cannot load the TLS certificate from missing.pem: No such file or directory"),
    (("--keyfile", "key.pem"), "a keyfile without a certfile"),
    (("--port", "99999"), "port 99999 is not a TCP port (1 to 65535)"),
    (("--port", "0"), "port 0 is not a TCP port"),
])
def test_serve_flags_that_cannot_work(tmp_path, args, message):
    assert_one_line_error(run_cli("serve", "--no-worker", *args, cwd=tmp_path), message)


@pytest.mark.parametrize("command", [("jobs", "list"), ("attempts",)])
def test_a_reader_that_stops_early_gets_no_traceback(database_url, tmp_path, command):
    """``tornado-callback jobs list | head -5``: the reader leaves before the listing ends."""
    process = subprocess.Popen(
        [sys.executable, "-m", "tornado_callback", *command, "--database-url", database_url],
        cwd=tmp_path, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    process.stdout.close()  # gone before a line is written
    stderr = process.stderr.read()
    process.stderr.close()
    assert process.wait(timeout=120) == 2
    assert "Traceback" not in stderr and "BrokenPipe" not in stderr, stderr


def test_every_command_says_when_it_creates_a_database(new_database_url, tmp_path):
    first = run_cli("inventory", "create", "prod", "--database-url", new_database_url, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    url = make_url(new_database_url)  # a SQLite file by its path, PostgreSQL by its URL
    shown = url.database if url.get_backend_name() == "sqlite" else url.render_as_string(hide_password=True)
    assert f"creating a new database: {shown}" in first.stderr
    again = run_cli("inventory", "create", "stage", "--database-url", new_database_url, cwd=tmp_path)
    assert again.returncode == 0 and "creating a new database" not in again.stderr, again.stderr


def test_a_command_run_elsewhere_names_the_database_it_creates(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = run_cli("jobs", "list", cwd=elsewhere)
    assert result.returncode == 0, result.stderr
    assert f"creating a new database: {elsewhere}/tornado-callback.db" in result.stderr


def test_template_create_says_where_it_looked_for_the_playbook(cli, tmp_path):
    assert cli("inventory", "create", "prod").returncode == 0
    (tmp_path / "project").mkdir()
    (tmp_path / "project" / "site.yml").write_text("- hosts: all\n  tasks: []\n")
    missing = cli("template", "create", "a", "--inventory", "prod", "--playbook", "sitee.yml",
                  "--project-dir", "project")
    assert missing.returncode == 0, missing.stderr
    assert f"warning: Playbook not found: {tmp_path}/project/sitee.yml" in missing.stderr
    found = cli("template", "create", "b", "--inventory", "prod", "--playbook", "site.yml", "--project-dir", "project")
    assert found.returncode == 0 and "warning" not in found.stderr, found.stderr
    nowhere = cli("template", "create", "c", "--inventory", "prod", "--playbook", "site.yml")
    assert "warning: The job template has no project_dir" in nowhere.stderr


def test_top_level_help_is_written_for_users(tmp_path):
    result = run_cli("--help", cwd=tmp_path)
    assert result.returncode == 0
    assert "tornado-callback serve --demo" in result.stdout
    assert "host_config_key" in result.stdout and "TORNADO_CALLBACK_DATABASE_URL" in result.stdout
    assert "never SQL" not in result.stdout and "``" not in result.stdout


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
