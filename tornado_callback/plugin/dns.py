"""Asynchronous DNS for resolvers: aiodns, cached, with concurrent lookups coalesced.

Shared by the DNS resolvers; not a resolver itself. Answers (including "no
such name") are cached for ``cache_ttl`` / ``negative_ttl`` seconds; failures
(timeouts, unreachable server) are not cached, so the next request asks again.
Concurrent identical lookups share one query, and a caller that gives up
(the chain's timeout) does not cancel it for the others.
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import aiodns
import aiodns.error
import pycares

from tornado_callback.config import ConfigError, Settings
from tornado_callback.plugin.addresses import normalise_address, normalise_name
from tornado_callback.telemetry.metrics import DNSCacheReport

# Callers choose the addresses looked up (an IPv6 /64 holds plenty): bound the memory.
MAX_CACHE_ENTRIES = 10_000

# c-ares statuses that are answers ("there is no such record"), not failures.
NEGATIVE_STATUSES = frozenset({aiodns.error.ARES_ENOTFOUND, aiodns.error.ARES_ENODATA})


class DNSFailure(Exception):
    """The DNS server gave no usable answer (timeout, refused, unreachable)."""


@dataclass(frozen=True)
class DNSSettings:
    nameservers: tuple[str, ...] = ()  # empty: the system's (resolv.conf)
    timeout: float = 1.0  # per try, as c-ares counts it
    tries: int = 2
    cache_ttl: float = 300.0
    negative_ttl: float = 60.0


def dns_settings(settings: Settings, resolver: str, *, rounds: int, cache: bool) -> DNSSettings:
    """``nameservers``, ``tries`` and, when ``cache``, ``cache_ttl`` / ``negative_cache_ttl``
    of ``[resolvers.NAME]``. Each try gets a share of the resolver's timeout such that
    ``rounds`` lookups one after the other still fit in it."""
    options = settings.plugins.options(resolver)
    nameservers = options.get("nameservers", [])
    if not isinstance(nameservers, list) or not all(_is_nameserver(n) for n in nameservers):
        raise ConfigError(
            f"resolvers.{resolver}.nameservers must be a list of addresses "
            '("192.0.2.53", "192.0.2.53:5353", "[2001:db8::53]:53")'
        )
    tries = options.get("tries", 2)
    if isinstance(tries, bool) or not isinstance(tries, int) or not 1 <= tries <= 10:
        raise ConfigError(f"resolvers.{resolver}.tries must be an integer from 1 to 10")
    ttls = {"cache_ttl": 0.0, "negative_cache_ttl": 0.0}
    if cache:
        for key, default in (("cache_ttl", 300.0), ("negative_cache_ttl", 60.0)):
            value = options.get(key, default)
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise ConfigError(f"resolvers.{resolver}.{key} must be a number of seconds >= 0")
            ttls[key] = float(value)
    timeout = settings.plugins.for_resolver(resolver).timeout or settings.resolver_timeout
    return DNSSettings(
        nameservers=tuple(nameservers),
        timeout=timeout / tries / rounds,
        tries=tries,
        cache_ttl=ttls["cache_ttl"],
        negative_ttl=ttls["negative_cache_ttl"],
    )


def _is_nameserver(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    host, port = value, ""
    if value.startswith("["):
        host, _, port = value[1:].partition("]")
        port = port.removeprefix(":")
    elif value.count(":") == 1:
        host, port = value.split(":")
    if normalise_address(host) is None:
        return False
    return not port or (port.isdigit() and 0 < int(port) < 65536)


class DNSLookup:
    def __init__(self, settings: DNSSettings) -> None:
        self.settings = settings
        self._resolver: aiodns.DNSResolver | None = None
        self._cache: dict[tuple[str, str], tuple[float, tuple[str, ...]]] = {}
        self._report = DNSCacheReport()
        self._inflight: dict[tuple[str, str], asyncio.Task[tuple[str, ...]]] = {}

    def _channel(self) -> aiodns.DNSResolver:
        # Made on first use, inside the loop that will read its answers.
        if self._resolver is None:
            self._resolver = aiodns.DNSResolver(
                nameservers=list(self.settings.nameservers) or None,
                loop=asyncio.get_running_loop(),
                timeout=self.settings.timeout,
                tries=self.settings.tries,
            )
        return self._resolver

    async def close(self) -> None:
        for task in self._inflight.values():
            task.cancel()
        if self._resolver is not None:
            await self._resolver.close()
            self._resolver = None

    async def names_of(self, address: str) -> tuple[str, ...]:
        """PTR names of an address, normalised; ``.arpa`` names are dropped."""
        pointer = _reverse_pointer(address)
        names = await self._cached("PTR", pointer, lambda: self._query(pointer, "PTR"))
        return tuple(n for n in names if n and not n.endswith(".arpa"))

    async def addresses_of(self, name: str, qtype: str) -> tuple[str, ...]:
        """The addresses of a name's ``qtype`` records (``A`` or ``AAAA``), normalised.

        One family per call: a DNS server may fail one and answer the other (a
        dnsmasq without upstream refuses the AAAA query of a name it holds an A
        record for), and each caller decides what that failure means.
        """
        return await self._cached(qtype, name, lambda: self._query(name, qtype))

    async def _cached(
        self, kind: str, key: str, fetch: Callable[[], Awaitable[tuple[str, ...]]]
    ) -> tuple[str, ...]:
        cache_key = (kind, key)
        hit = self._cache.get(cache_key)
        if hit is not None and hit[0] > time.monotonic():
            self._report.hit()
            return hit[1]
        self._report.miss()
        task = self._inflight.get(cache_key)
        if task is None:
            task = asyncio.ensure_future(self._fetch_and_cache(cache_key, fetch))
            self._inflight[cache_key] = task
            task.add_done_callback(lambda _: self._inflight.pop(cache_key, None))
        # shield: one caller's timeout must not cancel the lookup the others wait for.
        return await asyncio.shield(task)

    async def _fetch_and_cache(
        self, cache_key: tuple[str, str], fetch: Callable[[], Awaitable[tuple[str, ...]]]
    ) -> tuple[str, ...]:
        answer = await fetch()
        ttl = self.settings.cache_ttl if answer else self.settings.negative_ttl
        if ttl > 0:
            self._remember(cache_key, time.monotonic() + ttl, answer)
        return answer

    def _remember(self, cache_key: tuple[str, str], expires: float, answer: tuple[str, ...]) -> None:
        if len(self._cache) >= MAX_CACHE_ENTRIES:
            now = time.monotonic()
            for key in [k for k, (until, _) in self._cache.items() if until <= now]:
                del self._cache[key]
        while len(self._cache) >= MAX_CACHE_ENTRIES:
            del self._cache[next(iter(self._cache))]  # the oldest entry
        self._cache.pop(cache_key, None)
        self._cache[cache_key] = (expires, answer)

    async def _query(self, name: str, qtype: str) -> tuple[str, ...]:
        try:
            result = await self._channel().query_dns(name, qtype)
        except aiodns.error.DNSError as e:
            status = e.args[0] if e.args else None
            if status in NEGATIVE_STATUSES:
                return ()
            raise DNSFailure(f"{qtype} {name}: {_message(e)}") from e
        return tuple(_record_values(result.answer, qtype))


def _record_values(records: Sequence[pycares.DNSRecord], qtype: str) -> list[str]:
    wanted = {"PTR": pycares.QUERY_TYPE_PTR, "A": pycares.QUERY_TYPE_A,
              "AAAA": pycares.QUERY_TYPE_AAAA}[qtype]
    values = []
    for record in records:
        if record.type != wanted:
            continue  # e.g. the CNAMEs leading to the answer
        if qtype == "PTR":
            values.append(normalise_name(record.data.dname))
        elif (address := normalise_address(record.data.addr)) is not None:
            values.append(address)
    return values


def _reverse_pointer(address: str) -> str:
    return ipaddress.ip_address(address).reverse_pointer


def record_type(address: str) -> str:
    """The record type that holds ``address``: ``A`` for IPv4, ``AAAA`` for IPv6."""
    return "A" if ipaddress.ip_address(address).version == 4 else "AAAA"


def _message(error: aiodns.error.DNSError) -> str:
    return str(error.args[1]) if len(error.args) > 1 else str(error)
