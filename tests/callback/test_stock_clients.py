"""The exact requests of AWX's stock client scripts, sent by the real curl."""

from __future__ import annotations

import asyncio
import json

import pytest

from tornado_callback.accounts.service import LOCAL_ADMIN

pytestmark = pytest.mark.gen_test(timeout=30)


async def curl(*args: str) -> str:
    process = await asyncio.create_subprocess_exec(
        "curl", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    stdout, _ = await process.communicate()
    return stdout.decode()


def status_as_the_script_reads_it(output: str) -> str:
    # request_tower_configuration.sh: `| head -n1 | awk '{print $2}'`
    return output.splitlines()[0].split()[1]


@pytest.mark.parametrize("extra_vars, expected", [
    ("a: 1", {"a": 1}),
    ('{\\"a\\": 1}', {"a": 1}),   # what -e '{\"a\": 1}' pastes into the JSON string
])
async def test_request_tower_configuration_sh(base_url, seed, services, extra_vars, expected):
    world = await seed({"web1": {"ansible_host": "127.0.0.1"}}, ask_variables_on_launch=True)
    data = f'{{"host_config_key": "{world.key}", "extra_vars": "{extra_vars}"}}'
    url = f"{base_url}/api/v2/job_templates/{world.template_id}/callback/"
    output = await curl("-s", "-i", "-X", "POST", "-H", "Content-Type:application/json", "--data", data, url)
    assert status_as_the_script_reads_it(output) == "202"
    _, jobs = await services.jobs.page(LOCAL_ADMIN)
    assert jobs[0].extra_vars == expected


async def test_script_halts_only_on_404_and_retries_refusals(base_url, seed):
    world = await seed({"web1": {"ansible_host": "10.0.0.1"}})
    url = f"{base_url}/api/v2/job_templates/{{}}/callback/"
    no_match = await curl("-s", "-i", "-X", "POST", "-H", "Content-Type:application/json",
                          "--data", json.dumps({"host_config_key": world.key}), url.format(world.template_id))
    wrong_key = await curl("-s", "-i", "-X", "POST", "-H", "Content-Type:application/json",
                           "--data", '{"host_config_key": "nope"}', url.format(world.template_id))
    unknown = await curl("-s", "-i", "-X", "POST", "-H", "Content-Type:application/json",
                         "--data", json.dumps({"host_config_key": world.key}), url.format(987))
    assert [status_as_the_script_reads_it(o) for o in (no_match, wrong_key, unknown)] == ["400", "403", "404"]


async def test_curl_form_encoded_with_data_urlencode(base_url, seed, services):
    world = await seed({"web1": {"ansible_host": "127.0.0.1"}}, ask_variables_on_launch=True)
    url = f"{base_url}/api/v2/job_templates/{world.template_id}/callback/"
    output = await curl("-s", "-i", "--data-urlencode", f"host_config_key={world.key}",
                        "--data-urlencode", "extra_vars=a: 1", url)
    assert status_as_the_script_reads_it(output) == "202"
    _, jobs = await services.jobs.page(LOCAL_ADMIN)
    assert jobs[0].extra_vars == {"a": 1}
