"""An admin's walk through the console in a real headless chromium (issue 20), against a real
server process: log in, open a template, read the traces of three callbacks (matched, no match,
ambiguous), explain an address behind a trusted proxy, follow a running job to its end, log out.

Each page is photographed into docs/console/ (the README shows them). One browser serves the
module: Debian's chromium through its chromedriver, named explicitly so that Selenium Manager
never downloads anything, in a fresh profile, quit at the end.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

from tests.conftest import TEST_SECRET_KEY, run_isolated
from tests.helpers import REPO, ServerProcess
from tests.jobs_support import LOCALHOST_VARS, write_playbook
from tornado_callback.accounts.service import LOCAL_ADMIN
from tornado_callback.config import Settings, parse_plugins_config
from tornado_callback.services import Services

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
SCREENSHOTS = REPO / "docs" / "console"
SCRIPT_HOST = "<script>alert(1)</script>"
KEY = "browser-test-key"
PASSWORD = "console-pw"
PAGE_LIMIT_BYTES = 100_000
NAVIGATION_SECONDS = 30
# Long enough for the page to see the job running, short enough for the suite.
SLOW_TASKS = """\
    - ansible.builtin.debug:
        msg: "configuring <script>alert(3)</script>"
    - ansible.builtin.command: sleep 1
      loop: [1, 2, 3, 4]
"""
PLUGINS_TOML = """\
[resolvers.reverse_dns]
enabled = false
[resolvers.forward_dns]
enabled = false
[resolvers.x_forwarded_for]
trusted_proxies = ["127.0.0.1/32"]
"""
# Every host runs the playbook on this machine: nothing leaves loopback.
HOSTS = {
    "local": {**LOCALHOST_VARS},
    "web1": {**LOCALHOST_VARS, "ansible_host": "10.0.0.5"},
    SCRIPT_HOST: {**LOCALHOST_VARS, "ansible_host": "10.0.0.7"},
    "twin": {**LOCALHOST_VARS, "ansible_host": "10.0.0.7"},
}


@dataclass
class Console:
    url: str
    template_id: int


async def seed(settings: Settings, workdir: Path) -> int:
    """A superuser, the inventory above and its template, and a synced inventory source."""
    services = await Services.start(settings)
    try:
        await services.accounts.create_user("admin", PASSWORD, superuser=True)
        inventory = await services.admin.create("inventories", LOCAL_ADMIN, {"name": "fleet"})
        for name, variables in HOSTS.items():
            await services.admin.create("hosts", LOCAL_ADMIN,
                                        {"inventory": inventory["id"], "name": name, "variables": variables})
        template = await services.admin.create("job_templates", LOCAL_ADMIN, {
            "name": "provision-web", "inventory": inventory["id"], "project_dir": str(workdir / "project"),
            "playbook": write_playbook(workdir / "project", "slow.yml", SLOW_TASKS), "host_config_key": KEY})
        synced = await services.admin.create("inventories", LOCAL_ADMIN, {"name": "datacenter"})
        (workdir / "datacenter.ini").write_text("db1 ansible_host=10.1.0.1\ndb2 ansible_host=10.1.0.2\n")
        source = await services.admin.create("inventory_sources", LOCAL_ADMIN, {
            "name": "datacenter file", "inventory": synced["id"], "source": "file",
            "source_path": str(workdir / "datacenter.ini")})
        await services.inventory_sync.update(source["id"])
        return template["id"]
    finally:
        await services.close()


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    workdir = tmp_path_factory.mktemp("console")
    plugins = workdir / "plugins.toml"
    plugins.write_text(PLUGINS_TOML)
    database_url = f"sqlite+aiosqlite:///{workdir / 'console.db'}"
    settings = Settings(database_url=database_url, secret_key=TEST_SECRET_KEY,
                        plugins=parse_plugins_config({"resolvers": {}}))
    template_id = run_isolated(seed(settings, workdir))
    server = ServerProcess("--database-url", database_url, "--plugins", str(plugins), cwd=workdir,
                           TORNADO_CALLBACK_SECRET_KEY=TEST_SECRET_KEY, TORNADO_CALLBACK_RUN_DIR=str(workdir / "runs"),
                           TORNADO_CALLBACK_JOB_POLL_INTERVAL="0.2")
    try:
        server.wait_for("serving on")
        yield Console(server.base_url, template_id)
    finally:
        assert server.stop() == 0, server.output


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDriver]:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1280,1000",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}",
        "--no-first-run", "--no-default-browser-check", "--disable-extensions", "--disable-sync",
        # Nothing but the test server: no update checks, no Google services, no name lookups.
        "--disable-background-networking", "--disable-component-update", "--disable-default-apps",
        "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    try:
        driver.implicitly_wait(0)
        yield driver
    finally:
        driver.quit()


def callback(console: Console, forwarded_for: str | None = None) -> tuple[int, dict]:
    """A host's callback through the trusted proxy at 127.0.0.1 (naming ``forwarded_for``), or from it."""
    request = urllib.request.Request(
        f"{console.url}/api/v2/job_templates/{console.template_id}/callback/",
        data=json.dumps({"host_config_key": KEY}).encode(), method="POST",
        headers={"Content-Type": "application/json", **({"X-Forwarded-For": forwarded_for} if forwarded_for else {})})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def eventually(check: Callable[[], object], what: str, timeout: float = 90.0) -> object:
    deadline = time.monotonic() + timeout
    while not (result := check()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)
    return result


