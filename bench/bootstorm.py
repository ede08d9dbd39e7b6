"""The boot-storm benchmark: ``python bench/bootstorm.py [--hosts 50,200] [--batch-sizes 1,default]``.

What a user of the callback waits for is the host configured. N hosts boot and
call back at once: how long until every one is configured, next to one
ansible-playbook run over the same hosts, the physical limit of that work?

For each N, in each repeat: an inventory of N hosts (``ansible_connection=local``,
``ansible_python_interpreter`` as the README says, each with its own loopback
address 127.1.x.y as ``ansible_host``, so that ip_match tells the callers
apart) and a one-task playbook that appends a line to the host's marker file.
First one plain ``ansible-playbook -f F`` over the N hosts (no sandbox) is
timed; then, for each batch size, a real ``tornado-callback serve`` (one
process, SQLite, the sandbox on, as the README runs it) on a fresh database
with the template, and the N callbacks fired at once, each from its host's
address: timed until the jobs API shows every job ``successful`` and every
marker file exists. The batch size is TORNADO_CALLBACK_JOB_BATCH_SIZE
(``default``: not set); the rest of the environment (TORNADO_CALLBACK_WORKERS,
TORNADO_CALLBACK_JOB_BATCH_LINGER, ...) reaches every server as it is.

Checks: every callback answered 202, one job per host, every job
``successful``, each job's output holds its host's marker task once and no
other host's, every marker file (served and direct) holds exactly one line.
Writes the table to bench/results/bootstorm-<date>.md and a line to
bench/NOTES.md; exits 1 when a check failed. See bench/NOTES.md, "Boot storm".
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from run import start_process
from tornado.httpclient import AsyncHTTPClient, HTTPRequest, HTTPResponse
from world import HOST_KEY, PLUGINS, admin_token, import_hosts, settings_for

from tornado_callback.accounts.service import LOCAL_ADMIN
from tornado_callback.services import Services

BENCH = Path(__file__).resolve().parent
PLAYBOOK = "marker.yml"
MARKER_TASK = "Write the marker"
# One line appended per run of the task: a host configured twice has a file of two lines.
PLAYBOOK_TEXT = f"""\
- hosts: all
  gather_facts: false
  tasks:
    - name: {MARKER_TASK}
      ansible.builtin.shell:
        cmd: "echo configured >> {{{{ (marker_dir ~ '/' ~ inventory_hostname) | quote }}}}"
"""
DEFAULT = "default"
BATCH_SIZE = "TORNADO_CALLBACK_JOB_BATCH_SIZE"
# Settings the servers take from this environment, shown with the results.
SHOWN_SETTINGS = (BATCH_SIZE, "TORNADO_CALLBACK_JOB_BATCH_LINGER", "TORNADO_CALLBACK_WORKERS")
POLL_SECONDS = 0.2
# A failed job needs no waiting for: the poll looks for these now and then.
FAILURE_CHECK_SECONDS = 2.0
UNSUCCESSFUL = ("failed", "error", "canceled")
# The events that end a host's task: one per run of the task on that host.
RESULT_EVENTS = ("runner_on_ok", "runner_on_failed", "runner_on_unreachable", "runner_on_skipped")
MAX_PAGE_SIZE = 200  # API's largest page
NOTES_HEADING = "### Boot storm runs"
TARGETS = "default / direct <= 1.5, batch-1 / default >= 2.5 at N = 200 (issue 18)"


def host_address(index: int) -> str:
    """Host ``index``'s loopback address, 127.1.x.y; never 127.0.0.1, where the server and the poll are."""
    return f"127.1.{index // 254}.{index % 254 + 1}"


def host_variables(hosts: int) -> dict[str, dict[str, str]]:
    if hosts > 254 * 256:
        raise ValueError(f"at most {254 * 256} hosts fit in 127.1.0.0/16")
    return {f"storm{i:05d}": {"ansible_host": host_address(i), "ansible_connection": "local",
                              "ansible_python_interpreter": "{{ ansible_playbook_python }}"}
            for i in range(hosts)}


@dataclass(frozen=True)
class Storm:
    """The files of one N: the project with the playbook, and the marker directories under
    ``markers``, the one place sandboxed runs may write (TORNADO_CALLBACK_JOB_SHOW_PATHS)."""

    hosts: dict[str, dict[str, str]]
    root: Path
    forks: int

    @property
    def project(self) -> Path:
        return self.root / "project"

    def marker_dir(self, run: str) -> Path:
        path = self.root / "markers" / run
        path.mkdir(parents=True)
        return path


