"""The one entry: a ``cloud_identity`` body field in, a ``VerifiedIdentity`` or ``IdentityRefused`` out.

Verification is offline and costs one RSA public-key operation (tens of
microseconds): the trust anchors are parsed once at start (identity.config),
never per request.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tornado_callback.identity.aws import AwsAnchors, verify_aws
from tornado_callback.identity.fields import malformed
from tornado_callback.identity.gcp import GcpAnchors, verify_gcp
from tornado_callback.identity.verdict import VerifiedIdentity


@dataclass(frozen=True)
class TrustAnchors:
    """What each provider's proofs are verified against; None: that provider is not configured."""

    aws: AwsAnchors | None = None
    gcp: GcpAnchors | None = None


def verify(cloud_identity: Any, anchors: TrustAnchors, now: float) -> VerifiedIdentity:
    """The identity ``cloud_identity`` (API.md section 4's shape) proves at ``now`` (seconds since
    the epoch). Raises IdentityRefused, and nothing else, for anything that proves nothing."""
    if not isinstance(cloud_identity, Mapping):
        raise malformed("cloud_identity must be an object")
    provider = cloud_identity.get("provider")
    if provider == "aws":
        return verify_aws(cloud_identity, anchors.aws, now)
    if provider == "gcp":
        return verify_gcp(cloud_identity, anchors.gcp, now)
    raise malformed("provider must be aws or gcp")
