"""The benchmark still runs: bench/run.py on a tiny inventory, two rounds of one second a row,
then one second of sustained POSTs.

Its figures mean nothing here (CI machines are busy); what is checked is that
the harness builds its world, drives the server and the hello app with wrk,
verifies the jobs, writes its table, and exits non-zero when requests fail.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

RUN = Path(__file__).resolve().parent.parent / "bench" / "run.py"


def run_bench(tmp_path: Path, env: dict[str, str] | None = None,
              sustained: int = 0) -> tuple[subprocess.CompletedProcess[str], Path]:
    results = tmp_path / "latest.md"
    done = subprocess.run(
        [sys.executable, str(RUN), "--sizes", "20", "--duration", "2", "--rounds", "2", "--warmup", "0",
         "--sustained", str(sustained), "--connections", "4", "--resolves", "20", "--results", str(results)],
        capture_output=True, text=True, timeout=120, cwd=tmp_path, env={**os.environ, **(env or {})},
    )
    return done, results


def test_a_tiny_run_writes_the_table_and_checks_the_jobs(tmp_path):
    done, results = run_bench(tmp_path, sustained=1)
    assert done.returncode == 0, done.stdout + done.stderr
    table = results.read_text()
    for row in ("| 20 | hello (ceiling) |", "| 20 | callback POST |", "| 20 | callback POST, verified AWS identity |",
                "| 20 | callback GET |", "| 20 | callback POST, sustained |", "| 20 | chain alone (no HTTP) |"):
        assert row in table
    assert "verified POST / address-matched POST, time per request: " in table
    assert f"{os.cpu_count()} cores (nproc)" in table
    assert "each row is 2 rounds of 1 s" in table
    # The second round's POSTs, the verified row's and the sustained row's call back as (template, host) pairs
    # of their own: all 202s.
    for name in ("| callback POST |", "| callback POST, verified AWS identity |", "| callback POST, sustained |"):
        post_row = next(line for line in table.splitlines() if name in line)
        assert ", 0 400 already pending |" in post_row
    assert "callback POSTs for 1 s in one run (sustained)" in table
    assert "sustained callback POST, p99 / p50: " in table
    assert "round by round" in table
    assert "every 202 named its own job, one job per (template, host)" in table
    assert "Errors: 0" in table
    assert table in done.stdout


def test_a_run_whose_requests_fail_says_so_and_exits_non_zero(tmp_path):
    # The server refuses every callback body (413): no POST is the expected 202 or 400.
    done, results = run_bench(tmp_path, {"TORNADO_CALLBACK_MAX_BODY_SIZE": "8"})
    assert done.returncode == 1, done.stdout + done.stderr
    table = results.read_text()
    assert "unexpected answers (last: 413" in table
    assert "Errors: 0" not in table
