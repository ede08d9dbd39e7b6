"""The console over HTTP (issue 20): sessions, the API's permissions, XSRF, escaping, and
the API left as it was. The browser's walk through the pages is in test_browser.py."""

from __future__ import annotations

import dataclasses
import re

import pytest
from cryptography.hazmat.primitives import serialization
from tornado.netutil import bind_sockets

from tests.conftest import TEST_SECRET_KEY, basic_auth, plugins_config_for
from tests.helpers import free_port
from tests.identity.cloud import new_key, pem, self_signed
from tornado_callback.accounts.service import LOCAL_ADMIN
from tornado_callback.app import http_server, make_app, ssl_context
from tornado_callback.config import Settings
from tornado_callback.store.models import Job

SCRIPT_HOST = "<script>alert(1)</script>"
PAGES = ("/console/", "/console/templates/{t}/", "/console/templates/{t}/explain/", "/console/jobs/",
         "/console/jobs/{j}/", "/console/syncs/")
LOGIN_LIMIT = 3


@pytest.fixture
def plugins_config():
    return plugins_config_for(x_forwarded_for={"trusted_proxies": ["127.0.0.1/32"]})


@pytest.fixture
def settings(database_url, plugins_config):
    return Settings(database_url=database_url, plugins=plugins_config, secret_key=TEST_SECRET_KEY,
                    login_user_limit=LOGIN_LIMIT)


# Users by name: the role each holds on the template (root is a superuser, outsider holds none).
ROLES = {"root": None, "editor": "admin", "reader": "read", "outsider": None}


@pytest.fixture
def world(io_loop, services, seed):
    """A template whose inventory has web1 (10.0.0.5), local (127.0.0.1) and two hosts at 10.0.0.7,
    one of them named with HTML."""
    return io_loop.run_sync(lambda: seed(
        {"web1": {"ansible_host": "10.0.0.5"}, "local": {"ansible_host": "127.0.0.1"},
         SCRIPT_HOST: {"ansible_host": "10.0.0.7"}, "twin": {"ansible_host": "10.0.0.7"}},
        name="provision-web", key="k3y-Of-The-Template"))


@pytest.fixture
def account(services, world):
    """Factory: the user NAME of ROLES, password NAME-pw, made when a test first needs it
    (each password hash costs a fraction of a second, on purpose)."""
    async def make(name):
        await services.accounts.create_user(name, f"{name}-pw", superuser=name == "root")
        if ROLES[name]:
            await services.accounts.grant(name, "job_template", world.template_id, ROLES[name])
        return name

    return make


@pytest.fixture
def log_in(account, console_user):
    async def make(name):
        user = console_user()
        response = await user.login(await account(name), f"{name}-pw")
        assert response.code == 302, response.body
        return user

    return make


async def callback(fetch, world, *, forwarded_for=None):
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
    return await fetch(f"/api/v2/job_templates/{world.template_id}/callback/", method="POST",
                       body=f"host_config_key={world.key}", headers=headers)


def text(response):
    return response.body.decode()


@pytest.mark.gen_test
async def test_every_page_needs_a_session(world, console_user):
    anonymous = console_user()
    for page in PAGES:
        path = page.format(t=world.template_id, j=1)
        response = await anonymous.get(path)
        assert response.code == 302, path
        assert response.headers["Location"].startswith("/console/login/?next=%2Fconsole%2F"), path
    polled = await anonymous.get("/console/jobs/1/output/")  # the job page's script: refused, not redirected
    assert polled.code == 403
    refused = await anonymous.post(f"/console/templates/{world.template_id}/explain/", {"address": "10.0.0.5"},
                                   form_page="/console/login/")
    assert refused.code == 403
    assert "web1" not in text(refused)


@pytest.mark.gen_test
async def test_a_session_is_an_http_only_lax_cookie_of_the_console_until_logout(world, account, console_user):
    user = console_user()
    login = await user.login(await account("editor"), "editor-pw")
    assert login.headers["Location"] == "/console/"
    session = next(h for h in user.set_cookie_headers if h.startswith("tcb_console="))
    assert "HttpOnly" in session and "SameSite=Lax" in session and "Path=/console/" in session
    assert "Secure" not in session  # plain HTTP: a Secure cookie would never come back
    home = await user.get("/console/")
    assert home.code == 200 and "editor" in text(home) and "provision-web" in text(home)

    out = await user.post("/console/logout/", {}, form_page="/console/")
    assert out.code == 302 and out.headers["Location"] == "/console/login/"
    assert (await user.get("/console/")).code == 302


