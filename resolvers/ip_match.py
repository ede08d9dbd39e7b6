"""ip_match: the client's address against the addresses recorded for hosts.

A host's addresses are its name when that is an IP, ``ansible_host``,
``ansible_ssh_host``, and the cloud inventory variables named by the
``address_variables`` option. They are indexed when the host is saved, so a
lookup is one indexed query whatever the inventory's size.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

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
)

NAME = "ip_match"
ADDRESS_KIND = "address"
DEFAULT_ADDRESS_VARIABLES = (
    "ansible_host",
    "ansible_ssh_host",
    "private_ip_address",
    "public_ip_address",
)


class IPMatchResolver(HostResolver):
    name = NAME
    priority = 200

    def __init__(self, address_variables: Iterable[str] = DEFAULT_ADDRESS_VARIABLES) -> None:
        self.address_variables = tuple(address_variables)

    def index_keys(self, host_name: str, variables: Mapping[str, Any]) -> Iterable[IndexKey]:
        for value in (host_name, *(variables.get(v) for v in self.address_variables)):
            if isinstance(value, str) and (address := normalise_address(value)):
                yield ADDRESS_KIND, address

    async def resolve(
        self, request: CallbackRequest, state: ResolutionState, hosts: HostLookup
    ) -> ResolverResult:
        addresses = [a for a in map(normalise_address, state.client_addresses) if a]
        found = await hosts.find(ADDRESS_KIND, addresses) if addresses else []
        evidence = [f"client address {a}" for a in addresses]
        if not found:
            evidence.append("no host has this address")
        return ResolverResult(hosts=found, evidence=evidence)


def _address_variables(options: Mapping[str, Any]) -> tuple[str, ...]:
    value = options.get("address_variables", DEFAULT_ADDRESS_VARIABLES)
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise ConfigError("resolvers.ip_match.address_variables must be a list of strings")
    return tuple(value)


@hookimpl
def tcb_register_resolvers(settings: Settings) -> list[HostResolver]:
    return [IPMatchResolver(_address_variables(settings.plugins.options(NAME, known={"address_variables"})))]
