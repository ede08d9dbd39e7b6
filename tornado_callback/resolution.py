"""The resolver chain: which inventory host is calling?

Data flows one way: a ``CallbackRequest`` goes through the resolvers, ranked
by priority, and comes out as a ``Resolution`` (the host, or why none, plus a
trace of every resolver that ran). This module and ``hookspecs`` are the whole
API a resolver plugin sees, built-in or third-party.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import ipaddress
import json
import socket
import time
from abc import ABC, abstractmethod
from collections.abc import Coroutine, Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, Protocol, TypeVar

Outcome = Literal["matched", "ambiguous", "no_match", "skipped", "error", "timeout"]
IndexKey = tuple[str, str]
T = TypeVar("T")


def normalise_address(value: str) -> str | None:
    """The canonical text of an IP address, or None if ``value`` is not one.

    Brackets and IPv6 zone ids are dropped, IPv4-mapped IPv6 becomes IPv4, so
    that ``::ffff:10.0.0.5``, ``[::FFFF:10.0.0.5]`` and ``10.0.0.5`` agree.
    """
    # Cached like parse_address: each resolver that looks at the client
    # normalises its address again, and the text costs as much as a parse.
    return _normalise_address(value) if len(value) <= MAX_ADDRESS_TEXT else None


def parse_address(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address ``value`` names, normalised as by ``normalise_address``; None if it names none."""
    # One request asks about the same few strings several times (the proxy's
    # address, the client's), and parsing them was half of the chain's cost.
    # Cached, but only strings short enough to be an address: a client cannot
    # fill the cache with large ones.
    return _parse_address(value) if len(value) <= MAX_ADDRESS_TEXT else None


MAX_ADDRESS_TEXT = 80  # "[" + 45 characters of IPv6 + "%" + a zone id + "]", and spaces around


@functools.lru_cache(maxsize=8192)
def _normalise_address(value: str) -> str | None:
    text = _bare_address(value)
    if _dotted_quad(text) is not None:
        # inet_pton takes only the canonical dotted quad (no leading zeros,
        # four parts, nothing around): the text is its own normal form, and
        # a boot storm brings a new address with every request.
        return text
    address = _parse_bare(text)
    return None if address is None else str(address)


