"""Helpers for tests that run real playbooks: project files, settings, workers, waiting for jobs.

Test modules import the fixtures ``settings`` (overriding conftest's) and ``workers`` from here.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import TEST_SECRET_KEY, shown
from tornado_callback.config import PluginsConfig, Settings
from tornado_callback.jobs.executor import WorkerPool
from tornado_callback.jobs.sandbox import job_sandbox
from tornado_callback.services import Services
from tornado_callback.store.models import FINISHED_JOB_STATUSES, Job

# A host that ansible runs on this machine, matched by the callback from 127.0.0.1.
LOCALHOST_VARS = {
    "ansible_host": "127.0.0.1",
    "ansible_connection": "local",
    "ansible_python_interpreter": "{{ ansible_playbook_python }}",
}


def job_settings(database_url: str, plugins: PluginsConfig, workdir: Path, **overrides: Any) -> Settings:
    """Fast polling and a short lease, so tests see workers act within a second or two.

    Runs keep their private directories in ``workdir/runs`` and may write to
    ``shown(workdir)``, the one place outside the sandbox a test can look at.
    """
    values: dict[str, Any] = {
        "database_url": database_url,
        "plugins": plugins,
        "workers": 2,
        "job_poll_interval": 0.1,
        "job_lease_seconds": 3.0,
        "secret_key": TEST_SECRET_KEY,
        "run_dir": str(workdir / "runs"),
        "job_show_paths": (str(shown(workdir)),),
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def settings(database_url: str, plugins_config: PluginsConfig, tmp_path: Path) -> Settings:
    return job_settings(database_url, plugins_config, tmp_path)


@pytest.fixture
def workers(io_loop: Any, services: Services) -> Any:
    """This process's job slots, as ``serve`` runs them."""
    async def start() -> WorkerPool:
        return services.start_workers(job_sandbox(services.settings))

    pool = io_loop.run_sync(start)
    yield pool
    io_loop.run_sync(pool.stop)


def write_playbook(project: Path, name: str, tasks: str) -> str:
    """A one-play playbook on all hosts without fact gathering (keeps runs short)."""
    project.mkdir(parents=True, exist_ok=True)
    (project / name).write_text(
        "- hosts: all\n  gather_facts: false\n  tasks:\n" + tasks, encoding="utf-8"
    )
    return name


async def job_row(services: Services, job_id: int) -> Job:
    async with services.db.session() as session:
        job = await session.get(Job, job_id)
        assert job is not None
        return job


async def wait_for_status(
    services: Services, job_id: int, statuses: tuple[str, ...] = FINISHED_JOB_STATUSES, timeout: float = 60.0
) -> Job:
    deadline = time.monotonic() + timeout
    while True:
        job = await job_row(services, job_id)
        if job.status in statuses:
            return job
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} still {job.status!r} after {timeout}s:\n{job.result_stdout}")
        await asyncio.sleep(0.1)
