"""cloud_metadata: the caller's cloud instance id against the ids cloud inventories carry.

Hosts are indexed under kind ``instance_id`` from the host variables named by
``instance_id_variables`` (default ``instance_id``, ``ec2_instance_id``).
Cloud address variables (``private_ip_address``, ...) are ``ip_match``'s job.

Where the instance id comes from:

- ``cloud_identity`` in the body: a signed identity document (API.md section
  4). Verifying it is ``verify_identity``'s job; until verification is
  implemented every document is unverifiable, and an unverifiable document
  is refused *decisively*: address evidence must not overrule a failed proof.
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


class UnverifiedIdentity(Exception):
    """A signed identity document that could not be verified; the message says why."""


def verify_identity(identity: Any) -> str:
    """The instance id proven by a ``cloud_identity`` body field.

    The seam for signed identity documents (AWS instance identity documents,
    GCP identity tokens): verification against configured trust anchors
    and replay protection come in a later change. Until then nothing verifies.
    """
    raise UnverifiedIdentity("signed cloud identity verification is not available on this server")


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
        if "cloud_identity" in request.body:
            try:
                instance_id = verify_identity(request.body["cloud_identity"])
            except UnverifiedIdentity as e:
                return plugin.ResolverResult(
                    evidence=[f"cloud identity refused: {e}", "no fallback to other evidence"],
                    decisive=True,
                )
            return await self._match(hosts, instance_id, "verified instance id")
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
    options = settings.plugins.options(NAME, known={"instance_id_variables", "trust_unsigned_claims"})
    variables = options.get("instance_id_variables", list(DEFAULT_INSTANCE_VARIABLES))
    if not isinstance(variables, list) or not all(isinstance(v, str) and v for v in variables):
        raise plugin.ConfigError(f"resolvers.{NAME}.instance_id_variables must be a list of variable names")
    trust = options.get("trust_unsigned_claims", False)
    if not isinstance(trust, bool):
        raise plugin.ConfigError(f"resolvers.{NAME}.trust_unsigned_claims must be true or false")
    return [CloudMetadataResolver(variables, trust)]
