"""Ids, pages and search terms out of every range the databases take: 404 or 400, never a 500.

PostgreSQL's id columns are 32-bit, offsets are 64-bit on both databases,
Python refuses to convert thousands of digits and SQLite refuses LIKE
patterns past 50,000 bytes: each bound is checked before the database is
asked (issue 15).
"""

from __future__ import annotations

import json

import pytest

from tests.admin_helpers import SECRET_KEY, call, seed_world, user_with_token
from tornado_callback.config import PluginsConfig, Settings

pytestmark = pytest.mark.gen_test

NOT_FOUND = (404, {"detail": "Not found."})
PAST_32_BITS = str(2**31)
TOO_MANY_DIGITS = "9" * 5000
HUGE_PAGE = "999999999999999999"
LONG_SEARCH = "x" * 60_000
# The caller's own one-item list: documented as a page, it takes no page argument.
UNPAGED = {"/api/v2/me/"}


@pytest.fixture
def settings(database_url: str, plugins_config: PluginsConfig) -> Settings:
    return Settings(database_url=database_url, plugins=plugins_config, secret_key=SECRET_KEY)


async def world_and_root(services):
    root_auth = await user_with_token(services, "root", superuser=True)
    world = await seed_world(services, await services.accounts.authenticate(root_auth["Authorization"]))
    return world, root_auth


async def lists(fetch, world, parameter: str) -> list[str]:
    """Every list the OpenAPI document says takes ``parameter`` (the callback GET's list of
    hosts among them), with the world's ids."""
    document = json.loads((await fetch("/api/v2/openapi.json")).body)
    ids = {"inventories": world.inventory, "groups": world.group, "hosts": world.host,
           "job_templates": world.template}
    found = []
    for path, operations in document["paths"].items():
        names = {p["name"] for p in operations.get("get", {}).get("parameters", ())}
        if parameter in names and path not in UNPAGED:
            found.append(path.replace("{id}", str(ids.get(path.split("/")[3], 1))))
    assert f"/api/v2/job_templates/{world.template}/callback/" in found
    return found


@pytest.mark.parametrize("number", [PAST_32_BITS, TOO_MANY_DIGITS], ids=["2**31", "5000 digits"])
async def test_a_callback_to_an_id_no_template_can_have_is_not_found(services, fetch, number):
    _, root = await world_and_root(services)
    path = f"/api/v2/job_templates/{number}/callback/"
    posted = await fetch(path, method="POST", body="host_config_key=k3y")
    assert (posted.code, posted.body) == (404, b'{"detail":"Not found."}')
    assert await call(fetch, "GET", path, root) == NOT_FOUND


@pytest.mark.parametrize("number", [PAST_32_BITS, TOO_MANY_DIGITS], ids=["2**31", "5000 digits"])
async def test_ids_past_the_columns_are_not_found_everywhere(services, fetch, number):
    _, root = await world_and_root(services)
    for path in (f"/api/v2/jobs/{number}/", f"/api/v2/jobs/{number}/stdout/", f"/api/v2/jobs/{number}/cancel/",
                 f"/api/v2/inventory_updates/{number}/", f"/api/v2/inventory_sources/{number}/update/",
                 f"/api/v2/hosts/{number}/", f"/api/v2/job_templates/{number}/launch/"):
        assert await call(fetch, "GET", path, root) == NOT_FOUND, path
    assert await call(fetch, "POST", f"/api/v2/jobs/{number}/cancel/", root) == NOT_FOUND


async def test_a_filter_by_an_id_past_the_columns_is_refused(services, fetch):
    _, root = await world_and_root(services)
    status, body = await call(fetch, "GET", f"/api/v2/jobs/?job_template={PAST_32_BITS}", root)
    assert (status, body) == (400, {"detail": "job_template must be a template id."})


async def test_a_page_past_the_range_is_refused_by_every_list(services, fetch):
    world, root = await world_and_root(services)
    for path in await lists(fetch, world, "page"):
        status, body = await call(fetch, "GET", f"{path}?page={HUGE_PAGE}", root)
        assert (status, body) == (400, {"detail": "page must be an integer between 1 and 2147483647."}), path


async def test_the_last_page_in_range_is_only_past_the_end(services, fetch):
    world, root = await world_and_root(services)
    for path in await lists(fetch, world, "page"):
        status, body = await call(fetch, "GET", f"{path}?page=2147483647&page_size=200", root)
        assert (status, body) == (404, {"detail": "Invalid page."}), path


async def test_an_over_long_search_is_refused_by_every_list(services, fetch):
    world, root = await world_and_root(services)
    for path in await lists(fetch, world, "search"):
        status, body = await call(fetch, "GET", f"{path}?search={LONG_SEARCH}", root)
        assert (status, body) == (400, {"detail": "search must be at most 1024 characters."}), path
    # The longest search allowed, escaped wildcards included, still reaches the database.
    status, body = await call(fetch, "GET", "/api/v2/hosts/?search=" + "%25_" * 512, root)
    assert (status, body["count"]) == (200, 0)