@functools.lru_cache(maxsize=8192)
def _parse_address(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    text = _bare_address(value)
    packed = _dotted_quad(text)
    return ipaddress.IPv4Address(packed) if packed is not None else _parse_bare(text)


def _bare_address(value: str) -> str:
    """``value`` without spaces, brackets and IPv6 zone id."""
    text = value.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    return text.split("%", 1)[0]


def _dotted_quad(text: str) -> bytes | None:
    """The four bytes of an IPv4 address in canonical dotted-quad text, else None.

    The C parser, a tenth of ipaddress's cost; anything else (IPv6, or text
    ipaddress would refuse too) goes to ipaddress.
    """
    try:
        return socket.inet_pton(socket.AF_INET, text)
    except (OSError, ValueError):  # ValueError: an embedded NUL
        return None


def _parse_bare(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def normalise_name(value: str) -> str:
    """Host names compare case-insensitively and without the root's trailing dot."""
    return value.strip().rstrip(".").lower()


# In the order AWX asks for them: the first one a host has decides.
EFFECTIVE_HOST_VARIABLES = ("ansible_host", "ansible_ssh_host")


def effective_host(host_name: str, variables: Mapping[str, Any]) -> str | None:
    """The one name or address AWX compares a caller with: ``ansible_host``, else
    ``ansible_ssh_host``, else the inventory name (``Host.get_effective_host_name``).

    The variable decides by being there, whatever it holds, so a host whose
    ``ansible_host`` is not text (or blank) has none: None, and nothing matches it.
    """
    for variable in EFFECTIVE_HOST_VARIABLES:
        if variable in variables:
            value = variables[variable]
            return value if isinstance(value, str) and value.strip() else None
    return host_name


def effective_host_name(host_name: str, variables: Mapping[str, Any]) -> str | None:
    """The effective host normalised as a DNS name; None when it is an address or there is none."""
    effective = effective_host(host_name, variables)
    if effective is None or normalise_address(effective) is not None:
        return None
    return normalise_name(effective)


@dataclass(frozen=True, slots=True)
class HostRef:
    """An inventory host as resolvers see it: never the ORM row."""

    id: int
    name: str
    enabled: bool = True


class HostLookup(Protocol):
    """The narrow, indexed view of one inventory that resolvers may query."""

    async def find(self, kind: str, values: Iterable[str]) -> list[HostRef]:
        """Hosts with an index key of ``kind`` equal to any of ``values`` (exact match)."""
        ...


@dataclass(frozen=True, slots=True)
class IndexEntry:
    """One key of the host index: its value, and whose it is."""

    inventory: str
    host: str
    value: str


class HostIndex(Protocol):
    """The index of every inventory, for the checks a server makes when it starts."""

    async def entries(self, kind: str) -> list[IndexEntry]:
        """Every key of ``kind``, in every inventory (one query, reading them all)."""
        ...


@dataclass(frozen=True, slots=True)
class CallbackRequest:
    """What a resolver may know about the caller. The host_config_key is never in it."""

    peer: str
    headers: tuple[tuple[str, str], ...] = ()
    body: Mapping[str, Any] = field(default_factory=dict)

    def header_values(self, name: str) -> list[str]:
        """Every value of header ``name`` (any case), one per header line, in order."""
        wanted = name.lower()
        return [value for key, value in self.headers if key.lower() == wanted]


@dataclass(frozen=True, slots=True)
class ResolutionState:
    """What earlier resolvers established. ``client_addresses`` starts as the peer."""

    client_addresses: tuple[str, ...]
    names: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ResolverResult:
    """A resolver's answer.

    ``hosts``: the hosts it matched (none, one, or several: ambiguous).
    ``evidence``: human-readable lines for the trace; never secrets.
    ``client_addresses`` / ``names``: when not None, replace what later
    resolvers see (e.g. the client behind a trusted proxy).
    ``decisive``: stop the chain here even without a match; for signed
    evidence that failed verification, which address evidence must not overrule.
    """

    hosts: Sequence[HostRef] = ()
    evidence: Sequence[str] = ()
    client_addresses: Sequence[str] | None = None
    names: Sequence[str] | None = None
    decisive: bool = False


class HostResolver(ABC):
    """Base of every resolver. Subclasses set ``name`` and ``priority`` and implement ``resolve``."""

    #: Unique name; the key of its ``[resolvers.NAME]`` table in plugins.toml.
    name: str
    #: Default rank; higher runs first. plugins.toml may override it.
    priority: int
    #: Raise it whenever ``index_keys`` would compute other keys for the same host
    #: (a new rule, not new options): the server then rebuilds the index at start.
    index_version: int = 1
    #: Index kinds that ``refreshed_index_keys`` fills; empty: it fills none.
    refreshed_kinds: frozenset[str] = frozenset()
    #: Seconds between background refreshes of those keys for every host.
    refresh_interval: float = 600.0

    @abstractmethod
    async def resolve(
        self, request: CallbackRequest, state: ResolutionState, hosts: HostLookup
    ) -> ResolverResult | None:
        """Identify the caller, or return None when there is nothing to look at (``skipped``)."""

    def client_address(self, request: CallbackRequest) -> str | None:
        """The caller's address as this resolver establishes it from the request alone
        (e.g. the client behind a trusted proxy), or None when it establishes none.

        Rate limits count failures against this address, and ask before the chain
        runs (a request over its limit never runs it): no lookups, no I/O.
        """
        return None

    def index_keys(self, host_name: str, variables: Mapping[str, Any]) -> Iterable[IndexKey]:
        """Index keys ``(kind, value)`` under which ``resolve`` will later look this host up.

        Called whenever a host is created or changed; keep it cheap and pure.
        """
        return ()

    async def refreshed_index_keys(
        self, host_name: str, variables: Mapping[str, Any]
    ) -> Iterable[IndexKey]:
        """Index keys of ``refreshed_kinds`` that take I/O to compute (e.g. DNS answers).

        Never called on the request path: a background task calls it soon after
        a host is saved and every ``refresh_interval`` seconds, and replaces the
        host's keys of those kinds with the result. Raise to keep the current ones
        (e.g. the DNS server did not answer).
        """
        return ()

    async def startup_warnings(self, index: HostIndex) -> Iterable[str]:
        """What in this resolver's configuration is dangerous with the hosts at hand: ``serve``
        logs each line as a warning when it starts, after the index is rebuilt. Never
        called on the request path; ``index`` may be read whole.
        """
        return ()

    async def aclose(self) -> None:  # noqa: B027 (optional hook: most resolvers hold nothing)
        """Release what ``resolve`` opened (sockets, DNS channels); called when the server stops."""


@dataclass(frozen=True, slots=True)
class RankedResolver:
    resolver: HostResolver
    priority: int
    timeout: float
    options: Mapping[str, Any]
    source: str

    @property
    def name(self) -> str:
        return self.resolver.name


@dataclass(frozen=True, slots=True)
class TraceEntry:
    resolver: str
    priority: int
    outcome: Outcome
    evidence: tuple[str, ...]
    hosts: tuple[str, ...]
    elapsed_ms: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "resolver": self.resolver,
            "priority": self.priority,
            "outcome": self.outcome,
            "evidence": list(self.evidence),
            "hosts": list(self.hosts),
            "elapsed_ms": self.elapsed_ms,
        }


@dataclass(frozen=True, slots=True)
class Resolution:
    outcome: Literal["matched", "ambiguous", "no_match"]
    host: HostRef | None
    candidates: tuple[HostRef, ...]
    resolved_by: str
    client_addresses: tuple[str, ...]
    names: tuple[str, ...]
    trace: tuple[TraceEntry, ...]

    @property
    def matching_hosts(self) -> list[str]:
        return [h.name for h in self.candidates]

    def trace_dicts(self) -> list[dict[str, Any]]:
        return [entry.as_dict() for entry in self.trace]


class ResolverChain:
    """Runs resolvers by priority; the first unique match decides."""

    def __init__(self, ranked: Iterable[RankedResolver]) -> None:
        self.resolvers: tuple[RankedResolver, ...] = tuple(
            sorted(ranked, key=lambda r: (-r.priority, r.name))
        )

    def index_keys(self, host_name: str, variables: Mapping[str, Any]) -> set[IndexKey]:
        keys: set[IndexKey] = set()
        for ranked in self.resolvers:
            keys.update(ranked.resolver.index_keys(host_name, variables))
        return keys

    @property
    def index_fingerprint(self) -> str:
        """Changes whenever the index keys could: a resolver added, removed, reconfigured
        or with another ``index_version``."""
        indexing = [
            (r.name, type(r.resolver).__qualname__, r.resolver.index_version, dict(r.options))
            for r in self.resolvers
            if type(r.resolver).index_keys is not HostResolver.index_keys
        ]
        blob = json.dumps(sorted(indexing, key=lambda item: item[0]), sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()

    async def aclose(self) -> None:
        for ranked in self.resolvers:
            await ranked.resolver.aclose()

    async def startup_warnings(self, index: HostIndex) -> list[str]:
        """Every resolver's ``startup_warnings``, each line led by the resolver's name."""
        warnings = []
        for ranked in self.resolvers:
            try:
                lines = list(await ranked.resolver.startup_warnings(index))
            except Exception as e:  # a plugin's bug must not keep the server from starting
                lines = [f"checking the configuration failed: {type(e).__name__}: {e}"]
            warnings += [f"{ranked.name}: {line}" for line in lines]
        return warnings

    def client_address(self, request: CallbackRequest) -> str:
        """Who is calling, as far as the request alone tells: the address the highest-ranked
        resolver establishes (``HostResolver.client_address``), else the TCP peer."""
        for ranked in self.resolvers:
            try:
                address = ranked.resolver.client_address(request)
            except Exception:  # a plugin's bug must not become a 500; the next one may know
                continue
            if address is not None:
                return address
        return request.peer

    async def resolve(self, request: CallbackRequest, hosts: HostLookup) -> Resolution:
        state = ResolutionState(client_addresses=(request.peer,))
        trace: list[TraceEntry] = []
        candidates: tuple[HostRef, ...] = ()
        for ranked in self.resolvers:
            started = time.perf_counter()
            result, outcome, evidence = await self._run_one(ranked, request, state, hosts)
            found: tuple[HostRef, ...] = ()
            if result is not None:
                found = _enabled_only(result.hosts, evidence)
                if result.client_addresses is not None or result.names is not None:
                    state = ResolutionState(
                        client_addresses=_tuple_or(result.client_addresses, state.client_addresses),
                        names=_tuple_or(result.names, state.names),
                    )
                if len(found) > 1 and candidates:
                    narrowed = tuple(h for h in found if h in candidates)
                    if len(narrowed) == 1:
                        evidence.append("narrowed the earlier candidates to one host")
                        found = narrowed
                outcome = "ambiguous" if len(found) > 1 else "matched" if found else "no_match"
            trace.append(TraceEntry(
                resolver=ranked.name,
                priority=ranked.priority,
                outcome=outcome,
                evidence=tuple(evidence),
                hosts=tuple([h.name for h in found]),
                elapsed_ms=round((time.perf_counter() - started) * 1000, 3),
            ))
            if outcome == "matched":
                return self._finish("matched", found, ranked.name, state, trace)
            if outcome == "ambiguous" and not candidates:
                candidates = found
            if result is not None and result.decisive:
                break
        final = "ambiguous" if candidates else "no_match"
        return self._finish(final, candidates, "", state, trace)

    @staticmethod
    async def _run_one(
        ranked: RankedResolver,
        request: CallbackRequest,
        state: ResolutionState,
        hosts: HostLookup,
    ) -> tuple[ResolverResult | None, Outcome, list[str]]:
        """One resolver under its timeout; failures become trace outcomes, never exceptions."""
        try:
            result = await within(ranked.resolver.resolve(request, state, hosts), ranked.timeout)
        except TimeoutError:
            return None, "timeout", [f"no answer within {ranked.timeout:g}s"]
        except Exception as e:  # a plugin's bug must not become a 500
            return None, "error", [f"{type(e).__name__}: {e}"]
        if result is None:
            return None, "skipped", []
        if not isinstance(result, ResolverResult):
            return None, "error", [f"returned {type(result).__name__}, not a ResolverResult"]
        return result, "no_match", [str(line) for line in result.evidence]

    @staticmethod
    def _finish(
        outcome: Literal["matched", "ambiguous", "no_match"],
        hosts: tuple[HostRef, ...],
        resolved_by: str,
        state: ResolutionState,
        trace: list[TraceEntry],
    ) -> Resolution:
        return Resolution(
            outcome=outcome,
            host=hosts[0] if outcome == "matched" else None,
            candidates=hosts,
            resolved_by=resolved_by,
            client_addresses=state.client_addresses,
            names=state.names,
            trace=tuple(trace),
        )


async def within(coroutine: Coroutine[Any, Any, T], seconds: float) -> T:
    """``await coroutine``, raising TimeoutError once it has taken ``seconds``.

    The timer is armed only when the coroutine first waits. Most resolvers
    answer from what they hold (x_forwarded_for, a resolver with nothing to
    look at) and never wait, and arming and disarming a timer cost as much as
    such a resolver's whole work (README, "Benchmark"). ``asyncio.timeout``, not
    ``wait_for``: the coroutine runs in this task, not in a new one per
    resolver and request.
    """
    deadline = asyncio.get_running_loop().time() + seconds
    try:
        awaited = coroutine.send(None)
    except StopIteration as done:
        return done.value
    async with asyncio.timeout_at(deadline):
        return await _Resumed(coroutine, awaited)


class _Resumed(Generic[T]):
    """The rest of a coroutine whose first step has run: ``await`` forwards to it what
    the task sends or throws, as ``yield from`` would have from the start."""

    def __init__(self, coroutine: Coroutine[Any, Any, T], awaited: Any) -> None:
        self._coroutine = coroutine
        self._awaited = awaited

    def __await__(self) -> Generator[Any, Any, T]:
        coroutine, awaited = self._coroutine, self._awaited
        while True:
            try:
                sent = yield awaited
            except GeneratorExit:
                coroutine.close()
                raise
            except BaseException as e:  # e.g. the timeout's cancellation: the coroutine sees it
                step = functools.partial(coroutine.throw, e)
            else:
                step = functools.partial(coroutine.send, sent)
            try:
                awaited = step()
            except StopIteration as done:
                return done.value


def _enabled_only(hosts: Sequence[HostRef], evidence: list[str]) -> tuple[HostRef, ...]:
    """The enabled ones of ``hosts``, each once; a line of ``evidence`` for each disabled one."""
    unique = tuple(dict.fromkeys(hosts)) if len(hosts) > 1 else tuple(hosts)
    if all(h.enabled for h in unique):
        return unique
    evidence += [f"host {h.name} is disabled: skipped" for h in unique if not h.enabled]
    return tuple(h for h in unique if h.enabled)


def _tuple_or(value: Sequence[str] | None, default: tuple[str, ...]) -> tuple[str, ...]:
    return default if value is None else tuple(value)
