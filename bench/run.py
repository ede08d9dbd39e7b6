"""The benchmark: ``python bench/run.py [--sizes 100,10000,100000] [--duration 10]``.

For each inventory size N, in a fresh SQLite database: times the resolver
chain alone (bench/chain.py), then starts the real server (``serve
--no-worker``, one process) and the bare Tornado app (bench/hello.py, the
ceiling) and drives each with wrk over loopback (bench/load.lua): hello, the
callback POST, the admin GET. Prints one table, writes it to
bench/results/latest.md, and checks the run: every 202 named a job that
exists, no (template, host) pair got two jobs, no request failed. A run with
errors prints them and exits 1. See the README, "Benchmark".
"""

from __future__ import annotations

import argparse
import asyncio
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
from dataclasses import dataclass, field
from pathlib import Path

from chain import ChainTimes, time_chain
from world import HOST_KEY, PLUGINS, World, build_world

BENCH = Path(__file__).resolve().parent
LOAD_SCRIPT = BENCH / "load.lua"
# The most requests per second a POST run could plausibly reach here: the
# templates created give at least duration * this many distinct (template, host) pairs.
MAX_POST_RATE = 3000
KINDS = ("hello", "post", "get")


@dataclass
class LoadResult:
    kind: str
    hosts: int
    figures: dict[str, int]
    other_status: str = ""
    other_body: str = ""

    @property
    def requests(self) -> int:
        return self.figures["requests"]

    @property
    def rate(self) -> float:
        return self.requests / (self.figures["duration_us"] / 1e6)

    @property
    def p50_ms(self) -> float:
        return self.figures["p50_us"] / 1000

    @property
    def p99_ms(self) -> float:
        return self.figures["p99_us"] / 1000

    def errors(self) -> list[str]:
        """Whatever in this run is not the expected answer."""
        found = [f"{self.figures[name]} {name.replace('_', ' ')}"
                 for name in ("connect_errors", "read_errors", "write_errors", "timeouts")
                 if self.figures[name]]
        if self.figures["n_other"]:
            found.append(f"{self.figures['n_other']} unexpected answers "
                         f"(last: {self.other_status} {self.other_body})")
        expected = "n202" if self.kind == "post" else "n200"
        unexpected = {"n200", "n202", "n400_pending"} - {expected} - (
            {"n400_pending"} if self.kind == "post" else set())
        found += [f"{self.figures[name]} unexpected {name[1:]}" for name in sorted(unexpected)
                  if self.figures[name]]
        return [f"{self.kind} at {self.hosts} hosts: {e}" for e in found]


@dataclass
class SizeResult:
    hosts: int
    world: World
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


def run_wrk(wrk: str, args: argparse.Namespace, kind: str, url: str, world: World,
            seconds: float, ids_file: Path | None = None) -> LoadResult:
    env = {**os.environ, "BENCH_MODE": kind, "BENCH_HOSTS": str(world.hosts),
           "BENCH_FIRST_TEMPLATE": str(world.first_template_id),
           "BENCH_TEMPLATES": str(world.templates), "BENCH_KEY": HOST_KEY,
           "BENCH_TOKEN": world.token}
    if ids_file is not None:
        env["BENCH_JOB_IDS"] = str(ids_file)
    command = [wrk, "-t1", f"-c{args.connections}", f"-d{seconds:g}s", "--timeout", "5s",
               "-s", str(LOAD_SCRIPT), url]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=seconds + 60)
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
    return LoadResult(kind, world.hosts, figures, texts.get("other_status", ""),
                      texts.get("other_body", ""))


def check_jobs(database: Path, post: LoadResult, ids_file: Path, connections: int) -> tuple[int, list[str]]:
    """Every 202 named its own job, which exists; no (template, host) pair has two jobs."""
    errors = []
    named = ids_file.read_text().split()
    with sqlite3.connect(database) as db:
        jobs = dict(db.execute("SELECT id, job_template_id || ':' || host_id FROM jobs"))
        accepted = {job for (job,) in db.execute(
            "SELECT job_id FROM callback_attempts WHERE status_code = 202")}
    if len(named) != post.figures["n202"]:
        errors.append(f"wrk counted {post.figures['n202']} 202s but kept {len(named)} job ids")
    if len(set(named)) != len(named):
        errors.append(f"{len(named) - len(set(named))} 202s named a job another 202 named")
    missing = [i for i in named if not i.isdigit() or int(i) not in jobs]
    if missing:
        errors.append(f"{len(missing)} 202s named no job in the database (e.g. {missing[:3]})")
    if len(set(jobs.values())) != len(jobs):
        errors.append(f"{len(jobs) - len(set(jobs.values()))} duplicate jobs for one template and host")
    if set(jobs) != accepted:
        errors.append(f"{len(set(jobs) ^ accepted)} jobs without a 202 audit record, or the reverse")
    # Requests still in flight when wrk stopped were answered to no one: at most one per connection.
    unseen = len(jobs) - len(set(named))
    if not 0 <= unseen <= connections:
        errors.append(f"{unseen} jobs that no 202 seen by wrk named (at most {connections} expected)")
    return len(jobs), [f"post at {post.hosts} hosts: {e}" for e in errors]


