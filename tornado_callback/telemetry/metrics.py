"""The server's Prometheus metrics, defined once and reported into by every domain.

Every metric has labels: a labelled metric makes its value holders at its first
``labels()`` call, so ``share_between_processes`` (called by ``serve`` before it
forks) still decides how they are stored. Labels are bounded: template ids,
outcomes, resolver names, statuses; never a host name, an address or a key.

The job table's state (jobs by status, pending depth, oldest pending job) is no
counter kept here: it is read from the database at scrape time (http/prometheus.py),
so that every process and node reports the same truth.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterable, Mapping

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
    values,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

MULTIPROCESS_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
# A `_created` sample per series doubles the page; Prometheus derives resets from the counters themselves.
disable_created_metrics()
# Callbacks answer in milliseconds, resolvers may wait on DNS or a cloud API up to their timeout.
FAST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# Playbook runs and inventory syncs last seconds to an hour.
SLOW_BUCKETS = (1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)

CALLBACKS = Counter(
    "tornado_callback_callbacks_total", "Callback POSTs answered, by job template, status code and outcome",
    ["template", "code", "outcome"])
CALLBACK_DURATION = Histogram(
    "tornado_callback_callback_duration_seconds", "Time to answer a callback POST, by outcome", ["outcome"],
    buckets=FAST_BUCKETS)
RESOLVER_OUTCOMES = Counter(
    "tornado_callback_resolver_outcomes_total", "Resolver runs, by resolver and outcome", ["resolver", "outcome"])
RESOLVER_DURATION = Histogram(
    "tornado_callback_resolver_duration_seconds", "Time a resolver took, by resolver", ["resolver"],
    buckets=FAST_BUCKETS)
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


ALL = (CALLBACKS, CALLBACK_DURATION, RESOLVER_OUTCOMES, RESOLVER_DURATION, JOB_DURATION, INVENTORY_SYNCS,
       INVENTORY_SYNC_DURATION, RATE_LIMIT_REFUSALS, DNS_CACHE_LOOKUPS)

# What a resolver's run may come to (plugin/resolver.py Outcome).
RESOLVER_OUTCOME_NAMES = ("matched", "ambiguous", "no_match", "skipped", "timeout", "error")


# Each answer's two series, looked up once: ``labels()`` takes a lock and formats its values,
# on every callback. As bounded as the labels: templates times outcomes.
_answers: dict[tuple[int | None, int, str], tuple[Counter, Histogram]] = {}


def callback_answered(template_id: int | None, code: int, outcome: str, seconds: float) -> None:
    """A callback POST was answered ``code`` (``outcome`` says why, in a word) after ``seconds``.

    ``template_id`` is None when no template was found: the id in the URL is the caller's
    text, and would make a label of anything it sends."""
    series = _answers.get((template_id, code, outcome))
    if series is None:
        series = _answers[template_id, code, outcome] = (
            CALLBACKS.labels("" if template_id is None else str(template_id), str(code), outcome),
            CALLBACK_DURATION.labels(outcome))
    series[0].inc()
    series[1].observe(seconds)


class ResolverReport:
    """One resolver's series, looked up once: the chain reports each run without a label lookup."""

    __slots__ = ("_outcomes", "_duration")

    def __init__(self, resolver: str) -> None:
        self._outcomes = {outcome: RESOLVER_OUTCOMES.labels(resolver, outcome) for outcome in RESOLVER_OUTCOME_NAMES}
        self._duration = RESOLVER_DURATION.labels(resolver)

    def ran(self, outcome: str, seconds: float) -> None:
        self._outcomes[outcome].inc()
        self._duration.observe(seconds)


class DNSCacheReport:
    """Lookups a DNS cache answered itself (hits) or passed on (misses); the hit ratio is
    ``rate(..{result="hit"}) / rate(..)`` over both."""

    __slots__ = ("hit", "miss")

    def __init__(self) -> None:
        self.hit = DNS_CACHE_LOOKUPS.labels("hit").inc
        self.miss = DNS_CACHE_LOOKUPS.labels("miss").inc


