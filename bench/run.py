"""The benchmark: ``python bench/run.py [--sizes 100,10000,100000] [--duration 10]``.

Builds a fresh SQLite database for each inventory size N, times the resolver
chain alone (bench/chain.py), then starts the real server for each N (``serve
--no-worker``, one process each) and the bare Tornado app (bench/hello.py,
the ceiling) and drives them with wrk over loopback (bench/load.lua): hello,
the callback POST matched by address, the callback POST matched by a verified
AWS identity and the admin GET of every N take turns in short rounds, so that
a change in the machine's speed meets them all alike. Then, at the largest N,
one long run of callback POSTs (--sustained seconds) shows the stalls a short
round hides: its p99 against its p50. Prints one table,
writes it to bench/results/latest.md, and checks the run: every 202 named a
job that exists, no (template, host) pair got two jobs, every verified 202's
job is the host whose identity it sent, no request failed. A run with errors
prints them and exits 1. See bench/NOTES.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import math
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from chain import ChainTimes, time_chains
from world import HOST_KEY, Identities, World, build_world, instance_id, sign_identities

BENCH = Path(__file__).resolve().parent
LOAD_SCRIPT = BENCH / "load.lua"
# More POSTs per second than a run could reach: the templates created give at
# least duration * this many distinct (template, host) pairs per POST row. Well above
# the hello's rate on a fast machine (8,700 req/s seen here), which no callback reaches.
MAX_POST_RATE = 20000
KINDS = ("hello", "post", "verified", "get")
# The sustained row: address-matched POSTs (load.lua's "post"), in one long run after the rounds.
SUSTAINED = "sustained"
# The POST rows draw their (template, host) pairs from one sequence (load.lua's k),
# so that none finds another's pairs already pending.
POST_KINDS = ("post", "verified", SUSTAINED)
NAMES = {"hello": "hello (ceiling)", "post": "callback POST", "verified": "callback POST, verified AWS identity",
         "get": "callback GET", SUSTAINED: "callback POST, sustained"}
# Issue 18: under sustained POSTs, a stall (a checkpoint, a garbage collection) shows as a p99
# far above the p50; at most this many times it.
MAX_SUSTAINED_P99_OVER_P50 = 4.0
# The verified cost target (issue 17): a verified callback costs at most this many address-matched ones.
MAX_VERIFIED_COST = 2.0


@dataclass
class LoadResult:
    """One row: the rounds of one kind of request at one N, taken together."""

    kind: str
    hosts: int
    figures: Counter[str]
    latency: Counter[int]  # microseconds -> requests that took that long
    round_rates: list[float] = field(default_factory=list)
    other_status: str = ""
    other_body: str = ""
    load_average: float = 0.0  # the machine's, as the row started (the sustained row: one run)

    def add_round(self, figures: dict[str, int], latency: Counter[int],
                  other_status: str, other_body: str) -> None:
        self.figures.update(figures)
        self.latency.update(latency)
        self.round_rates.append(figures["requests"] / (figures["duration_us"] / 1e6))
        if figures["n_other"]:
            self.other_status, self.other_body = other_status, other_body

    @property
    def requests(self) -> int:
        return self.figures["requests"]

    @property
    def rate(self) -> float:
        return self.requests / (self.figures["duration_us"] / 1e6)

    def percentile_ms(self, fraction: float) -> float:
        """The latency ``fraction`` of the requests of every round stayed within."""
        wanted = fraction * sum(self.latency.values())
        seen = 0
        for micros in sorted(self.latency):
            seen += self.latency[micros]
            if seen >= wanted:
                return micros / 1000
        return 0.0

    @property
    def p50_ms(self) -> float:
        return self.percentile_ms(0.50)

    @property
    def p99_ms(self) -> float:
        return self.percentile_ms(0.99)

    def errors(self) -> list[str]:
        """Whatever in this run is not the expected answer."""
        found = [f"{self.figures[name]} {name.replace('_', ' ')}"
                 for name in ("connect_errors", "read_errors", "write_errors", "timeouts")
                 if self.figures[name]]
        if self.figures["n_other"]:
            found.append(f"{self.figures['n_other']} unexpected answers "
                         f"(last: {self.other_status} {self.other_body})")
        posting = self.kind in POST_KINDS
        expected = "n202" if posting else "n200"
        unexpected = {"n200", "n202", "n400_pending"} - {expected} - ({"n400_pending"} if posting else set())
        found += [f"{self.figures[name]} unexpected {name[1:]}" for name in sorted(unexpected)
                  if self.figures[name]]
        return [f"{self.kind} at {self.hosts} hosts: {e}" for e in found]


@dataclass
class SizeResult:
    hosts: int
    chain: ChainTimes
    loads: dict[str, LoadResult] = field(default_factory=dict)
    jobs_created: int = 0
    errors: list[str] = field(default_factory=list)


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    print("wrk is missing: installing the Debian package", flush=True)
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run([*sudo, "apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run([*sudo, "apt-get", "install", "-y", "-qq", "--no-install-recommends", "wrk"],
                   check=True, env=env)
    return shutil.which("wrk") or "wrk"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_up(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url} exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within 120 s")


def start(command: list[str], url: str, log: Path, cwd: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=cwd)
    try:
        wait_until_up(url, process, log)
    except BaseException:
        stop(process)  # one that never answered must not outlive the run
        raise
    return process


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclass(frozen=True)
class Round:
    """What one wrk run of a row needs to know: its length, where its POSTs start, its files."""

    seconds: int
    workdir: Path
    number: int
    bodies: Path  # the verified row's bodies (world.sign_identities)
    post_offset: int = 0

    def file(self, name: str, kind: str) -> Path:
        return self.workdir / f"{name}-{kind}-{self.number}.txt"


def run_wrk(wrk: str, args: argparse.Namespace, load: LoadResult, url: str, world: World,
            round_: Round) -> int:
    """One round of ``load``'s kind, added to it; returns the POST offset for the next round."""
    kind = load.kind
    latency_file = round_.file("latency", kind)
    mode = "post" if kind == SUSTAINED else kind
    env = {**os.environ, "BENCH_MODE": mode, "BENCH_HOSTS": str(world.hosts),
           "BENCH_FIRST_TEMPLATE": str(world.first_template_id),
           "BENCH_TEMPLATES": str(world.templates), "BENCH_KEY": HOST_KEY,
           "BENCH_TOKEN": world.token, "BENCH_OFFSET": str(round_.post_offset),
           "BENCH_LATENCY": str(latency_file), "BENCH_BODIES": str(round_.bodies)}
    if kind in POST_KINDS:
        env["BENCH_JOB_IDS"] = str(round_.file("job-ids", kind))
    command = [wrk, "-t1", f"-c{args.connections}", f"-d{round_.seconds}s", "--timeout", "5s",
               "-s", str(LOAD_SCRIPT), url]
    done = subprocess.run(command, env=env, capture_output=True, text=True,
                          timeout=round_.seconds + 60)
    figures: dict[str, int] = {}
    texts: dict[str, str] = {}
    for line in done.stdout.splitlines():
        if line.startswith("BENCH "):
            _, name, value = (line.split(" ", 2) + [""])[:3]
            if name in ("other_status", "other_body"):
                texts[name] = value
            else:
                figures[name] = int(value)
    if done.returncode != 0 or "requests" not in figures:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stdout}\n{done.stderr}")
    latency: Counter[int] = Counter()
    for line in latency_file.read_text().splitlines():
        micros, count = line.split()
        latency[int(micros)] += int(count)
    next_offset = figures.pop("next_offset")
    load.add_round(figures, latency, texts.get("other_status", ""), texts.get("other_body", ""))
    return next_offset


