"""One write path per entity: the command line creates through the admin API's service, so
the same bad input gets the same refusal from a create command (a real subprocess) as from
``POST /api/v2/...`` (the real server), and neither stores anything."""

from __future__ import annotations

import pytest

from tests.admin_helpers import call, user_with_token
from tests.helpers import run_cli
from tornado_callback.accounts.service import LOCAL_ADMIN
from tornado_callback.admin.fields import ValidationError

pytestmark = pytest.mark.gen_test(timeout=60)


@pytest.fixture
def cli(database_url, tmp_path):
    def run(*args: str):
        return run_cli(*args, "--database-url", database_url, cwd=tmp_path)
    return run


async def count(fetch, admin, path: str) -> int:
    status, page = await call(fetch, "GET", path, admin)
    assert status == 200, page
    return page["count"]


async def refused_alike(fetch, cli, admin, command: tuple[str, ...], path: str, body: dict,
                        field: str, message: str) -> None:
    """``command`` and a POST of ``body`` to ``path`` are both refused with ``field: message``."""
    before = await count(fetch, admin, path)
    result = cli(*command)
    assert result.returncode == 2, result.stdout
    assert result.stderr.splitlines()[-1:] == [f"tornado-callback: error: {field}: {message}"], result.stderr
    assert "Traceback" not in result.stderr
    assert await call(fetch, "POST", path, admin, body) == (400, {field: [message]})
    assert await count(fetch, admin, path) == before


async def an_inventory(fetch, admin) -> int:
    status, inventory = await call(fetch, "POST", "/api/v2/inventories/", admin, {"name": "prod"})
    assert status == 201, inventory
    return inventory["id"]


async def test_inventory(fetch, cli, services):
    admin = await user_with_token(services, "root", superuser=True)
    # The command line used to store an inventory without a name.
    await refused_alike(fetch, cli, admin, ("inventory", "create", ""), "/api/v2/inventories/",
                        {"name": ""}, "name", "This field may not be blank.")


async def test_host(fetch, cli, services):
    admin = await user_with_token(services, "root", superuser=True)
    inventory = await an_inventory(fetch, admin)
    await refused_alike(fetch, cli, admin, ("host", "add", "prod", " web1"), f"/api/v2/inventories/{inventory}/hosts/",
                        {"name": " web1"}, "name", "Names may not begin or end with spaces.")


async def test_template(fetch, cli, services):
    admin = await user_with_token(services, "root", superuser=True)
    inventory = await an_inventory(fetch, admin)
    # The command line used to store a template without a playbook, whose every job failed.
    await refused_alike(fetch, cli, admin,
                        ("template", "create", "site", "--inventory", "prod", "--playbook", "", "--host-config-key", "k"),
                        "/api/v2/job_templates/",
                        {"name": "site", "inventory": inventory, "playbook": "", "host_config_key": "k"},
                        "playbook", "This field may not be blank.")


async def test_source(fetch, cli, services):
    admin = await user_with_token(services, "root", superuser=True)
    inventory = await an_inventory(fetch, admin)
    await refused_alike(fetch, cli, admin,
                        ("inventory", "source", "add", "prod", "cloud", "--path", "/dev/null", "--cache-timeout=-1"),
                        f"/api/v2/inventories/{inventory}/inventory_sources/",
                        {"name": "cloud", "source": "file", "source_path": "/dev/null", "update_cache_timeout": -1},
                        "update_cache_timeout", "Ensure this value is greater than or equal to 0.")


async def test_credential(fetch, services):
    """No command creates credentials; what creates one outside HTTP (the tests, the command line
    to come) calls the same service, as the local superuser. The API used to store this key."""
    admin = await user_with_token(services, "root", superuser=True)
    body = {"name": "deploy", "username": "deploy", "ssh_key_data": "not a key"}
    refusal = {"ssh_key_data": ["Not a PEM or OpenSSH private key."]}
    with pytest.raises(ValidationError) as raised:
        await services.admin.create("credentials", LOCAL_ADMIN, body)
    assert raised.value.body == refusal
    assert await call(fetch, "POST", "/api/v2/credentials/", admin, body) == (400, refusal)
    assert await count(fetch, admin, "/api/v2/credentials/") == 0