def sync_finished(outcome: str, seconds: float) -> None:
    """An inventory sync ended ``outcome`` (successful, failed, canceled) after ``seconds``."""
    INVENTORY_SYNCS.labels(outcome).inc()
    INVENTORY_SYNC_DURATION.labels(outcome).observe(seconds)


def rate_limit_refused(limit: str) -> None:
    """A request was refused 429 by ``limit`` (its kind: bad_key_address, login_user, ...)."""
    RATE_LIMIT_REFUSALS.labels(limit).inc()


def job_finished(status: str, seconds: float) -> None:
    """A job ended with ``status`` (successful, failed, error, canceled) after running ``seconds``."""
    JOB_DURATION.labels(status).observe(seconds)


def share_between_processes() -> None:
    """Keep every value in files of a fresh private directory, summed over processes at scrape time.

    prometheus_client chooses where values live when it is first imported, from
    PROMETHEUS_MULTIPROC_DIR; ``serve --processes N`` decides after that import,
    so it sets both the variable and the value class (as prometheus_client's own
    multiprocess tests do). Call it before forking, and before any metric is reported into:
    series looked up before (``serve`` starts the services once to check them) are
    dropped, so that the processes look them up again, kept in files.
    """
    os.environ[MULTIPROCESS_DIR_VARIABLE] = tempfile.mkdtemp(prefix="tornado-callback-metrics-")
    values.ValueClass = values.MultiProcessValue()
    for metric in ALL:
        metric.clear()
    _answers.clear()


def process_stopped(pid: int) -> None:
    """A server process ended: prometheus_client drops its live gauges (none of ours is one today:
    this keeps one added later right), its counters still count."""
    if MULTIPROCESS_DIR_VARIABLE in os.environ:
        mark_process_dead(pid)


def stop_sharing() -> None:
    """Every process has ended: remove their files (the next start begins from zero, as counters do)."""
    directory = os.environ.pop(MULTIPROCESS_DIR_VARIABLE, None)
    if directory is not None:
        shutil.rmtree(directory, ignore_errors=True)


def registry() -> CollectorRegistry | None:
    """The registry a scrape reads: the processes' files in multiprocess mode, else None (the default one)."""
    directory = os.environ.get(MULTIPROCESS_DIR_VARIABLE)
    if directory is None:
        return None
    shared = CollectorRegistry()
    MultiProcessCollector(shared, path=directory)
    return shared


def page() -> bytes:
    """This server's counters and histograms in the text format: every process's, summed, under ``serve
    --processes N``."""
    return generate_latest(registry() or REGISTRY)


def job_table_page(jobs_by_status: Mapping[str, int], oldest_pending_seconds: float | None) -> bytes:
    """The job table as read at scrape time, in the text format: jobs by status, the pending
    queue's depth, and how long its oldest job has waited (0 when none waits)."""
    by_status = GaugeMetricFamily("tornado_callback_jobs", "Jobs in the database, by status", labels=["status"])
    for status, count in jobs_by_status.items():
        by_status.add_metric([status], count)
    snapshot = CollectorRegistry()
    snapshot.register(_Families([
        by_status,
        GaugeMetricFamily("tornado_callback_job_queue_depth", "Jobs pending, not yet claimed by a worker",
                          value=jobs_by_status.get("pending", 0)),
        GaugeMetricFamily("tornado_callback_job_queue_oldest_age_seconds",
                          "How long the oldest pending job has waited (0: none waits)",
                          value=oldest_pending_seconds or 0.0),
    ]))
    return generate_latest(snapshot)


class _Families:
    """A collector of metric families read elsewhere (the job table's)."""

    def __init__(self, families: Iterable[Metric]) -> None:
        self._families = list(families)

    def collect(self) -> Iterable[Metric]:
        return self._families
