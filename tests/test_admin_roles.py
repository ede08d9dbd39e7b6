"""Who may do what: one row per endpoint and action, one expected status per kind of user.

Users: a superuser; a template admin, executor and reader; an inventory
admin, user and reader; and a user with no role at all. Objects the user
cannot see answer 404, objects it can see but not change 403.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.admin_helpers import SECRET_KEY, call, seed_world, user_with_token
from tornado_callback.admin.endpoints import api_endpoints
from tornado_callback.config import PluginsConfig, Settings

pytestmark = pytest.mark.gen_test

ACTORS = ("nobody", "inv_read", "inv_use", "inv_admin", "tpl_read", "tpl_execute", "tpl_admin", "root")
ROLES = {"inv_read": ("inventory", "read"), "inv_use": ("inventory", "use"),
         "inv_admin": ("inventory", "admin"), "tpl_read": ("job_template", "read"),
         "tpl_execute": ("job_template", "execute"), "tpl_admin": ("job_template", "admin")}


def only(allowed: dict[str, int], *, hidden: int = 404, seen: tuple[str, ...] = ()) -> dict[str, int]:
    """Expected statuses: ``allowed`` as given; those in ``seen`` 403; the rest ``hidden``."""
    return {actor: allowed.get(actor, 403 if actor in seen else hidden) for actor in ACTORS}


INV_SEE = ("inv_read", "inv_use", "inv_admin")
TPL_SEE = ("tpl_read", "tpl_execute", "tpl_admin")
EVERYONE = {actor: 200 for actor in ACTORS}

# (method, path, body, expected). "{x}" in paths and bodies are the world's ids; "{actor}" the caller.
TABLE: list[tuple[str, str, Any, dict[str, int]]] = [
    ("GET", "/api/v2/me/", None, EVERYONE),
    ("GET", "/api/v2/users/", None, only({"root": 200}, hidden=403)),
    ("POST", "/api/v2/users/", {"username": "u-{actor}", "password": "pw"}, only({"root": 201}, hidden=403)),
    ("GET", "/api/v2/credentials/{credential}/", None, only({"root": 200}, hidden=403)),
    ("POST", "/api/v2/credentials/", {"name": "c-{actor}"}, only({"root": 201}, hidden=403)),
    ("POST", "/api/v2/inventories/", {"name": "i-{actor}"}, only({"root": 201}, hidden=403)),
    ("GET", "/api/v2/inventories/{inventory}/", None, only({a: 200 for a in (*INV_SEE, "root")})),
    ("PATCH", "/api/v2/inventories/{inventory}/", {"description": "d"},
     only({"inv_admin": 200, "root": 200}, seen=INV_SEE)),
    ("GET", "/api/v2/inventories/{inventory}/hosts/", None, only({a: 200 for a in (*INV_SEE, "root")})),
    ("POST", "/api/v2/inventories/{inventory}/hosts/", {"name": "h-{actor}"},
     only({"inv_admin": 201, "root": 201}, seen=INV_SEE)),
    ("GET", "/api/v2/hosts/{host}/", None, only({a: 200 for a in (*INV_SEE, "root")})),
    ("PATCH", "/api/v2/hosts/{host}/", {"enabled": False}, only({"inv_admin": 200, "root": 200}, seen=INV_SEE)),
    ("POST", "/api/v2/hosts/", {"name": "h-{actor}", "inventory": "{inventory}"},
     only({"inv_admin": 201, "root": 201}, hidden=403)),
    ("POST", "/api/v2/groups/{group}/hosts/", {"id": "{host}"},
     only({"inv_admin": 204, "root": 204}, seen=INV_SEE)),
    ("GET", "/api/v2/inventory_sources/{source}/", None, only({a: 200 for a in (*INV_SEE, "root")})),
    ("POST", "/api/v2/inventories/{inventory}/roles/", {"username": "target", "role": "use"},
     only({"inv_admin": 204, "root": 204}, seen=INV_SEE)),
    ("DELETE", "/api/v2/hosts/{host}/", None, only({"inv_admin": 204}, seen=("inv_read", "inv_use"))),
    ("POST", "/api/v2/job_templates/", {"name": "t-{actor}", "playbook": "p.yml"}, only({"root": 201}, hidden=403)),
    ("GET", "/api/v2/job_templates/{template}/", None, only({a: 200 for a in (*TPL_SEE, "root")})),
    ("PATCH", "/api/v2/job_templates/{template}/", {"description": "d"},
     only({"tpl_admin": 200, "root": 200}, seen=TPL_SEE)),
    ("GET", "/api/v2/job_templates/{template}/survey_spec/", None, only({a: 200 for a in (*TPL_SEE, "root")})),
    ("POST", "/api/v2/job_templates/{template}/survey_spec/", {"spec": []},
     only({"tpl_admin": 204, "root": 204}, seen=TPL_SEE)),
    ("GET", "/api/v2/job_templates/{template}/launch/", None,
     only({"tpl_execute": 200, "tpl_admin": 200, "root": 200}, seen=TPL_SEE)),
    ("POST", "/api/v2/job_templates/{template}/launch/", {},
     only({"tpl_execute": 201, "tpl_admin": 201, "root": 201}, seen=TPL_SEE)),
    ("GET", "/api/v2/job_templates/{template}/callback_attempts/", None,
     only({"tpl_admin": 200, "root": 200}, seen=TPL_SEE)),
    ("GET", "/api/v2/job_templates/{template}/roles/", None, only({"tpl_admin": 200, "root": 200}, seen=TPL_SEE)),
    ("POST", "/api/v2/job_templates/{template}/roles/", {"username": "target", "role": "execute"},
     only({"tpl_admin": 204, "root": 204}, seen=TPL_SEE)),
    ("GET", "/api/v2/job_templates/{template}/callback/", None,
     only({"tpl_admin": 200, "root": 200}, hidden=403)),
    ("DELETE", "/api/v2/job_templates/{template}/", None,
     only({"tpl_admin": 204}, seen=("tpl_read", "tpl_execute"))),
]


@pytest.fixture
def settings(database_url: str, plugins_config: PluginsConfig) -> Settings:
    return Settings(database_url=database_url, plugins=plugins_config, secret_key=SECRET_KEY)


def fill(value: Any, names: dict[str, Any]) -> Any:
    if isinstance(value, str):
        if value.startswith("{") and value.endswith("}") and value[1:-1] in names:
            return names[value[1:-1]]  # a whole id stays an integer
        return value.format(**names)
    if isinstance(value, dict):
        return {k: fill(v, names) for k, v in value.items()}
    return value


@pytest.mark.parametrize("method, path, body, expected", TABLE, ids=[f"{m} {p}" for m, p, _, _ in TABLE])
async def test_who_may_do_what(services, fetch, method, path, body, expected):
    root_auth = await user_with_token(services, "root", superuser=True)
    root = await services.accounts.authenticate(root_auth["Authorization"])
    world = await seed_world(services, root)
    await services.accounts.create_user("target", None)
    auth = {"root": root_auth}
    for actor in ACTORS[:-1]:
        auth[actor] = await user_with_token(services, actor)
        if actor in ROLES:
            kind, role = ROLES[actor]
            resource_id = world.inventory if kind == "inventory" else world.template
            await services.accounts.grant(actor, kind, resource_id, role)
    ids = vars(world)
    seen = {}
    # Refusals first, then successes, the superuser last (after a DELETE it finds nothing).
    for actor in sorted(ACTORS, key=lambda a: (a == "root", expected[a] < 300)):
        names = {**ids, "actor": actor}
        status, _ = await call(fetch, method, fill(path, names), auth[actor], fill(body, names))
        seen[actor] = status
    assert seen == expected


async def test_every_admin_route_answers_401_with_a_challenge_without_credentials(services, fetch):
    for endpoint in api_endpoints():
        path = endpoint.path.replace("{id}", "1")
        for operation in endpoint.operations:
            if not operation.authenticated:
                continue
            response = await fetch(path, method=operation.method,
                                   body="{}" if operation.method in ("POST", "PUT", "PATCH") else None)
            assert response.code == 401, (operation.method, path)
            assert response.headers["WWW-Authenticate"] == 'Basic realm="tornado-callback"'


async def test_lists_show_only_what_the_caller_may_see(services, fetch):
    root_auth = await user_with_token(services, "root", superuser=True)
    root = await services.accounts.authenticate(root_auth["Authorization"])
    world = await seed_world(services, root)
    await services.admin.create("inventories", root, {"name": "other"})
    reader = await user_with_token(services, "reader")
    await services.accounts.grant("reader", "inventory", world.inventory, "read")
    _, inventories = await call(fetch, "GET", "/api/v2/inventories/", reader)
    assert [i["name"] for i in inventories["results"]] == ["inv"]
    _, templates = await call(fetch, "GET", "/api/v2/job_templates/", reader)
    assert templates["count"] == 0
    _, everything = await call(fetch, "GET", "/api/v2/inventories/", root_auth)
    assert everything["count"] == 2


async def test_linking_a_template_to_an_inventory_needs_its_use_role(services, fetch):
    root_auth = await user_with_token(services, "root", superuser=True)
    root = await services.accounts.authenticate(root_auth["Authorization"])
    world = await seed_world(services, root)
    other = await services.admin.create("inventories", root, {"name": "other"})
    editor = await user_with_token(services, "editor")
    await services.accounts.grant("editor", "job_template", world.template, "admin")
    path = f"/api/v2/job_templates/{world.template}/"
    status, body = await call(fetch, "PATCH", path, editor, {"inventory": other["id"]})
    assert (status, body) == (400, {"inventory": [f'Invalid pk "{other["id"]}" - object does not exist.']})
    await services.accounts.grant("editor", "inventory", other["id"], "read")
    assert (await call(fetch, "PATCH", path, editor, {"inventory": other["id"]}))[0] == 403
    await services.accounts.grant("editor", "inventory", other["id"], "use")
    status, body = await call(fetch, "PATCH", path, editor, {"inventory": other["id"]})
    assert (status, body["inventory"]) == (200, other["id"])
    # A credential is a superuser's to hand out.
    assert (await call(fetch, "PATCH", path, editor, {"credential": world.credential}))[0] == 400


async def test_roles_of_a_deleted_object_do_not_pass_to_a_new_one(services, fetch):
    root_auth = await user_with_token(services, "root", superuser=True)
    root = await services.accounts.authenticate(root_auth["Authorization"])
    first = await services.admin.create("inventories", root, {"name": "first"})
    user = await user_with_token(services, "user")
    await services.accounts.grant("user", "inventory", first["id"], "admin")
    assert (await call(fetch, "DELETE", f"/api/v2/inventories/{first['id']}/", root_auth))[0] == 204
    second = await services.admin.create("inventories", root, {"name": "second"})
    assert (await call(fetch, "GET", f"/api/v2/inventories/{second['id']}/", user))[0] == 404


async def test_role_grants_are_listed_and_revoked(services, fetch):
    root_auth = await user_with_token(services, "root", superuser=True)
    root = await services.accounts.authenticate(root_auth["Authorization"])
    world = await seed_world(services, root)
    bob = await user_with_token(services, "bob")
    roles = f"/api/v2/job_templates/{world.template}/roles/"
    assert (await call(fetch, "POST", roles, root_auth, {"username": "bob", "role": "execute"}))[0] == 204
    status, body = await call(fetch, "GET", roles, root_auth)
    assert [(r["username"], r["role"]) for r in body["results"]] == [("bob", "execute")]
    assert (await call(fetch, "POST", f"/api/v2/job_templates/{world.template}/launch/", bob, {}))[0] == 201
    assert (await call(fetch, "POST", roles, root_auth,
                       {"username": "bob", "role": "execute", "disassociate": True}))[0] == 204
    assert (await call(fetch, "GET", f"/api/v2/job_templates/{world.template}/", bob))[0] == 404
    status, body = await call(fetch, "POST", roles, root_auth, {"user": 999, "role": "boss"})
    assert (status, body) == (400, {"role": ['"boss" is not a valid choice.']})
