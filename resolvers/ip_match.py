"""ip_match: the client's address against the addresses recorded for hosts.

A host's addresses are its effective host when that is an IP (``ansible_host``,
else ``ansible_ssh_host``, else the inventory name: the one AWX compares) and,
an extension of ours, the cloud inventory variables named by the
``address_variables`` option. They are indexed when the host is saved, so a
lookup is one indexed query whatever the inventory's size.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from tornado_callback import plugin

NAME = "ip_match"
DEFAULT_ADDRESS_VARIABLES = ("private_ip_address", "public_ip_address")


class IPMatchResolver(plugin.HostResolver):
    name = NAME
    priority = 200
    # 2: the effective host only, no longer every one of name, ansible_host, ansible_ssh_host.
    index_version = 2

    def __init__(self, address_variables: Iterable[str] = DEFAULT_ADDRESS_VARIABLES) -> None:
        self.address_variables = tuple(address_variables)

    def index_keys(self, host_name: str, variables: Mapping[str, Any]) -> Iterable[plugin.IndexKey]:
        extra = (variables.get(v) for v in self.address_variables)
        for value in (plugin.effective_host(host_name, variables), *extra):
            if isinstance(value, str) and (address := plugin.normalise_address(value)):
                yield plugin.ADDRESS_KIND, address

    async def resolve(
        self, request: plugin.CallbackRequest, state: plugin.ResolutionState, hosts: plugin.HostLookup
    ) -> plugin.ResolverResult:
        addresses = state.addresses()
        found = await hosts.find(plugin.ADDRESS_KIND, addresses) if addresses else []
        evidence = [f"client address {a}" for a in addresses]
        if not found:
            evidence.append("no host has this address")
        return plugin.ResolverResult(hosts=found, evidence=evidence)


def _address_variables(options: Mapping[str, Any]) -> tuple[str, ...]:
    value = options.get("address_variables", DEFAULT_ADDRESS_VARIABLES)
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise plugin.ConfigError("resolvers.ip_match.address_variables must be a list of strings")
    for variable in plugin.EFFECTIVE_HOST_VARIABLES:
        if variable in value:
            # Listed here, it would match a host by an address AWX never compares
            # (ansible_ssh_host under an ansible_host): another host's configuration.
            raise plugin.ConfigError(
                f"resolvers.ip_match.address_variables: {variable} is not an extra address "
                "variable; a host's effective address (ansible_host, else ansible_ssh_host, "
                "else its name) is always matched"
            )
    return tuple(value)


@plugin.hookimpl
def tcb_register_resolvers(settings: plugin.Settings) -> list[plugin.HostResolver]:
    return [IPMatchResolver(_address_variables(settings.plugins.options(NAME, known={"address_variables"})))]
