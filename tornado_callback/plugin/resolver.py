"""What a resolver plugin implements and receives: ``HostResolver``, the request, its result.

Data flows one way: a ``CallbackRequest`` goes through the resolvers, ranked
by priority (``tornado_callback.plugin.chain``), and comes out as a
``Resolution``. Plugins import these names from ``tornado_callback.plugin``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal, Protocol

from tornado_callback.plugin.addresses import normalise_address

Outcome = Literal["matched", "ambiguous", "no_match", "skipped", "error", "timeout"]
IndexKey = tuple[str, str]

# The index kinds the built-in resolvers fill. Any plugin may look hosts up by them
# (x_forwarded_for does, to warn of hosts inside a trusted proxy range).
ADDRESS_KIND = "address"  # ip_match: addresses the inventory gives a host
RESOLVED_ADDRESS_KIND = "resolved_address"  # forward_dns: what a host's name resolves to
NAME_KIND = "name"  # reverse_dns: a host's effective name
INSTANCE_KIND = "instance_id"  # cloud_metadata: instance ids from the host's variables

# Options of the ``[resolvers.cloud_metadata]`` table that the server itself reads: it
# verifies a signed cloud identity before the chain runs (tornado_callback.identity.config)
# and hands resolvers the verdict (``CallbackRequest.cloud_identity``).
CLOUD_IDENTITY_OPTIONS = frozenset({
    "aws_certificates", "allowed_accounts", "max_age_since_launch",
    "gcp_jwks", "gcp_audience", "allowed_projects", "max_token_age",
})


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
class CloudIdentity:
    """The signed cloud identity a caller sent (API.md section 4), as the server judged it
    before any resolver ran: verified against the configured trust anchors and not replayed,
    or refused. Never the document, signature, token or nonce themselves.

    ``provider``: ``aws`` or ``gcp`` (empty when the caller named none this server knows).
    ``instance_id``, ``facts``, ``description``: what the cloud's signature proves (facts as
    host variables: ``instance_id``, ``account_id`` or ``project_id``, ``region``, ...), empty
    when refused. ``refusal``: why it proves nothing; None when verified. A refused identity
    is decisive: the server answers 403 whatever the resolvers find.
    """

    provider: str
    instance_id: str = ""
    facts: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    description: str = ""
    refusal: str | None = None

    def __post_init__(self) -> None:
        # Every plugin sees the same object: none may change what another reads.
        object.__setattr__(self, "facts", MappingProxyType(dict(self.facts)))

    @property
    def verified(self) -> bool:
        return self.refusal is None


@dataclass(frozen=True, slots=True)
class CallbackRequest:
    """What a resolver may know about the caller. The host_config_key is never in it, nor the
    raw ``cloud_identity`` field: ``cloud_identity`` is the server's verdict on it."""

    peer: str
    headers: tuple[tuple[str, str], ...] = ()
    body: Mapping[str, Any] = field(default_factory=dict)
    cloud_identity: CloudIdentity | None = None

    def header_values(self, name: str) -> list[str]:
        """Every value of header ``name`` (any case), one per header line, in order."""
        wanted = name.lower()
        return [value for key, value in self.headers if key.lower() == wanted]


@dataclass(frozen=True, slots=True)
class ResolutionState:
    """What earlier resolvers established. ``client_addresses`` starts as the peer."""

    client_addresses: tuple[str, ...]
    names: tuple[str, ...] = ()

    def addresses(self) -> list[str]:
        """``client_addresses`` as canonical text (``normalise_address``); what is no address is left out."""
        return [a for a in map(normalise_address, self.client_addresses) if a]


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
