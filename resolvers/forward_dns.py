"""forward_dns: AWX's fallback, a host whose name resolves to the caller's address.

AWX resolves every host's effective name (``ansible_host``, else
``ansible_ssh_host``, else the inventory name) on each callback. Here it is
resolved, when it is a name, in the background, when a host is saved and every
``refresh_interval`` seconds, into the host index under kind
``resolved_address``; a callback then costs one indexed query. Until a host's
name has been resolved (moments after it is saved) it cannot match here.

Runs after ``ip_match`` (an address written in the inventory is stronger
evidence than what DNS says today) and before ``reverse_dns`` (no DNS on the
request path at all).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from tornado_callback import plugin

log = logging.getLogger(__name__)
NAME = "forward_dns"
OPTIONS = frozenset({"nameservers", "tries", "refresh_interval"})


class ForwardDNSResolver(plugin.HostResolver):
    name = NAME
    priority = 150
    refreshed_kinds = frozenset({plugin.RESOLVED_ADDRESS_KIND})

    def __init__(self, dns: plugin.DNSLookup, refresh_interval: float = 600.0) -> None:
        self.dns = dns
        self.refresh_interval = refresh_interval

    async def refreshed_index_keys(
        self, host_name: str, variables: Mapping[str, Any]
    ) -> Iterable[plugin.IndexKey]:
        # An effective host that is an address is ip_match's (AWX, too, discards
        # the address an address resolves to).
        name = plugin.effective_host_name(host_name, variables)
        if name is None:
            return ()
        addresses: list[str] = []
        failures: list[plugin.DNSFailure] = []
        for qtype in ("A", "AAAA"):
            try:
                addresses += await self.dns.addresses_of(name, qtype)
            except plugin.DNSFailure as e:
                failures.append(e)
        if failures and not addresses:
            raise failures[0]  # nothing to go by: the host keeps the addresses it had
        for failure in failures:
            # A family the server fails (a dnsmasq without upstream refuses every
            # AAAA query) while the other one answers: the name resolves to that one.
            log.debug("%s: host %s: %s; resolved by its other records", NAME, host_name, failure)
        return {(plugin.RESOLVED_ADDRESS_KIND, address) for address in addresses}

    async def resolve(
        self, request: plugin.CallbackRequest, state: plugin.ResolutionState, hosts: plugin.HostLookup
    ) -> plugin.ResolverResult | None:
        addresses = state.addresses()
        if not addresses:
            return None
        found = await hosts.find(plugin.RESOLVED_ADDRESS_KIND, addresses)
        evidence = [f"client address {a}" for a in addresses]
        evidence.append(
            "host name(s) resolved to it" if found else "no host name resolved to it"
        )
        return plugin.ResolverResult(hosts=found, evidence=evidence)

    async def aclose(self) -> None:
        await self.dns.close()


@plugin.hookimpl
def tcb_register_resolvers(settings: plugin.Settings) -> list[plugin.HostResolver]:
    options = settings.plugins.options(NAME, known=OPTIONS)
    interval = options.get("refresh_interval", 600)
    if isinstance(interval, bool) or not isinstance(interval, int | float) or interval < 1:
        raise plugin.ConfigError(f"resolvers.{NAME}.refresh_interval must be a number of seconds >= 1")
    # No cache: the index is the cache, and each refresh wants today's answer.
    dns = plugin.DNSLookup(plugin.dns_settings(settings, NAME, rounds=1, cache=False))
    return [ForwardDNSResolver(dns, float(interval))]
