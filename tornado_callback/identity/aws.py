"""AWS: the instance identity document, verified against the AWS certificates an admin configured.

Two signatures are accepted, as IMDS serves them: ``signature`` (base64
RSA-SHA256, PKCS#1 v1.5, over the document's bytes) and ``rsa2048`` (base64
PKCS#7 SignedData carrying the document). Every fact comes from the signed
bytes; the ``nonce`` is not checked here, only digested for the binding that
makes a copied document useless (an AWS document never expires).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, cast

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from tornado_callback.identity import fields
from tornado_callback.identity.fields import malformed
from tornado_callback.identity.pkcs7 import BAD_SIGNATURE, UNKNOWN_CERTIFICATE, SignerId, verified_content
from tornado_callback.identity.verdict import IdentityRefused, VerifiedIdentity, digest

NOT_CONFIGURED = "provider not configured: this server has no AWS certificates (aws_certificates)"
REQUIRED = ("instanceId", "accountId", "region", "availabilityZone", "pendingTime")
OPTIONAL = ("privateIp", "instanceType", "imageId")


class AwsAnchors:
    """The AWS public certificates (RSA keys) an admin configured, and what they may prove."""

    def __init__(self, certificates: Sequence[x509.Certificate], allowed_accounts: Iterable[str] = (),
                 max_age_since_launch: float = 0) -> None:
        # RSA keys: identity.config refuses any other certificate, naming its file.
        keys = [cast(RSAPublicKey, certificate.public_key()) for certificate in certificates]
        self.keys = tuple(keys)
        self.signers: Mapping[SignerId, RSAPublicKey] = {
            (certificate.issuer.public_bytes(), certificate.serial_number): key
            for certificate, key in zip(certificates, keys, strict=True)
        }
        # Empty: any account whose document verifies.
        self.allowed_accounts = frozenset(allowed_accounts)
        # Seconds since pendingTime; 0: no limit.
        self.max_age_since_launch = max_age_since_launch


def verify_aws(identity: Mapping[str, Any], anchors: AwsAnchors | None, now: float) -> VerifiedIdentity:
    if anchors is None:
        raise IdentityRefused(NOT_CONFIGURED)
    document = fields.text(identity, "document", fields.DOCUMENT_LIMIT)
    nonce = fields.nonce(identity)
    signed = document.encode()
    if ("signature" in identity) == ("rsa2048" in identity):
        raise malformed("give one of signature and rsa2048")
    if "signature" in identity:
        _verify_signature(signed, fields.base64_bytes(identity, "signature", fields.SIGNATURE_LIMIT), anchors.keys)
    else:
        der = fields.base64_bytes(identity, "rsa2048", fields.PKCS7_LIMIT)
        if verified_content(der, anchors.signers, detached=signed) != signed:
            # Signed by AWS, but another document than the one sent beside it.
            raise IdentityRefused(BAD_SIGNATURE)
    content = _document(signed)
    launched_at = _pending_time(content["pendingTime"])
    account = content["accountId"]
    if anchors.allowed_accounts and account not in anchors.allowed_accounts:
        raise IdentityRefused(f"account {account} is not allowed")
    age = now - launched_at
    if anchors.max_age_since_launch and age > anchors.max_age_since_launch:
        raise IdentityRefused(f"too old: the instance was launched {age:.0f} s ago "
                              f"(max_age_since_launch is {anchors.max_age_since_launch:g} s)")
    return VerifiedIdentity(
        provider="aws",
        instance_id=content["instanceId"],
        account=account,
        region=content["region"],
        zone=content["availabilityZone"],
        proof_digest=digest(document),
        private_ip=content.get("privateIp"),
        instance_type=content.get("instanceType"),
        image_id=content.get("imageId"),
        launched_at=launched_at,
        nonce_digest=digest(nonce),
    )


def _document(signed: bytes) -> dict[str, Any]:
    """The verified document's fields that identify the instance, each a non-empty string
    (the optional ones may be absent or null)."""
    try:
        content = json.loads(signed)
    except ValueError:
        raise malformed("the document is not JSON") from None
    if not isinstance(content, dict):
        raise malformed("the document is not a JSON object")
    for name in REQUIRED:
        if not isinstance(content.get(name), str) or not content[name]:
            raise malformed(f"the document has no {name}")
    for name in OPTIONAL:
        if content.get(name) is not None and not isinstance(content[name], str):
            raise malformed(f"the document's {name} is not a string")
    return content


def _pending_time(text: str) -> float:
    """AWS writes ``2016-11-19T16:32:11Z`` (fromisoformat: a tenth of strptime's cost)."""
    try:
        launched = dt.datetime.fromisoformat(text)
    except ValueError:
        launched = None
    if launched is None or launched.tzinfo is None:
        raise malformed("the document's pendingTime is not a time")
    return launched.timestamp()


def _verify_signature(signed: bytes, signature: bytes, keys: Sequence[RSAPublicKey]) -> None:
    for key in keys:
        try:
            key.verify(signature, signed, padding.PKCS1v15(), hashes.SHA256())
            return
        except InvalidSignature:
            continue
    # Which refusal: a signature whose padding opens under one of the keys was made by that
    # key over other bytes (the document was altered); one no key opens was made by a key
    # this server does not have (another region's certificate, or a forgery).
    for key in keys:
        try:
            key.recover_data_from_signature(signature, padding.PKCS1v15(), None)
        except InvalidSignature:
            continue
        raise IdentityRefused(BAD_SIGNATURE)
    raise IdentityRefused(UNKNOWN_CERTIFICATE)