@dataclass
class Outcome:
    """One timed run: the direct ansible-playbook, or a server at one batch size."""

    label: str
    seconds: float
    answered: float | None = None  # seconds until every callback had its answer
    errors: list[str] = field(default_factory=list)

    def figure(self, unit: str = "") -> str:
        """Its time, marked when a check failed: then it is not the time the work took."""
        return f"{self.seconds:.1f}{unit}" + (" (failed)" if self.errors else "")


def check_markers(markers: Path, hosts: dict[str, Any]) -> list[str]:
    """Every host's marker file holds exactly one line; no other file is there."""
    lines = {path.name: len(path.read_text().splitlines()) for path in markers.iterdir()}
    errors = []
    missing = sorted(set(hosts) - set(lines))
    if missing:
        errors.append(f"{len(missing)} hosts without a marker (e.g. {missing[:3]})")
    twice = sorted(name for name, count in lines.items() if count != 1)
    if twice:
        errors.append(f"{len(twice)} markers not written exactly once (e.g. {twice[0]}: {lines[twice[0]]} lines)")
    strangers = sorted(set(lines) - set(hosts))
    if strangers:
        errors.append(f"{len(strangers)} marker files of no host (e.g. {strangers[:3]})")
    return errors


def ansible_playbook() -> str:
    """The ansible-playbook of this Python, as the executor's runs find it first on PATH."""
    beside = Path(sys.executable).with_name("ansible-playbook")
    return str(beside) if beside.exists() else shutil.which("ansible-playbook") or "ansible-playbook"


def run_direct(storm: Storm, timeout: float) -> Outcome:
    """One plain ansible-playbook over every host, with the template's playbook and forks."""
    markers = storm.marker_dir("direct")
    inventory = storm.root / "inventory.json"  # YAML inventory structure, which JSON is
    inventory.write_text(json.dumps({"all": {"hosts": storm.hosts}}))
    command = [ansible_playbook(), "-i", str(inventory), "-f", str(storm.forks),
               "-e", json.dumps({"marker_dir": str(markers)}), str(storm.project / PLAYBOOK)]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, cwd=storm.root, timeout=timeout)
    outcome = Outcome("direct", time.perf_counter() - started)
    if done.returncode != 0:
        outcome.errors.append(f"ansible-playbook exited with {done.returncode}: {done.stdout[-1500:]}"
                              f"{done.stderr[-1500:]}")
    outcome.errors += check_markers(markers, storm.hosts)
    return outcome


async def seed(database_url: str, storm: Storm, markers: Path) -> tuple[int, str]:
    """The inventory and the template in a fresh database; the template's id and an admin token."""
    services = await Services.start(settings_for(database_url))
    try:
        inventory = await import_hosts(services, "bootstorm", storm.hosts)
        template = await services.admin.create("job_templates", LOCAL_ADMIN, {
            "name": "bootstorm", "inventory": inventory, "project_dir": str(storm.project),
            "playbook": PLAYBOOK, "host_config_key": HOST_KEY, "forks": storm.forks,
            "extra_vars": json.dumps({"marker_dir": str(markers)})})
        return template["id"], await admin_token(services)
    finally:
        await services.close()


class Api:
    """The server's API as the benchmark polls it: from 127.0.0.1, with the admin's token."""

    def __init__(self, client: AsyncHTTPClient, url: str, token: str) -> None:
        self.client, self.url, self.token = client, url, token

    async def get(self, path: str) -> Any:
        response = await self.client.fetch(self.url + path, headers={"Authorization": f"Bearer {self.token}"})
        return json.loads(response.body)

    async def count(self, template: int, status: str) -> int:
        return (await self.get(f"/api/v2/jobs/?job_template={template}&status={status}&page_size=1"))["count"]

    async def jobs(self, template: int) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        page: dict[str, Any] = {"next": f"/api/v2/jobs/?job_template={template}&page_size={MAX_PAGE_SIZE}"}
        while page["next"]:
            page = await self.get(page["next"])
            found += page["results"]
        return found


