"""forward_dns: AWX's fallback, a host whose name resolves to the caller's address.

AWX resolves every host name of the inventory on each callback. Here the
names (the inventory name, ``ansible_host`` and ``ansible_ssh_host`` when they
are names) are resolved in the background, when a host is saved and every
``refresh_interval`` seconds, into the host index under kind
``resolved_address``; a callback then costs one indexed query. Until a host's
names have been resolved (seconds after it is saved) it cannot match here.

Runs after ``ip_match`` (an address written in the inventory is stronger
evidence than what DNS says today) and before ``reverse_dns`` (no DNS on the
request path at all).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from resolvers.dns_lookup import DNSLookup, dns_settings
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

NAME = "forward_dns"
RESOLVED_KIND = "resolved_address"
NAME_VARIABLES = ("ansible_host", "ansible_ssh_host")
OPTIONS = frozenset({"nameservers", "tries", "refresh_interval"})


class ForwardDNSResolver(HostResolver):
    name = NAME
    priority = 150
    refreshed_kinds = frozenset({RESOLVED_KIND})

    def __init__(self, dns: DNSLookup, refresh_interval: float = 600.0) -> None:
        self.dns = dns
        self.refresh_interval = refresh_interval

    async def refreshed_index_keys(
        self, host_name: str, variables: Mapping[str, Any]
    ) -> Iterable[IndexKey]:
        keys = set()
        for value in (host_name, *(variables.get(v) for v in NAME_VARIABLES)):
            if isinstance(value, str) and value.strip() and normalise_address(value) is None:
                # A DNSFailure propagates: the host keeps the addresses it had.
                for address in await self.dns.addresses_of(normalise_name(value)):
                    keys.add((RESOLVED_KIND, address))
        return keys

    async def resolve(
        self, request: CallbackRequest, state: ResolutionState, hosts: HostLookup
    ) -> ResolverResult | None:
        addresses = [a for a in map(normalise_address, state.client_addresses) if a]
        if not addresses:
            return None
        found = await hosts.find(RESOLVED_KIND, addresses)
        evidence = [f"client address {a}" for a in addresses]
        evidence.append(
            "host name(s) resolved to it" if found else "no host name resolved to it"
        )
        return ResolverResult(hosts=found, evidence=evidence)

    async def aclose(self) -> None:
        await self.dns.close()


@hookimpl
def tcb_register_resolvers(settings: Settings) -> list[HostResolver]:
    options = settings.plugins.options(NAME, known=OPTIONS)
    interval = options.get("refresh_interval", 600)
    if isinstance(interval, bool) or not isinstance(interval, int | float) or interval < 1:
        raise ConfigError(f"resolvers.{NAME}.refresh_interval must be a number of seconds >= 1")
    # No cache: the index is the cache, and each refresh wants today's answer.
    dns = DNSLookup(dns_settings(settings, NAME, rounds=1, cache=False))
    return [ForwardDNSResolver(dns, float(interval))]