@pytest.mark.gen_test
async def test_a_new_password_ends_the_sessions_opened_with_the_old_one(world, account, console_user, services):
    user, stolen = console_user(), console_user()
    await user.login(await account("editor"), "editor-pw")
    stolen.cookies = dict(user.cookies)  # a copy of the cookie, taken by someone else
    assert (await stolen.get("/console/")).code == 200

    await services.accounts.set_password("editor", "new-editor-pw")
    for session in (user, stolen):
        refused = await session.get("/console/")
        assert refused.code == 302 and refused.headers["Location"].startswith("/console/login/")
    again = console_user()
    await again.login("editor", "new-editor-pw")
    assert (await again.get("/console/")).code == 200


@pytest.mark.gen_test
async def test_a_trusted_proxy_saying_https_gets_secure_cookies(world, console_user):
    proxied = {"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"}
    user = console_user()
    response = await user.request("/console/login/", headers=proxied)
    xsrf = next(h for h in user.set_cookie_headers if h.startswith("_xsrf="))
    assert "Secure" in xsrf and "HttpOnly" in xsrf
    # The same header from a client no proxy vouches for (no forwarded client) changes nothing.
    direct = console_user()
    await direct.request("/console/login/", headers={"X-Forwarded-Proto": "https"})
    assert "Secure" not in direct.set_cookie_headers[0]
    assert response.code == 200


@pytest.mark.gen_test
async def test_over_tls_the_cookies_are_secure(services, http_client, tmp_path):
    key = new_key()
    (tmp_path / "cert.pem").write_bytes(pem(self_signed(key, "127.0.0.1")))
    (tmp_path / "key.pem").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    tls = dataclasses.replace(services.settings, certfile=str(tmp_path / "cert.pem"),
                              keyfile=str(tmp_path / "key.pem"))
    server = http_server(make_app(services), tls, ssl_context(tls))
    port = free_port()
    server.add_sockets(bind_sockets(port, "127.0.0.1"))
    try:
        response = await http_client.fetch(f"https://127.0.0.1:{port}/console/login/", validate_cert=False)
    finally:
        server.stop()
        await server.close_all_connections()
    xsrf = next(h for h in response.headers.get_list("Set-Cookie") if h.startswith("_xsrf="))
    assert "Secure" in xsrf and "HttpOnly" in xsrf and "SameSite=Lax" in xsrf


@pytest.mark.gen_test
async def test_a_wrong_password_is_refused_and_the_apis_login_limit_applies(world, account, console_user):
    user = console_user()
    await account("editor")
    for _ in range(LOGIN_LIMIT):
        wrong = await user.post("/console/login/", {"username": "editor", "password": "nope"},
                                form_page="/console/login/")
        assert wrong.code == 200 and "Invalid username/password." in text(wrong)
        assert "tcb_console" not in user.cookies
    limited = await user.login("editor", "editor-pw")
    assert limited.code == 429 and "Too many failed logins" in text(limited)
    assert int(limited.headers["Retry-After"]) > 0
    assert "tcb_console" not in user.cookies


@pytest.mark.gen_test
async def test_a_user_without_a_role_sees_no_template_of_others(world, log_in, fetch):
    launched = await callback(fetch, world)
    assert launched.code == 202
    job_id = int(launched.headers["Location"].rstrip("/").rsplit("/", 1)[1])
    outsider = await log_in("outsider")
    home = await outsider.get("/console/")
    assert home.code == 200 and "provision-web" not in text(home) and "0 templates" in text(home)
    jobs = await outsider.get("/console/jobs/")
    assert "provision-web" not in text(jobs) and f"/console/jobs/{job_id}/" not in text(jobs)
    for path in (f"/console/templates/{world.template_id}/", f"/console/templates/{world.template_id}/explain/",
                 f"/console/jobs/{job_id}/", f"/console/jobs/{job_id}/output/"):
        hidden = await outsider.get(path)
        assert hidden.code == 404, path
        assert "provision-web" not in text(hidden)