def callback(url: str, template: int, address: str, timeout: float) -> HTTPRequest:
    """A host's callback as the stock client sends it, from the host's own address."""
    return HTTPRequest(f"{url}/api/v2/job_templates/{template}/callback/", method="POST",
                       headers={"Content-Type": "application/json"},
                       body=json.dumps({"host_config_key": HOST_KEY}), network_interface=address,
                       connect_timeout=timeout, request_timeout=timeout)


async def storm_server(url: str, template: int, token: str, storm: Storm, markers: Path,
                       timeout: float) -> tuple[float, float, list[str]]:
    """Every host calls back at once; seconds until all were answered, until all were
    configured (every job successful, every marker there), and what the checks found."""
    hosts = len(storm.hosts)
    client = AsyncHTTPClient(force_instance=True, max_clients=hosts + 1)
    api = Api(client, url, token)
    try:
        started = time.perf_counter()
        responses = await asyncio.gather(*(
            client.fetch(callback(url, template, variables["ansible_host"], timeout), raise_error=False)
            for variables in storm.hosts.values()))
        answered = time.perf_counter() - started
        refused = [r for r in responses if r.code != 202]
        errors = [f"{len(refused)} callbacks not answered 202 (e.g. {describe(refused[0])})"] if refused else []
        deadline, failures_checked = started + timeout, started
        while not errors:
            now = time.perf_counter()
            if await api.count(template, "successful") == hosts and all(
                    (markers / name).exists() for name in storm.hosts):
                break
            if now > deadline:
                errors.append(f"not every host configured within {timeout:g} s")
            elif now - failures_checked > FAILURE_CHECK_SECONDS:
                failures_checked = now
                errors += [f"{count} jobs {status}" for status in UNSUCCESSFUL
                           if (count := await api.count(template, status))]
            await asyncio.sleep(POLL_SECONDS)
        configured = time.perf_counter() - started
        errors += await check_jobs(api, template, storm.hosts, responses)
    finally:
        client.close()
    return answered, configured, errors + check_markers(markers, storm.hosts)


def describe(response: HTTPResponse) -> str:
    return f"{response.code} {(response.body or b'')[:200]!r}" if response.code else str(response.error)


async def check_jobs(api: Api, template: int, hosts: dict[str, Any], responses: list[HTTPResponse]) -> list[str]:
    """From the jobs API: the 202s named the jobs there are, one job per host, every one
    successful; each job's output holds its host's marker task once, and no other host."""
    jobs = await api.jobs(template)
    errors = []
    named = sorted(json.loads(r.body)["job"] for r in responses if r.code == 202)
    if named != sorted(job["id"] for job in jobs):
        errors.append(f"the 202s named {len(named)} jobs, the API lists {len(jobs)}, not the same")
    limits = Counter(job["limit"] for job in jobs)
    if set(limits) != set(hosts) or set(limits.values()) != {1}:
        errors.append(f"not one job per host: {len(limits)} hosts have jobs, {len(jobs)} jobs")
    statuses = Counter(job["status"] for job in jobs)
    if set(statuses) != {"successful"}:
        errors.append(f"jobs not all successful: {dict(statuses)}")
    for job in jobs:
        events = (await api.get(f"/api/v2/jobs/{job['id']}/stdout/?format=json"))["events"]
        runs = sum(1 for e in events if e["event"] in RESULT_EVENTS and e["task"] == MARKER_TASK
                   and e["host_name"] == job["limit"])
        others = {e["host_name"] for e in events if e["host_name"]} - {job["limit"]}
        if runs != 1:
            errors.append(f"job {job['id']} ran {MARKER_TASK!r} on {job['limit']} {runs} times")
        if others:
            errors.append(f"job {job['id']} of {job['limit']} shows events of {sorted(others)[:3]}")
    return errors


