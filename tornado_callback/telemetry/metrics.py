"""The server's Prometheus metrics, defined once and reported into by every domain.

Every metric has labels: a labelled metric makes its value holders at its first
``labels()`` call, so ``share_between_processes`` (called by ``serve`` before it
forks) still decides how they are stored. Labels are bounded: template ids,
outcomes, resolver names, statuses; never a host name, an address or a key.

The job table's state (jobs by status, pending depth, oldest pending job) is no
counter kept here: it is read from the database at scrape time (metrics_handler.py),
so that every process and node reports the same truth.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics, values
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

MULTIPROCESS_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
# A `_created` sample per series doubles the page; Prometheus derives resets from the counters themselves.
disable_created_metrics()
# Callbacks answer in milliseconds, resolvers may wait on DNS or a cloud API up to their timeout.
FAST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# Playbook runs and inventory syncs last seconds to an hour.
SLOW_BUCKETS = (1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)

CALLBACKS = Counter(
    "tornado_callback_callbacks_total", "Callbacks answered, by job template and outcome", ["template", "outcome"])
CALLBACK_DURATION = Histogram(
    "tornado_callback_callback_duration_seconds", "Time to answer a callback, by method", ["method"], buckets=FAST_BUCKETS)
RESOLVER_OUTCOMES = Counter(
    "tornado_callback_resolver_outcomes_total", "Resolver runs, by resolver and outcome", ["resolver", "outcome"])
RESOLVER_DURATION = Histogram(
    "tornado_callback_resolver_duration_seconds", "Time a resolver took, by resolver", ["resolver"], buckets=FAST_BUCKETS)
JOB_DURATION = Histogram(
    "tornado_callback_job_duration_seconds", "Time a job ran, by final status", ["status"], buckets=SLOW_BUCKETS)
INVENTORY_SYNCS = Counter(
    "tornado_callback_inventory_syncs_total", "Inventory syncs ended, by outcome", ["outcome"])
INVENTORY_SYNC_DURATION = Histogram(
    "tornado_callback_inventory_sync_duration_seconds", "Time an inventory sync took, by outcome", ["outcome"],
    buckets=SLOW_BUCKETS)
RATE_LIMIT_REFUSALS = Counter(
    "tornado_callback_rate_limit_refusals_total", "Requests refused 429, by the limit they ran into", ["limit"])
DNS_CACHE_LOOKUPS = Counter(
    "tornado_callback_dns_cache_lookups_total", "DNS cache lookups, by result (hit or miss)", ["result"])


def job_finished(status: str, seconds: float) -> None:
    """A job ended with ``status`` (successful, failed, error, canceled) after running ``seconds``."""
    JOB_DURATION.labels(status).observe(seconds)


def share_between_processes(directory: Path) -> None:
    """Keep every value in files under ``directory`` (emptied first), summed over processes at scrape time.

    prometheus_client chooses where values live when it is first imported, from
    PROMETHEUS_MULTIPROC_DIR; ``serve --processes N`` decides after that import,
    so it sets both the variable and the value class (as prometheus_client's own
    multiprocess tests do). Call it before any metric is reported into and before forking.
    """
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True, mode=0o700)
    os.environ[MULTIPROCESS_DIR_VARIABLE] = str(directory)
    values.ValueClass = values.MultiProcessValue()


def process_stopped(pid: int) -> None:
    """A server process ended: its gauges (none yet: only counters and histograms) no longer count."""
    if MULTIPROCESS_DIR_VARIABLE in os.environ:
        mark_process_dead(pid)


def registry() -> CollectorRegistry | None:
    """The registry a scrape reads: the processes' files in multiprocess mode, else None (the default one)."""
    directory = os.environ.get(MULTIPROCESS_DIR_VARIABLE)
    if directory is None:
        return None
    shared = CollectorRegistry()
    MultiProcessCollector(shared, path=directory)
    return shared