@pytest.mark.gen_test
async def test_the_key_is_in_no_page_of_a_user_who_may_not_edit(world, log_in):
    reader = await log_in("reader")
    home = text(await reader.get("/console/"))
    assert "provision-web" in home and f"/api/v2/job_templates/{world.template_id}/callback/" in home
    assert world.key not in home
    assert "$HOST_CONFIG_KEY" in home  # the ready curl line, with a placeholder
    # The attempts and the explain are the template admins' (the API's rule): refused, keyless.
    for path in (f"/console/templates/{world.template_id}/", f"/console/templates/{world.template_id}/explain/"):
        refused = await reader.get(path)
        assert refused.code == 403 and world.key not in text(refused)

    editor = await log_in("editor")
    shown = text(await editor.get("/console/"))
    assert f"host_config_key={world.key}" in shown


@pytest.mark.gen_test
async def test_no_page_is_kept_by_a_cache_or_the_browsers_history(world, log_in):
    """A page may carry a key (the editor's curl line): a shared proxy or the browser's disk must not keep it."""
    editor = await log_in("editor")
    for page in PAGES:
        response = await editor.get(page.format(t=world.template_id, j=1))
        assert response.headers.get("Cache-Control") == "no-store", page
    home = await editor.get("/console/")
    assert world.key in text(home)


@pytest.mark.gen_test
async def test_a_form_posted_without_the_xsrf_token_is_refused(world, log_in, console_user):
    editor = await log_in("editor")
    explain = f"/console/templates/{world.template_id}/explain/"
    refused = await editor.post(explain, {"address": "10.0.0.5"})
    assert refused.code == 403 and "web1" not in text(refused)
    forged = await editor.post(explain, {"address": "10.0.0.5", "_xsrf": "2|00|00|00"})
    assert forged.code == 403
    assert (await editor.post("/console/logout/", {})).code == 403
    assert (await editor.get("/console/")).code == 200  # still logged in
    assert (await console_user().post("/console/login/", {"username": "editor", "password": "editor-pw"})).code == 403

    explained = await editor.post(explain, {"address": "10.0.0.5"}, form_page=explain)
    assert explained.code == 200 and "web1" in text(explained)


@pytest.mark.gen_test
async def test_explain_behind_a_trusted_proxy_shows_the_matched_host_and_its_trace(world, log_in):
    editor = await log_in("editor")
    explain = f"/console/templates/{world.template_id}/explain/"
    page = text(await editor.post(explain, {"address": "127.0.0.1", "headers": "X-Forwarded-For: 10.0.0.5"},
                                  form_page=explain))
    matching = re.search(r'<dd class="matching">(.*?)</dd>', page).group(1)
    assert matching == "web1"
    assert "peer 127.0.0.1 is a trusted proxy" in page and "badge-matched" in page
    assert (f'href="/api/v2/job_templates/{world.template_id}/callback/?address=127.0.0.1&amp;'
            f'header=X-Forwarded-For%3A+10.0.0.5"') in page
    bad = await editor.post(explain, {"address": "not-an-ip"}, form_page=explain)
    assert bad.code == 400 and "is not an IP address" in text(bad)


@pytest.mark.gen_test
async def test_a_fleet_behind_one_address_is_named_in_part(world, log_in, services):
    for number in range(30):
        await services.admin.create("hosts", LOCAL_ADMIN, {
            "inventory": world.inventory_id, "name": f"nat{number:02}", "variables": {"ansible_host": "10.0.0.9"}})
    editor = await log_in("editor")
    explain = f"/console/templates/{world.template_id}/explain/"
    page = text(await editor.post(explain, {"address": "10.0.0.9"}, form_page=explain))
    assert re.search(r'<dd class="matching">nat00, nat01, .*, nat19 and 10 more</dd>', page)
    assert "hosts: nat00, nat01, " in page and "nat19 and 10 more" in page and "nat20" not in page