def check_jobs(size: Size, connections: int) -> tuple[int, list[str]]:
    """Every 202 named its own job, which exists; no (template, host) pair has two jobs;
    every 202 of the verified row named a job that cloud_metadata matched to the host
    whose signed identity the request carried."""
    errors = []
    ids_files = {kind: sorted(size.workdir.glob(f"job-ids-{kind}-*.txt"))
                 for kind in POST_KINDS if kind in size.result.loads}
    named_by = {kind: [job for f in files for job in f.read_text().split()] for kind, files in ids_files.items()}
    named = [job for jobs in named_by.values() for job in jobs]
    with sqlite3.connect(size.database) as db:
        jobs = dict(db.execute("SELECT id, job_template_id || ':' || host_id FROM jobs"))
        accepted = {job for (job,) in db.execute(
            "SELECT job_id FROM callback_attempts WHERE status_code = 202")}
        matched_by_identity = db.execute(
            "SELECT jobs.id, hosts.name, callback_attempts.trace FROM jobs "
            "JOIN hosts ON hosts.id = jobs.host_id JOIN callback_attempts ON callback_attempts.job_id = jobs.id "
            "WHERE jobs.resolved_by = 'cloud_metadata' AND callback_attempts.status_code = 202").fetchall()
    # The trace of a verified match names the instance of the document that was sent:
    # by job, the instance id its host carries and that trace.
    by_identity = {str(job): (instance_id(int(host.removeprefix("node"))), trace)
                   for job, host, trace in matched_by_identity}
    for kind, kind_named in named_by.items():
        n202 = size.result.loads[kind].figures["n202"]
        if len(kind_named) != n202:
            errors.append(f"wrk counted {n202} 202s of {kind} but kept {len(kind_named)} job ids")
    wrong = [job for job in named_by["verified"]
             if job not in by_identity or f"aws instance {by_identity[job][0]} of" not in by_identity[job][1]]
    if wrong:
        errors.append(f"{len(wrong)} verified 202s named a job not matched by the sent identity (e.g. {wrong[:3]})")
    if len(set(named)) != len(named):
        errors.append(f"{len(named) - len(set(named))} 202s named a job another 202 named")
    missing = [i for i in named if not i.isdigit() or int(i) not in jobs]
    if missing:
        errors.append(f"{len(missing)} 202s named no job in the database (e.g. {missing[:3]})")
    if len(set(jobs.values())) != len(jobs):
        errors.append(f"{len(jobs) - len(set(jobs.values()))} duplicate jobs for one template and host")
    if set(jobs) != accepted:
        errors.append(f"{len(set(jobs) ^ accepted)} jobs without a 202 audit record, or the reverse")
    # Requests still in flight when a round's wrk stopped were answered to no one:
    # at most one per connection and round.
    unseen = len(jobs) - len(set(named))
    rounds = sum(len(files) for files in ids_files.values())
    if not 0 <= unseen <= connections * rounds:
        errors.append(f"{unseen} jobs that no 202 seen by wrk named (at most {connections * rounds} expected)")
    return len(jobs), [f"POSTs at {size.hosts} hosts: {e}" for e in errors]


