"""Fixtures: a real database per test (SQLite always, PostgreSQL when
TORNADO_CALLBACK_TEST_DATABASE_URL is set), real services, the real server on
a real socket (pytest-tornado's port and loop, our ``make_server``)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import shutil
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest
import tornado.httpclient
from cryptography.fernet import Fernet
from sqlalchemy import text
from sqlalchemy.engine import make_url

from tornado_callback.accounts.service import LOCAL_ADMIN
from tornado_callback.app import make_app, make_server
from tornado_callback.config import PluginsConfig, Settings, normalise_database_url, parse_plugins_config
from tornado_callback.plugin.manager import make_plugin_manager
from tornado_callback.services import Services
from tornado_callback.store.database import Database
from tornado_callback.store.models import Base, JobTemplate

PG_ENV = "TORNADO_CALLBACK_TEST_DATABASE_URL"
BACKENDS = ["sqlite"] + (["postgresql"] if os.environ.get(PG_ENV) else [])

# How long a playbook killed by the last test may take to be gone.
LEFTOVER_GRACE_SECONDS = 5.0


def _running_playbooks() -> dict[tuple[int, float], psutil.Process]:
    """ansible-playbook processes (and bwraps around one) by (pid, start time)."""
    found = {}
    for process in psutil.process_iter(["cmdline", "create_time", "status"]):
        info = process.info
        if info["status"] != psutil.STATUS_ZOMBIE \
                and any(os.path.basename(arg) == "ansible-playbook" for arg in info["cmdline"] or ()):
            found[(process.pid, info["create_time"])] = process
    return found


# Others' playbooks (another checkout's tests, a developer's server) are none of this session's business.
PLAYBOOKS_BEFORE_THE_SESSION = frozenset(_running_playbooks())


def _playbooks_started_by_this_session(basetemp: Path) -> list[psutil.Process]:
    """Those started since the session began that are this session's: they name its
    temporary directory (where the tests' runs are) or descend from it. Another pytest
    session running at the same time has playbooks of its own."""
    own = []
    for key, process in _running_playbooks().items():
        if key in PLAYBOOKS_BEFORE_THE_SESSION:
            continue
        with contextlib.suppress(psutil.Error):
            if any(str(basetemp) in arg for arg in process.info["cmdline"]) \
                    or os.getpid() in {parent.pid for parent in process.parents()}:
                own.append(process)
    return own


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """A run that leaves an ansible-playbook behind fails: a stopped job must leave nothing running."""
    deadline = time.monotonic() + LEFTOVER_GRACE_SECONDS
    basetemp = session.config._tmp_path_factory.getbasetemp()  # type: ignore[attr-defined]
    while (left := _playbooks_started_by_this_session(basetemp)) and time.monotonic() < deadline:
        time.sleep(0.2)
    if not left:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    for process in left:
        if reporter is not None:
            reporter.write_line(f"LEFT RUNNING: pid {process.pid}: {' '.join(process.info['cmdline'])}", red=True)
        try:
            process.kill()
        except psutil.Error:
            pass
    session.exitstatus = pytest.ExitCode.TESTS_FAILED


def run_isolated(coroutine: Any) -> Any:
    """Run setup code on a private loop: ``asyncio.run`` would unset the loop
    that pytest-tornado made current for the test."""
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(coroutine)
    finally:
        loop.close()


def _migrate(url: str) -> None:
    async def run() -> None:
        db = Database(url)
        try:
            await db.upgrade()
        finally:
            await db.close()

    run_isolated(run())


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One migrated SQLite file per session; each test gets a copy."""
    path = tmp_path_factory.mktemp("sqlite-template") / "template.db"
    _migrate(f"sqlite+aiosqlite:///{path}")
    return path


async def _admin_execute(server_url: str, statement: str) -> None:
    import asyncpg

    url = make_url(server_url).set(drivername="postgresql")
    connection = await asyncpg.connect(url.render_as_string(hide_password=False))
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


@pytest.fixture(scope="session")
def postgresql_url() -> Iterator[str]:
    """A database of its own for this test session, migrated once, dropped at the end.

    Several sessions (developers, CI) may share the server, so never the
    configured database itself.
    """
    server_url = normalise_database_url(os.environ[PG_ENV])
    name = f"tcb_test_{uuid.uuid4().hex[:12]}"
    run_isolated(_admin_execute(server_url, f'CREATE DATABASE "{name}"'))
    url = make_url(server_url).set(database=name).render_as_string(hide_password=False)
    try:
        _migrate(url)
        yield url
    finally:
        run_isolated(_admin_execute(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(params=BACKENDS)
def new_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database no command has used yet: a SQLite file not there, an empty PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'new.db'}"
        return
    server_url = normalise_database_url(os.environ[PG_ENV])
    name = f"tcb_test_new_{uuid.uuid4().hex[:12]}"
    run_isolated(_admin_execute(server_url, f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        run_isolated(_admin_execute(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def _truncate_all(url: str) -> None:
    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)

    async def run() -> None:
        db = Database(url)
        try:
            async with db.engine.begin() as connection:
                await connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
        finally:
            await db.close()

    run_isolated(run())


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        path = tmp_path / "test.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite+aiosqlite:///{path}"
    url = request.getfixturevalue("postgresql_url")
    _truncate_all(url)
    return url


# Tests never reach the machine's DNS servers: the DNS resolvers are off unless
# a test turns them on with its own (dnsmasq) server.
OFFLINE_RESOLVERS = {"reverse_dns": {"enabled": False}, "forward_dns": {"enabled": False}}


def plugins_config_for(**tables: dict[str, Any]) -> PluginsConfig:
    """plugins.toml as ``[resolvers.NAME]`` tables, on top of the offline defaults."""
    return parse_plugins_config({"resolvers": {**OFFLINE_RESOLVERS, **tables}})


@pytest.fixture
def plugins_config() -> PluginsConfig:
    """Override in a test module to run with another plugins.toml (see plugins_config_for)."""
    return plugins_config_for()


# Credential secrets need a key; without one a key file would be created in the
# working directory (with PostgreSQL), i.e. in the checkout.
TEST_SECRET_KEY = Fernet.generate_key().decode()


@pytest.fixture
def settings(database_url: str, plugins_config: PluginsConfig) -> Settings:
    return Settings(database_url=database_url, plugins=plugins_config, secret_key=TEST_SECRET_KEY)


def shown(workdir: Path) -> Path:
    """The directory a test's playbooks may write to: sandboxed runs see no other (job_show_paths)."""
    path = workdir / "shown"
    path.mkdir(exist_ok=True)
    return path


@pytest.fixture
def admin(io_loop: Any, services: Services) -> dict[str, str]:
    """Headers of a superuser's requests to the test server."""
    io_loop.run_sync(lambda: services.accounts.create_user("root", "pw", superuser=True))
    return basic_auth("root", "pw")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """The project directory of this test's templates (write_playbook fills it)."""
    return tmp_path / "project"


@pytest.fixture
def out(tmp_path: Path) -> Path:
    """Where this test's playbooks leave what the test reads."""
    return shown(tmp_path)


@pytest.fixture
def test_plugins() -> list[object]:
    """Override in a test module to register extra plugins (tiny @hookimpl classes)."""
    return []


@pytest.fixture
def services(io_loop: Any, settings: Settings, test_plugins: list[object]) -> Iterator[Services]:
    pm = make_plugin_manager(test_plugins, load_entrypoints=False)
    services = io_loop.run_sync(lambda: Services.start(settings, pm, upgrade=False))
    yield services
    io_loop.run_sync(services.close)


@pytest.fixture
def app(services: Services) -> Any:
    return make_app(services)


@pytest.fixture
def http_server(request: pytest.FixtureRequest, io_loop: Any, _unused_port: Any, services: Services) -> Any:
    """pytest-tornado's server fixture, but configured as ``serve`` configures it."""
    server = make_server(services)
    server.add_socket(_unused_port[0])
    yield server
    server.stop()
    io_loop.run_sync(server.close_all_connections)


@pytest.fixture
def base_url(http_server: Any, http_port: int) -> str:
    """The running test server's URL (asking for it starts the server)."""
    return f"http://127.0.0.1:{http_port}"


@dataclass
class World:
    """What ``seed`` created: ids and secrets the tests use."""

    inventory_id: int
    template_id: int
    key: str
    hosts: dict[str, int]


@pytest.fixture
def seed(services: Services) -> Callable[..., Awaitable[World]]:
    """Factory: an inventory with hosts ``{name: variables}`` and a template with a key."""

    async def make(
        hosts: dict[str, dict[str, Any]] | None = None,
        *,
        key: str = "s3cret-key",
        name: str = "tpl",
        **template: Any,
    ) -> World:
        inventory = await services.admin.create("inventories", LOCAL_ADMIN, {"name": f"inv-{name}"})
        saved = {}
        for host_name, variables in (hosts or {}).items():
            enabled = variables.pop("enabled", True) if isinstance(variables, dict) else True
            host = await services.admin.create("hosts", LOCAL_ADMIN, {
                "inventory": inventory["id"], "name": host_name, "variables": variables, "enabled": enabled})
            saved[host_name] = host["id"]
        # Written as a row: tests need templates the API refuses (a key without an inventory).
        async with services.db.session() as session:
            created = JobTemplate(**{"name": name, "inventory_id": inventory["id"], "playbook": "site.yml",
                                     "host_config_key": key, **template})
            session.add(created)
            await session.commit()
        return World(inventory["id"], created.id, key, saved)

    return make


def trace_entry(trace: list[dict[str, Any]], resolver: str) -> dict[str, Any]:
    """The trace entry of one resolver (traces list every resolver that ran, in order)."""
    return next(entry for entry in trace if entry["resolver"] == resolver)


def basic_auth(username: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


@pytest.fixture
def fetch(
    http_client: tornado.httpclient.AsyncHTTPClient, base_url: str
) -> Callable[..., Awaitable[tornado.httpclient.HTTPResponse]]:
    """Fetch a path from the test server without raising on 4xx/5xx."""

    def call(path: str, **kwargs: Any) -> Awaitable[tornado.httpclient.HTTPResponse]:
        kwargs.setdefault("raise_error", False)
        return http_client.fetch(base_url + path, **kwargs)

    return call
