"""What verifying a cloud identity ends in: a ``VerifiedIdentity``, or ``IdentityRefused`` saying why.

A reason is shown to the caller (``{"msg": "Cloud identity refused: <reason>."}``)
and kept in the trace, so it never holds the document, signature, token or
nonce: only what the server checked and, once a signature verified, the
facts it proved.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Literal

Provider = Literal["aws", "gcp"]

# Refusals of proofs that verified, made by the replay checks (identity.replay): the
# signature is good, but the proof was already spent, or copied from another client.
REPLAYED = "replayed: this token was already used (a token is accepted once)"
NONCE_MISMATCH = ("nonce mismatch: this instance is bound to another client nonce "
                  "(an admin resets the binding when the instance is rebuilt)")


class IdentityRefused(Exception):
    """A ``cloud_identity`` that proves nothing; ``reason`` is one short line for people."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason

    @property
    def message(self) -> str:
        """The callback's answer (API.md section 4)."""
        return f"Cloud identity refused: {self.reason}."


def digest(text: str) -> str:
    """SHA-256 of ``text``, hex: what may be stored or compared in place of a secret."""
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class VerifiedIdentity:
    """What a verified document or token proves. Every field comes from the signed content;
    times are seconds since the epoch."""

    provider: Provider
    instance_id: str
    # The AWS account id, or the GCP project id.
    account: str
    region: str
    zone: str
    # SHA-256 of the signed proof (the AWS document, the GCP token): a replay check remembers it.
    proof_digest: str
    private_ip: str | None = None
    instance_name: str | None = None
    instance_type: str | None = None
    image_id: str | None = None
    # AWS pendingTime: when the instance was last launched.
    launched_at: float | None = None
    # GCP exp: a token is worth remembering (against replay) until then.
    expires_at: float | None = None
    # AWS: SHA-256 of the client's nonce, what a binding stores (an AWS document never expires).
    nonce_digest: str | None = None

    def facts(self) -> dict[str, str]:
        """The proven facts as host variables (issue 17's names), absent ones left out."""
        account_variable = "account_id" if self.provider == "aws" else "project_id"
        facts = {
            "instance_id": self.instance_id,
            account_variable: self.account,
            "region": self.region,
            "availability_zone": self.zone,
            "private_ip_address": self.private_ip,
            "instance_name": self.instance_name,
            "instance_type": self.instance_type,
            "image_id": self.image_id,
        }
        return {name: value for name, value in facts.items() if value is not None}

    def describe(self) -> str:
        """One trace line: ``aws instance i-0abc of account 123456789012 in us-east-1a``."""
        owner = "account" if self.provider == "aws" else "project"
        return f"{self.provider} instance {self.instance_id} of {owner} {self.account} in {self.zone}"
