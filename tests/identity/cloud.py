"""Stand-ins for the clouds' signers: keys and certificates made here, proofs signed as the clouds sign them.

``AwsSigner`` plays the EC2 instance metadata service: it writes an instance
identity document as AWS prints it and signs it both ways (the base64
RSA-SHA256 ``signature`` and the ``rsa2048`` PKCS#7 SignedData, in the BER
streaming form AWS sends). ``GcpSigner`` plays Google: RS256 identity tokens
(``format=full``) and the JWKS or PEM-certificates file an admin would download.
No pytest here, so that a metadata emulator can serve what these make.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import time
from collections.abc import Mapping
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import NameOID

ACCOUNT = "123456789012"
PROJECT = "tcb-test-project"
AUDIENCE = "https://callback.example.test/"
# AWS's IMDS wraps base64 at 64 columns; clients send it as they read it.
BASE64_LINE = 64


def new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def self_signed(key: rsa.RSAPrivateKey, common_name: str) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Test Cloud"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=3650))
        .sign(key, hashes.SHA256())
    )


def pem(*certificates: x509.Certificate) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certificates)


def wrapped_base64(data: bytes) -> str:
    text = base64.b64encode(data).decode()
    return "\n".join(text[i:i + BASE64_LINE] for i in range(0, len(text), BASE64_LINE))


def aws_time(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def ber_streaming(der: bytes, chunk: int = 256) -> bytes:
    """``der`` re-encoded as a streaming signer (OpenSSL's, AWS's) writes it: SEQUENCEs and
    [0] wrappers with indefinite lengths, the content as a chunked OCTET STRING. SETs (the
    signer infos, whose signed attributes must stay DER) are copied as they are."""
    out = bytearray()
    at = 0
    while at < len(der):
        tag = der[at]
        length, header = _der_length(der, at + 1)
        start = at + 1 + header
        body = der[start:start + length]
        if tag in (0x30, 0xA0):
            out += bytes([tag, 0x80]) + ber_streaming(body, chunk) + b"\0\0"
        elif tag == 0x04 and length > chunk:
            pieces = b"".join(_der(0x04, body[i:i + chunk]) for i in range(0, length, chunk))
            out += b"\x24\x80" + pieces + b"\0\0"
        else:
            out += der[at:start + length]
        at = start + length
    return bytes(out)


def _der_length(data: bytes, at: int) -> tuple[int, int]:
    """The length at ``data[at]`` and how many bytes encode it."""
    first = data[at]
    if first < 0x80:
        return first, 1
    count = first & 0x7F
    return int.from_bytes(data[at + 1:at + 1 + count], "big"), 1 + count


def _der(tag: int, body: bytes) -> bytes:
    length = len(body)
    if length < 0x80:
        return bytes([tag, length]) + body
    size = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(size)]) + size + body


class AwsSigner:
    """One AWS region's signing key and its public certificate (what an admin configures)."""

    def __init__(self, region: str = "us-east-1") -> None:
        self.region = region
        self.key = new_key()
        self.certificate = self_signed(self.key, f"ec2.{region}.amazonaws.test")

    @property
    def pem(self) -> bytes:
        return pem(self.certificate)

    def document(self, instance_id: str = "i-0123456789abcdef0", *, pending: float | None = None,
                 **fields: Any) -> str:
        """An instance identity document as IMDS prints it; ``fields`` override or add keys."""
        content: dict[str, Any] = {
            "accountId": ACCOUNT,
            "architecture": "x86_64",
            "availabilityZone": f"{self.region}a",
            "billingProducts": None,
            "devpayProductCodes": None,
            "marketplaceProductCodes": None,
            "imageId": "ami-0abcdef1234567890",
            "instanceId": instance_id,
            "instanceType": "t3.micro",
            "kernelId": None,
            "pendingTime": aws_time(time.time() - 60 if pending is None else pending),
            "privateIp": "10.0.1.23",
            "ramdiskId": None,
            "region": self.region,
            "version": "2017-09-30",
        }
        content.update(fields)
        return json.dumps(content, indent=2, separators=(",", " : "))

    def signature(self, document: str) -> str:
        """The ``signature`` form: RSA-SHA256 (PKCS#1 v1.5) over the document's bytes, base64."""
        raw = self.key.sign(document.encode(), padding.PKCS1v15(), hashes.SHA256())
        return wrapped_base64(raw)

    def rsa2048(self, document: str, *, options: tuple[pkcs7.PKCS7Options, ...] = (pkcs7.PKCS7Options.NoCerts,),
                digest: hashes.HashAlgorithm | None = None, streaming: bool = True) -> str:
        """The ``rsa2048`` form: a PKCS#7 SignedData holding the document (detached with
        ``PKCS7Options.DetachedSignature``), in AWS's BER streaming form unless ``streaming`` is off."""
        der = (
            pkcs7.PKCS7SignatureBuilder()
            .set_data(document.encode())
            .add_signer(self.certificate, self.key, digest or hashes.SHA256())
            .sign(serialization.Encoding.DER, [pkcs7.PKCS7Options.Binary, *options])
        )
        return wrapped_base64(ber_streaming(der) if streaming else der)

    def identity(self, document: str | None = None, *, form: str = "signature",
                 nonce: str = "a-nonce-of-enough-length-0001") -> dict[str, str]:
        """The ``cloud_identity`` a client sends (API.md section 4)."""
        document = self.document() if document is None else document
        proof = self.signature(document) if form == "signature" else self.rsa2048(document)
        return {"provider": "aws", "document": document, form: proof, "nonce": nonce}


class GcpSigner:
    """Google's token signing keys (two, as Google publishes) and the files an admin downloads."""

    def __init__(self, key_ids: tuple[str, ...] = ("test-key-1", "test-key-2")) -> None:
        self.keys = {kid: new_key() for kid in key_ids}

    def jwks(self) -> dict[str, Any]:
        """The keys as Google's JWKS endpoint serves them."""
        keys = []
        for kid, key in self.keys.items():
            jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
            keys.append({**jwk, "kid": kid, "alg": "RS256", "use": "sig"})
        return {"keys": keys}

    def certificates(self) -> dict[str, str]:
        """The keys as Google's PEM endpoint serves them: key id to certificate."""
        return {kid: pem(self_signed(key, kid)).decode() for kid, key in self.keys.items()}

    def token(self, *, audience: str = AUDIENCE, project: str = PROJECT, instance_id: str = "4242424242424242",
              instance_name: str = "web-1", zone: str = "europe-west1-b", issued: float | None = None,
              lifetime: float = 3600, kid: str | None = None, key: rsa.RSAPrivateKey | None = None,
              claims: Mapping[str, Any] | None = None) -> str:
        """An instance identity token with ``format=full``; ``claims`` override or add claims."""
        kid = kid or next(iter(self.keys))
        iat = int(time.time() if issued is None else issued)
        payload: dict[str, Any] = {
            "iss": "https://accounts.google.com",
            "aud": audience,
            "azp": "112233445566778899000",
            "sub": "112233445566778899000",
            "iat": iat,
            "exp": int(iat + lifetime),
            "google": {"compute_engine": {
                "instance_creation_timestamp": iat - 120,
                "instance_id": instance_id,
                "instance_name": instance_name,
                "project_id": project,
                "project_number": 998877665544,
                "zone": zone,
            }},
        }
        payload.update(claims or {})
        return jwt.encode(payload, key or self.keys[kid], algorithm="RS256", headers={"kid": kid})

    def identity(self, token: str | None = None) -> dict[str, str]:
        return {"provider": "gcp", "token": self.token() if token is None else token}
