"""The rsa2048 PKCS#7 parser meets hostile bytes: whatever arrives, the answer is a refusal, never an
exception of another kind, and never an identity the signer did not sign."""

from __future__ import annotations

import base64
import os
import time

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.hazmat.primitives.serialization.pkcs7 import serialize_certificates

from tests.identity.conftest import refusal
from tornado_callback.identity import IdentityRefused, verify

NOT_PKCS7 = "Cloud identity refused: malformed: rsa2048 is not PKCS#7 signed data."


def with_rsa2048(aws, der: bytes) -> dict[str, str]:
    return {"provider": "aws", "document": aws.document(), "rsa2048": base64.b64encode(der).decode(),
            "nonce": "a-nonce-of-enough-length"}


def signed_der(aws, streaming: bool = True) -> bytes:
    return base64.b64decode("".join(aws.rsa2048(aws.document(), streaming=streaming).split()))


@pytest.mark.parametrize("der", [
    os.urandom(600),
    b"\x30\x80" * 4000,  # nested indefinite lengths, deeper than any parser should follow
    b"\x30\x84\xff\xff\xff\xff\x02\x01\x01",  # a length far beyond the data
    b"\x02\x01\x01",  # an INTEGER, not a ContentInfo
], ids=["random", "deep", "overlong", "integer"])
def test_bytes_that_are_not_pkcs7_are_malformed(aws, anchors, der):
    assert refusal(with_rsa2048(aws, der), anchors) == NOT_PKCS7


def test_a_pkcs7_without_a_signer_is_malformed(aws, anchors):
    certificates_only = serialize_certificates([aws.certificate], Encoding.DER)
    assert refusal(with_rsa2048(aws, certificates_only), anchors) == NOT_PKCS7


@pytest.mark.parametrize("cut", [lambda der: der[:-40], lambda der: der + b"\0\0\0"], ids=["truncated", "trailing"])
def test_a_signed_pkcs7_cut_short_or_with_bytes_after_it_is_malformed(aws, anchors, cut):
    assert refusal(with_rsa2048(aws, cut(signed_der(aws, streaming=False))), anchors) == NOT_PKCS7


def test_a_digest_other_than_sha256_384_512_is_refused(aws, anchors):
    document = aws.document()
    identity = {**aws.identity(document, form="rsa2048"), "rsa2048": aws.rsa2048(document, digest=hashes.SHA224())}
    assert refusal(identity, anchors) == (
        "Cloud identity refused: malformed: rsa2048 is not signed with RSA and SHA-256, SHA-384 or SHA-512.")


@pytest.mark.parametrize("streaming", [True, False], ids=["ber", "der"])
def test_no_flipped_bit_yields_another_identity_or_an_error(aws, anchors, streaming):
    der = signed_der(aws, streaming)
    expected = verify(with_rsa2048(aws, der), anchors, time.time()).instance_id
    refused = 0
    for at in range(len(der)):
        for bit in (0x01, 0x80):
            flipped = der[:at] + bytes([der[at] ^ bit]) + der[at + 1:]
            try:
                identity = verify(with_rsa2048(aws, flipped), anchors, time.time())
            except IdentityRefused:
                refused += 1
            else:
                # Bytes the signature does not cover (the list of digest algorithms, a version) may change.
                assert identity.instance_id == expected
    assert refused > 0.9 * 2 * len(der)
