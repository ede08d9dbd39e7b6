"""``tornado-callback worker --metrics-port``: a worker process serves its own /metrics."""

from __future__ import annotations

import shutil
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.helpers import CliProcess, free_port

TOKEN = "worker-scrape-token"


def test_a_worker_serves_its_metrics(tmp_path: Path, sqlite_template: Path) -> None:
    shutil.copy(sqlite_template, tmp_path / "tornado-callback.db")
    port = free_port()
    worker = CliProcess("worker", "--metrics-port", str(port), "--log-format", "json", cwd=tmp_path,
                        TORNADO_CALLBACK_METRICS_TOKEN=TOKEN)
    try:
        worker.wait_for(f'/metrics on 127.0.0.1:{port}"')
        url = f"http://127.0.0.1:{port}/metrics"
        request = urllib.request.Request(url, headers={"Authorization": f"Bearer {TOKEN}"})
        with urllib.request.urlopen(request, timeout=30) as answer:
            text = answer.read().decode()
        assert 'tornado_callback_jobs{status="pending"} 0.0' in text
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(url, timeout=30)
        refused.value.close()
        assert refused.value.code == 401
        # Nothing but /metrics: the API is the servers'.
        with pytest.raises(urllib.error.HTTPError) as unknown:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v2/ping/", timeout=30)
        unknown.value.close()
        assert unknown.value.code == 404
    finally:
        assert worker.stop() == 0, worker.output
    assert '"message":"stopped (process' in worker.output
