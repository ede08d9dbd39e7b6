"""The provisioning callback POST, as hosts and the stock client scripts send it."""

from __future__ import annotations

import json
from urllib.parse import urlencode

import pytest

from tornado_callback.accounts.service import LOCAL_ADMIN
from tornado_callback.jobs.launch import MSG_ALREADY_PENDING

pytestmark = pytest.mark.gen_test

CALLBACK = "/api/v2/job_templates/{}/callback/"
JSON = {"Content-Type": "application/json"}
LOCAL = {"ansible_host": "127.0.0.1"}


def post_json(fetch, template_id, body, headers=JSON, path=CALLBACK):
    payload = body if isinstance(body, bytes | str) else json.dumps(body)
    return fetch(path.format(template_id), method="POST", body=payload, headers=headers)


async def test_callback_launches_job_for_the_calling_host(fetch, seed, services):
    world = await seed({"web1": LOCAL, "web2": {"ansible_host": "10.0.0.2"}})
    response = await post_json(fetch, world.template_id, {"host_config_key": world.key})
    assert response.code == 202
    body = json.loads(response.body)
    assert body == {"job": body["job"], "url": f"/api/v2/jobs/{body['job']}/"}
    assert response.headers["Location"] == body["url"]
    count, jobs = await services.jobs.page(LOCAL_ADMIN)
    assert count == 1
    job = jobs[0]
    assert (job.id, job.status, job.launch_type, job.limit, job.resolved_by) == (
        body["job"], "pending", "callback", "web1", "ip_match")


async def test_path_without_trailing_slash_is_served(fetch, seed):
    world = await seed({"web1": LOCAL})
    response = await post_json(fetch, world.template_id, {"host_config_key": world.key},
                               path="/api/v2/job_templates/{}/callback")
    assert response.code == 202


async def test_form_encoded_body_as_wget_sends_it(fetch, seed, services):
    world = await seed({"web1": LOCAL}, ask_variables_on_launch=True)
    body = urlencode({"host_config_key": world.key, "extra_vars": '{"colour": "blue"}'})
    response = await fetch(CALLBACK.format(world.template_id), method="POST", body=body)
    assert response.code == 202
    _, jobs = await services.jobs.page(LOCAL_ADMIN)
    assert jobs[0].extra_vars == {"colour": "blue"}


@pytest.mark.parametrize("extra_vars, expected", [
    ('{"a": 1}', {"a": 1}),                      # request_tower_configuration.sh
    ("a: 1", {"a": 1}),                          # YAML string
    ("{ a: 1, b: two }", {"a": 1, "b": "two"}),  # the PowerShell client's flow style
    ({"a": 1}, {"a": 1}),                        # a JSON object
    ({"a": 1, "ansible_user": "root", "ansible_become": True}, {"a": 1}),
])
async def test_extra_vars_applied_when_template_asks(fetch, seed, services, extra_vars, expected):
    world = await seed({"web1": LOCAL}, ask_variables_on_launch=True, extra_vars={"base": 0})
    response = await post_json(fetch, world.template_id,
                               {"host_config_key": world.key, "extra_vars": extra_vars})
    assert response.code == 202
    _, jobs = await services.jobs.page(LOCAL_ADMIN)
    assert jobs[0].extra_vars == {"base": 0, **expected}


async def test_extra_vars_ignored_when_template_does_not_ask(fetch, seed, services):
    world = await seed({"web1": LOCAL}, extra_vars={"base": 0})
    response = await post_json(fetch, world.template_id,
                               {"host_config_key": world.key, "extra_vars": '{"a": 1}'})
    assert response.code == 202
    _, jobs = await services.jobs.page(LOCAL_ADMIN)
    assert jobs[0].extra_vars == {"base": 0}


