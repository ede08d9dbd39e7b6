"""Matching alone, no HTTP: ``ResolverChain.resolve`` against the real store.

``python bench/chain.py [--sizes 100,10000,100000] [--resolves 2000]`` builds
each world in a fresh SQLite database and times resolves of random hosts, the
worlds taking turns, each calling through the trusted proxy 127.0.0.1 with its
X-Forwarded-For, with the chain of bench/plugins.toml (what the server runs in
bench/run.py). The timing runs on one core (``one_core``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from world import build_world, host_address, settings_for

from tornado_callback.accounts.service import LOCAL_ADMIN
from tornado_callback.plugin import CallbackRequest, HostLookup
from tornado_callback.plugin.chain import ResolverChain
from tornado_callback.services import Services


@dataclass(frozen=True)
class ChainTimes:
    hosts: int
    resolves: int
    p50_ms: float
    p99_ms: float


def percentile(sorted_values: list[float], fraction: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(fraction * len(sorted_values)))]


@dataclass
class _Timing:
    hosts: int
    chain: ResolverChain
    lookup: HostLookup
    picks: list[int]
    times: list[float] = field(default_factory=list)

    async def resolve(self, index: int) -> float:
        """One resolve of host ``index``, which must match it; its milliseconds."""
        started = time.perf_counter()
        resolution = await self.chain.resolve(_request(index), self.lookup)
        elapsed = (time.perf_counter() - started) * 1000
        if resolution.host is None or resolution.host.name != f"node{index:06d}":
            raise RuntimeError(f"host {index} resolved to {resolution.outcome} {resolution.host}")
        return elapsed


@contextlib.contextmanager
def one_core() -> Iterator[None]:
    """This thread, and the threads it starts meanwhile, on one core.

    A resolve hands its query to the database's reader thread and takes the
    answer back. With the threads free to run on any core, how soon the kernel
    woke the other one came to decide the figure: in one run every resolve of
    the 100-host world took 0.096 ms at p50 and every one of the 10,000 and
    100,000-host worlds 0.145, though a run on its own found them 0.104 to
    0.113. On one core the hand-over costs the same each time, and what
    differs between the worlds is the matching.
    """
    cores = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(cores)})
    try:
        yield
    finally:
        os.sched_setaffinity(0, cores)  # the servers started next may use every core


async def time_chains(worlds: Sequence[tuple[int, str]], resolves: int) -> list[ChainTimes]:
    """Per-resolve latency over ``resolves`` random hosts of each world ``(hosts, database_url)``.

    The worlds take turns, one resolve each, so that a change in the machine's
    speed during the run meets every size alike; all on one core (``one_core``).
    """
    with one_core():
        return await _time_chains(worlds, resolves)


async def _time_chains(worlds: Sequence[tuple[int, str]], resolves: int) -> list[ChainTimes]:
    async with contextlib.AsyncExitStack() as stack:
        timings = []
        for hosts, database_url in worlds:
            services = await Services.start(settings_for(database_url), upgrade=False)
            stack.push_async_callback(services.close)
            inventory = await services.admin.named("inventories", LOCAL_ADMIN, "bench")
            rng = random.Random(hosts)
            timings.append(_Timing(hosts, services.chain, services.inventories.lookup(inventory["id"]),
                                   [rng.randrange(hosts) for _ in range(resolves)]))
        for timing in timings:
            for index in timing.picks[:50]:  # warm the connection pool and caches
                await timing.resolve(index)
        for turn in range(resolves):
            for timing in timings:
                timing.times.append(await timing.resolve(timing.picks[turn]))
    return [ChainTimes(t.hosts, resolves, percentile(sorted(t.times), 0.5), percentile(sorted(t.times), 0.99))
            for t in timings]


def _request(index: int) -> CallbackRequest:
    return CallbackRequest(peer="127.0.0.1", headers=(("X-Forwarded-For", host_address(index)),))


async def main(sizes: list[int], resolves: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        worlds = [(hosts, f"sqlite:///{tmp}/bench-{hosts}.db") for hosts in sizes]
        for hosts, url in worlds:
            await build_world(url, hosts, 1)
        timed = await time_chains(worlds, resolves)
    print(f"{'hosts':>8} {'resolves':>8} {'p50 ms':>8} {'p99 ms':>8}")
    for t in timed:
        print(f"{t.hosts:>8} {t.resolves:>8} {t.p50_ms:>8.3f} {t.p99_ms:>8.3f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100,10000,100000")
    parser.add_argument("--resolves", type=int, default=2000)
    args = parser.parse_args()
    asyncio.run(main([int(s) for s in args.sizes.split(",")], args.resolves))
