"""Verifying a PKCS#7 (CMS, RFC 5652) SignedData with one RSA signer, as AWS's ``rsa2048`` is.

cryptography builds PKCS#7 but does not verify it, so asn1crypto's parser
reads the encoding (BER too: AWS streams it with indefinite lengths and a
chunked content) and cryptography checks the RSA signature. The signer must
be one of the configured certificates, found by the issuer and serial number
it names; certificates the message carries are never trusted.

Only asn1crypto's TLV parser is used, and the SignedData's shape is walked
here: asn1crypto's typed ``cms.ContentInfo`` took 1.1 ms to read the fields
below, twenty times the RSA check (and the budget of a whole callback); the
walk takes about 0.1 ms.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterator, Mapping

from asn1crypto import core, parser
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from tornado_callback.identity.fields import malformed
from tornado_callback.identity.verdict import IdentityRefused

# A signer names its certificate by (issuer Name as DER, serial number).
SignerId = tuple[bytes, int]
# What asn1crypto's parser returns: class, constructed, tag, header, contents, trailer.
Element = tuple[int, int, int, bytes, bytes, bytes]

BAD_SIGNATURE = "bad signature: the document does not match its signature"
UNKNOWN_CERTIFICATE = "unknown certificate: no configured AWS certificate made this signature"

UNIVERSAL, CONTEXT = 0, 2
INTEGER, OCTET_STRING, OID, SEQUENCE, SET = 2, 4, 6, 16, 17


def _oid(dotted: str) -> bytes:
    return core.ObjectIdentifier(dotted).contents


SIGNED_DATA = _oid("1.2.840.113549.1.7.2")
DATA = _oid("1.2.840.113549.1.7.1")
CONTENT_TYPE_ATTRIBUTE = _oid("1.2.840.113549.1.9.3")
MESSAGE_DIGEST_ATTRIBUTE = _oid("1.2.840.113549.1.9.4")
DIGESTS: Mapping[bytes, type[hashes.HashAlgorithm]] = {
    _oid("2.16.840.1.101.3.4.2.1"): hashes.SHA256,
    _oid("2.16.840.1.101.3.4.2.2"): hashes.SHA384,
    _oid("2.16.840.1.101.3.4.2.3"): hashes.SHA512,
}
# rsaEncryption, and sha256/384/512WithRSAEncryption: PKCS#1 v1.5 with the signer's digest.
RSA_SIGNATURES = frozenset(_oid(f"1.2.840.113549.1.1.{n}") for n in (1, 11, 12, 13))
# RFC 5652 5.4: the signature covers the signed attributes' DER encoding with the
# universal SET tag in place of their [0] IMPLICIT tag.
SET_TAG = b"\x31"


class _Shape(ValueError):
    """An element is not what the SignedData syntax puts there (caught with the parser's ValueErrors)."""


def _elements(data: bytes) -> Iterator[Element]:
    """The elements encoded one after another in ``data``."""
    while data:
        element = parser.parse(data)  # the first element; its parts' lengths say where the next begins
        yield element
        data = data[len(element[3]) + len(element[4]) + len(element[5]):]


def _children(element: Element, class_: int, tag: int) -> list[Element]:
    """The elements inside ``element``, which must be a constructed ``class_``/``tag``."""
    if element[:3] != (class_, 1, tag):
        raise _Shape()
    return list(_elements(element[4]))


def _primitive(element: Element, tag: int) -> bytes:
    if element[:3] != (UNIVERSAL, 0, tag):
        raise _Shape()
    return element[4]


def _octets(element: Element) -> bytes:
    """An OCTET STRING's bytes; BER may cut them into a constructed string of chunks."""
    if element[:3] == (UNIVERSAL, 1, OCTET_STRING):
        return b"".join(_octets(chunk) for chunk in _elements(element[4]))
    return _primitive(element, OCTET_STRING)


def _optional(elements: list[Element], tag: int) -> Element | None:
    """The next of ``elements`` if it is the context-specific [``tag``], taken off the list."""
    if elements and elements[0][:3] == (CONTEXT, 1, tag):
        return elements.pop(0)
    return None


class _Signed:
    """The parts of a SignedData that verification reads, as plain values."""

    def __init__(self, der: bytes) -> None:
        content_type, explicit = _children(parser.parse(der, strict=True), UNIVERSAL, SEQUENCE)
        if _primitive(content_type, OID) != SIGNED_DATA:
            raise _Shape()
        (signed_data,) = _children(explicit, CONTEXT, 0)
        _version, _digests, encapsulated, *rest = _children(signed_data, UNIVERSAL, SEQUENCE)
        for tag in (0, 1):  # certificates, CRLs: never trusted, so never read
            _optional(rest, tag)
        (signer_infos,) = rest
        (signer,) = _children(signer_infos, UNIVERSAL, SET)
        self._read_content(encapsulated)
        self._read_signer(signer)

    def _read_content(self, encapsulated: Element) -> None:
        content_type, *content = _children(encapsulated, UNIVERSAL, SEQUENCE)
        if _primitive(content_type, OID) != DATA:
            raise _Shape()
        self.content: bytes | None = None  # None: detached
        if content:
            (explicit,) = content
            (octets,) = _children(explicit, CONTEXT, 0)
            self.content = _octets(octets)

    def _read_signer(self, signer: Element) -> None:
        _version, sid, digest, *rest = _children(signer, UNIVERSAL, SEQUENCE)
        # A signer named by subject key identifier ([0]) is no signer of ours: AWS names issuer and serial.
        self.signer: SignerId | None = None
        if sid[:3] == (UNIVERSAL, 1, SEQUENCE):
            issuer, serial = _children(sid, UNIVERSAL, SEQUENCE)
            self.signer = (issuer[3] + issuer[4], int.from_bytes(_primitive(serial, INTEGER), "big", signed=True))
        self.digest = _algorithm(digest)
        attributes = _optional(rest, 0)
        signature_algorithm, signature, *_unsigned = rest
        self.signature_algorithm = _algorithm(signature_algorithm)
        self.signature = _primitive(signature, OCTET_STRING)
        # None: no signed attributes, the signature is over the content itself.
        self.signed_attributes: bytes | None = None
        self.content_type: bytes | None = None
        self.message_digest: bytes | None = None
        if attributes is not None:
            self.signed_attributes = SET_TAG + attributes[3][1:] + attributes[4]
            for attribute in _children(attributes, CONTEXT, 0):
                kind, values = _children(attribute, UNIVERSAL, SEQUENCE)
                kind = _primitive(kind, OID)
                if kind == CONTENT_TYPE_ATTRIBUTE:
                    (value,) = _children(values, UNIVERSAL, SET)
                    self.content_type = _primitive(value, OID)
                elif kind == MESSAGE_DIGEST_ATTRIBUTE:
                    (value,) = _children(values, UNIVERSAL, SET)
                    self.message_digest = _octets(value)


def _algorithm(identifier: Element) -> bytes:
    """An AlgorithmIdentifier's OID (the parameters of RSA and SHA-2 say nothing)."""
    algorithm, *_parameters = _children(identifier, UNIVERSAL, SEQUENCE)
    return _primitive(algorithm, OID)


def _parse(der: bytes, name: str) -> _Signed:
    try:
        return _Signed(der)
    except ValueError:
        # The parser's errors, the shape's, and an unpacking of too many or too few elements.
        raise malformed(f"{name} is not PKCS#7 signed data") from None


def verified_content(der: bytes, signers: Mapping[SignerId, RSAPublicKey], detached: bytes,
                     name: str = "rsa2048") -> bytes:
    """The content that ``der`` signs (``detached`` where it carries none), once its signature
    verifies with the public key of the configured certificate it names; else IdentityRefused."""
    signed = _parse(der, name)
    key = signers.get(signed.signer) if signed.signer is not None else None
    if key is None:
        raise IdentityRefused(UNKNOWN_CERTIFICATE)
    digest = DIGESTS.get(signed.digest)
    if digest is None or signed.signature_algorithm not in RSA_SIGNATURES:
        raise malformed(f"{name} is not signed with RSA and SHA-256, SHA-384 or SHA-512")
    content = detached if signed.content is None else signed.content
    signed_bytes = content
    if signed.signed_attributes is not None:
        if signed.content_type != DATA or signed.message_digest is None:
            raise malformed(f"{name} lacks the content type or digest attribute")
        content_digest = hashes.Hash(digest())
        content_digest.update(content)
        if not hmac.compare_digest(content_digest.finalize(), signed.message_digest):
            raise IdentityRefused(BAD_SIGNATURE)
        signed_bytes = signed.signed_attributes
    try:
        key.verify(signed.signature, signed_bytes, padding.PKCS1v15(), digest())
    except InvalidSignature:
        raise IdentityRefused(BAD_SIGNATURE) from None
    return content
