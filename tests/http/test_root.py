"""Where a client starts (issue 19): ``/api/`` and ``/api/v2/`` answer as AWX's do, ``/`` redirects."""

from __future__ import annotations

import json

import pytest

from tests.admin_helpers import call, user_with_token

pytestmark = pytest.mark.gen_test


async def test_the_index_names_by_awx_names_what_this_server_serves(services, fetch):
    response = await fetch("/api/v2/")  # no credentials, as AWX
    assert response.code == 200
    index = json.loads(response.body)
    assert index["ping"] == "/api/v2/ping/"
    assert index["inventory"] == "/api/v2/inventories/"  # AWX's name, not the path's
    assert index["job_templates"] == "/api/v2/job_templates/"
    assert {"me", "users", "tokens", "hosts", "groups", "inventory_sources", "credentials", "jobs"} <= set(index)
    # Served only by id here (no list), or not at all: not listed.
    assert not {"inventory_updates", "projects", "organizations", "inventories", "openapi"} & set(index)
    root = await user_with_token(services, "root", superuser=True)
    for name, path in index.items():
        status, body = await call(fetch, "GET", path, root)
        assert status == 200, (name, path, body)


async def test_the_versions_and_the_way_in(fetch):
    for path in ("/api/", "/api"):
        response = await fetch(path)
        assert response.code == 200
        assert json.loads(response.body) == {"description": "tornado-callback REST API",
                                             "current_version": "/api/v2/", "available_versions": {"v2": "/api/v2/"}}
    assert json.loads((await fetch("/api/v2")).body)["ping"] == "/api/v2/ping/"
    home = await fetch("/", follow_redirects=False)
    assert (home.code, home.headers["Location"]) == (302, "/console/")
    landed = await fetch("/")  # where a browser lands: the console, which asks who it is
    assert landed.code == 200 and landed.effective_url.endswith("/console/login/?next=%2Fconsole%2F")
    assert b"<h1>Log in</h1>" in landed.body
