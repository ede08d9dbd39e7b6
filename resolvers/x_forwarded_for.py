"""x_forwarded_for: the client behind a trusted reverse proxy.

The forwarding header is believed only when the TCP peer is a trusted proxy,
and only as far as trusted proxies wrote it: the hops are walked right to left
(the peer first), skipping trusted proxies, and the right-most untrusted
address is the client. Anything left of it was written by the client itself
and proves nothing.

Only the one configured header is read (``header``: ``X-Forwarded-For`` by
default, ``Forwarded`` (RFC 7239) or ``X-Real-IP``): a proxy that appends to
X-Forwarded-For passes a client's own ``Forwarded`` header through untouched,
so reading every header would let clients choose their address.

This resolver matches no host itself: it establishes the client address that
``ip_match`` and ``reverse_dns`` then look up, so address lookups have one
code path. A malformed header fails closed: no client address at all.

The client it establishes is also what rate limits count wrong keys and failed
logins against (``client_address``), so that one client's guesses behind a
proxy do not lock out the proxy's other clients; a request whose client is
unknown counts against the proxy's own address.

Every machine inside a trusted range is believed: a host there can write
another host's address into the header and be taken for it (and get its
configuration). ``serve`` warns at start about a range wider than a /24 (/64)
or holding an inventory host's address, and the trace says when the peer
believed is itself a host's address.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from tornado_callback import plugin

NAME = "x_forwarded_for"
HEADERS = {h.lower(): h for h in ("X-Forwarded-For", "Forwarded", "X-Real-IP")}
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
# Where the index holds hosts' addresses: as the inventory writes them, and as their names resolve.
HOST_ADDRESS_KINDS = (plugin.ADDRESS_KIND, plugin.RESOLVED_ADDRESS_KIND)
# A trusted range wider than these, by IP version, takes in more than a few proxies.
WIDEST_TRUSTED_PREFIX = {4: 24, 6: 64}

# RFC 7239 forwarded-pair: token "=" ( token / quoted-string ), OWS around separators.
_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_PAIR = re.compile(rf'\s*({_TOKEN})=({_TOKEN}|"(?:[^"\\]|\\.)*")\s*')
_PORT = re.compile(r"^(?:\d{1,5}|_[A-Za-z0-9._-]+)$")
_OBFUSCATED = re.compile(r"_[A-Za-z0-9._-]+")


class MalformedHeader(ValueError):
    """A forwarding header that cannot be read; the client is then unknown."""


def _shown(text: str, limit: int = 64) -> str:
    """Client-chosen text as the trace may quote it: short, whatever the header's size."""
    return repr(text if len(text) <= limit else text[:limit] + "...")


def parse_node(text: str) -> str:
    """An address from a hop: ``1.2.3.4``, ``1.2.3.4:80``, ``::1``, ``[::1]``, ``[::1]:80``.

    Returns the normalised address, or the node itself when it is ``unknown``
    or an obfuscated identifier (``_abc``, RFC 7239 section 6.3), which no
    trusted proxy can be.
    """
    node = text.strip()
    if node.lower() == "unknown" or _OBFUSCATED.fullmatch(node):
        return node
    host, port = node, ""
    if node.startswith("["):
        host, sep, port = node[1:].partition("]")
        if not sep or (port and not port.startswith(":")):
            raise MalformedHeader(f"bad node {_shown(text)}")
        port = port[1:]
        if port == "" and node.endswith(":"):
            raise MalformedHeader(f"bad node {_shown(text)}")
    elif node.count(":") == 1:
        host, port = node.split(":")
    if port and not _PORT.match(port):
        raise MalformedHeader(f"bad port in {_shown(text)}")
    address = plugin.normalise_address(host) if "%" not in host else None
    if address is None:
        raise MalformedHeader(f"{_shown(text)} is not an address")
    return address


