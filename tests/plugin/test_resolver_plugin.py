"""The example third-party plugin (examples/resolver-plugin), installed with pip the way a
user installs it: found through its entry point, ranked by plugins.toml, used in a callback."""

from __future__ import annotations

import ast
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import plugins_config_for
from tests.helpers import REPO
from tornado_callback.accounts.service import LOCAL_ADMIN
from tornado_callback.config import Settings
from tornado_callback.plugin.manager import discover_resolvers, make_plugin_manager
from tornado_callback.services import Services

EXAMPLE = REPO / "examples" / "resolver-plugin"
CALLBACK = "/api/v2/job_templates/{}/callback/"


@pytest.fixture(scope="session")
def plugin_target(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``pip install --target``: a private site directory, the running environment untouched."""
    work = tmp_path_factory.mktemp("plugin")
    source = shutil.copytree(EXAMPLE, work / "source")  # pip builds in place: keep the checkout clean
    target = work / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target),
         str(source)],
        check=True, capture_output=True, timeout=300,
    )
    return target


@pytest.fixture
def installed(plugin_target: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(plugin_target))


@pytest.fixture
def plugins_config():
    return plugins_config_for(host_token={"priority": 450})


@pytest.fixture
def services(installed, io_loop, settings):
    pm = make_plugin_manager(load_entrypoints=True)
    services = io_loop.run_sync(lambda: Services.start(settings, pm, upgrade=False))
    yield services
    io_loop.run_sync(services.close)


def test_discovered_through_its_entry_point_and_ranked_by_plugins_toml(installed):
    found = discover_resolvers(make_plugin_manager(load_entrypoints=True),
                               Settings(plugins=plugins_config_for(host_token={"priority": 450})))
    order = [(r.name, r.priority, r.source) for r, enabled in found if enabled]
    assert order[:2] == [("host_token", 450, "tcb-host-token 1.0.0"),
                         ("cloud_metadata", 400, "resolvers.cloud_metadata")]
    default = discover_resolvers(make_plugin_manager(load_entrypoints=True), Settings())
    assert [(r.name, r.priority) for r, _ in default][2] == ("host_token", 250)


def test_not_loaded_without_entry_points(installed):
    found = discover_resolvers(make_plugin_manager(load_entrypoints=False), Settings())
    assert "host_token" not in [r.name for r, _ in found]


@pytest.mark.gen_test
async def test_the_token_decides_a_real_callback(fetch, seed, services):
    # The caller's address (127.0.0.1) is web2's; its token is web1's, and the token ranks first.
    world = await seed({"web1": {"host_token": "tok-one", "ansible_host": "10.0.0.1"},
                        "web2": {"host_token": "tok-two", "ansible_host": "127.0.0.1"}})
    response = await fetch(CALLBACK.format(world.template_id), method="POST",
                           headers={"Content-Type": "application/json", "X-Host-Token": "tok-one"},
                           body=json.dumps({"host_config_key": world.key}))
    assert response.code == 202, response.body
    _, jobs = await services.jobs.page(LOCAL_ADMIN)
    assert (jobs[0].limit, jobs[0].resolved_by) == ("web1", "host_token")
    _, attempts = await services.attempts.page(world.template_id)
    trace = attempts[0].trace
    assert trace[0] == {**trace[0], "resolver": "host_token", "priority": 450, "outcome": "matched",
                        "hosts": ["web1"], "evidence": ["X-Host-Token header given"]}
    assert "tok-one" not in json.dumps(trace)


def imported_modules(path: Path) -> set[str]:
    """The project modules a file imports (``from tornado_callback import plugin`` names the plugin module)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.update(f"{node.module}.{alias.name}" if node.module == "tornado_callback" else node.module
                         for alias in node.names)
    return {name for name in found if name.split(".")[0] in ("tornado_callback", "resolvers")}


@pytest.mark.parametrize("path", [EXAMPLE / "tcb_host_token.py", *sorted((REPO / "resolvers").glob("[a-z]*.py"))],
                         ids=lambda path: path.name)
def test_a_plugin_needs_only_the_plugin_api(path):
    """The example and the built-ins alike: a third-party plugin has every power a built-in has."""
    assert imported_modules(path) == {"tornado_callback.plugin"}