def bench_size(wrk: str, args: argparse.Namespace, hosts: int) -> SizeResult:
    with tempfile.TemporaryDirectory(prefix=f"bench-{hosts}-") as tmp:
        workdir = Path(tmp)
        database = workdir / "bench.db"
        url = f"sqlite:///{database}"
        templates = max(1, math.ceil(args.duration * MAX_POST_RATE / hosts))
        world = asyncio.run(build_world(url, hosts, templates))
        print(f"{hosts} hosts: world built in {world.seconds:.1f} s "
              f"({templates} template(s)); timing the chain", flush=True)
        chain = asyncio.run(time_chain(url, hosts, args.resolves))
        result = SizeResult(hosts, world, chain)
        hello_port, server_port = free_port(), free_port()
        hello = start([sys.executable, str(BENCH / "hello.py"), "--port", str(hello_port)],
                      f"http://127.0.0.1:{hello_port}/", workdir / "hello.log", workdir)
        try:
            server = start([sys.executable, "-m", "tornado_callback", "serve", "--no-worker",
                            "--port", str(server_port), "--plugins", str(PLUGINS),
                            "--database-url", url],
                           f"http://127.0.0.1:{server_port}/api/v2/ping/", workdir / "server.log", workdir)
            try:
                targets = {"hello": f"http://127.0.0.1:{hello_port}",
                           "post": f"http://127.0.0.1:{server_port}",
                           "get": f"http://127.0.0.1:{server_port}"}
                if args.warmup > 0:
                    for kind in ("hello", "get"):  # GETs write nothing: the POST run starts clean
                        run_wrk(wrk, args, kind, targets[kind], world, args.warmup)
                ids_file = workdir / "job-ids.txt"
                for kind in KINDS:
                    print(f"{hosts} hosts: {kind} for {args.duration:g} s", flush=True)
                    result.loads[kind] = run_wrk(wrk, args, kind, targets[kind], world, args.duration,
                                                 ids_file if kind == "post" else None)
                    result.errors += result.loads[kind].errors()
            finally:
                stop(server)
        finally:
            stop(hello)
        result.jobs_created, job_errors = check_jobs(
            database, result.loads["post"], ids_file, args.connections)
        result.errors += job_errors
        if result.errors and args.keep_logs:
            for log in ("server.log", "hello.log"):
                shutil.copy(workdir / log, BENCH / "results" / f"{hosts}-{log}")
    return result


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}" if b else "n/a"


def table(results: list[SizeResult], args: argparse.Namespace, loads: tuple[float, float]) -> str:
    lines = [
        "# tornado-callback benchmark",
        "",
        f"- date: {dt.datetime.now(dt.UTC).isoformat(timespec='seconds')}",
        f"- machine: {os.cpu_count()} cores (nproc), load average {loads[0]:.2f} before, "
        f"{loads[1]:.2f} after",
        f"- load: wrk -t1 -c{args.connections}, {args.duration:g} s per row, after "
        f"{args.warmup:g} s of warm-up; wrk and the server share the cores",
        "- server: `serve --no-worker`, one process, SQLite; hello: bench/hello.py, one process",
        "",
        "| N hosts | request | req/s | p50 ms | p99 ms | vs hello req/s | answers |",
        "|---:|---|---:|---:|---:|---:|---|",
    ]
    for r in results:
        hello = r.loads["hello"]
        for kind in KINDS:
            load = r.loads[kind]
            f = load.figures
            if kind == "post":
                answers = f"{f['n202']} 202 (one job each), {f['n400_pending']} 400 already pending"
            else:
                answers = f"{f['n200']} 200"
            name = {"hello": "hello (ceiling)", "post": "callback POST", "get": "callback GET"}[kind]
            lines.append(f"| {r.hosts} | {name} | {load.rate:.0f} | {load.p50_ms:.2f} | "
                         f"{load.p99_ms:.2f} | {ratio(load.rate, hello.rate)} | {answers} |")
        lines.append(f"| {r.hosts} | chain alone (no HTTP) | | {r.chain.p50_ms:.3f} | "
                     f"{r.chain.p99_ms:.3f} | | {r.chain.resolves} resolves, all matched |")
    small, large = results[0], results[-1]
    lines += ["", f"Ratios at N = {large.hosts} (targets in brackets):", ""]
    for kind, target in (("post", 0.35), ("get", 0.50)):
        value = large.loads[kind].rate / large.loads["hello"].rate
        lines.append(f"- callback {kind.upper()} / hello req/s: {value:.2f} "
                     f"[>= {target:.2f}: {'met' if value >= target else 'NOT met'}]")
    lines += ["", f"p50 at {large.hosts} hosts / p50 at {small.hosts} hosts [<= 1.25]:", ""]
    for label, big, little in (
        ("callback POST", large.loads["post"].p50_ms, small.loads["post"].p50_ms),
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
    results = [bench_size(wrk, args, n) for n in sizes]
    text = table(results, args, (before, os.getloadavg()[0]))
    print(text)
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(text)
    print(f"written to {args.results}")
    return 1 if any(r.errors for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
