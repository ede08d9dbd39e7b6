"""What one ansible-playbook run means for each job that shared it.

A coalesced run (executor.py) configures the hosts of several callback jobs at
once. Each job keeps its own truth: the events of its own host and the run's
headers (play, task, recap), numbered as if the run were its alone, and an
outcome from its host's results, so that one host failing fails only its job.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from typing import Any

from tornado_callback.jobs.queue import Ending

EXPLAIN_TIMEOUT = "Job terminated due to timeout"
EXPLAIN_CANCELED = "Job canceled at the request of a user."
EXPLAIN_SHUTDOWN = "Job terminated: the worker shut down while it ran."

FAILED_EVENTS = frozenset({"runner_on_failed", "runner_on_unreachable"})
RECAP_EVENT = "playbook_on_stats"
# The recap's per-host counters (its event_data maps each to {host: count}).
RECAP_COUNTERS = frozenset({"ok", "failures", "dark", "changed", "skipped", "rescued", "ignored", "processed"})


def event_row(event: Mapping[str, Any]) -> dict[str, Any]:
    """A JobEvent row (without its job) from one ansible-runner event."""
    data = event.get("event_data") or {}
    result = data.get("res")
    return {
        "counter": int(event.get("counter", 0)),
        "event": str(event.get("event", ""))[:100],
        "host_name": str(data.get("host") or "")[:512],
        "task": str(data.get("task") or ""),
        # PostgreSQL text cannot hold NUL; a playbook may print one.
        "stdout": str(event.get("stdout") or "").replace("\x00", ""),
        "event_data": data,
        "failed": event.get("event") in FAILED_EVENTS and not data.get("ignore_errors"),
        "changed": bool(isinstance(result, dict) and result.get("changed")),
    }


class RunOutput:
    """Splits a run's events among its jobs and tells each job's outcome.

    ``hosts`` maps each host the run is limited to onto its job; ``counters``
    gives each job's last stored event number (a job sent back to the queue
    keeps the events of its first attempt). A run of one job (a manual launch,
    say) gets every event.
    """

    def __init__(self, hosts: Mapping[str, int], counters: Mapping[int, int]) -> None:
        self.job_of_host = dict(hosts)
        self.counters = dict(counters)
        self.shared = len(self.counters) > 1
        # Hosts the recap counted a failure or an unreachable for (None: no recap seen).
        self.failed_hosts: set[str] | None = None

    @property
    def job_ids(self) -> list[int]:
        return list(self.counters)

    def rows(self, events: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """The JobEvent rows of ``events``: a host's events go to its job, the others
        (play and task headers, the recap, warnings) to every job."""
        rows = []
        for event in events:
            row = event_row(event)
            if row["event"] == RECAP_EVENT:
                self._read_recap(row["event_data"])
            job = self.job_of_host.get(row["host_name"])
            for job_id in [job] if job is not None and self.shared else self.job_ids:
                rows.append(self._numbered(job_id, self._as_seen_by(job_id, row)))
        return rows

    def _numbered(self, job_id: int, row: dict[str, Any]) -> dict[str, Any]:
        self.counters[job_id] += 1
        return {**row, "job_id": job_id, "counter": self.counters[job_id]}

    def _as_seen_by(self, job_id: int, row: dict[str, Any]) -> dict[str, Any]:
        """The recap of a shared run, as its job's host alone would have it."""
        if not self.shared or row["event"] != RECAP_EVENT:
            return row
        others = {host for host, job in self.job_of_host.items() if job != job_id}
        lines = (line for line in row["stdout"].splitlines(keepends=True)
                 if line.partition(" : ")[0].strip() not in others)
        data = {key: ({h: n for h, n in value.items() if h not in others}
                      if key in RECAP_COUNTERS and isinstance(value, dict) else value)
                for key, value in row["event_data"].items()}
        return {**row, "stdout": "".join(lines), "event_data": data}

    def _read_recap(self, data: Mapping[str, Any]) -> None:
        failed: set[str] = set()
        for counter in ("failures", "dark"):
            counts = data.get(counter)
            if isinstance(counts, dict):
                failed.update(str(host) for host, n in counts.items() if n)
        self.failed_hosts = failed

    def endings(
        self, runner_status: str, stop_reason: str, canceled: Collection[int], run_id: str
    ) -> dict[int, Ending]:
        """Each job's ending, from ansible-runner's status for the run.

        A run stopped because a user canceled one of its jobs ends that job
        ``canceled`` and sends the others back to the queue: nothing they asked
        for is lost. A run that failed fails the jobs whose host failed (by the
        recap), or every job when there was no recap (the playbook did not run).
        """
        hosts = {job: host for host, job in self.job_of_host.items()}
        endings = {}
        for job_id in self.job_ids:
            if runner_status == "failed" and self.failed_hosts is not None and self.shared:
                status = "failed" if hosts.get(job_id) in self.failed_hosts else "successful"
                endings[job_id] = Ending(status)
            elif runner_status == "canceled" and stop_reason != EXPLAIN_SHUTDOWN and job_id not in canceled:
                endings[job_id] = Ending("pending", requeue_note(run_id, canceled, stop_reason))
            else:
                endings[job_id] = Ending(*outcome(runner_status, stop_reason))
        return endings


def requeue_note(run_id: str, canceled: Collection[int], stop_reason: str) -> str:
    """What a job sent back to the queue says in its output."""
    if canceled:
        jobs = ", ".join(str(job_id) for job_id in sorted(canceled))
        why = f"job {jobs}, which shared it, was canceled"
    else:
        why = stop_reason.rstrip(".")
    return f"[run {run_id} stopped: {why}. This job is back in the queue and runs again.]"


def outcome(runner_status: str, reason: str) -> tuple[str, str]:
    """A job's status and explanation from ansible-runner's final status for its run."""
    if runner_status == "successful":
        return "successful", ""
    if runner_status == "failed":
        return "failed", ""
    if runner_status == "timeout":
        return "failed", EXPLAIN_TIMEOUT
    if runner_status == "canceled":
        return ("error", reason) if reason == EXPLAIN_SHUTDOWN else ("canceled", reason or EXPLAIN_CANCELED)
    return "error", f"ansible-runner ended with status {runner_status!r}."
