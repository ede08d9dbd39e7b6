"""/api/v2/jobs/: who may read which jobs, filters, pages, output and canceling (no workers here)."""

from __future__ import annotations

import asyncio
import json
import sys

import pytest

from tests.conftest import basic_auth
from tornado_callback.jobs.service import EXPLAIN_CANCELED_PENDING

# Several tests start the command line in a subprocess (about 2 s each on a busy machine).
pytestmark = pytest.mark.gen_test(timeout=60)

JSON = {"Content-Type": "application/json"}
LOCAL = {"ansible_host": "127.0.0.1"}
DETAIL_FIELDS = {
    "id", "type", "url", "related", "name", "job_template", "inventory", "status", "launch_type",
    "limit", "extra_vars", "created", "modified", "started", "finished", "elapsed", "failed",
    "job_explanation", "resolved_by",
    # The ansible-playbook run it had and how many jobs shared it (coalesced runs, README "Jobs").
    "run_id", "run_job_count",
}


async def launch(fetch, world):
    response = await fetch(f"/api/v2/job_templates/{world.template_id}/callback/", method="POST",
                           body=json.dumps({"host_config_key": world.key}), headers=JSON)
    assert response.code == 202
    return json.loads(response.body)["job"]


@pytest.fixture
def two_templates(io_loop, fetch, seed, services):
    """Templates a and b with one pending callback job each; users root (superuser) and reader (read on a)."""

    async def make():
        a = await seed({"web1": dict(LOCAL)}, name="a", extra_vars={"colour": "blue"})
        b = await seed({"web1": dict(LOCAL)}, name="b")
        jobs = {"a": await launch(fetch, a), "b": await launch(fetch, b)}
        await services.accounts.create_user("root", "pw", superuser=True)
        await services.accounts.create_user("reader", "pw")
        await services.accounts.grant("reader", "job_template", a.template_id, "read")
        return a, b, jobs

    return io_loop.run_sync(make)


async def get_json(fetch, path, user="root"):
    response = await fetch(path, headers=basic_auth(user, "pw"))
    return response.code, json.loads(response.body) if response.body else None


async def test_reading_jobs_needs_authentication(fetch, two_templates):
    response = await fetch("/api/v2/jobs/")
    assert response.code == 401
    assert response.headers["WWW-Authenticate"] == 'Basic realm="tornado-callback"'
    _, _, jobs = two_templates
    assert (await fetch(f"/api/v2/jobs/{jobs['a']}/")).code == 401


async def test_superuser_sees_a_job_as_api_md_describes_it(fetch, two_templates):
    a, _, jobs = two_templates
    for path in (f"/api/v2/jobs/{jobs['a']}/", f"/api/v2/jobs/{jobs['a']}"):
        code, job = await get_json(fetch, path)
        assert code == 200
        assert set(job) == DETAIL_FIELDS
        assert job["id"] == jobs["a"] and job["type"] == "job"
        assert job["url"] == f"/api/v2/jobs/{jobs['a']}/"
        assert job["related"] == {
            "stdout": f"/api/v2/jobs/{jobs['a']}/stdout/",
            "cancel": f"/api/v2/jobs/{jobs['a']}/cancel/",
            "job_template": f"/api/v2/job_templates/{a.template_id}/",
        }
        assert (job["status"], job["launch_type"], job["limit"], job["resolved_by"]) == (
            "pending", "callback", "web1", "ip_match")
        assert json.loads(job["extra_vars"]) == {"colour": "blue"}
        assert (job["started"], job["finished"], job["elapsed"], job["failed"]) == (None, None, 0.0, False)
        assert (job["job_template"], job["inventory"]) == (a.template_id, a.inventory_id)


async def test_users_see_only_jobs_of_templates_they_may_read(fetch, two_templates):
    _, _, jobs = two_templates
    code, page = await get_json(fetch, "/api/v2/jobs/", "reader")
    assert code == 200
    assert (page["count"], [j["id"] for j in page["results"]]) == (1, [jobs["a"]])
    assert (await get_json(fetch, f"/api/v2/jobs/{jobs['a']}/", "reader"))[0] == 200
    # Another template's job does not exist for this user, as the README says.
    assert (await get_json(fetch, f"/api/v2/jobs/{jobs['b']}/", "reader"))[0] == 404
    assert (await get_json(fetch, f"/api/v2/jobs/{jobs['b']}/stdout/", "reader"))[0] == 404
    code, page = await get_json(fetch, "/api/v2/jobs")
    assert (code, page["count"]) == (200, 2)


@pytest.mark.parametrize("path", ["/api/v2/jobs/999/", "/api/v2/jobs/abc/", "/api/v2/jobs/0/stdout/",
                                  "/api/v2/jobs/99999999999999999999999/cancel/"])