def run_served(storm: Storm, batch_size: str, timeout: float, logs: Path) -> Outcome:
    """A fresh server at this batch size, and the storm against it; its log kept in ``logs``
    when a check failed."""
    name = f"batch-{batch_size}"
    workdir = storm.root / name  # the server's working directory, with its database
    workdir.mkdir()
    markers = storm.marker_dir(name)
    database_url = f"sqlite:///{workdir / 'bootstorm.db'}"
    template, token = asyncio.run(seed(database_url, storm, markers))
    # The server takes its settings from the environment it inherits.
    if batch_size == DEFAULT:
        os.environ.pop(BATCH_SIZE, None)
    else:
        os.environ[BATCH_SIZE] = batch_size
    with contextlib.ExitStack() as server:
        url = start_process(server, [sys.executable, "-m", "tornado_callback", "serve", "--plugins", str(PLUGINS),
                                     "--database-url", database_url],
                            "/api/v2/ping/", workdir / "server.log", workdir)
        answered, configured, errors = asyncio.run(storm_server(url, template, token, storm, markers, timeout))
    if errors:
        logs.mkdir(parents=True, exist_ok=True)
        kept = logs / f"bootstorm-{len(storm.hosts)}-{name}-server.log"
        shutil.copy(workdir / "server.log", kept)
        errors.append(f"server log kept in {kept}")
    return Outcome(batch_size, configured, answered, errors)


@dataclass
class Repeat:
    """One N in one repeat: the direct run and the server at each batch size."""

    hosts: int
    number: int
    direct: Outcome
    served: dict[str, Outcome]

    @property
    def errors(self) -> list[str]:
        return [f"N = {self.hosts}, repeat {self.number}, {label(o.label)}: {e}"
                for o in (self.direct, *self.served.values()) for e in o.errors]

    def ratios(self) -> dict[str, float]:
        """The issue's two ratios, where this run has their rows."""
        found = {}
        default = self.served.get(DEFAULT)
        if default:
            found["default / direct"] = default.seconds / self.direct.seconds
            if "1" in self.served:
                found["batch-1 / default"] = self.served["1"].seconds / default.seconds
        return found


def label(batch_size: str) -> str:
    return {"direct": "direct ansible-playbook", DEFAULT: "default batch size"}.get(
        batch_size, f"batch size {batch_size}")


def bench(args: argparse.Namespace) -> list[Repeat]:
    done = []
    for number in range(1, args.repeats + 1):
        for hosts in args.hosts:
            with tempfile.TemporaryDirectory(prefix=f"bootstorm-{hosts}-") as root:
                storm = Storm(host_variables(hosts), Path(root), args.forks or hosts)
                storm.project.mkdir()
                (storm.project / PLAYBOOK).write_text(PLAYBOOK_TEXT)
                # Sandboxed runs write their markers there, and nowhere else outside their own directory.
                os.environ["TORNADO_CALLBACK_JOB_SHOW_PATHS"] = str(storm.root / "markers")
                os.environ["TORNADO_CALLBACK_RUN_DIR"] = str(storm.root / "runs")
                # The rows run in turn, reversed every other repeat: a change in the machine's
                # load during a repeat does not always meet the same row first.
                rows = ["direct", *args.batch_sizes][::1 if number % 2 else -1]
                outcomes = {}
                for row in rows:
                    print(f"repeat {number}, N = {hosts}: {label(row)}", flush=True)
                    outcomes[row] = (run_direct(storm, args.timeout) if row == "direct" else
                                     run_served(storm, row, args.timeout, args.results.parent))
                direct = outcomes.pop("direct")
                done.append(Repeat(hosts, number, direct,
                                   {batch_size: outcomes[batch_size] for batch_size in args.batch_sizes}))
    return done