def forwarded_for_nodes(values: Sequence[str]) -> list[str]:
    """The ``for=`` nodes of RFC 7239 ``Forwarded`` header lines, left to right."""
    nodes = []
    for element in ",".join(values).split(","):
        pairs: dict[str, str] = {}
        for part in _split_pairs(element):
            match = _PAIR.fullmatch(part)
            if match is None:
                raise MalformedHeader(f"bad forwarded-pair {_shown(part.strip())}")
            name, value = match.group(1).lower(), match.group(2)
            if value.startswith('"'):
                value = re.sub(r"\\(.)", r"\1", value[1:-1])
            if name in pairs:
                raise MalformedHeader(f"parameter {_shown(name)} repeated in one element")
            pairs[name] = value
        if "for" not in pairs:
            raise MalformedHeader(f"element {_shown(element.strip())} has no for=")
        nodes.append(parse_node(pairs["for"]))
    return nodes


def _split_pairs(element: str) -> list[str]:
    """Split one element on ``;`` outside quoted strings."""
    parts, current, quoted, escaped = [], [], False, False
    for char in element:
        if escaped:
            escaped = False
        elif char == "\\" and quoted:
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == ";" and not quoted:
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    if quoted:
        raise MalformedHeader("unterminated quoted string")
    parts.append("".join(current))
    return parts


def list_nodes(values: Sequence[str]) -> list[str]:
    """The hops of comma-separated header lines (X-Forwarded-For), left to right."""
    items = [item for value in values for item in value.split(",")]
    if any(not item.strip() for item in items):
        raise MalformedHeader("empty element")
    return [parse_node(item) for item in items]


