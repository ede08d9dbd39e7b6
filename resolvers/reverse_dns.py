"""reverse_dns: the client's PTR names against the hosts' names.

A PTR record is written by whoever controls the reverse zone of the address,
which need not be who controls the name. So by default a PTR name counts only
if it resolves back to the address (forward-confirmed reverse DNS). A host's
effective host (``ansible_host``, else ``ansible_ssh_host``, else the inventory
name: the one AWX compares), when it is a name, is indexed under kind ``name``,
so matching is one indexed query.

The ``timeout`` of ``[resolvers.reverse_dns]`` bounds the whole resolver (the
chain enforces it); each DNS query gets ``timeout / tries`` per try so that
the answer, or the failure, arrives within it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from tornado_callback import plugin

NAME = "reverse_dns"
# Whoever controls a reverse zone chooses how many PTR names an address has;
# each costs a forward lookup.
MAX_NAMES = 5
OPTIONS = frozenset({"nameservers", "tries", "forward_confirm", "cache_ttl", "negative_cache_ttl"})


class ReverseDNSResolver(plugin.HostResolver):
    name = NAME
    priority = 100
    # 2: the effective host only, no longer every one of name, ansible_host, ansible_ssh_host.
    index_version = 2

    def __init__(self, dns: plugin.DNSLookup, forward_confirm: bool = True) -> None:
        self.dns = dns
        self.forward_confirm = forward_confirm

    def index_keys(self, host_name: str, variables: Mapping[str, Any]) -> Iterable[plugin.IndexKey]:
        name = plugin.effective_host_name(host_name, variables)
        return () if name is None else ((plugin.NAME_KIND, name),)

    async def resolve(
        self, request: plugin.CallbackRequest, state: plugin.ResolutionState, hosts: plugin.HostLookup
    ) -> plugin.ResolverResult | None:
        addresses = state.addresses()
        if not addresses:
            return None
        evidence: list[str] = []
        names: list[str] = []
        for address in addresses:
            try:
                names += await self._confirmed_names(address, evidence)
            except plugin.DNSFailure as e:
                evidence.append(f"DNS lookup failed: {e}")
        found = await hosts.find(plugin.NAME_KIND, names) if names else []
        if names and not found:
            evidence.append("no host has these names")
        return plugin.ResolverResult(hosts=found, evidence=evidence, names=tuple(dict.fromkeys(names)))

    async def _confirmed_names(self, address: str, evidence: list[str]) -> list[str]:
        names = await self.dns.names_of(address)
        if not names:
            evidence.append(f"no PTR name for {address}")
            return []
        if len(names) > MAX_NAMES:
            evidence.append(f"{address} has {len(names)} PTR names: only the first {MAX_NAMES} are used")
            names = names[:MAX_NAMES]
        if not self.forward_confirm:
            evidence.append(f"{address} has PTR name(s) {', '.join(names)} (not forward-confirmed)")
            return list(names)
        confirmed = []
        # Only the address's own family can hold it: an IPv4 caller is confirmed by
        # A records, and what the DNS server says to an AAAA query does not matter.
        qtype = plugin.record_type(address)
        for name in names:
            try:
                resolved = await self.dns.addresses_of(name, qtype)
            except plugin.DNSFailure as e:  # this name is not confirmed; the others may be
                evidence.append(f"{address} has PTR name {name}, not confirmed: DNS lookup failed: {e}")
                continue
            if address in resolved:
                evidence.append(f"{address} has PTR name {name}, which resolves back to it")
                confirmed.append(name)
            else:
                evidence.append(f"{address} has PTR name {name}, which does not resolve back to it: ignored")
        return confirmed

    async def aclose(self) -> None:
        await self.dns.close()


def _forward_confirm(settings: plugin.Settings) -> bool:
    value = settings.plugins.options(NAME).get("forward_confirm", True)
    if not isinstance(value, bool):
        raise plugin.ConfigError(f"resolvers.{NAME}.forward_confirm must be true or false")
    return value


@plugin.hookimpl
def tcb_register_resolvers(settings: plugin.Settings) -> list[plugin.HostResolver]:
    settings.plugins.options(NAME, known=OPTIONS)  # refuse unknown options before anything else
    # Two rounds: the PTR lookup, then forward confirmation.
    dns = plugin.DNSLookup(plugin.dns_settings(settings, NAME, rounds=2, cache=True))
    return [ReverseDNSResolver(dns, _forward_confirm(settings))]
