"""One date format in every answer, and a SQLite database only its owner may read (issue 15)."""

from __future__ import annotations

import re
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.admin_helpers import SECRET_KEY, call, seed_world, user_with_token
from tests.helpers import ServerProcess, run_cli
from tornado_callback.admin.handlers import OpenAPIHandler
from tornado_callback.app import api_endpoints
from tornado_callback.config import PluginsConfig, Settings
from tornado_callback.http.prometheus import MetricsHandler
from tornado_callback.http.root import HomeHandler

LOOKS_LIKE_A_MOMENT = re.compile(r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d")
API_MOMENT = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?Z")


@pytest.fixture
def settings(database_url: str, plugins_config: PluginsConfig) -> Settings:
    return Settings(database_url=database_url, plugins=plugins_config, secret_key=SECRET_KEY)


def strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)


@pytest.mark.gen_test(timeout=60)
async def test_every_answer_writes_moments_one_way(services, fetch):
    root_auth = await user_with_token(services, "root", superuser=True)
    root = await services.accounts.authenticate(root_auth["Authorization"])
    world = await seed_world(services, root)
    _, job = await call(fetch, "POST", f"/api/v2/job_templates/{world.template}/launch/", root_auth, {})
    callback = await fetch(f"/api/v2/job_templates/{world.template}/callback/", method="POST",
                           body="host_config_key=k3y")
    assert callback.code == 202
    update = await services.inventory_sync.update(world.source)
    await services.accounts.grant("root", "job_template", world.template, "read")
    _, tokens = await call(fetch, "GET", "/api/v2/tokens/", root_auth)
    ids = {"inventories": world.inventory, "hosts": world.host, "groups": world.group,
           "inventory_sources": world.source, "job_templates": world.template,
           "credentials": world.credential, "jobs": job["id"], "inventory_updates": update.id,
           "users": root.id, "tokens": tokens["results"][0]["id"]}
    moments = {}
    for endpoint in api_endpoints():
        # The OpenAPI document and the Prometheus text format write no moment of ours; / leads to the console.
        if endpoint.handler in (OpenAPIHandler, MetricsHandler, HomeHandler) \
                or not any(op.method == "GET" for op in endpoint.operations):
            continue
        path = endpoint.path.replace("{id}", str(ids.get(endpoint.path.removeprefix("/api/v2/").split("/")[0])))
        status, body = await call(fetch, "GET", path, root_auth)
        assert status == 200, path
        moments[path] = [s for s in strings(body) if LOOKS_LIKE_A_MOMENT.match(s)]
    assert len(moments[f"/api/v2/inventory_updates/{update.id}/"]) == 4  # created, modified, started, finished
    assert all(moments[path] for path in (f"/api/v2/jobs/{job['id']}/", "/api/v2/tokens/",
                                          f"/api/v2/job_templates/{world.template}/callback_attempts/",
                                          f"/api/v2/job_templates/{world.template}/roles/"))
    written_otherwise = {path: [m for m in found if not API_MOMENT.fullmatch(m)] for path, found in moments.items()}
    assert {path: found for path, found in written_otherwise.items() if found} == {}


@pytest.mark.gen_test(timeout=60)
async def test_the_command_line_writes_moments_and_takes_ids_as_the_api_does(services, fetch, database_url, tmp_path):
    root_auth = await user_with_token(services, "root", superuser=True)
    world = await seed_world(services, await services.accounts.authenticate(root_auth["Authorization"]))
    assert (await fetch(f"/api/v2/job_templates/{world.template}/callback/", method="POST",
                        body="host_config_key=k3y")).code == 202
    for command in (("jobs", "list"), ("jobs", "show", "1"), ("attempts",)):
        shown = run_cli(*command, "--database-url", database_url, cwd=tmp_path)
        assert shown.returncode == 0, shown.stderr
        assert re.search(r"\b\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\b", shown.stdout), shown.stdout
        assert "+00:00" not in shown.stdout
    refused = run_cli("jobs", "show", str(2**31), "--database-url", database_url, cwd=tmp_path)
    assert refused.returncode == 2
    assert refused.stderr.splitlines()[-1] == \
        "tornado-callback jobs show: error: argument id: '2147483648' is not an id (1 to 2147483647)"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_sqlite_database_is_readable_by_its_owner_only(tmp_path):
    database = tmp_path / "new.db"
    server = ServerProcess("--database-url", f"sqlite:///{database}", "--no-worker", cwd=tmp_path)
    try:
        server.wait_for("listening on")
        files = [database, Path(f"{database}-wal"), Path(f"{database}-shm")]
        assert {f.name: mode(f) for f in files} == {f.name: 0o600 for f in files}
    finally:
        assert server.stop() == 0, server.output
    assert "may be read by other users" not in server.output


def test_an_existing_database_keeps_its_mode_and_is_named_in_a_warning(tmp_path):
    database = tmp_path / "shared.db"
    database.touch(mode=0o640)
    database.chmod(0o640)  # whatever the umask
    upgraded = run_cli("db", "upgrade", "--database-url", f"sqlite:///{database}", cwd=tmp_path)
    assert upgraded.returncode == 0, upgraded.stderr
    assert mode(database) == 0o640
    assert f"the database file {database} (and its -wal, -shm) may be read by other users (mode 0640)" \
        in upgraded.stderr