class ForwardedForResolver(plugin.HostResolver):
    name = NAME
    priority = 300

    def __init__(self, trusted_proxies: Iterable[Network] = (), header: str = "X-Forwarded-For") -> None:
        self.trusted_proxies = tuple(trusted_proxies)
        # Where machines the administrator did not name one by one are believed.
        self.trusted_ranges = tuple(network for network in self.trusted_proxies if network.num_addresses > 1)
        self.header = header
        self._last: tuple[plugin.CallbackRequest, plugin.ResolverResult | None] | None = None

    def is_trusted(self, node: str) -> bool:
        ip = plugin.parse_address(node)
        return ip is not None and any(ip in network for network in self.trusted_proxies)

    async def resolve(
        self, request: plugin.CallbackRequest, state: plugin.ResolutionState, hosts: plugin.HostLookup
    ) -> plugin.ResolverResult | None:
        result = self._forwarded(request)
        # A proxy named by its own address is checked at start (startup_warnings); one
        # believed for being in a range is checked on each callback, which costs two
        # indexed queries (doubling the chain's time: bench/NOTES.md).
        peer = plugin.parse_address(request.peer)
        if result is None or peer is None or not any(peer in network for network in self.trusted_ranges):
            return result
        peer_hosts = await _hosts_at(str(peer), hosts)
        if not peer_hosts:
            return result
        names = ", ".join(sorted(host.name for host in peer_hosts))
        return dataclasses.replace(result, evidence=[
            *result.evidence,
            f"peer {request.peer}, trusted as a proxy, is the address of host {names}: {self._danger()}",
        ])

    async def startup_warnings(self, index: plugin.HostIndex) -> list[str]:
        warnings = [
            f"trusted_proxies: {network} is wider than a /{WIDEST_TRUSTED_PREFIX[network.version]}: "
            f"{self._danger()}; list the proxies' own addresses"
            for network in self.trusted_proxies
            if network.prefixlen < WIDEST_TRUSTED_PREFIX[network.version]
        ]
        if not self.trusted_proxies:
            return warnings
        entries = [entry for kind in HOST_ADDRESS_KINDS for entry in await index.entries(kind)]
        for network in self.trusted_proxies:
            inside = sorted({(entry.inventory, entry.host, entry.value) for entry in entries
                             if (address := plugin.parse_address(entry.value)) is not None and address in network})
            if inside:
                inventory, host, address = inside[0]
                more = f" and {len(inside) - 1} more" if len(inside) > 1 else ""
                warnings.append(f"trusted_proxies: {network} contains {address}, the address of host {host} "
                                f"(inventory {inventory}){more}: {self._danger()}")
        return warnings

    def _danger(self) -> str:
        return f"a host inside a trusted range can write another host's address into {self.header} and be taken for it"

    def client_address(self, request: plugin.CallbackRequest) -> str | None:
        result = self._forwarded(request)
        return result.client_addresses[0] if result is not None and result.client_addresses else None

    def _forwarded(self, request: plugin.CallbackRequest) -> plugin.ResolverResult | None:
        # The rate limits ask for the client (client_address) just before the chain
        # runs on the same request: the chain gets the answer read for them, not a
        # second reading of the header (some 15 us of a callback).
        last = self._last
        if last is not None and last[0] is request:
            return last[1]
        result = self._read(request)
        self._last = (request, result)
        return result

    def _read(self, request: plugin.CallbackRequest) -> plugin.ResolverResult | None:
        values = request.header_values(self.header)
        if not values:
            return None
        peer = request.peer
        if not self.is_trusted(peer):
            return plugin.ResolverResult(
                evidence=[f"peer {peer} is not a trusted proxy: {self.header} ignored"]
            )
        evidence = [f"peer {peer} is a trusted proxy"]
        try:
            nodes = self._nodes(values)
        except MalformedHeader as e:
            return plugin.ResolverResult(
                evidence=[*evidence, f"malformed {self.header} header ({e}): client unknown"],
                client_addresses=(),
            )
        client = self._client(nodes)
        if plugin.normalise_address(client) is None:
            return plugin.ResolverResult(
                evidence=[*evidence, f"client is {_shown(client)}, not an address: client unknown"],
                client_addresses=(),
            )
        return plugin.ResolverResult(evidence=[*evidence, f"client {client}"], client_addresses=(client,))

    def _nodes(self, values: Sequence[str]) -> list[str]:
        if self.header == "Forwarded":
            return forwarded_for_nodes(values)
        if self.header == "X-Real-IP":
            if len(values) != 1:
                raise MalformedHeader(f"{len(values)} header lines, expected one")
            return [parse_node(values[0])]
        return list_nodes(values)

    def _client(self, nodes: Sequence[str]) -> str:
        """Right-most hop that is not a trusted proxy; the left-most when all are."""
        for node in reversed(nodes):
            if not self.is_trusted(node):
                return node
        return nodes[0]


async def _hosts_at(address: str, hosts: plugin.HostLookup) -> list[plugin.HostRef]:
    """The hosts whose address (of any kind the index holds) is ``address``, in its normal form."""
    found = {host.id: host for kind in HOST_ADDRESS_KINDS for host in await hosts.find(kind, [address])}
    return list(found.values())


def _trusted_proxies(options: Mapping[str, Any]) -> list[Network]:
    value = options.get("trusted_proxies", [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise plugin.ConfigError(f"resolvers.{NAME}.trusted_proxies must be a list of CIDR strings")
    networks = []
    for text in value:
        try:
            networks.append(ipaddress.ip_network(text.strip(), strict=False))
        except ValueError as e:
            raise plugin.ConfigError(f"resolvers.{NAME}.trusted_proxies: {text!r} is not a network") from e
    return networks


def _header(options: Mapping[str, Any]) -> str:
    value = options.get("header", "X-Forwarded-For")
    if not isinstance(value, str) or value.lower() not in HEADERS:
        raise plugin.ConfigError(f"resolvers.{NAME}.header must be one of: {', '.join(HEADERS.values())}")
    return HEADERS[value.lower()]


@plugin.hookimpl
def tcb_register_resolvers(settings: plugin.Settings) -> list[plugin.HostResolver]:
    options = settings.plugins.options(NAME, known={"trusted_proxies", "header"})
    return [ForwardedForResolver(_trusted_proxies(options), _header(options))]