@pytest.mark.gen_test
async def test_attempts_are_listed_with_their_traces_and_filtered(world, log_in, fetch):
    assert (await callback(fetch, world)).code == 202  # from 127.0.0.1: host local
    assert (await callback(fetch, world, forwarded_for="10.9.9.9")).code == 400  # no host there
    assert (await callback(fetch, world, forwarded_for="10.0.0.7")).code == 400  # two hosts there
    editor = await log_in("editor")
    page_path = f"/console/templates/{world.template_id}/"
    page = text(await editor.get(page_path))
    assert "3 attempts" in page
    assert "No matching host could be found!" in page and "Multiple hosts matched the request!" in page
    assert "host local" in page and "client 10.9.9.9" in page
    assert page.count('<ol class="trace">') == 3

    only = text(await editor.get(page_path + "?outcome=ambiguous"))
    assert "1 attempt<" in only and "Multiple hosts matched" in only and "No matching host" not in only
    by_host = text(await editor.get(page_path + "?host=local"))
    assert "1 attempt<" in by_host and "host local" in by_host


@pytest.mark.gen_test
async def test_html_in_host_names_evidence_and_job_output_shows_as_text(world, log_in, fetch, services):
    assert (await callback(fetch, world, forwarded_for="10.0.0.7")).code == 400
    assert (await callback(fetch, world, forwarded_for="<img src=x onerror=alert(2)>")).code == 400
    async with services.db.session() as session:
        job = Job(job_template_id=world.template_id, inventory_id=world.inventory_id, name="provision-web",
                  status="successful", launch_type="manual", result_stdout="ok: [<b>web1</b>] <script>alert(3)</script>")
        session.add(job)
        await session.commit()
    root = await log_in("root")
    attempts = text(await root.get(f"/console/templates/{world.template_id}/"))
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in attempts and SCRIPT_HOST not in attempts
    assert "&lt;img src=x onerror=alert(2)&gt;" in attempts and "<img" not in attempts
    output = text(await root.get(f"/console/jobs/{job.id}/"))
    assert "ok: [&lt;b&gt;web1&lt;/b&gt;] &lt;script&gt;alert(3)&lt;/script&gt;" in output
    assert "<script>alert" not in output and "<b>web1" not in output
    # And no page may run a script of its own text: only the console's files.
    assert "script-src" not in output and "default-src 'self'" in (await root.get("/console/")).headers[
        "Content-Security-Policy"]


@pytest.mark.gen_test
async def test_a_job_page_stays_under_100_kb_whatever_the_output(world, log_in, services):
    output = "start\n" + "<&\"é" * 50_000 + "\nthe end"  # each character grows when escaped
    async with services.db.session() as session:
        job = Job(job_template_id=world.template_id, inventory_id=world.inventory_id, name="provision-web",
                  status="running", launch_type="manual", result_stdout=output)
        session.add(job)
        await session.commit()
    root = await log_in("root")
    page = await root.get(f"/console/jobs/{job.id}/")
    assert page.code == 200 and len(page.body) < 100_000
    assert "&lt;&amp;&quot;é\nthe end</pre>" in text(page) and "start" not in text(page)
    assert f"of {len(output)} characters" in text(page)


@pytest.mark.gen_test
async def test_an_api_path_asked_for_html_stays_json(world, account, fetch):
    html = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
    await account("root")
    explained = await fetch(f"/api/v2/job_templates/{world.template_id}/callback/",
                            headers={**html, **basic_auth("root", "root-pw")})
    assert explained.code == 200
    assert explained.headers["Content-Type"] == "application/json; charset=utf-8"
    assert explained.body.startswith(b"{")
    missing = await fetch("/api/v2/no-such-thing/", headers=html)
    assert missing.code == 404 and missing.headers["Content-Type"] == "application/json; charset=utf-8"


@pytest.mark.gen_test
async def test_static_files_are_versioned_and_cached_for_long(world, console_user, fetch):
    page = text(await console_user().get("/console/login/"))
    css = re.search(r'href="(/console/static/console\.css\?v=[0-9a-f]+)"', page).group(1)
    response = await fetch(css)
    assert response.code == 200 and response.headers["Content-Type"].startswith("text/css")
    assert response.headers["Cache-Control"] == "max-age=315360000"


@pytest.mark.gen_test
async def test_an_unknown_console_page_is_an_html_404(world, console_user):
    response = await console_user().get("/console/nothing/here/")
    assert response.code == 404 and response.headers["Content-Type"].startswith("text/html")
    assert "<h1>404</h1>" in text(response)