@dataclass
class Size:
    """One inventory size during the run: its world, its database and its server."""

    hosts: int
    workdir: Path
    world: World
    result: SizeResult = field(init=False)  # once the chain is timed
    url: str = ""  # once its server answers

    @property
    def database(self) -> Path:
        return self.workdir / "bench.db"


def build_size(stack: contextlib.ExitStack, args: argparse.Namespace, hosts: int, sustained: int) -> Size:
    """``sustained``: the seconds of the sustained row this size gets (0: none)."""
    workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix=f"bench-{hosts}-")))
    post_seconds = sum(kind in POST_KINDS for kind in KINDS) * args.duration + sustained
    templates = max(1, math.ceil(post_seconds * MAX_POST_RATE / hosts))
    world = asyncio.run(build_world(f"sqlite:///{workdir / 'bench.db'}", hosts, templates))
    print(f"{hosts} hosts: world built in {world.seconds:.1f} s ({templates} template(s))", flush=True)
    return Size(hosts, workdir, world)


def bench(wrk: str, args: argparse.Namespace, sizes: list[int]) -> list[SizeResult]:
    """Every size's rows. The sizes, like the kinds of request, take turns: a change in
    the machine's speed during the run meets them all alike (see bench/NOTES.md)."""
    with contextlib.ExitStack() as stack:
        # Signed once for the largest N: host i's document is the same at every N.
        signed = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-identities-")))
        identities = sign_identities(signed, sizes[-1])
        print(f"{sizes[-1]} identity documents signed in {identities.seconds:.1f} s", flush=True)
        run = [build_size(stack, args, hosts, args.sustained if hosts == sizes[-1] else 0) for hosts in sizes]
        print("timing the chain", flush=True)
        chains = asyncio.run(time_chains([(s.hosts, s.world.database_url) for s in run], args.resolves))
        for size, chain in zip(run, chains, strict=True):
            size.result = SizeResult(size.hosts, chain)
        with contextlib.ExitStack() as processes:
            hello_url = start_process(processes, [sys.executable, str(BENCH / "hello.py")], "/",
                                      run[0].workdir / "hello.log", run[0].workdir)
            for size in run:
                size.url = start_process(
                    processes, [sys.executable, "-m", "tornado_callback", "serve", "--no-worker",
                                "--plugins", str(identities.plugins), "--database-url", size.world.database_url],
                    "/api/v2/ping/", size.workdir / "server.log", size.workdir)
            drive(wrk, args, run, hello_url, identities)
        # Servers stopped: every job a request made is committed.
        for size in run:
            size.result.errors += [e for load in size.result.loads.values() for e in load.errors()]
            size.result.jobs_created, job_errors = check_jobs(size, args.connections)
            size.result.errors += job_errors
            if size.result.errors and args.keep_logs:
                shutil.copy(size.workdir / "server.log", BENCH / "results" / f"{size.hosts}-server.log")
        return [size.result for size in run]


