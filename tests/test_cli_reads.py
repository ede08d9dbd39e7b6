"""The commands that read (issue 19): what they print as tables, and with ``--json``; their errors;
and, beside a real server, that a rotated key and a new password count at once.

They run ``main`` in this process: a subprocess each would cost a second and a half
of start-up (tests/test_cli_commands.py runs the program itself).
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import re
import urllib.error
import urllib.request
from dataclasses import dataclass

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import create_async_engine

from tests.helpers import OFFLINE_PLUGINS, ServerProcess
from tornado_callback.cli import main
from tornado_callback.store.models import Job


@dataclass
class Ran:
    status: int
    out: str
    err: str


@pytest.fixture
def tcb(database_url, tmp_path, monkeypatch, capsys):
    """``tornado-callback ARGS`` on the test's database; a wide terminal unless ``columns`` says."""
    monkeypatch.chdir(tmp_path)
    for name in [n for n in os.environ if n.startswith("TORNADO_CALLBACK_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("TORNADO_CALLBACK_SECRET_KEY", Fernet.generate_key().decode())

    def run(*args: str, stdin: str = "", columns: int = 500) -> Ran:
        monkeypatch.setenv("COLUMNS", str(columns))
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
        capsys.readouterr()
        status = main([*args, "--database-url", database_url, "--plugins", str(OFFLINE_PLUGINS)])
        out, err = capsys.readouterr()
        return Ran(status, out, err)
    return run


@pytest.fixture
def world(tcb):
    """An inventory with two hosts, a template on it with a known key, a superuser."""
    for args in (("inventory", "create", "prod", "--description", "production"),
                 ("host", "add", "prod", "web1", "--var", "ansible_host=10.0.0.5"),
                 ("host", "add", "prod", "db1", "--var", 'tags=["a", "b"]'),
                 ("template", "create", "site", "--inventory", "prod", "--playbook", "site.yml",
                  "--host-config-key", "k3y-of-site")):
        assert tcb(*args).status == 0, args
    # Without a password (no hash to compute): test_cli_key_rotation.py sets one.
    assert tcb("user", "create", "alice", "--superuser", "--password-stdin", stdin="\n").status == 0
    return tcb


def table(text: str) -> list[list[str]]:
    """A printed table's lines, cut into cells (two spaces or more apart)."""
    return [re.split(r"\s{2,}", line) for line in text.splitlines()]


def test_template_list_and_show(world):
    listed = world("template", "list")
    assert table(listed.out)[0] == ["ID", "NAME", "INVENTORY", "PLAYBOOK", "CALLBACKS", "MODIFIED"]
    assert table(listed.out)[1][:5] == ["1", "site", "prod", "site.yml", "on"]
    assert "k3y-of-site" not in listed.out  # a listing is read over shoulders
    [template] = json.loads(world("template", "list", "--json").out)
    assert (template["type"], template["name"], template["host_config_key"]) == ("job_template", "site", "k3y-of-site")
    assert template["related"]["callback"] == "/api/v2/job_templates/1/callback/"

    for ref in ("site", "1"):
        shown = world("template", "show", ref)
        assert shown.status == 0, shown.err
        fields = {row[0]: row[1:] for row in table(shown.out)}
        assert fields["host_config_key"] == ["k3y-of-site"]  # the local administrator may read it
        assert fields["callback URL"] == ["http://127.0.0.1:8052/api/v2/job_templates/1/callback/"]
        assert fields["playbook"] == ["site.yml"] and fields["ask_variables_on_launch"] == ["no"]
    assert json.loads(world("template", "show", "site", "--json").out) == template


def test_inventory_list_and_show_and_its_hosts(world):
    assert table(world("inventory", "list").out)[:2] == [
        ["ID", "NAME", "DESCRIPTION", "REGISTERS HOSTS", "MODIFIED"],
        ["1", "prod", "production", "no", table(world("inventory", "list").out)[1][4]]]
    [inventory] = json.loads(world("inventory", "list", "--json").out)
    assert (inventory["type"], inventory["name"]) == ("inventory", "prod")
    assert json.loads(world("inventory", "show", "prod", "--json").out) == inventory
    fields = {row[0]: row[1:] for row in table(world("inventory", "show", "1").out)}
    assert fields["hosts"] == ["2"] and fields["description"] == ["production"]

    hosts = world("host", "list", "prod")
    assert table(hosts.out) == [
        ["ID", "NAME", "ENABLED", "REGISTERED", "VARIABLES"],
        ["1", "web1", "yes", "no", '{ "ansible_host": "10.0.0.5" }'],
        ["2", "db1", "yes", "no", '{ "tags": [ "a", "b" ] }'],
    ]
    listed = json.loads(world("host", "list", "1", "--json").out)
    assert [(h["type"], h["name"], json.loads(h["variables"])) for h in listed] == [
        ("host", "web1", {"ansible_host": "10.0.0.5"}), ("host", "db1", {"tags": ["a", "b"]})]


def test_user_list_shows_no_password(world):
    assert table(world("user", "list").out)[1][:3] == ["1", "alice", "yes"]
    [user] = json.loads(world("user", "list", "--json").out)
    assert (user["type"], user["username"], user["is_superuser"]) == ("user", "alice", True)
    assert not any("password" in name for name in user)


def test_a_table_fits_the_terminal_and_json_is_whole(world):
    long_value = "x" * 300
    assert world("host", "add", "prod", "web1", "--var", f"motd={long_value}").status == 0
    narrow = world("host", "list", "prod", columns=60)
    rows = narrow.out.splitlines()
    assert max(len(line) for line in rows) <= 60, narrow.out
    assert rows[1].startswith("1   web1  yes      no          {") and rows[1].endswith("…")
    assert table(narrow.out)[2][:2] == ["2", "db1"]
    whole = json.loads(world("host", "list", "prod", "--json", columns=60).out)
    assert json.loads(whole[0]["variables"])["motd"] == long_value


def test_no_control_character_reaches_the_terminal(world):
    assert world("inventory", "create", "other", "--description", "\x1b]0;owned\x07\x9b2J").status == 0
    for args in (("inventory", "list"), ("inventory", "list", "--json"), ("inventory", "show", "other")):
        shown = world(*args).out
        assert not re.search(r"[\x00-\x09\x0b-\x1f\x7f-\x9f]", shown), shown
    assert "?]0;owned??2J" in world("inventory", "list").out


def add_job(database_url: str, output: str) -> None:
    """A finished job of the world's template with ``output``, as a playbook printed it."""
    async def add() -> None:
        engine = create_async_engine(database_url)
        try:
            async with engine.begin() as db:
                await db.execute(insert(Job).values(
                    job_template_id=1, inventory_id=1, name="site", status="successful",
                    launch_type="callback", limit="web1", result_stdout=output))
        finally:
            await engine.dispose()
    asyncio.run(add())


def test_no_control_character_of_a_jobs_output_reaches_the_terminal(world, database_url):
    # A host prints what it likes (a fact, a command's output): a title, a cleared screen, a clipboard.
    add_job(database_url, "ok: [web1] => \x1b]0;owned\x07\x1b[2J\x1b]52;c;cm0gLXJmIH4K\x07\x9b1m\ttabbed\ndone\n")
    shown = world("jobs", "show", "1")
    assert shown.status == 0, shown.err
    assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]", shown.out), repr(shown.out)
    assert "ok: [web1] => ?]0;owned??[2J?]52;c;cm0gLXJmIH4K??1m\ttabbed\ndone" in shown.out


def test_set_key_rotates_the_key_and_prints_the_new_one(world):
    rotated = world("template", "set-key", "site")
    assert rotated.status == 0, rotated.err
    new_key = re.search(r"^host_config_key: (\S+)$", rotated.out, re.M)[1]
    assert new_key != "k3y-of-site" and len(new_key) >= 32
    assert "callback URL:    http://127.0.0.1:8052/api/v2/job_templates/1/callback/" in rotated.out
    assert json.loads(world("template", "show", "1", "--json").out)["host_config_key"] == new_key
    assert world("template", "set-key", "1", "--key", "chosen").status == 0
    assert json.loads(world("template", "show", "site", "--json").out)["host_config_key"] == "chosen"
    removed = world("template", "set-key", "site", "--key", "")
    assert "key removed" in removed.out
    assert table(world("template", "list").out)[1][4] == "off"


def one_line_error(ran: Ran) -> str:
    assert ran.status == 2, ran.out
    assert "Traceback" not in ran.err
    [line] = ran.err.splitlines()
    return line


MISTAKES = [
    (("template", "show", "nope"), "no job template 'nope'"),
    (("template", "show", "99", "--json"), "no job template '99'"),
    (("template", "set-key", "nope"), "no job template 'nope'"),
    (("inventory", "show", "nope"), "no inventory 'nope'"),
    (("host", "list", "nope"), "no inventory 'nope'"),
    (("attempts", "--template", "nope"), "no job template 'nope'"),
    (("user", "set-password", "nobody", "--password-stdin"), "no user 'nobody'"),
    # The admin API's refusals, worded as a PATCH gets them.
    (("template", "set-key", "site", "--key", "k" * 1025),
     "host_config_key: Ensure this field has no more than 1024 characters."),
    (("user", "set-password", "alice", "--password-stdin"), "password: This field may not be blank."),
]


def test_mistakes_are_one_line_and_exit_2(world):
    for args, message in MISTAKES:
        assert one_line_error(world(*args, stdin="\n")) == f"tornado-callback: error: {message}", args
    assert json.loads(world("template", "show", "site", "--json").out)["host_config_key"] == "k3y-of-site"


def http(url: str, *, body: bytes | None = None, user: str = "", password: str = "") -> tuple[int, object]:
    """(status, parsed JSON) of a GET, or of a POST of a callback's form ``body``."""
    request = urllib.request.Request(url, data=body)
    if user:
        request.add_header("Authorization", "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)


def test_a_rotated_key_and_a_new_password_count_at_once_and_json_is_the_api(world, database_url, tmp_path):
    assert world("host", "add", "prod", "local", "--var", "ansible_host=127.0.0.1").status == 0
    server = ServerProcess("--database-url", database_url, "--no-worker", cwd=tmp_path)
    try:
        server.wait_for("listening on")
        callback = f"{server.base_url}/api/v2/job_templates/1/callback/"
        # The commands write from this process, the server reads in its own: as from another machine.
        rotated = world("template", "set-key", "site")
        assert rotated.status == 0, rotated.err
        new_key = re.search(r"^host_config_key: (\S+)$", rotated.out, re.M)[1]
        assert http(callback, body=b"host_config_key=k3y-of-site")[0] == 403
        assert http(callback, body=f"host_config_key={new_key}".encode()) == (202, {"job": 1, "url": "/api/v2/jobs/1/"})

        changed = world("user", "set-password", "alice", "--password-stdin", stdin="n3w-pw\n")
        assert (changed.status, changed.out) == (0, "password of user alice (id 1) changed\n"), changed.err
        assert http(f"{server.base_url}/api/v2/me/", user="alice", password="wrong")[0] == 401
        status, me = http(f"{server.base_url}/api/v2/me/", user="alice", password="n3w-pw")
        assert (status, me["results"][0]["username"]) == (200, "alice")

        # --json prints what the REST API answers.
        api = {path: http(f"{server.base_url}/api/v2/{path}", user="alice", password="n3w-pw")[1]
               for path in ("job_templates/1/", "job_templates/1/callback_attempts/", "inventories/1/hosts/")}
    finally:
        assert server.stop() == 0, server.output
    assert json.loads(world("template", "show", "site", "--json").out) == api["job_templates/1/"]
    assert json.loads(world("attempts", "--template", "site", "--json").out) == \
        api["job_templates/1/callback_attempts/"]["results"]
    assert json.loads(world("host", "list", "prod", "--json").out) == api["inventories/1/hosts/"]["results"]

    attempts = world("attempts", "--template", "site")
    newest, refused = attempts.out.splitlines()[1:3]
    assert re.search(r"127\.0\.0\.1\s+202\s+local\s+1$", newest), attempts.out
    assert re.search(r"127\.0\.0\.1\s+403\s+You do not have permission", refused), attempts.out
    assert "k3y-of-site" not in attempts.out and new_key not in attempts.out


@pytest.mark.parametrize("command", [("jobs", "list"), ("attempts",)])
def test_a_limit_is_a_positive_number(tcb, capsys, command):
    with pytest.raises(SystemExit) as stopped:
        tcb(*command, "--limit", "0")
    assert stopped.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == \
        f"tornado-callback {' '.join(command)}: error: argument --limit: '0' is not a number from 1 to 2147483647"
