"""``tornado-callback inventory import|sync|source add``, run as a user runs them."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.conftest import run_isolated
from tests.helpers import run_cli
from tests.inventory_scripts import InventoryScript
from tornado_callback.inventory.ansible_inventory import InventoryRunError, parse_inventory_json
from tornado_callback.store.database import Database
from tornado_callback.store.models import Host, HostKey, Inventory

INI = """\
[web]
web1 ansible_host=10.7.0.1
web2 ansible_host=10.7.0.2

[web:vars]
http_port=8080
"""


def cli(database_url: str, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, "--database-url", database_url, cwd=Path.cwd(), input=stdin)


def stored_hosts(database_url: str, inventory: str) -> dict[str, tuple[dict, list[str]]]:
    """{host name: (variables, indexed addresses)} as the store holds them."""

    async def read() -> dict[str, tuple[dict, list[str]]]:
        db = Database(database_url)
        try:
            async with db.session() as session:
                inventory_id = await session.scalar(select(Inventory.id).where(Inventory.name == inventory))
                hosts = {h.id: h for h in await session.scalars(
                    select(Host).where(Host.inventory_id == inventory_id))}
                keys = await session.scalars(select(HostKey).where(
                    HostKey.inventory_id == inventory_id, HostKey.kind == "address"))
                addresses: dict[int, list[str]] = {i: [] for i in hosts}
                for key in keys:
                    addresses[key.host_id].append(key.value)
            return {h.name: (h.variables, sorted(addresses[i])) for i, h in hosts.items()}
        finally:
            await db.close()

    return run_isolated(read())


def test_import_a_file_then_json_on_stdin(database_url: str, tmp_path: Path) -> None:
    ini = tmp_path / "hosts.ini"
    ini.write_text(INI)
    first = cli(database_url, "inventory", "import", "site", str(ini))
    assert first.returncode == 0, first.stderr
    assert "successful; 2 added, 0 updated, 0 removed" in first.stdout

    listing = {"_meta": {"hostvars": {"db1": {"ansible_host": "10.7.0.9"}}},
               "all": {"children": ["ungrouped", "db"]}, "db": {"hosts": ["db1"]}}
    second = cli(database_url, "inventory", "import", "site", "-", stdin=json.dumps(listing))
    assert second.returncode == 0, second.stderr
    assert "successful; 1 added" in second.stdout
    assert stored_hosts(database_url, "site") == {
        "web1": ({"ansible_host": "10.7.0.1"}, ["10.7.0.1"]),
        "web2": ({"ansible_host": "10.7.0.2"}, ["10.7.0.2"]),
        "db1": ({"ansible_host": "10.7.0.9"}, ["10.7.0.9"]),
    }


def test_import_of_unreadable_input_fails_and_changes_nothing(database_url: str, tmp_path: Path) -> None:
    ini = tmp_path / "hosts.ini"
    ini.write_text(INI)
    assert cli(database_url, "inventory", "import", "site", str(ini)).returncode == 0
    bad = cli(database_url, "inventory", "import", "site", "-", "--overwrite", stdin="<html>oops")
    assert bad.returncode == 1
    assert "failed" in bad.stdout
    assert "output is not JSON" in bad.stderr
    missing = cli(database_url, "inventory", "import", "site", str(tmp_path / "nope.ini"), "--overwrite")
    assert missing.returncode == 1
    assert "ansible-inventory exited with status 1" in missing.stderr
    assert sorted(stored_hosts(database_url, "site")) == ["web1", "web2"]


def test_source_add_then_sync(database_url: str, tmp_path: Path) -> None:
    script = InventoryScript(tmp_path / "script")
    script.set_hosts({"s1": {"ansible_host": "10.7.1.1"}})
    assert cli(database_url, "inventory", "create", "cloud").returncode == 0
    added = cli(database_url, "inventory", "source", "add", "cloud", "ec2", "--source", "script",
                "--path", str(script.path), "--update-on-launch", "--cache-timeout", "60")
    assert added.returncode == 0, added.stderr
    source_id = added.stdout.split("(id ")[1].split(")")[0]
    synced = cli(database_url, "inventory", "sync", source_id)
    assert synced.returncode == 0, synced.stderr
    assert "successful; 1 added" in synced.stdout
    assert stored_hosts(database_url, "cloud") == {"s1": ({"ansible_host": "10.7.1.1"}, ["10.7.1.1"])}

    script.set_mode("fail")
    failed = cli(database_url, "inventory", "sync", source_id)
    assert failed.returncode == 1
    assert "cloud API said: 503 boom" in failed.stderr
    unknown = cli(database_url, "inventory", "sync", "999")
    assert unknown.returncode == 2
    assert "no inventory source 999" in unknown.stderr


# -- reading ansible-inventory's JSON ---------------------------------------------

def test_script_shorthand_groups_and_implicit_children_are_understood() -> None:
    data = parse_inventory_json(json.dumps({
        "web": ["w1", "w2"],
        "all": {"vars": {"dc": 1}, "hosts": ["lonely"]},
        "ungrouped": {"hosts": ["u1"]},
        "prod": {"children": ["web", "ungrouped", "dbs"]},
    }))
    assert sorted(data.hosts) == ["lonely", "u1", "w1", "w2"]
    assert sorted(data.groups) == ["dbs", "prod", "web"]
    assert data.groups["prod"].children == ("web", "ungrouped", "dbs")
    assert data.variables == {"dc": 1}


@pytest.mark.parametrize("text, reason", [
    ("[]", "output is not a JSON object of groups"),
    ('{"_meta": {"hostvars": []}}', "_meta.hostvars is not an object"),
    ('{"_meta": {"hostvars": {"a": [1]}}}', "host a: variables are not an object"),
    ('{"web": {"hosts": "a"}}', "group web: hosts is not a list"),
    ('{"web": {"hosts": [" a"]}}', "host name ' a' is not usable"),
    ('{"web": {"hosts": [7]}}', "host name 7 is not usable"),
    ('{"web": 3}', "group web is neither an object nor a list of hosts"),
])
def test_malformed_listings_are_refused_with_a_reason(text: str, reason: str) -> None:
    with pytest.raises(InventoryRunError) as caught:
        parse_inventory_json(text)
    assert caught.value.reason == reason