async def test_unknown_jobs_are_404(fetch, two_templates, path):
    assert await get_json(fetch, path) == (404, {"detail": "Not found."})


async def test_filters_and_pages(fetch, two_templates):
    _, b, jobs = two_templates
    _, page = await get_json(fetch, f"/api/v2/jobs/?job_template={b.template_id}")
    assert [j["id"] for j in page["results"]] == [jobs["b"]]
    _, page = await get_json(fetch, "/api/v2/jobs/?status=pending&launch_type=callback")
    assert page["count"] == 2
    _, page = await get_json(fetch, "/api/v2/jobs/?status=successful")
    assert (page["count"], page["results"]) == (0, [])
    _, page = await get_json(fetch, "/api/v2/jobs/?launch_type=manual")
    assert page["count"] == 0

    _, first = await get_json(fetch, "/api/v2/jobs/?page_size=1&status=pending")
    assert (first["count"], [j["id"] for j in first["results"]]) == (2, [jobs["b"]])
    assert first["previous"] is None
    assert first["next"] == "/api/v2/jobs/?page_size=1&status=pending&page=2"
    _, second = await get_json(fetch, first["next"])
    assert ([j["id"] for j in second["results"]], second["next"]) == ([jobs["a"]], None)
    assert second["previous"] == "/api/v2/jobs/?page_size=1&status=pending&page=1"
    assert (await get_json(fetch, "/api/v2/jobs/?page=3&page_size=1"))[0] == 404


@pytest.mark.parametrize("query", ["status=bogus", "launch_type=scheduled", "job_template=x",
                                   "job_template=99999999999999999999",
                                   "page=0", "page_size=500"])
async def test_bad_filters_are_400(fetch, two_templates, query):
    code, body = await get_json(fetch, f"/api/v2/jobs/?{query}")
    assert code == 400 and isinstance(body["detail"], str)


async def test_stdout_formats(fetch, two_templates):
    _, _, jobs = two_templates
    response = await fetch(f"/api/v2/jobs/{jobs['a']}/stdout/?format=txt", headers=basic_auth("root", "pw"))
    assert (response.code, response.headers["Content-Type"], response.body) == (
        200, "text/plain; charset=utf-8", b"")
    code, body = await get_json(fetch, f"/api/v2/jobs/{jobs['a']}/stdout")
    assert (code, body) == (200, {"range": {"start": 0, "end": 0, "absolute_end": 0}, "content": "", "events": []})
    assert (await get_json(fetch, f"/api/v2/jobs/{jobs['a']}/stdout/?format=html"))[0] == 400


async def test_canceling_a_pending_job(fetch, two_templates, services):
    a, _, jobs = two_templates
    cancel = f"/api/v2/jobs/{jobs['a']}/cancel/"
    assert await get_json(fetch, cancel, "reader") == (200, {"can_cancel": True})
    # Reading is not enough to cancel: that needs execute, like launching.
    denied = await fetch(cancel, method="POST", body=b"", headers=basic_auth("reader", "pw"))
    assert denied.code == 403

    response = await fetch(cancel.rstrip("/"), method="POST", body=b"", headers=basic_auth("root", "pw"))

    assert (response.code, response.body) == (202, b"")
    _, job = await get_json(fetch, f"/api/v2/jobs/{jobs['a']}/")
    assert (job["status"], job["failed"], job["job_explanation"]) == ("canceled", True, EXPLAIN_CANCELED_PENDING)
    assert job["finished"] is not None
    assert await get_json(fetch, cancel) == (200, {"can_cancel": False})
    again = await fetch(cancel, method="POST", body=b"", headers=basic_auth("root", "pw"))
    assert again.code == 405
    # The host may call back again at once.
    assert await launch(fetch, a) != jobs["a"]


async def run_cli(*args: str, cwd) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tornado_callback", *args, cwd=cwd,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await process.communicate()
    return process.returncode, out.decode(), err.decode()


async def test_cli_jobs_show(two_templates, settings, tmp_path):
    _, _, jobs = two_templates
    show = ("jobs", "show", "--database-url", settings.database_url)
    code, out, err = await run_cli(*show, str(jobs["a"]), cwd=tmp_path)
    assert code == 0, err
    rows = dict(line.split(None, 1) for line in out.splitlines()[1:] if " " in line.strip())
    assert (rows["status"].strip(), rows["limit"].strip()) == ("pending", "web1")
    code, _, err = await run_cli(*show, "999", cwd=tmp_path)
    assert (code, err.splitlines()[-1]) == (2, "tornado-callback: error: no job 999")