@pytest.mark.parametrize("extra_vars", ["[1, 2]", "a: [", "&a x: *a", 5, "when: 2020-01-01", "x: .nan"])
async def test_unusable_extra_vars_are_refused_with_a_message(fetch, seed, extra_vars):
    world = await seed({"web1": LOCAL}, ask_variables_on_launch=True)
    response = await post_json(fetch, world.template_id,
                               {"host_config_key": world.key, "extra_vars": extra_vars})
    assert response.code == 400
    assert "extra_vars" in json.loads(response.body)["msg"]


@pytest.mark.parametrize("body", [
    {}, {"host_config_key": ""}, {"host_config_key": "wrong"}, {"host_config_key": 12345},
    {"host_config_key": None}, {"host_config_key": ["s3cret-key"]},
])
async def test_missing_or_wrong_key_is_403(fetch, seed, body):
    world = await seed({"web1": LOCAL})
    response = await post_json(fetch, world.template_id, body)
    assert response.code == 403
    assert json.loads(response.body) == {"detail": "You do not have permission to perform this action."}


async def test_template_without_key_refuses_every_key(fetch, seed):
    world = await seed({"web1": LOCAL}, key="")
    response = await post_json(fetch, world.template_id, {"host_config_key": ""})
    assert response.code == 403


@pytest.mark.parametrize("template_id", ["0", "-1", "99999999999999999999", "abc", "1.5", "%E2%91%A0", "999"])
async def test_unknown_template_is_404(fetch, seed, template_id):
    await seed({"web1": LOCAL})
    response = await post_json(fetch, template_id, {"host_config_key": "s3cret-key"})
    assert response.code == 404
    assert json.loads(response.body) == {"detail": "Not found."}


@pytest.mark.parametrize("payload, detail_start", [
    (b'{"host_config_key": "s3cr', "JSON parse error - "),
    (b"[1, 2, 3]", "JSON parse error - "),
    (b"null", "JSON parse error - "),
    (b'"just a string"', "JSON parse error - "),
    (b"\xff\xfe{}", "JSON parse error - "),
    (b"[" * 100_000, "JSON parse error - "),
])
async def test_bad_json_is_400_not_500(fetch, seed, payload, detail_start):
    world = await seed({"web1": LOCAL})
    response = await post_json(fetch, world.template_id, payload)
    assert response.code == 400
    assert json.loads(response.body)["detail"].startswith(detail_start)


async def test_json_with_charset_is_accepted(fetch, seed):
    world = await seed({"web1": LOCAL})
    response = await post_json(fetch, world.template_id, {"host_config_key": world.key},
                               headers={"Content-Type": "application/json; charset=utf-8"})
    assert response.code == 202


async def test_text_plain_is_415(fetch, seed):
    world = await seed({"web1": LOCAL})
    response = await post_json(fetch, world.template_id, {"host_config_key": world.key},
                               headers={"Content-Type": "text/plain"})
    assert response.code == 415
    assert "text/plain" in json.loads(response.body)["detail"]


async def test_two_mib_body_is_413(fetch, seed):
    world = await seed({"web1": LOCAL})
    payload = json.dumps({"host_config_key": world.key, "pad": "x" * (2 * 1024 * 1024)})
    response = await post_json(fetch, world.template_id, payload)
    assert response.code == 413
    assert "limit" in json.loads(response.body)["detail"]


async def test_body_just_under_the_limit_arrives_whole(fetch, seed, services):
    """The server reads a few KiB at a time: a body of hundreds of reads is still one body."""
    world = await seed({"web1": LOCAL}, ask_variables_on_launch=True)
    notes = "".join(f"{i:07d}," for i in range(120_000))  # 960,000 characters, every one checked
    response = await post_json(fetch, world.template_id,
                               {"host_config_key": world.key, "extra_vars": {"notes": notes}})
    assert response.code == 202, response.body
    _, jobs = await services.jobs.page(LOCAL_ADMIN)
    assert jobs[0].extra_vars == {"notes": notes}


