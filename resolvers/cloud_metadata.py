"""cloud_metadata: the caller's cloud instance id against the ids cloud inventories carry.

Hosts are indexed under kind ``instance_id`` from the host variables named by
``instance_id_variables`` (default ``instance_id``, ``ec2_instance_id``).
Cloud address variables (``private_ip_address``, ...) are ``ip_match``'s job.

Where the instance id comes from:

- ``cloud_identity`` in the body: a signed identity document or token (API.md
  section 4). The server verifies it before the chain runs, against the trust
  anchors of this table's options (``plugin.CLOUD_IDENTITY_OPTIONS``), and
  checks it against replay; this resolver gets the verdict as
  ``request.cloud_identity``. Either answer is *decisive*: a refused proof
  is never overruled by address evidence, and a verified instance that no
  host carries is that instance, not whichever neighbour shares its NAT address.
- ``instance_id`` in the body: an unsigned claim. Anyone holding the
  template's key could claim any instance and receive that host's
  configuration, so claims are ignored unless ``trust_unsigned_claims = true``
  (for networks where the key alone is trusted to identify hosts).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from tornado_callback import plugin

NAME = "cloud_metadata"
DEFAULT_INSTANCE_VARIABLES = ("instance_id", "ec2_instance_id")
MAX_ID_LENGTH = 256


def normalise_instance_id(value: Any) -> str | None:
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_ID_LENGTH:
        return None
    return value.strip()


class CloudMetadataResolver(plugin.HostResolver):
    name = NAME
    priority = 400

    def __init__(
        self,
        instance_id_variables: Iterable[str] = DEFAULT_INSTANCE_VARIABLES,
        trust_unsigned_claims: bool = False,
    ) -> None:
        self.instance_id_variables = tuple(instance_id_variables)
        self.trust_unsigned_claims = trust_unsigned_claims

    def index_keys(self, host_name: str, variables: Mapping[str, Any]) -> Iterable[plugin.IndexKey]:
        for variable in self.instance_id_variables:
            if (instance_id := normalise_instance_id(variables.get(variable))) is not None:
                yield plugin.INSTANCE_KIND, instance_id

    async def resolve(
        self, request: plugin.CallbackRequest, state: plugin.ResolutionState, hosts: plugin.HostLookup
    ) -> plugin.ResolverResult | None:
        identity = request.cloud_identity
        if identity is not None:
            if not identity.verified:
                return plugin.ResolverResult(
                    evidence=[f"cloud identity refused: {identity.refusal}", "no fallback to other evidence"],
                    decisive=True,
                )
            found = await hosts.find(plugin.INSTANCE_KIND, [identity.instance_id])
            evidence = [f"signature verified: {identity.description}"]
            if not found:
                evidence += ["no host has this instance id", "no fallback to other evidence"]
            # Decisive whatever it found: a proven instance whose host is disabled (or that
            # several hosts claim) must not be configured as a neighbour behind its address.
            return plugin.ResolverResult(hosts=found, evidence=evidence, decisive=True)
        if "instance_id" not in request.body:
            return None
        if not self.trust_unsigned_claims:
            return plugin.ResolverResult(
                evidence=["unsigned instance_id claim ignored (trust_unsigned_claims is off)"]
            )
        instance_id = normalise_instance_id(request.body["instance_id"])
        if instance_id is None:
            return plugin.ResolverResult(evidence=["instance_id claim is not a usable id: ignored"])
        return await self._match(hosts, instance_id, "unsigned instance id claim")

    async def _match(self, hosts: plugin.HostLookup, instance_id: str, what: str) -> plugin.ResolverResult:
        found = await hosts.find(plugin.INSTANCE_KIND, [instance_id])
        evidence = [f"{what} {instance_id}"]
        if not found:
            evidence.append("no host has this instance id")
        return plugin.ResolverResult(hosts=found, evidence=evidence)


@plugin.hookimpl
def tcb_register_resolvers(settings: plugin.Settings) -> list[plugin.HostResolver]:
    options = settings.plugins.options(
        NAME, known={"instance_id_variables", "trust_unsigned_claims", *plugin.CLOUD_IDENTITY_OPTIONS})
    variables = options.get("instance_id_variables", list(DEFAULT_INSTANCE_VARIABLES))
    if not isinstance(variables, list) or not all(isinstance(v, str) and v for v in variables):
        raise plugin.ConfigError(f"resolvers.{NAME}.instance_id_variables must be a list of variable names")
    trust = options.get("trust_unsigned_claims", False)
    if not isinstance(trust, bool):
        raise plugin.ConfigError(f"resolvers.{NAME}.trust_unsigned_claims must be true or false")
    return [CloudMetadataResolver(variables, trust)]
