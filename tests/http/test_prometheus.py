"""/metrics: off by a setting, behind a bearer token when one is set, the job table read when scraped."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import insert

from tests.conftest import TEST_SECRET_KEY
from tornado_callback.config import PluginsConfig, Settings
from tornado_callback.store.models import Job

TOKEN = "s3cret-scrape-token"


@pytest.fixture
def settings(database_url: str, plugins_config: PluginsConfig, request: pytest.FixtureRequest) -> Settings:
    return Settings(database_url=database_url, plugins=plugins_config, secret_key=TEST_SECRET_KEY,
                    **getattr(request, "param", {}))


@pytest.mark.gen_test
@pytest.mark.parametrize("settings", [{"metrics": False}], indirect=True)
async def test_off_it_is_not_found(fetch: Any) -> None:
    answer = await fetch("/metrics")
    assert answer.code == 404


@pytest.mark.gen_test
@pytest.mark.parametrize("settings", [{"metrics_token": TOKEN}], indirect=True)
async def test_with_a_token_only_its_bearer_reads(fetch: Any) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN},
                    {"Authorization": f"Basic {TOKEN}"}):
        assert (await fetch("/metrics", headers=headers)).code == 401, headers
    answer = await fetch("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert answer.code == 200
    assert answer.headers["Content-Type"].startswith("text/plain; version=")  # the text format


@pytest.mark.gen_test
async def test_the_job_table_is_read_at_each_scrape(fetch: Any, services: Any) -> None:
    def gauges(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        return {(s.name, tuple(sorted(s.labels.items()))): s.value
                for family in text_string_to_metric_families(text) for s in family.samples}

    before = gauges((await fetch("/metrics")).body.decode())
    assert before[("tornado_callback_jobs", (("status", "pending"),))] == 0
    assert before[("tornado_callback_job_queue_oldest_age_seconds", ())] == 0
    # Queued by another process or node: no counter of this one saw it.
    await services.db.write(lambda db: db.execute(insert(Job).values(name="elsewhere", status="pending")))
    await services.db.write(lambda db: db.execute(insert(Job).values(name="done", status="failed")))
    after = gauges((await fetch("/metrics")).body.decode())
    assert after[("tornado_callback_jobs", (("status", "pending"),))] == 1
    assert after[("tornado_callback_jobs", (("status", "failed"),))] == 1
    assert after[("tornado_callback_job_queue_depth", ())] == 1
    assert 0 < after[("tornado_callback_job_queue_oldest_age_seconds", ())] < 60