async def test_no_inventory_is_400(fetch, seed):
    world = await seed({"web1": LOCAL}, inventory_id=None)
    response = await post_json(fetch, world.template_id, {"host_config_key": world.key})
    assert response.code == 400
    assert json.loads(response.body) == {"msg": "Cannot start automatically, an inventory is required."}


async def test_no_matching_host_is_400(fetch, seed):
    world = await seed({"web1": {"ansible_host": "10.9.9.9"}})
    response = await post_json(fetch, world.template_id, {"host_config_key": world.key})
    assert response.code == 400
    assert json.loads(response.body) == {"msg": "No matching host could be found!"}


async def test_several_matching_hosts_is_400(fetch, seed):
    world = await seed({"web1": LOCAL, "web2": LOCAL})
    response = await post_json(fetch, world.template_id, {"host_config_key": world.key})
    assert response.code == 400
    assert json.loads(response.body) == {"msg": "Multiple hosts matched the request!"}


async def test_disabled_host_does_not_match(fetch, seed):
    world = await seed({"web1": {**LOCAL, "enabled": False}, "web2": {"ansible_host": "10.0.0.2"}})
    response = await post_json(fetch, world.template_id, {"host_config_key": world.key})
    assert response.code == 400
    assert json.loads(response.body) == {"msg": "No matching host could be found!"}


async def test_second_callback_while_job_active_is_refused_with_its_id(fetch, seed):
    world = await seed({"web1": LOCAL})
    first = await post_json(fetch, world.template_id, {"host_config_key": world.key})
    second = await post_json(fetch, world.template_id, {"host_config_key": world.key})
    assert first.code == 202
    assert second.code == 400
    assert json.loads(second.body) == {"msg": MSG_ALREADY_PENDING, "job": json.loads(first.body)["job"]}


async def test_required_survey_answer_missing_needs_user_input(fetch, seed):
    spec = {"spec": [{"variable": "size", "type": "integer", "required": True}]}
    world = await seed({"web1": LOCAL}, survey_enabled=True, survey_spec=spec)
    response = await post_json(fetch, world.template_id, {"host_config_key": world.key})
    assert response.code == 400
    assert json.loads(response.body) == {"msg": "Cannot start automatically, user input required!"}


async def test_survey_answers_are_honoured_and_other_vars_dropped(fetch, seed, services):
    spec = {"spec": [
        {"variable": "size", "type": "integer", "required": True, "min": 1, "max": 10},
        {"variable": "tier", "type": "multiplechoice", "choices": "web\ndb", "default": "web"},
    ]}
    world = await seed({"web1": LOCAL}, survey_enabled=True, survey_spec=spec)
    response = await post_json(fetch, world.template_id,
                               {"host_config_key": world.key, "extra_vars": {"size": 3, "other": 1}})
    assert response.code == 202
    _, jobs = await services.jobs.page(LOCAL_ADMIN)
    assert jobs[0].extra_vars == {"size": 3, "tier": "web"}


async def test_survey_answer_out_of_range_is_refused(fetch, seed):
    spec = {"spec": [{"variable": "size", "type": "integer", "required": True, "max": 10}]}
    world = await seed({"web1": LOCAL}, survey_enabled=True, survey_spec=spec)
    response = await post_json(fetch, world.template_id,
                               {"host_config_key": world.key, "extra_vars": {"size": 30}})
    assert response.code == 400
    assert "size" in json.loads(response.body)["msg"]


async def test_repeated_bad_keys_are_rate_limited(fetch, seed, services):
    world = await seed({"web1": LOCAL})
    for _ in range(services.settings.bad_key_limit):
        assert (await post_json(fetch, world.template_id, {"host_config_key": "guess"})).code == 403
    limited = await post_json(fetch, world.template_id, {"host_config_key": world.key})
    assert limited.code == 429
    assert int(limited.headers["Retry-After"]) >= 1
    assert "detail" in json.loads(limited.body)
