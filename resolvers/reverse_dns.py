"""reverse_dns: the client's PTR names against the hosts' names.

A PTR record is written by whoever controls the reverse zone of the address,
which need not be who controls the name. So by default a PTR name counts only
if it resolves back to the address (forward-confirmed reverse DNS). Host names
(the inventory name, and ``ansible_host`` / ``ansible_ssh_host`` when they are
names) are indexed under kind ``name``, so matching is one indexed query.

The ``timeout`` of ``[resolvers.reverse_dns]`` bounds the whole resolver (the
chain enforces it); each DNS query gets ``timeout / tries`` per try so that
the answer, or the failure, arrives within it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from resolvers.dns_lookup import DNSFailure, DNSLookup, DNSSettings
from tornado_callback import hookimpl
from tornado_callback.config import ConfigError, Settings
from tornado_callback.resolution import (
    CallbackRequest,
    HostLookup,
    HostResolver,
    IndexKey,
    ResolutionState,
    ResolverResult,
    normalise_address,
    normalise_name,
)

NAME = "reverse_dns"
NAME_KIND = "name"
NAME_VARIABLES = ("ansible_host", "ansible_ssh_host")
OPTIONS = frozenset({"nameservers", "tries", "forward_confirm", "cache_ttl", "negative_cache_ttl"})


class ReverseDNSResolver(HostResolver):
    name = NAME
    priority = 100

    def __init__(self, dns: DNSLookup, forward_confirm: bool = True) -> None:
        self.dns = dns
        self.forward_confirm = forward_confirm

    def index_keys(self, host_name: str, variables: Mapping[str, Any]) -> Iterable[IndexKey]:
        for value in (host_name, *(variables.get(v) for v in NAME_VARIABLES)):
            if isinstance(value, str) and value.strip() and normalise_address(value) is None:
                yield NAME_KIND, normalise_name(value)

    async def resolve(
        self, request: CallbackRequest, state: ResolutionState, hosts: HostLookup
    ) -> ResolverResult | None:
        addresses = [a for a in map(normalise_address, state.client_addresses) if a]
        if not addresses:
            return None
        evidence: list[str] = []
        names: list[str] = []
        for address in addresses:
            try:
                names += await self._confirmed_names(address, evidence)
            except DNSFailure as e:
                evidence.append(f"DNS lookup failed: {e}")
        found = await hosts.find(NAME_KIND, names) if names else []
        if names and not found:
            evidence.append("no host has these names")
        return ResolverResult(hosts=found, evidence=evidence, names=tuple(dict.fromkeys(names)))

    async def _confirmed_names(self, address: str, evidence: list[str]) -> list[str]:
        names = await self.dns.names_of(address)
        if not names:
            evidence.append(f"no PTR name for {address}")
            return []
        if not self.forward_confirm:
            evidence.append(f"{address} has PTR name(s) {', '.join(names)} (not forward-confirmed)")
            return list(names)
        confirmed = []
        for name in names:
            if address in await self.dns.addresses_of(name):
                evidence.append(f"{address} has PTR name {name}, which resolves back to it")
                confirmed.append(name)
            else:
                evidence.append(f"{address} has PTR name {name}, which does not resolve back to it: ignored")
        return confirmed

    async def aclose(self) -> None:
        await self.dns.close()


def _dns_settings(settings: Settings) -> DNSSettings:
    options = settings.plugins.options(NAME)
    unknown = set(options) - OPTIONS
    if unknown:
        raise ConfigError(f"resolvers.{NAME}: unknown option(s) {', '.join(sorted(unknown))}")
    nameservers = options.get("nameservers", [])
    if not isinstance(nameservers, list) or not all(_is_nameserver(n) for n in nameservers):
        raise ConfigError(
            f"resolvers.{NAME}.nameservers must be a list of addresses "
            '("192.0.2.53", "192.0.2.53:5353", "[2001:db8::53]:53")'
        )
    tries = options.get("tries", 2)
    if isinstance(tries, bool) or not isinstance(tries, int) or not 1 <= tries <= 10:
        raise ConfigError(f"resolvers.{NAME}.tries must be an integer from 1 to 10")
    ttls = {}
    for key, default in (("cache_ttl", 300.0), ("negative_cache_ttl", 60.0)):
        value = options.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise ConfigError(f"resolvers.{NAME}.{key} must be a number of seconds >= 0")
        ttls[key] = float(value)
    timeout = settings.plugins.for_resolver(NAME).timeout or settings.resolver_timeout
    return DNSSettings(
        nameservers=tuple(nameservers),
        # Forward confirmation may need a second round of queries within the timeout.
        timeout=timeout / tries / 2,
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
    return normalise_address(host) is not None and (not port or (port.isdigit() and 0 < int(port) < 65536))


def _forward_confirm(settings: Settings) -> bool:
    value = settings.plugins.options(NAME).get("forward_confirm", True)
    if not isinstance(value, bool):
        raise ConfigError(f"resolvers.{NAME}.forward_confirm must be true or false")
    return value


@hookimpl
def tcb_register_resolvers(settings: Settings) -> list[HostResolver]:
    return [ReverseDNSResolver(DNSLookup(_dns_settings(settings)), _forward_confirm(settings))]
