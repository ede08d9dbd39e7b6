"""The providers' options of the ``[resolvers.cloud_metadata]`` table, and their trust anchors read once.

    aws_certificates = ["/etc/tornado-callback/aws/us-east-1.pem"]   # PEM files of certificates
    allowed_accounts = ["123456789012"]      # empty: any account whose document verifies
    max_age_since_launch = 0                 # seconds since pendingTime; 0: no limit
    gcp_jwks = "/etc/tornado-callback/gcp/jwks.json"
    gcp_audience = "https://callback.example.com/"
    allowed_projects = ["my-project"]
    max_token_age = 300                      # seconds since the token's iat

The names are ``plugin.CLOUD_IDENTITY_OPTIONS``: the resolver accepts them beside its own.
A file that is missing, unreadable or holds no usable key is a ConfigError
naming the option and the file, so the server stops at start rather than
refusing every host later. A provider left without anchors is not an
error: its documents are refused, saying the provider is not configured.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from tornado_callback.config import ConfigError
from tornado_callback.identity.aws import AwsAnchors
from tornado_callback.identity.gcp import DEFAULT_MAX_TOKEN_AGE, GcpAnchors
from tornado_callback.identity.verify import TrustAnchors

TABLE = "resolvers.cloud_metadata"
AWS_SCOPE = ("allowed_accounts", "max_age_since_launch")
GCP_SCOPE = ("gcp_audience", "allowed_projects", "max_token_age")
ACCOUNT_DIGITS = 12


def load_anchors(options: Mapping[str, Any], *, default_audience: str | None = None) -> TrustAnchors:
    """The trust anchors ``options`` configure (other keys of the table are ignored here).
    ``default_audience``: what GCP tokens must name when ``gcp_audience`` is not set
    (the server's own base URL)."""
    options = _Options(options)
    return TrustAnchors(aws=_aws(options), gcp=_gcp(options, default_audience))


class _Options:
    """Typed reads of the table's options, each error naming ``table.option``."""

    def __init__(self, values: Mapping[str, Any]) -> None:
        self.values = values

    def error(self, option: str, problem: str) -> ConfigError:
        return ConfigError(f"{TABLE}.{option} {problem}")

    def file_error(self, option: str, path: str, problem: str) -> ConfigError:
        return ConfigError(f"{TABLE}.{option}: {path}: {problem}")

    def given(self, *names: str) -> list[str]:
        return [name for name in names if name in self.values]

    def strings(self, option: str, what: str) -> list[str]:
        value = self.values.get(option, [])
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise self.error(option, f"must be a list of {what}")
        return value

    def seconds(self, option: str, default: float, *, zero_allowed: bool) -> float:
        value = self.values.get(option, default)
        # ``not value >= 0`` refuses NaN too (TOML has nan), which would make every limit pass.
        if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0 or (
                value == 0 and not zero_allowed):
            raise self.error(option, "must be a number of seconds" + (" (0: no limit)" if zero_allowed else " above 0"))
        return float(value)

    def file(self, option: str, path: str) -> bytes:
        try:
            return Path(path).read_bytes()
        except OSError as e:
            raise self.file_error(option, path, e.strerror or str(e)) from None


def _aws(options: _Options) -> AwsAnchors | None:
    paths = options.strings("aws_certificates", "PEM file paths")
    if not paths:
        if scope := options.given(*AWS_SCOPE):
            raise options.error(scope[0], "is set but aws_certificates is not: no AWS document could verify")
        return None
    certificates = [c for path in paths for c in _pem_certificates(options, "aws_certificates", path)]
    accounts = options.strings("allowed_accounts", "AWS account ids (12 digits, in quotes)")
    if not all(a.isdigit() and len(a) == ACCOUNT_DIGITS for a in accounts):
        raise options.error("allowed_accounts", "must be a list of AWS account ids (12 digits, in quotes)")
    return AwsAnchors(certificates, accounts, options.seconds("max_age_since_launch", 0, zero_allowed=True))


def _pem_certificates(options: _Options, option: str, path: str) -> list[x509.Certificate]:
    content = options.file(option, path)  # outside the try: a ConfigError is a ValueError too
    try:
        certificates = x509.load_pem_x509_certificates(content)
    except ValueError:
        raise options.file_error(option, path, "not a PEM certificate file") from None
    if not all(isinstance(c.public_key(), RSAPublicKey) for c in certificates):
        raise options.file_error(option, path, "holds a certificate whose key is not RSA "
                                               "(use AWS's RSA or RSA-2048 certificates)")
    return certificates


def _gcp(options: _Options, default_audience: str | None) -> GcpAnchors | None:
    path = options.values.get("gcp_jwks")
    if path is None:
        if scope := options.given(*GCP_SCOPE):
            raise options.error(scope[0], "is set but gcp_jwks is not: no GCP token could verify")
        return None
    if not isinstance(path, str) or not path:
        raise options.error("gcp_jwks", "must be the path of a JWKS file")
    audience = options.values.get("gcp_audience", default_audience)
    if not isinstance(audience, str) or not audience:
        raise options.error("gcp_audience", "must be the audience clients request their tokens for (a URL)")
    return GcpAnchors(
        _google_keys(options, path),
        audience,
        options.strings("allowed_projects", "GCP project ids"),
        options.seconds("max_token_age", DEFAULT_MAX_TOKEN_AGE, zero_allowed=False),
    )


def _google_keys(options: _Options, path: str) -> dict[str, RSAPublicKey]:
    """Google's keys by key id, from a JWKS (``.../oauth2/v3/certs``) or from Google's PEM
    certificates by key id (``.../oauth2/v1/certs``)."""
    def bad(problem: str) -> ConfigError:
        return options.file_error("gcp_jwks", path, problem)

    raw = options.file("gcp_jwks", path)  # outside the try: a ConfigError is a ValueError too
    try:
        content = json.loads(raw)
    except ValueError:
        raise bad("not JSON (a JWKS, or Google's PEM certificates by key id)") from None
    if not isinstance(content, dict) or not content:
        raise bad("holds no keys")
    try:
        if "keys" in content:
            keys = {jwk.key_id: jwk.key for jwk in jwt.PyJWKSet.from_dict(content).keys}
        else:
            keys = {kid: x509.load_pem_x509_certificate(pem.encode()).public_key() for kid, pem in content.items()}
    except (jwt.PyJWTError, ValueError, TypeError, AttributeError):
        raise bad("not a JWKS, nor PEM certificates by key id") from None
    if not all(isinstance(kid, str) and kid for kid in keys):
        raise bad("a key has no key id (kid)")
    if not all(isinstance(key, RSAPublicKey) for key in keys.values()):
        raise bad("holds a key that is not RSA (Google signs identity tokens with RS256)")
    return keys