def table(args: argparse.Namespace, repeats: list[Repeat], loads: tuple[float, float]) -> str:
    settings = ", ".join(f"{name}={os.environ.get(name, '(unset: the default)')}" for name in SHOWN_SETTINGS[1:])
    forks = f"F = {args.forks}" if args.forks else "F = N"
    lines = [
        "# Boot storm: N hosts call back at once",
        "",
        f"- date: {dt.datetime.now(dt.UTC).isoformat(timespec='seconds')}",
        f"- machine: {os.cpu_count()} cores (nproc), load average {loads[0]:.2f} before, {loads[1]:.2f} after",
        f"- playbook: one task a host ({MARKER_TASK!r}: ansible.builtin.shell appends a line to the "
        "host's marker file), no fact gathering; hosts with ansible_connection=local, "
        "each calling back from its own loopback address",
        f"- direct: one `ansible-playbook -f F` over the N hosts, {forks} (also the template's forks), "
        "run the plain way: no server, no sandbox",
        "- served: `tornado-callback serve`, one process, SQLite, the bubblewrap sandbox on, bench/plugins.toml "
        f"(DNS resolvers off); {BATCH_SIZE} per column (default: unset); {settings}",
        f"- time: from the first callback sent until the jobs API (polled every {POLL_SECONDS:g} s) shows "
        "every job successful and every marker file exists; direct: the ansible-playbook process",
        "- order: direct, then the batch sizes as given; reversed in every second repeat",
        "",
    ]
    names = ["direct", *args.batch_sizes]
    ratio_names = list(repeats[0].ratios()) if repeats else []
    lines += [
        "| N | repeat | " + " | ".join(f"{label(n)} s" for n in names) + "".join(f" | {r}" for r in ratio_names) + " |",
        "|---:|---:|" + "---:|" * (len(names) + len(ratio_names)),
    ]
    for r in repeats:
        outcomes = [r.direct, *(r.served[b] for b in args.batch_sizes)]
        lines.append(f"| {r.hosts} | {r.number} | " + " | ".join(o.figure() for o in outcomes)
                     + "".join(f" | {value:.2f}" for value in r.ratios().values()) + " |")
    lines += ["", f"Targets: {TARGETS}.", "", "Callbacks answered (all N, at once):", ""]
    lines += [f"- N = {r.hosts}, repeat {r.number}, {label(b)}: in {o.answered:.2f} s"
              for r in repeats for b, o in r.served.items() if o.answered is not None]
    errors = [e for r in repeats for e in r.errors]
    lines += ["", "Checks: every callback answered 202, one job per host, every job successful, each job's "
              "output shows its host's marker task once and no other host, every marker file (served and "
              f"direct) holds one line. Errors: {len(errors)}"]
    lines += [f"- {e}" for e in errors]
    return "\n".join(lines) + "\n"


def summary(repeats: list[Repeat], results: Path) -> str:
    """The run in one line, for bench/NOTES.md."""
    runs = "; ".join(
        f"N = {r.hosts}, repeat {r.number}: "
        + ", ".join(f"{label(o.label)} {o.figure(' s')}" for o in (r.direct, *r.served.values()))
        + "".join(f", {name} {value:.2f}" for name, value in r.ratios().items())
        for r in repeats)
    errors = sum(len(r.errors) for r in repeats)
    return f"- {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC: {runs}; errors {errors} ({results.name})"


def add_to_notes(notes: Path, line: str) -> None:
    """``line`` at the end of the notes' NOTES_HEADING section (made at the end when missing)."""
    text = notes.read_text() if notes.exists() else ""
    lines = text.splitlines()
    if NOTES_HEADING not in lines:
        lines += ["", NOTES_HEADING, ""]
    heading = lines.index(NOTES_HEADING)
    end = heading + 1
    while end < len(lines) and not lines[end].startswith("#"):
        end += 1
    while end > heading + 2 and lines[end - 1] == "":  # after the section's last line, below a blank one
        end -= 1
    lines.insert(end, line)
    notes.write_text("\n".join(lines) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hosts", default="50,200", help="the values of N, comma-separated")
    parser.add_argument("--batch-sizes", default=f"1,{DEFAULT}",
                        help=f"the server rows: {BATCH_SIZE} for each ('{DEFAULT}': unset), comma-separated")
    parser.add_argument("--repeats", type=int, default=1, help="times every row is run")
    parser.add_argument("--forks", type=int, default=0, help="the template's forks and the direct run's -f (0: N)")
    parser.add_argument("--timeout", type=float, default=1200, help="seconds a row may take")
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d-%H%M")
    parser.add_argument("--results", type=Path, default=BENCH / "results" / f"bootstorm-{stamp}.md")
    parser.add_argument("--notes", type=Path, default=BENCH / "NOTES.md", help="where the run's line goes")
    args = parser.parse_args()
    args.hosts = [int(n) for n in args.hosts.split(",")]
    args.batch_sizes = args.batch_sizes.split(",")
    if any(b != DEFAULT and not b.isdigit() for b in args.batch_sizes):
        parser.error(f"--batch-sizes: whole numbers or '{DEFAULT}'")
    before = os.getloadavg()[0]
    repeats = bench(args)
    text = table(args, repeats, (before, os.getloadavg()[0]))
    print(text)
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(text)
    add_to_notes(args.notes, summary(repeats, args.results))
    print(f"written to {args.results}; a line added to {args.notes}")
    return 1 if any(r.errors for r in repeats) else 0


if __name__ == "__main__":
    sys.exit(main())
