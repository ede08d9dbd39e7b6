"""The resolver chain: resolvers ranked by priority, run in order, the first unique match decides.

Not part of the plugin API: the callback service runs the chain, the inventory
service asks it for index keys.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from tornado_callback.plugin.deadline import within
from tornado_callback.plugin.resolver import (
    CallbackRequest,
    HostIndex,
    HostLookup,
    HostRef,
    HostResolver,
    IndexKey,
    Outcome,
    ResolutionState,
    ResolverResult,
)
from tornado_callback.telemetry.metrics import ResolverReport

log = logging.getLogger("tornado_callback.plugin.chain")


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
        self._reports = tuple(ResolverReport(r.name) for r in self.resolvers)

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
        for ranked, report in zip(self.resolvers, self._reports, strict=True):
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
            elapsed = time.perf_counter() - started
            report.ran(outcome, elapsed)
            trace.append(TraceEntry(
                resolver=ranked.name,
                priority=ranked.priority,
                outcome=outcome,
                evidence=tuple(evidence),
                hosts=tuple([h.name for h in found]),
                elapsed_ms=round(elapsed * 1000, 3),
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
            log.warning("resolver %s: timeout, no answer within %gs", ranked.name, ranked.timeout)
            return None, "timeout", [f"no answer within {ranked.timeout:g}s"]
        except Exception as e:  # a plugin's bug must not become a 500
            # With its traceback at DEBUG only: a callback may bring a resolver's bug back every second.
            log.warning("resolver %s: error: %s: %s", ranked.name, type(e).__name__, e,
                        exc_info=log.isEnabledFor(logging.DEBUG))
            return None, "error", [f"{type(e).__name__}: {e}"]
        if result is None:
            return None, "skipped", []
        if not isinstance(result, ResolverResult):
            log.warning("resolver %s: error: returned %s, not a ResolverResult", ranked.name, type(result).__name__)
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


def _enabled_only(hosts: Sequence[HostRef], evidence: list[str]) -> tuple[HostRef, ...]:
    """The enabled ones of ``hosts``, each once; a line of ``evidence`` for each disabled one."""
    unique = tuple(dict.fromkeys(hosts)) if len(hosts) > 1 else tuple(hosts)
    if all(h.enabled for h in unique):
        return unique
    evidence += [f"host {h.name} is disabled: skipped" for h in unique if not h.enabled]
    return tuple(h for h in unique if h.enabled)


def _tuple_or(value: Sequence[str] | None, default: tuple[str, ...]) -> tuple[str, ...]:
    return default if value is None else tuple(value)