def start_process(stack: contextlib.ExitStack, command: list[str], path: str, log: Path,
                  cwd: Path) -> str:
    """Start a server on a free port, stopped when ``stack`` closes; its base URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = start([*command, "--port", str(port)], url + path, log, cwd)
    stack.callback(stop, process)
    return url


def drive(wrk: str, args: argparse.Namespace, run: list[Size], hello_url: str, identities: Identities) -> None:
    """The warm-up, then the rounds: in each, every size's hello, POSTs and GET in turn."""
    for size in run:
        if args.warmup > 0:
            for kind, url in (("hello", hello_url), ("get", size.url)):  # GETs write nothing
                run_wrk(wrk, args, LoadResult(kind, size.hosts, Counter(), Counter()), url,
                        size.world, Round(args.warmup, size.workdir, 0, identities.bodies))
        size.result.loads = {kind: LoadResult(kind, size.hosts, Counter(), Counter()) for kind in KINDS}
    rounds, seconds = rounds_of(args)
    post_offsets = {size.hosts: 0 for size in run}
    for number in range(1, rounds + 1):
        print(f"round {number} of {rounds}: {', '.join(KINDS)} for {seconds} s each at "
              f"{', '.join(str(s.hosts) for s in run)} hosts", flush=True)
        for size in run:
            for kind in KINDS:
                round_ = Round(seconds, size.workdir, number, identities.bodies, post_offsets[size.hosts])
                url = hello_url if kind == "hello" else size.url
                next_offset = run_wrk(wrk, args, size.result.loads[kind], url, size.world, round_)
                if kind in POST_KINDS:
                    post_offsets[size.hosts] = next_offset
    if args.sustained > 0:
        largest = run[-1]
        print(f"sustained: callback POSTs for {args.sustained} s at {largest.hosts} hosts", flush=True)
        load = largest.result.loads[SUSTAINED] = LoadResult(SUSTAINED, largest.hosts, Counter(), Counter(),
                                                            load_average=os.getloadavg()[0])
        run_wrk(wrk, args, load, largest.url, largest.world,
                Round(args.sustained, largest.workdir, 1, identities.bodies, post_offsets[largest.hosts]))


def rounds_of(args: argparse.Namespace) -> tuple[int, int]:
    """How many rounds each row takes, and their length in whole seconds (wrk's unit)."""
    rounds = max(1, min(args.rounds, args.duration))
    return rounds, args.duration // rounds


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}" if b else "n/a"


