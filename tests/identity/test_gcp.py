"""GCP instance identity tokens: an RS256 JWT by one of Google's keys, for our audience, fresh, with the
instance's facts; each refusal says why."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import jwt
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

from tests.identity.cloud import AUDIENCE, PROJECT, new_key
from tests.identity.conftest import gcp_anchors, refusal
from tornado_callback.identity import IdentityRefused, TrustAnchors, verify

NOW = 1_800_000_000


def segment(content: dict) -> str:
    """A JWT segment: base64url JSON without padding."""
    return base64.urlsafe_b64encode(json.dumps(content).encode()).rstrip(b"=").decode()


def test_a_token_proves_its_instance_and_facts(gcp, anchors):
    token = gcp.token(instance_id="5551234567890", instance_name="db-2", zone="us-central1-f", issued=NOW - 10)
    identity = verify(gcp.identity(token), anchors, NOW)
    assert identity.provider == "gcp"
    assert identity.facts() == {
        "instance_id": "5551234567890",
        "project_id": PROJECT,
        "region": "us-central1",
        "availability_zone": "us-central1-f",
        "instance_name": "db-2",
    }
    assert identity.describe() == "gcp instance 5551234567890 of project tcb-test-project in us-central1-f"
    # A replay check remembers the token's digest (never the token) until it expires.
    assert identity.expires_at == NOW - 10 + 3600
    assert identity.proof_digest == hashlib.sha256(token.encode()).hexdigest()
    assert identity.nonce_digest is None


@pytest.mark.parametrize("issuer", ["https://accounts.google.com", "accounts.google.com"])
def test_either_of_googles_issuer_names_and_either_key_verify(gcp, anchors, issuer):
    for kid in gcp.keys:
        token = gcp.token(kid=kid, issued=NOW, claims={"iss": issuer})
        assert verify(gcp.identity(token), anchors, NOW).instance_id == "4242424242424242"


@pytest.mark.parametrize(("token", "reason"), [
    (dict(audience="https://elsewhere.example/"), "wrong audience: the token was requested for another audience"),
    (dict(claims={"aud": [AUDIENCE, "https://elsewhere.example/"]}),
     "wrong audience: the token was requested for another audience"),
    (dict(claims={"iss": "https://evil.example"}), "wrong issuer: the token was not issued by Google"),
    (dict(issued=NOW - 3700), "expired: the token expired 100 s ago"),
    (dict(issued=NOW - 400), "too old: the token was issued 400 s ago (max_token_age is 300 s)"),
    (dict(issued=NOW, kid="a-retired-key"), "unknown key: no configured Google key has the token's key id"),
    (dict(issued=NOW, claims={"google": {}}),
     "malformed: the token has no instance facts (request it with format=full)"),
    (dict(issued=NOW, claims={"google": {"compute_engine": {"instance_id": 42, "project_id": PROJECT}}}),
     "malformed: the token has no instance facts (request it with format=full)"),
    (dict(issued=NOW, claims={"exp": "tomorrow"}), "malformed: the token's exp or iat is not a time"),
], ids=["audience", "audiences", "issuer", "expired", "too-old", "unknown-key", "not-full", "bad-facts", "exp-text"])
def test_a_token_is_refused_with_its_reason(gcp, anchors, token, reason):
    if "kid" in token:
        token["key"] = next(iter(gcp.keys.values()))
    assert refusal(gcp.identity(gcp.token(**token)), anchors, now=NOW) == f"Cloud identity refused: {reason}."


def test_a_token_signed_by_a_key_not_configured_is_a_bad_signature(gcp, anchors):
    forged = gcp.token(issued=NOW, kid="test-key-1", key=new_key())
    assert refusal(gcp.identity(forged), anchors, now=NOW) == (
        "Cloud identity refused: bad signature: the token does not match its signature.")


def test_a_token_with_altered_claims_is_a_bad_signature(gcp, anchors):
    header, payload, signature = gcp.token(issued=NOW).split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["google"]["compute_engine"]["instance_id"] = "1111111111"
    assert refusal(gcp.identity(f"{header}.{segment(claims)}.{signature}"), anchors, now=NOW) == (
        "Cloud identity refused: bad signature: the token does not match its signature.")


def test_a_token_signed_with_the_public_key_as_an_hmac_secret_is_refused(gcp, anchors):
    """The classic confusion: HS256 keyed with the published RSA key. Only RS256 is accepted."""
    public = gcp.keys["test-key-1"].public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    _, payload, _ = gcp.token(issued=NOW).split(".")
    header = segment({"alg": "HS256", "typ": "JWT", "kid": "test-key-1"})
    mac = hmac.new(public, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    forged = f"{header}.{payload}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"
    assert refusal(gcp.identity(forged), anchors, now=NOW) == (
        "Cloud identity refused: malformed: the token is not signed with RS256.")


def test_a_project_outside_allowed_projects_is_refused(gcp):
    anchors = gcp_anchors(gcp, allowed_projects=["production"])
    assert refusal(gcp.identity(gcp.token(issued=NOW)), anchors, now=NOW) == (
        "Cloud identity refused: project tcb-test-project is not allowed.")
    assert verify(gcp.identity(gcp.token(project="production", issued=NOW)), anchors, NOW).account == "production"


def test_max_token_age_is_the_admins(gcp):
    token = gcp.identity(gcp.token(issued=NOW - 1000))
    assert verify(token, gcp_anchors(gcp, max_token_age=1800), NOW).instance_id
    assert refusal(token, gcp_anchors(gcp, max_token_age=600), now=NOW) == (
        "Cloud identity refused: too old: the token was issued 1000 s ago (max_token_age is 600 s).")


@pytest.mark.parametrize(("token", "reason"), [
    ("not-a-jwt", "malformed: the token is not a JWT"),
    ("!!!.???.###", "malformed: the token is not a JWT"),
    ("W10.e30.AAAA", "malformed: the token is not a JWT"),  # a header that is a list
    ("e30.e30.AAAA", "unknown key: no configured Google key has the token's key id"),  # a header without kid
    ("W" * 9000, "malformed: token is longer than 8192 characters"),
    ("é.e30.e30", "malformed: token is not ASCII text"),
], ids=["one-segment", "not-base64", "list-header", "no-kid", "huge", "non-ascii"])
def test_a_token_that_is_not_a_jwt_is_refused(anchors, token, reason):
    assert refusal({"provider": "gcp", "token": token}, anchors, now=NOW) == f"Cloud identity refused: {reason}."


def test_a_signed_payload_that_is_not_json_is_malformed(gcp, anchors):
    header = gcp.token(issued=NOW).split(".")[0]
    signing_input = f"{header}.bm90IGpzb24"  # "not json"
    signature = gcp.keys["test-key-1"].sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    token = f"{signing_input}.{base64.urlsafe_b64encode(signature).rstrip(b'=').decode()}"
    assert refusal(gcp.identity(token), anchors, now=NOW) == "Cloud identity refused: malformed: the token is not a JWT."
    # The signature is checked first: unsigned garbage is a bad signature.
    assert refusal(gcp.identity(f"{signing_input}.AAAA"), anchors, now=NOW) == (
        "Cloud identity refused: bad signature: the token does not match its signature.")


def test_a_token_without_exp_is_malformed(gcp, anchors):
    claims = jwt.decode(gcp.token(issued=NOW), options={"verify_signature": False})
    del claims["exp"]
    token = jwt.encode(claims, gcp.keys["test-key-1"], algorithm="RS256", headers={"kid": "test-key-1"})
    assert refusal(gcp.identity(token), anchors, now=NOW) == "Cloud identity refused: malformed: the token has no exp."


def test_no_altered_character_yields_another_identity_or_an_error(gcp, anchors):
    token = gcp.token(issued=NOW)
    refused = 0
    for at in range(len(token)):
        altered = token[:at] + ("A" if token[at] != "A" else "B") + token[at + 1:]
        try:
            identity = verify(gcp.identity(altered), anchors, NOW)
        except IdentityRefused:
            refused += 1
        else:
            assert identity.instance_id == "4242424242424242"
    assert refused > 0.9 * len(token)


def test_without_google_keys_gcp_tokens_are_refused_as_not_configured(gcp):
    assert refusal(gcp.identity(), TrustAnchors()) == (
        "Cloud identity refused: provider not configured: this server has no Google keys (gcp_jwks).")
