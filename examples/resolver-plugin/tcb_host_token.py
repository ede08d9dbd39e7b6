"""host_token: a tornado-callback resolver plugin matching a per-host token.

Each host carries a secret in the host variable ``host_token``; at boot it
sends it back in an ``X-Host-Token`` header. Unlike an address, a token
survives NAT and proxies, so this resolver ranks above the address ones.

Only a SHA-256 digest of the token goes into the host index, and the header
value never appears in the trace: the index lookup compares digests, so no
token is compared (or leaked) character by character.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Any

from tornado_callback import plugin

NAME = "host_token"
KIND = "host_token_sha256"


def digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


class HostTokenResolver(plugin.HostResolver):
    name = NAME
    priority = 250

    def __init__(self, header: str = "X-Host-Token", variable: str = "host_token") -> None:
        self.header = header
        self.variable = variable

    def index_keys(self, host_name: str, variables: Mapping[str, Any]) -> Iterable[plugin.IndexKey]:
        token = variables.get(self.variable)
        if isinstance(token, str) and token:
            yield KIND, digest(token)

    async def resolve(
        self, request: plugin.CallbackRequest, state: plugin.ResolutionState, hosts: plugin.HostLookup
    ) -> plugin.ResolverResult | None:
        values = request.header_values(self.header)
        if not values:
            return None  # nothing to look at: the next resolver is tried
        if len(values) > 1 or not values[0].strip():
            return plugin.ResolverResult(evidence=[f"{self.header} must be sent once, non-empty: ignored"])
        found = await hosts.find(KIND, [digest(values[0].strip())])
        evidence = [f"{self.header} header given"]
        if not found:
            evidence.append("no host has this token")
        return plugin.ResolverResult(hosts=found, evidence=evidence)


@plugin.hookimpl
def tcb_register_resolvers(settings: plugin.Settings) -> list[plugin.HostResolver]:
    options = settings.plugins.options(NAME, known={"header", "variable"})
    for key in ("header", "variable"):
        if key in options and not (isinstance(options[key], str) and options[key]):
            raise plugin.ConfigError(f"resolvers.{NAME}.{key} must be a non-empty string")
    return [HostTokenResolver(**options)]
