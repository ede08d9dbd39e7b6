"""Matching alone, no HTTP: ``ResolverChain.resolve`` against the real store.

``python bench/chain.py [--sizes 100,10000,100000] [--resolves 2000]`` builds
each world in a fresh SQLite database and times resolves of random hosts, each
calling through the trusted proxy 127.0.0.1 with its X-Forwarded-For, with
the chain of bench/plugins.toml (what the server runs in bench/run.py).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import tempfile
import time
from dataclasses import dataclass

from world import build_world, host_address, settings_for

from tornado_callback.resolution import CallbackRequest
from tornado_callback.services import Services


@dataclass(frozen=True)
class ChainTimes:
    hosts: int
    resolves: int
    p50_ms: float
    p99_ms: float


def percentile(sorted_values: list[float], fraction: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(fraction * len(sorted_values)))]


async def time_chain(database_url: str, hosts: int, resolves: int) -> ChainTimes:
    """Per-resolve latency over ``resolves`` random hosts; every one must match its host."""
    services = await Services.start(settings_for(database_url), upgrade=False)
    try:
        inventory = await services.inventories.get_by_name_or_id("bench")
        lookup = services.inventories.lookup(inventory.id)
        rng = random.Random(hosts)
        picks = [rng.randrange(hosts) for _ in range(resolves)]
        for index in picks[:50]:  # warm the connection pool and caches
            await services.chain.resolve(_request(index), lookup)
        times = []
        for index in picks:
            started = time.perf_counter()
            resolution = await services.chain.resolve(_request(index), lookup)
            times.append((time.perf_counter() - started) * 1000)
            if resolution.host is None or resolution.host.name != f"node{index:06d}":
                raise RuntimeError(f"host {index} resolved to {resolution.outcome} {resolution.host}")
    finally:
        await services.close()
    times.sort()
    return ChainTimes(hosts, resolves, percentile(times, 0.5), percentile(times, 0.99))


def _request(index: int) -> CallbackRequest:
    return CallbackRequest(peer="127.0.0.1", headers=(("X-Forwarded-For", host_address(index)),))


async def main(sizes: list[int], resolves: int) -> None:
    print(f"{'hosts':>8} {'resolves':>8} {'p50 ms':>8} {'p99 ms':>8}")
    for hosts in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            url = f"sqlite:///{tmp}/bench.db"
            await build_world(url, hosts, 1)
            t = await time_chain(url, hosts, resolves)
        print(f"{t.hosts:>8} {t.resolves:>8} {t.p50_ms:>8.3f} {t.p99_ms:>8.3f}", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100,10000,100000")
    parser.add_argument("--resolves", type=int, default=2000)
    args = parser.parse_args()
    asyncio.run(main([int(s) for s in args.sizes.split(",")], args.resolves))
