"""Reading the caller's ``cloud_identity`` fields: strings of bounded size, base64 decoded strictly.

Everything here is hostile input: the limits are far above what a cloud
sends (an AWS document is under 1 KB, a GCP token near 1 KB) and far below
what would make parsing or hashing cost more than the RSA check.
"""

from __future__ import annotations

import binascii
from base64 import b64decode
from collections.abc import Mapping
from typing import Any

from tornado_callback.identity.verdict import IdentityRefused

DOCUMENT_LIMIT = 4096
SIGNATURE_LIMIT = 2048  # base64 of an RSA-4096 signature is 684 characters
PKCS7_LIMIT = 12288  # a document, a signer info and perhaps a certificate chain
TOKEN_LIMIT = 8192
NONCE_MIN, NONCE_MAX = 16, 128



def malformed(what: str) -> IdentityRefused:
    return IdentityRefused(f"malformed: {what}")


def text(identity: Mapping[str, Any], name: str, limit: int) -> str:
    value = identity.get(name)
    if value is None:
        raise malformed(f"{name} is missing")
    if not isinstance(value, str):
        raise malformed(f"{name} must be a string")
    if len(value) > limit:
        raise malformed(f"{name} is longer than {limit} characters")
    if not value:
        raise malformed(f"{name} is empty")
    # Every cloud's proofs are ASCII; this also spares the encoders lone surrogates.
    if not value.isascii():
        raise malformed(f"{name} is not ASCII text")
    return value


def nonce(identity: Mapping[str, Any]) -> str:
    """The AWS client's nonce; a short one could be guessed from its stored digest."""
    value = text(identity, "nonce", NONCE_MAX)
    if len(value) < NONCE_MIN:
        raise malformed(f"nonce is shorter than {NONCE_MIN} characters")
    return value


def base64_bytes(identity: Mapping[str, Any], name: str, limit: int) -> bytes:
    # IMDS wraps base64 at 64 columns: the line breaks go before the strict decode.
    encoded = "".join(text(identity, name, limit).split())
    try:
        return b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise malformed(f"{name} is not base64") from None
