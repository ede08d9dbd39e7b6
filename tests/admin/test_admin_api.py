"""The admin API's endpoints as a client sees them: AWX's shapes, validation, each resource's rules."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from tests.admin_helpers import SECRET_KEY, call, seed_world, user_with_token
from tests.conftest import basic_auth
from tornado_callback.admin.catalog import MSG_CALLBACK_NEEDS_INVENTORY
from tornado_callback.app import api_endpoints
from tornado_callback.config import PluginsConfig, Settings
from tornado_callback.store.models import Credential, Job, JobTemplate

pytestmark = pytest.mark.gen_test

API = "/api/v2"


@pytest.fixture
def settings(database_url: str, plugins_config: PluginsConfig) -> Settings:
    return Settings(database_url=database_url, plugins=plugins_config, secret_key=SECRET_KEY)


@pytest.fixture
def root(services, io_loop):
    """The Authorization header of a superuser."""
    return io_loop.run_sync(lambda: user_with_token(services, "root", superuser=True))


async def world_of(services, root):
    return await seed_world(services, await services.accounts.authenticate(root["Authorization"]))


async def test_openapi_document_describes_every_admin_route(fetch):
    response = await fetch(f"{API}/openapi.json")
    assert response.code == 200
    document = json.loads(response.body)
    assert document["openapi"].startswith("3.")
    served = {endpoint.path for endpoint in api_endpoints()}
    assert set(document["paths"]) == served
    host = document["components"]["schemas"]["host"]
    assert {"id", "type", "url", "related", "created", "modified", "variables"} <= set(host["properties"])
    assert document["components"]["schemas"]["host_create"]["required"] == ["name", "inventory"]
    assert "password" not in document["components"]["schemas"]["user"]["properties"]


async def test_me_is_a_one_item_list_of_the_caller(services, fetch, root):
    status, body = await call(fetch, "GET", f"{API}/me/", root)
    assert status == 200
    assert body["count"] == 1 and body["results"][0]["username"] == "root"
    assert body["results"][0]["is_superuser"] is True


async def test_users_crud_and_password_login(services, fetch, root):
    status, created = await call(fetch, "POST", f"{API}/users/", root,
                                 {"username": "alice", "password": "pw1", "email": "a@example.com"})
    assert status == 201
    assert created["type"] == "user" and created["url"] == f"{API}/users/{created['id']}/"
    assert "password" not in created and "password_hash" not in created
    basic = basic_auth("alice", "pw1")
    assert (await call(fetch, "GET", f"{API}/me/", basic))[0] == 200
    status, body = await call(fetch, "POST", f"{API}/users/", root, {"username": "alice", "password": "x"})
    assert (status, body) == (400, {"username": ["User with this Username already exists."]})
    status, changed = await call(fetch, "PATCH", created["url"], root, {"password": "pw2", "first_name": "Al"})
    assert (status, changed["first_name"]) == (200, "Al")
    assert (await call(fetch, "GET", f"{API}/me/", basic))[0] == 401
    status, listed = await call(fetch, "GET", f"{API}/users/?search=ALI", root)
    assert [u["username"] for u in listed["results"]] == ["alice"]
    status, replaced = await call(fetch, "PUT", created["url"], root, {"username": "alicia"})
    assert (status, replaced["username"], replaced["first_name"]) == (200, "alicia", "Al")
    assert (await call(fetch, "DELETE", created["url"], root))[0] == 204
    assert (await call(fetch, "GET", created["url"], root))[0] == 404


async def test_nobody_removes_their_own_superuser_status_or_user(services, fetch, root):
    _, me = await call(fetch, "GET", f"{API}/me/", root)
    url = me["results"][0]["url"]
    status, body = await call(fetch, "PATCH", url, root, {"is_superuser": False})
    assert (status, list(body)) == (400, ["is_superuser"])
    assert (await call(fetch, "DELETE", url, root))[0] == 400


async def test_token_is_shown_once_stored_hashed_and_revocable(services, fetch, root):
    user = await user_with_token(services, "bob")
    status, created = await call(fetch, "POST", f"{API}/tokens/", user, {"description": "ci"})
    assert status == 201 and created["description"] == "ci"
    token = created["token"]
    bearer = {"Authorization": f"Bearer {token}"}
    assert (await call(fetch, "GET", f"{API}/me/", bearer))[1]["results"][0]["username"] == "bob"
    status, shown = await call(fetch, "GET", created["url"], bearer)
    assert status == 200 and "token" not in shown and token not in json.dumps(shown)
    # Only the caller's own tokens: the superuser's are not visible to bob.
    _, listed = await call(fetch, "GET", f"{API}/tokens/", user)
    assert listed["count"] == 2
    _, root_tokens = await call(fetch, "GET", f"{API}/tokens/", root)
    root_own = next(t for t in root_tokens["results"] if t["user"] != shown["user"])
    assert (await call(fetch, "GET", root_own["url"], user))[0] == 404
    assert (await call(fetch, "DELETE", created["url"], user))[0] == 204
    assert (await call(fetch, "GET", f"{API}/me/", bearer))[0] == 401


@pytest.mark.parametrize("variables", [{"a": 1, "b": [1, 2]}, '{"a": 1, "b": [1, 2]}', "a: 1\nb: [1, 2]\n"])
async def test_variables_accept_object_json_or_yaml_and_read_back_as_json_text(fetch, root, variables):
    status, created = await call(fetch, "POST", f"{API}/inventories/", root, {"name": "i", "variables": variables})
    assert status == 201
    assert json.loads(created["variables"]) == {"a": 1, "b": [1, 2]}


@pytest.mark.parametrize("body, errors", [
    ({}, {"name": ["This field is required."]}),
    ({"name": ""}, {"name": ["This field may not be blank."]}),
    ({"name": None}, {"name": ["This field may not be null."]}),
    ({"name": 5}, {"name": ["Not a valid string."]}),
    ({"name": "x" * 513}, {"name": ["Ensure this field has no more than 512 characters."]}),
    ({"name": "a\x00b"}, {"name": ["Null characters are not allowed."]}),
    ({"name": "i", "colour": "red"}, {"colour": ["Unknown field."]}),
    ({"name": "i", "variables": "[1, 2]"}, {"variables": ["Variables must be a mapping of variable names to values"]}),
    ({"name": "i", "variables": "a: 2020-01-01"},
     {"variables": ["Variables must hold JSON data only (quote dates and times)"]}),
    ({"name": "i", "variables": {"a": "\ud800"}}, {"variables": ["Not valid Unicode text."]}),
])
async def test_validation_errors_name_the_field(fetch, root, body, errors):
    status, answer = await call(fetch, "POST", f"{API}/inventories/", root, body)
    assert (status, answer) == (400, errors)


async def test_bodies_that_are_not_json_objects_are_refused(fetch, root):
    response = await fetch(f"{API}/inventories/", method="POST", body="{nope", headers=root)
    assert response.code == 400 and json.loads(response.body)["detail"].startswith("JSON parse error")
    status, body = await call(fetch, "POST", f"{API}/inventories/", root, [1])
    assert (status, body) == (400, {"detail": "The body must be a JSON object."})


async def test_list_paging_search_order_and_filters(fetch, root):
    for name in ("b-one", "a-two", "c-three"):
        await call(fetch, "POST", f"{API}/inventories/", root, {"name": name})
    status, page = await call(fetch, "GET", f"{API}/inventories/?page_size=2&order_by=-name", root)
    assert status == 200 and page["count"] == 3
    assert [i["name"] for i in page["results"]] == ["c-three", "b-one"]
    assert page["previous"] is None and page["next"] == f"{API}/inventories/?page_size=2&order_by=-name&page=2"
    _, second = await call(fetch, "GET", page["next"], root)
    assert [i["name"] for i in second["results"]] == ["a-two"] and second["next"] is None
    assert second["previous"].endswith("page=1")
    _, found = await call(fetch, "GET", f"{API}/inventories/?search=TWO", root)
    assert [i["name"] for i in found["results"]] == ["a-two"]
    _, exact = await call(fetch, "GET", f"{API}/inventories/?name=b-one", root)
    assert exact["count"] == 1
    for query, status_expected in [("page=9", 404), ("page_size=201", 400), ("page=0", 400),
                                   ("order_by=secret", 400), ("colour=red", 400)]:
        assert (await call(fetch, "GET", f"{API}/inventories/?{query}", root))[0] == status_expected, query


async def test_hosts_change_what_the_callback_matches(services, fetch, root):
    world = await world_of(services, root)
    callback = f"{API}/job_templates/{world.template}/callback/"
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    response = await fetch(callback, method="POST", body="host_config_key=k3y", headers=form)
    assert response.code == 202
    async with services.db.session() as session:
        for job in await session.scalars(select(Job)):
            job.status = "successful"
        await session.commit()
    status, host = await call(fetch, "PATCH", f"{API}/hosts/{world.host}/", root,
                              {"variables": "ansible_host: 10.9.9.9"})
    assert status == 200 and json.loads(host["variables"]) == {"ansible_host": "10.9.9.9"}
    response = await fetch(callback, method="POST", body="host_config_key=k3y", headers=form)
    assert (response.code, json.loads(response.body)) == (400, {"msg": "No matching host could be found!"})


async def test_host_rules_in_an_inventory(services, fetch, root):
    world = await world_of(services, root)
    hosts = f"{API}/inventories/{world.inventory}/hosts/"
    status, body = await call(fetch, "POST", hosts, root, {"name": "web1"})
    assert (status, body) == (400, {"name": ["Host with this Inventory and Name already exists."]})
    status, body = await call(fetch, "POST", hosts, root, {"name": " web2"})
    assert (status, list(body)) == (400, ["name"])
    status, created = await call(fetch, "POST", hosts, root, {"name": "web2", "enabled": False})
    assert (status, created["inventory"], created["enabled"]) == (201, world.inventory, False)
    other = await call(fetch, "POST", f"{API}/inventories/", root, {"name": "other"})
    status, body = await call(fetch, "PATCH", created["url"], root, {"inventory": other[1]["id"]})
    assert (status, body) == (400, {"inventory": ["This field cannot be changed once set."]})
    _, listed = await call(fetch, "GET", f"{hosts}?enabled=false", root)
    assert [h["name"] for h in listed["results"]] == ["web2"]
    assert (await call(fetch, "GET", f"{API}/inventories/999/hosts/", root))[0] == 404


async def test_group_membership_associate_and_disassociate(services, fetch, root):
    world = await world_of(services, root)
    members = f"{API}/groups/{world.group}/hosts/"
    assert (await call(fetch, "POST", members, root, {"id": world.host}))[0] == 204
    _, listed = await call(fetch, "GET", members, root)
    assert [h["id"] for h in listed["results"]] == [world.host]
    _, groups = await call(fetch, "GET", f"{API}/hosts/{world.host}/groups/", root)
    assert [g["name"] for g in groups["results"]] == ["web"]
    assert (await call(fetch, "POST", members, root, {"id": world.host, "disassociate": True}))[0] == 204
    assert (await call(fetch, "GET", members, root))[1]["count"] == 0
    status, body = await call(fetch, "POST", members, root, {"id": 4242})
    assert (status, body) == (400, {"id": ['Invalid pk "4242" - object does not exist.']})
    _, elsewhere = await call(fetch, "POST", f"{API}/inventories/", root, {"name": "elsewhere"})
    _, stranger = await call(fetch, "POST", f"{API}/hosts/", root, {"name": "x", "inventory": elsewhere["id"]})
    status, body = await call(fetch, "POST", members, root, {"id": stranger["id"]})
    assert (status, body) == (400, {"id": ["Hosts and groups must be in the same inventory."]})


async def test_group_children_cannot_form_a_cycle(services, fetch, root):
    world = await world_of(services, root)
    _, child = await call(fetch, "POST", f"{API}/inventories/{world.inventory}/groups/", root, {"name": "child"})
    assert (await call(fetch, "POST", f"{API}/groups/{world.group}/children/", root, {"id": child["id"]}))[0] == 204
    status, body = await call(fetch, "POST", f"{API}/groups/{child['id']}/children/", root, {"id": world.group})
    assert (status, body) == (400, {"id": ["Cyclical group association."]})


async def test_inventory_sources_crud(services, fetch, root):
    world = await world_of(services, root)
    url = f"{API}/inventory_sources/{world.source}/"
    status, source = await call(fetch, "PATCH", url, root, {"update_on_launch": True, "update_cache_timeout": 30})
    assert (status, source["update_on_launch"], source["update_cache_timeout"]) == (200, True, 30)
    assert source["last_update"] is None
    status, body = await call(fetch, "POST", f"{API}/inventory_sources/", root,
                              {"name": "s2", "inventory": world.inventory, "source": "ec2"})
    assert (status, body) == (400, {"source": ['"ec2" is not a valid choice.']})
    _, listed = await call(fetch, "GET", f"{API}/inventories/{world.inventory}/inventory_sources/", root)
    assert [s["name"] for s in listed["results"]] == ["src"]
    assert (await call(fetch, "DELETE", url, root))[0] == 204


async def test_credential_secrets_are_sealed_write_only_and_kept_by_encrypted(services, fetch, root):
    status, created = await call(fetch, "POST", f"{API}/credentials/", root, {
        "name": "ssh", "username": "deploy", "ssh_key_data": "-----BEGIN OPENSSH PRIVATE KEY-----", "become_method": "sudo"})
    assert status == 201
    assert (created["ssh_key_data"], created["password"]) == ("$encrypted$", "")
    async with services.db.session() as session:
        stored = await session.get(Credential, created["id"])
    assert b"PRIVATE KEY" not in stored.ssh_key_data
    assert services.admin.secrets.decrypt(stored.ssh_key_data) == "-----BEGIN OPENSSH PRIVATE KEY-----"
    status, changed = await call(fetch, "PUT", created["url"], root,
                                 {**{k: created[k] for k in ("name", "username", "ssh_key_data")},
                                  "password": "ASK"})
    assert (status, changed["ask_at_launch"]) == (200, True)
    async with services.db.session() as session:
        stored = await session.get(Credential, created["id"])
    assert services.admin.secrets.decrypt(stored.ssh_key_data) == "-----BEGIN OPENSSH PRIVATE KEY-----"
    status, cleared = await call(fetch, "PATCH", created["url"], root, {"password": ""})
    assert (status, cleared["password"], cleared["ask_at_launch"]) == (200, "", False)


async def test_template_callback_key_needs_an_inventory(services, fetch, root):
    world = await world_of(services, root)
    status, body = await call(fetch, "POST", f"{API}/job_templates/", root,
                              {"name": "t2", "playbook": "p.yml", "host_config_key": "k"})
    assert (status, body) == (400, {"host_config_key": [MSG_CALLBACK_NEEDS_INVENTORY]})
    url = f"{API}/job_templates/{world.template}/"
    status, body = await call(fetch, "PATCH", url, root, {"inventory": None})
    assert (status, body) == (400, {"host_config_key": [MSG_CALLBACK_NEEDS_INVENTORY]})
    status, changed = await call(fetch, "PATCH", url, root, {"inventory": None, "host_config_key": ""})
    assert (status, changed["inventory"], changed["host_config_key"]) == (200, None, "")


async def test_an_empty_key_disables_callbacks(services, fetch, root):
    world = await world_of(services, root)
    await call(fetch, "PATCH", f"{API}/job_templates/{world.template}/", root, {"host_config_key": ""})
    for key in ("", "k3y"):
        response = await fetch(f"{API}/job_templates/{world.template}/callback/", method="POST",
                               body=f"host_config_key={key}")
        assert response.code == 403


SURVEY = {"name": "", "description": "", "spec": [
    {"question_name": "Colour?", "variable": "colour", "type": "multiplechoice",
     "choices": ["red", "blue"], "required": True},
    {"question_name": "Size?", "variable": "size", "type": "integer", "min": 1, "max": 9, "default": 3},
]}


async def test_survey_spec_round_trip_and_validation(services, fetch, root):
    world = await world_of(services, root)
    url = f"{API}/job_templates/{world.template}/survey_spec/"
    assert await call(fetch, "GET", url, root) == (200, {})
    assert (await call(fetch, "POST", url, root, SURVEY))[0] == 204
    assert await call(fetch, "GET", url, root) == (200, SURVEY)
    bad = {"spec": [{"question_name": "x", "variable": "1x", "type": "colour"}]}
    status, body = await call(fetch, "POST", url, root, bad)
    assert status == 400 and len(body["spec"]) == 2
    assert (await call(fetch, "DELETE", url, root))[0] == 204
    assert await call(fetch, "GET", url, root) == (200, {})


async def test_numbers_past_64_bits_come_back_as_sent(services, fetch, root):
    world = await world_of(services, root)
    url = f"{API}/job_templates/{world.template}/survey_spec/"
    question = {"question_name": "Seed?", "variable": "seed", "type": "integer", "min": -(2**70), "max": 2**70}
    assert (await call(fetch, "POST", url, root, {"name": "", "description": "", "spec": [question]}))[0] == 204
    status, shown = await call(fetch, "GET", url, root)
    assert (status, shown["spec"][0]["min"], shown["spec"][0]["max"]) == (200, -(2**70), 2**70)


async def test_survey_password_defaults_are_never_shown(services, fetch, root):
    world = await world_of(services, root)
    url = f"{API}/job_templates/{world.template}/survey_spec/"
    question = {"question_name": "Pass?", "variable": "db_password", "type": "password", "default": "hunter2"}
    await call(fetch, "POST", url, root, {"spec": [question]})
    _, shown = await call(fetch, "GET", url, root)
    assert shown["spec"][0]["default"] == "$encrypted$"
    # Sending the survey back as read keeps the stored default.
    assert (await call(fetch, "POST", url, root, {**shown, "name": "again"}))[0] == 204
    await call(fetch, "PATCH", f"{API}/job_templates/{world.template}/", root, {"survey_enabled": True})
    _, launched = await call(fetch, "POST", f"{API}/job_templates/{world.template}/launch/", root, {})
    async with services.db.session() as session:
        job = await session.get(Job, launched["job"])
    # The run gets the default; the job shows it as AWX does.
    assert (job.launch_vars, job.extra_vars) == ({"db_password": "hunter2"}, {"db_password": "$encrypted$"})


async def test_survey_password_defaults_are_stored_encrypted_and_reach_callback_jobs(services, fetch, root):
    world = await world_of(services, root)
    template = f"{API}/job_templates/{world.template}/"
    question = {"question_name": "Pass?", "variable": "db_password", "type": "password", "default": "hunter2"}
    await call(fetch, "POST", template + "survey_spec/", root, {"spec": [question]})
    async with services.db.session() as session:
        stored = await session.scalar(select(JobTemplate.survey_spec).where(JobTemplate.id == world.template))
    assert "hunter2" not in json.dumps(stored)
    assert stored["spec"][0]["default"].startswith("$encrypted$gAAAA")  # a Fernet token
    await call(fetch, "PATCH", template, root, {"survey_enabled": True})
    response = await fetch(template + "callback/", method="POST", body="host_config_key=k3y")
    assert response.code == 202
    async with services.db.session() as session:
        job = await session.get(Job, json.loads(response.body)["job"])
    assert (job.launch_type, job.launch_vars, job.extra_vars) == (
        "callback", {"db_password": "hunter2"}, {"db_password": "$encrypted$"})
    status, body = await call(fetch, "POST", template + "survey_spec/", root,
                              {"spec": [{**question, "default": 7}]})
    assert (status, body) == (400, {"spec": ["question 1: a password question's 'default' must be a string."]})


async def test_manual_launch_through_the_launch_service(services, fetch, root):
    world = await world_of(services, root)
    template = f"{API}/job_templates/{world.template}/"
    launch = template + "launch/"
    status, launched = await call(fetch, "POST", launch, root, {"extra_vars": {"a": 1}, "limit": "web1"})
    assert status == 201
    assert launched["ignored_fields"] == {"extra_vars": {"a": 1}, "limit": "web1"}
    assert launched["url"] == f"{API}/jobs/{launched['job']}/"
    await call(fetch, "PATCH", template, root, {"ask_variables_on_launch": True, "ask_limit_on_launch": True,
                                               "extra_vars": "base: 0", "limit": "all"})
    status, launched = await call(fetch, "POST", launch, root, {"extra_vars": "a: 1\nansible_user: x", "limit": "web1"})
    assert (status, launched["ignored_fields"]) == (201, {})
    async with services.db.session() as session:
        job = await session.get(Job, launched["job"])
    assert (job.launch_type, job.limit, job.extra_vars, job.host_id) == ("manual", "web1", {"base": 0, "a": 1}, None)
    assert job.launched_by_id is not None
    status, body = await call(fetch, "POST", launch, root, {"inventory": 1})
    assert (status, body) == (400, {"inventory": ["Unknown field."]})


async def test_manual_launch_honours_the_survey(services, fetch, root):
    world = await world_of(services, root)
    template = f"{API}/job_templates/{world.template}/"
    await call(fetch, "POST", template + "survey_spec/", root, SURVEY)
    await call(fetch, "PATCH", template, root, {"survey_enabled": True})
    _, info = await call(fetch, "GET", template + "launch/", root)
    assert (info["can_start_without_user_input"], info["variables_needed_to_start"]) == (False, ["colour"])
    status, body = await call(fetch, "POST", template + "launch/", root, {})
    assert (status, body) == (400, {"detail": "Cannot start automatically, user input required!"})
    status, launched = await call(fetch, "POST", template + "launch/", root,
                                  {"extra_vars": {"colour": "blue", "other": 1}})
    assert status == 201
    async with services.db.session() as session:
        job = await session.get(Job, launched["job"])
    assert job.extra_vars == {"colour": "blue", "size": 3}


async def test_callback_attempts_are_the_audit_trail(services, fetch, root):
    world = await world_of(services, root)
    callback = f"{API}/job_templates/{world.template}/callback/"
    await fetch(callback, method="POST", body="host_config_key=wrong")
    await fetch(callback, method="POST", body="host_config_key=k3y")
    status, attempts = await call(fetch, "GET", f"{API}/job_templates/{world.template}/callback_attempts/", root)
    assert status == 200 and attempts["count"] == 2
    newest, oldest = attempts["results"]
    assert (newest["status_code"], newest["host_name"], newest["resolved_by"]) == (202, "web1", "ip_match")
    assert newest["related"]["job"] == f"{API}/jobs/{newest['job']}/"
    assert (oldest["status_code"], oldest["host"]) == (403, None)
    assert "k3y" not in json.dumps(attempts) and "wrong" not in json.dumps(attempts)
    _, refused = await call(fetch, "GET", f"{API}/job_templates/{world.template}/callback_attempts/?status_code=403", root)
    assert refused["count"] == 1


async def test_unsupported_method_is_a_json_405(fetch, root):
    response = await fetch(f"{API}/me/", method="DELETE", headers=root)
    assert response.code == 405
    assert json.loads(response.body) == {"detail": 'Method "DELETE" not allowed.'}


async def test_ids_that_cannot_exist_are_not_found(fetch, root):
    for path in ("/api/v2/hosts/abc/", "/api/v2/hosts/99999999999999999999/", "/api/v2/hosts/0/",
                 "/api/v2/hosts/--5/", f"/api/v2/hosts/{'9' * 5000}/"):
        assert (await call(fetch, "GET", path, root))[0] == 404, path


@pytest.mark.parametrize("query", ["page=" + "1" * 5000, "inventory=" + "1" * 5000, "inventory=--5",
                                   "enabled=maybe", "order_by=name,-nope"])
async def test_unusable_query_values_are_400(fetch, root, query):
    assert (await call(fetch, "GET", f"{API}/hosts/?{query}", root))[0] == 400
