"""Who may do what: one row per endpoint and action, one expected status per kind of user.

Users: a superuser; a template admin, executor and reader; an inventory
admin, user and reader; and a user with no role at all. Objects the user
cannot see answer 404, objects it can see but not change 403.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.admin_helpers import SECRET_KEY, call, seed_world, user_with_token
from tornado_callback.admin.fields import ENCRYPTED
from tornado_callback.app import api_endpoints
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
    ("GET", "/api/v2/credentials/{credential}/", None, only({"root": 200})),
    ("PATCH", "/api/v2/credentials/{credential}/", {"username": "u"}, only({"root": 200})),
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
    ("GET", "/api/v2/inventory_sources/{source}/update/", None, only({"inv_admin": 200, "root": 200}, seen=INV_SEE)),
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
     only({"tpl_admin": 200, "root": 200}, seen=TPL_SEE)),
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


KEY = "callback-key-for-template-admins"
OTHER_KEY = "callback-key-of-another-template"


async def keyed_world(services):
    """The seeded world with a recognisable key, and a template admin, executor and reader
    of its template who also administer its inventory (so they see every host, group, source)."""
    root_auth = await user_with_token(services, "root", superuser=True)
    root = await services.accounts.authenticate(root_auth["Authorization"])
    world = await seed_world(services, root)
    await services.admin.update("job_templates", root, world.template, {"host_config_key": KEY}, partial=True)
    auth = {"root": root_auth}
    for actor in ("tpl_read", "tpl_execute", "tpl_admin"):
        auth[actor] = await user_with_token(services, actor)
        await services.accounts.grant(actor, "job_template", world.template, ROLES[actor][1])
        await services.accounts.grant(actor, "inventory", world.inventory, "admin")
    return root, world, auth


async def test_host_config_key_is_shown_only_to_those_who_may_edit_the_template(services, fetch):
    root, world, auth = await keyed_world(services)
    other = await services.admin.create("job_templates", root, {
        "name": "other", "playbook": "p.yml", "inventory": world.inventory, "host_config_key": OTHER_KEY})
    keyless = await services.admin.create("job_templates", root, {"name": "keyless", "playbook": "p.yml"})
    for actor in ("tpl_read", "tpl_execute", "tpl_admin"):
        for template in (other, keyless):
            await services.accounts.grant(actor, "job_template", template["id"], "read")
    # Decided per template: the template admin only reads "other". Unset stays "", as AWX shows it.
    expected = {
        "tpl_read": [ENCRYPTED, ENCRYPTED, ""],
        "tpl_execute": [ENCRYPTED, ENCRYPTED, ""],
        "tpl_admin": [KEY, ENCRYPTED, ""],
        "root": [KEY, OTHER_KEY, ""],
    }
    for actor, keys in expected.items():
        _, listed = await call(fetch, "GET", "/api/v2/job_templates/?order_by=id", auth[actor])
        assert [t["host_config_key"] for t in listed["results"]] == keys, actor
        details = [(await call(fetch, "GET", f"/api/v2/job_templates/{t}/", auth[actor]))[1]
                   for t in (world.template, other["id"], keyless["id"])]
        assert [d["host_config_key"] for d in details] == keys, actor
    # What a template admin writes comes back to it in the clear.
    status, changed = await call(fetch, "PATCH", f"/api/v2/job_templates/{world.template}/",
                                 auth["tpl_admin"], {"host_config_key": KEY + "2"})
    assert (status, changed["host_config_key"]) == (200, KEY + "2")


async def test_no_endpoint_shows_the_key_to_a_reader_or_an_executor(services, fetch):
    root, world, auth = await keyed_world(services)
    # A manual and a callback job and a callback attempt, for the job and audit endpoints.
    job = (await call(fetch, "POST", f"/api/v2/job_templates/{world.template}/launch/", auth["root"], {}))[1]
    callback = await fetch(f"/api/v2/job_templates/{world.template}/callback/", method="POST",
                           body=f"host_config_key={KEY}")
    assert callback.code == 202
    ids = {"inventories": world.inventory, "hosts": world.host, "groups": world.group,
           "inventory_sources": world.source, "job_templates": world.template,
           "credentials": world.credential, "jobs": job["id"]}
    template = f"/api/v2/job_templates/{world.template}/"
    # The superuser's sweep proves that the check finds a key where one is shown.
    shown_to_root = {"/api/v2/job_templates/", template, template + "callback/"}
    gets = [e.path for e in api_endpoints() for op in e.operations if op.method == "GET"]
    for path in gets:
        url = path.replace("{id}", str(ids.get(path.removeprefix("/api/v2/").split("/")[0], 1)))
        for actor in ("tpl_read", "tpl_execute", "root"):
            response = await fetch(url, headers=auth[actor])
            shown = KEY in response.body.decode()
            assert shown == (actor == "root" and url in shown_to_root), (actor, url)


async def test_openapi_document_says_who_reads_the_key(services, fetch):
    await keyed_world(services)
    response = await fetch("/api/v2/openapi.json")
    document = response.body.decode()
    assert KEY not in document
    schemas = json.loads(document)["components"]["schemas"]
    assert ENCRYPTED in schemas["job_template"]["properties"]["host_config_key"]["description"]


PROBES = [
    ("GET", "/api/v2/jobs/{job}/"), ("GET", "/api/v2/jobs/{job}/stdout/"),
    ("GET", "/api/v2/jobs/{job}/cancel/"), ("POST", "/api/v2/jobs/{job}/cancel/"),
    ("GET", "/api/v2/inventory_updates/{update}/"),
    ("GET", "/api/v2/inventory_sources/{source}/update/"), ("POST", "/api/v2/inventory_sources/{source}/update/"),
    ("GET", "/api/v2/job_templates/{template}/callback/"),
    ("GET", "/api/v2/users/{user}/"), ("PATCH", "/api/v2/users/{user}/"), ("DELETE", "/api/v2/users/{user}/"),
    ("GET", "/api/v2/credentials/{credential}/"), ("DELETE", "/api/v2/credentials/{credential}/"),
]
MISSING = 2**31 - 1


async def test_an_object_without_a_role_answers_as_a_missing_one(services, fetch):
    """Ids cannot be probed: whoever holds no role on an object gets exactly the answer
    a missing id gets. Whoever may see it but not do this gets 403."""
    root_auth = await user_with_token(services, "root", superuser=True)
    root = await services.accounts.authenticate(root_auth["Authorization"])
    world = await seed_world(services, root)
    _, job = await call(fetch, "POST", f"/api/v2/job_templates/{world.template}/launch/", root_auth, {})
    update = await services.inventory_sync.update(world.source)
    ids = {**vars(world), "job": job["id"], "update": update.id, "user": root.id}
    nobody = await user_with_token(services, "nobody")
    reader = await user_with_token(services, "reader")
    await services.accounts.grant("reader", "job_template", world.template, "read")
    await services.accounts.grant("reader", "inventory", world.inventory, "read")
    for method, path in PROBES:
        body = {} if method in ("POST", "PATCH") else None
        existing = await call(fetch, method, path.format(**ids), nobody, body)
        missing = await call(fetch, method, path.format(**dict.fromkeys(ids, MISSING)), nobody, body)
        assert existing == missing == (404, {"detail": "Not found."}), (method, path)
    seen = {(method, path): (await call(fetch, method, path.format(**ids), reader,
                                        {} if method == "POST" else None))[0]
            for method, path in PROBES if "{job}" in path or "{update}" in path}
    assert seen == {
        ("GET", "/api/v2/jobs/{job}/"): 200, ("GET", "/api/v2/jobs/{job}/stdout/"): 200,
        ("GET", "/api/v2/jobs/{job}/cancel/"): 200, ("POST", "/api/v2/jobs/{job}/cancel/"): 403,
        ("GET", "/api/v2/inventory_updates/{update}/"): 200,
    }