def table(results: list[SizeResult], args: argparse.Namespace, loads: tuple[float, float]) -> str:
    rounds, seconds = rounds_of(args)
    lines = [
        "# tornado-callback benchmark",
        "",
        f"- date: {dt.datetime.now(dt.UTC).isoformat(timespec='seconds')}",
        f"- machine: {os.cpu_count()} cores (nproc), load average {loads[0]:.2f} before, "
        f"{loads[1]:.2f} after",
        f"- load: wrk -t1 -c{args.connections}; each row is {rounds} rounds of {seconds} s, "
        f"hello, POST, verified POST and GET taking turns, after {args.warmup:g} s of warm-up; "
        "wrk and the server share the cores"
        + (f"; then, at {results[-1].hosts} hosts, callback POSTs for {args.sustained} s in one run (sustained)"
           if args.sustained > 0 else ""),
        "- server: `serve --no-worker`, one process, SQLite; hello: bench/hello.py, one process; "
        "chain alone: one resolve at a time, on one core (bench/chain.py)",
        "",
        "| N hosts | request | req/s | p50 ms | p99 ms | vs hello req/s | answers |",
        "|---:|---|---:|---:|---:|---:|---|",
    ]
    for r in results:
        hello = r.loads["hello"]
        for kind, load in r.loads.items():
            f = load.figures
            if kind in POST_KINDS:
                answers = f"{f['n202']} 202 (one job each), {f['n400_pending']} 400 already pending"
            else:
                answers = f"{f['n200']} 200"
            lines.append(f"| {r.hosts} | {NAMES[kind]} | {load.rate:.0f} | {load.p50_ms:.2f} | "
                         f"{load.p99_ms:.2f} | {ratio(load.rate, hello.rate)} | {answers} |")
        lines.append(f"| {r.hosts} | chain alone (no HTTP) | | {r.chain.p50_ms:.3f} | "
                     f"{r.chain.p99_ms:.3f} | | {r.chain.resolves} resolves, all matched |")
    small, large = results[0], results[-1]
    lines += ["", f"Ratios at N = {large.hosts} (targets in brackets):", ""]
    for kind, target in (("post", 0.35), ("get", 0.50)):
        value = large.loads[kind].rate / large.loads["hello"].rate
        per_round = [own / hello for own, hello in zip(
            large.loads[kind].round_rates, large.loads["hello"].round_rates, strict=True)]
        lines.append(f"- callback {kind.upper()} / hello req/s: {value:.2f} "
                     f"[>= {target:.2f}: {'met' if value >= target else 'NOT met'}]; "
                     f"round by round {min(per_round):.2f} to {max(per_round):.2f}")
    # Cost: time per request, the inverse of req/s (wrk keeps the connections busy).
    post, verified = large.loads["post"], large.loads["verified"]
    cost = post.rate / verified.rate
    per_round = [p / v for p, v in zip(post.round_rates, verified.round_rates, strict=True)]
    lines.append(f"- verified POST / address-matched POST, time per request: {cost:.2f} "
                 f"[<= {MAX_VERIFIED_COST:g}x cost: {'met' if cost <= MAX_VERIFIED_COST else 'NOT met'}]; "
                 f"round by round {min(per_round):.2f} to {max(per_round):.2f}; "
                 f"p50 {ratio(verified.p50_ms, post.p50_ms)}")
    if SUSTAINED in large.loads:
        sustained = large.loads[SUSTAINED]
        spread = sustained.p99_ms / sustained.p50_ms if sustained.p50_ms else math.inf
        met = "met" if spread <= MAX_SUSTAINED_P99_OVER_P50 else "NOT met"
        lines.append(f"- sustained callback POST, p99 / p50: {spread:.2f} "
                     f"[<= {MAX_SUSTAINED_P99_OVER_P50:g}: {met}]; p50 {sustained.p50_ms:.2f} ms, "
                     f"p99 {sustained.p99_ms:.2f} ms; load average {sustained.load_average:.2f} as it started")
    lines += ["", f"p50 at {large.hosts} hosts / p50 at {small.hosts} hosts [<= 1.25]:", ""]
    for label, big, little in (
        ("callback POST", large.loads["post"].p50_ms, small.loads["post"].p50_ms),
        ("callback POST, verified", large.loads["verified"].p50_ms, small.loads["verified"].p50_ms),
        ("callback GET", large.loads["get"].p50_ms, small.loads["get"].p50_ms),
        ("chain alone", large.chain.p50_ms, small.chain.p50_ms),
    ):
        lines.append(f"- {label}: {ratio(big, little)}")
    errors = [e for r in results for e in r.errors]
    jobs = ", ".join(f"{r.jobs_created} at {r.hosts}" for r in results)
    lines += ["", f"Jobs created: {jobs}; every 202 named its own job, one job per (template, host)"
              if not errors else "", f"Errors: {len(errors)}"]
    lines += [f"- {e}" for e in errors]
    return "\n".join(lines).replace("\n\n\n", "\n\n") + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100,10000,100000", help="inventory sizes, comma-separated")
    parser.add_argument("--duration", type=int, default=10, help="seconds of load per row (whole seconds: wrk)")
    parser.add_argument("--rounds", type=int, default=5,
                        help="turns the kinds of request take within a row (at most --duration)")
    parser.add_argument("--sustained", type=int, default=15,
                        help="seconds of callback POSTs in one run at the largest N, after the rounds (0: none)")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of warm-up before each size (0: none)")
    parser.add_argument("--connections", type=int, default=50, help="wrk connections")
    parser.add_argument("--resolves", type=int, default=2000, help="resolves timed by the chain benchmark")
    parser.add_argument("--results", type=Path, default=BENCH / "results" / "latest.md")
    parser.add_argument("--keep-logs", action="store_true",
                        help="copy the server's log to bench/results/ when the run had errors")
    args = parser.parse_args()
    sizes = sorted(int(s) for s in args.sizes.split(","))
    wrk = ensure_wrk()
    before = os.getloadavg()[0]
    results = bench(wrk, args, sizes)
    text = table(results, args, (before, os.getloadavg()[0]))
    print(text)
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(text)
    print(f"written to {args.results}")
    return 1 if any(r.errors for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