def photograph(driver: WebDriver, name: str) -> None:
    """Save the page as docs/console/NAME.png, after checking what every page must be."""
    assert len(driver.page_source.encode()) < PAGE_LIMIT_BYTES, name
    with pytest.raises(NoAlertPresentException):  # no script of the data ever ran
        driver.switch_to.alert  # noqa: B018 (the property raises when there is none)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    height = driver.execute_script("return document.body.scrollHeight")  # the content, not the window
    width = driver.get_window_size()["width"]
    driver.set_window_size(width, min(max(height + 120, 600), 2400))
    driver.execute_script("window.scrollTo(0, 0)")
    driver.save_screenshot(str(SCREENSHOTS / f"{name}.png"))


def arrive(driver: WebDriver, url: str) -> None:
    """Wait for the page a click leads to (a click returns before the browser navigates)."""
    WebDriverWait(driver, NAVIGATION_SECONDS).until(expected_conditions.url_to_be(url))


def text_of(driver: WebDriver, css: str) -> str:
    return driver.find_element(By.CSS_SELECTOR, css).text


def test_an_admin_follows_callbacks_from_login_to_logout(console, browser):
    assert callback(console, "10.9.9.9") == (400, {"msg": "No matching host could be found!"})
    assert callback(console, "10.0.0.7") == (400, {"msg": "Multiple hosts matched the request!"})
    assert callback(console, "10.0.0.5")[0] == 202  # web1

    browser.get(f"{console.url}/console/")
    assert browser.current_url.startswith(f"{console.url}/console/login/")
    photograph(browser, "login")
    browser.find_element(By.ID, "username").send_keys("admin")
    browser.find_element(By.ID, "password").send_keys(PASSWORD)
    browser.find_element(By.CSS_SELECTOR, "form.stacked button").click()
    arrive(browser, f"{console.url}/console/")
    template = text_of(browser, "section.template")
    assert "provision-web" in template and f"host_config_key={KEY}" in template
    photograph(browser, "templates")

    browser.find_element(By.LINK_TEXT, "Callback attempts").click()
    arrive(browser, f"{console.url}/console/templates/{console.template_id}/")
    attempts = browser.find_elements(By.CSS_SELECTOR, "li.attempt")
    assert len(attempts) == 3
    badges = [a.find_element(By.CSS_SELECTOR, "summary .badge").text for a in attempts]
    assert badges == ["202 launched", "400 Multiple hosts matched the request!", "400 No matching host could be found!"]
    assert "host web1" in attempts[0].text
    for attempt in attempts:  # each opens into its chain of resolvers
        attempt.find_element(By.TAG_NAME, "summary").click()
        steps = attempt.find_elements(By.CSS_SELECTOR, "ol.trace > li.step")
        assert [step.find_element(By.CSS_SELECTOR, ".resolver").text for step in steps] == [
            "cloud_metadata", "x_forwarded_for", "ip_match"]  # in the order they ran
    ambiguous = attempts[1].find_element(By.XPATH, ".//li[contains(@class, 'step')][.//span[text()='ambiguous']]")
    assert f"hosts: {SCRIPT_HOST}, twin" in ambiguous.text or f"hosts: twin, {SCRIPT_HOST}" in ambiguous.text
    matched = attempts[0].find_element(By.CSS_SELECTOR, ".badge-matched")
    assert matched.value_of_css_property("background-color") != attempts[1].find_element(
        By.CSS_SELECTOR, ".badge-ambiguous").value_of_css_property("background-color")
    photograph(browser, "callback")

    browser.find_element(By.LINK_TEXT, "Explain an address").click()
    arrive(browser, f"{console.url}/console/templates/{console.template_id}/explain/")
    browser.find_element(By.ID, "address").send_keys("127.0.0.1")
    browser.find_element(By.ID, "headers").send_keys("X-Forwarded-For: 10.0.0.5")
    browser.find_element(By.CSS_SELECTOR, "form.stacked button").click()
    WebDriverWait(browser, NAVIGATION_SECONDS).until(
        expected_conditions.presence_of_element_located((By.ID, "explanation")))
    assert text_of(browser, "dd.matching") == "web1"
    assert "peer 127.0.0.1 is a trusted proxy" in text_of(browser, "#explanation")
    photograph(browser, "explain")

    status, launched = callback(console)  # from 127.0.0.1 itself: host local
    assert status == 202
    browser.get(f"{console.url}/console/jobs/{launched['job']}/")
    browser.execute_script("window.notReloaded = true")
    assert text_of(browser, "#job-status") in ("pending", "waiting", "running")
    eventually(lambda: text_of(browser, "#job-status") == "successful", "the job page to show the job's end")
    assert browser.execute_script("return window.notReloaded") is True  # followed live, by the script
    assert text_of(browser, "#job-finished")  # the end's time came with it
    output = text_of(browser, "#job-output")
    assert "configuring <script>alert(3)</script>" in output and "PLAY RECAP" in output
    photograph(browser, "job")

    browser.find_element(By.LINK_TEXT, "Jobs").click()
    arrive(browser, f"{console.url}/console/jobs/")
    assert len(browser.find_elements(By.CSS_SELECTOR, "tbody tr")) == 2
    photograph(browser, "jobs")
    browser.find_element(By.LINK_TEXT, "Inventory syncs").click()
    arrive(browser, f"{console.url}/console/syncs/")
    row = text_of(browser, "tbody tr")
    assert "datacenter file" in row and "successful" in row
    photograph(browser, "syncs")

    browser.set_window_size(390, 844)  # a phone
    browser.get(f"{console.url}/console/")
    assert browser.execute_script("return document.documentElement.scrollWidth <= window.innerWidth")
    photograph(browser, "templates-phone")
    browser.set_window_size(1280, 1000)

    browser.find_element(By.CSS_SELECTOR, "form.logout button").click()
    arrive(browser, f"{console.url}/console/login/")
    browser.get(f"{console.url}/console/jobs/")
    assert browser.current_url.startswith(f"{console.url}/console/login/")
