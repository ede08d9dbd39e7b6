"""The providers' options of [resolvers.cloud_metadata]: trust anchors read from files once, and every
unusable option or file stops the server at start with a message naming the option and the file."""

from __future__ import annotations

import json
import time

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from tests.identity.cloud import AUDIENCE, self_signed
from tests.identity.cloud import pem as pem_of
from tests.identity.conftest import refusal
from tornado_callback.config import ConfigError
from tornado_callback.identity import load_anchors, verify

TABLE = "resolvers.cloud_metadata"


@pytest.fixture
def files(tmp_path, aws, aws_elsewhere, gcp):
    """The files an admin downloads: AWS certificates one per file and as a bundle, Google's keys as
    a JWKS and as PEM certificates by key id."""
    (tmp_path / "us-east-1.pem").write_bytes(aws.pem)
    (tmp_path / "bundle.pem").write_bytes(aws.pem + aws_elsewhere.pem)
    (tmp_path / "jwks.json").write_text(json.dumps(gcp.jwks()))
    (tmp_path / "certs.json").write_text(json.dumps(gcp.certificates()))
    return tmp_path


@pytest.mark.parametrize("keys", ["jwks.json", "certs.json"])
def test_anchors_loaded_from_files_verify_both_providers(files, aws, gcp, keys):
    anchors = load_anchors({"aws_certificates": [str(files / "us-east-1.pem")], "gcp_jwks": str(files / keys),
                            "gcp_audience": AUDIENCE, "priority": 400, "instance_id_variables": ["instance_id"]})
    now = time.time()
    assert verify(aws.identity(form="rsa2048"), anchors, now).provider == "aws"
    for kid in gcp.keys:
        assert verify(gcp.identity(gcp.token(kid=kid)), anchors, now).provider == "gcp"


def test_a_bundle_file_trusts_every_certificate_in_it(files, aws, aws_elsewhere):
    anchors = load_anchors({"aws_certificates": [str(files / "bundle.pem")]})
    for signer in (aws, aws_elsewhere):
        assert verify(signer.identity(), anchors, time.time()).region == signer.region


def test_the_scope_options_reach_the_checks(files, aws, gcp):
    anchors = load_anchors({
        "aws_certificates": [str(files / "us-east-1.pem")], "allowed_accounts": ["000000000001"],
        "max_age_since_launch": 60,
        "gcp_jwks": str(files / "jwks.json"), "gcp_audience": AUDIENCE, "allowed_projects": ["other"],
        "max_token_age": 30,
    })
    now = int(time.time())  # as the documents' times are, so that the ages below are exact
    assert refusal(aws.identity(), anchors, now) == "Cloud identity refused: account 123456789012 is not allowed."
    assert refusal(aws.identity(aws.document(accountId="000000000001", pending=now - 120)), anchors, now) == (
        "Cloud identity refused: too old: the instance was launched 120 s ago (max_age_since_launch is 60 s).")
    assert refusal(gcp.identity(), anchors, now) == "Cloud identity refused: project tcb-test-project is not allowed."
    assert refusal(gcp.identity(gcp.token(project="other", issued=now - 45)), anchors, now) == (
        "Cloud identity refused: too old: the token was issued 45 s ago (max_token_age is 30 s).")


def test_the_audience_defaults_to_the_servers_own(files, gcp):
    anchors = load_anchors({"gcp_jwks": str(files / "jwks.json")}, default_audience=AUDIENCE)
    assert verify(gcp.identity(), anchors, time.time()).provider == "gcp"
    assert refusal(gcp.identity(gcp.token(audience="https://other.example/")), anchors) == (
        "Cloud identity refused: wrong audience: the token was requested for another audience.")


def test_nothing_configured_refuses_both_providers_by_name(aws, gcp):
    anchors = load_anchors({"priority": 400})
    assert "provider not configured" in refusal(aws.identity(), anchors)
    assert "provider not configured" in refusal(gcp.identity(), anchors)


def config_error(options, **kwargs) -> str:
    with pytest.raises(ConfigError) as error:
        load_anchors(options, **kwargs)
    return str(error.value)


def test_a_missing_file_stops_the_server(tmp_path):
    missing = tmp_path / "us-west-2.pem"
    assert config_error({"aws_certificates": [str(missing)]}) == (
        f"{TABLE}.aws_certificates: {missing}: No such file or directory")
    assert config_error({"gcp_jwks": str(missing), "gcp_audience": AUDIENCE}) == (
        f"{TABLE}.gcp_jwks: {missing}: No such file or directory")


def test_a_directory_is_no_certificate_file(tmp_path):
    assert config_error({"aws_certificates": [str(tmp_path)]}) == (
        f"{TABLE}.aws_certificates: {tmp_path}: Is a directory")


@pytest.mark.parametrize("content", [b"", b"just some text\n", b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"],
                         ids=["empty", "text", "broken-pem"])
def test_a_file_without_a_certificate_stops_the_server(files, content):
    path = files / "not-a-certificate.pem"
    path.write_bytes(content)
    assert config_error({"aws_certificates": [str(files / "us-east-1.pem"), str(path)]}) == (
        f"{TABLE}.aws_certificates: {path}: not a PEM certificate file")


def test_a_certificate_without_an_rsa_key_stops_the_server(tmp_path):
    """AWS's DSA certificate is for the old pkcs7 form, which is not accepted."""
    path = tmp_path / "ec.pem"
    path.write_bytes(pem_of(self_signed(ec.generate_private_key(ec.SECP256R1()), "not rsa")))
    assert config_error({"aws_certificates": [str(path)]}) == (
        f"{TABLE}.aws_certificates: {path}: holds a certificate whose key is not RSA "
        "(use AWS's RSA or RSA-2048 certificates)")


@pytest.mark.parametrize(("content", "problem"), [
    ("not json", "not JSON (a JWKS, or Google's PEM certificates by key id)"),
    ("[]", "holds no keys"),
    ("{}", "holds no keys"),
    ('{"keys": []}', "not a JWKS, nor PEM certificates by key id"),
    ('{"keys": [{"kty": "RSA", "kid": "k"}]}', "not a JWKS, nor PEM certificates by key id"),
    ('{"keys": "none"}', "not a JWKS, nor PEM certificates by key id"),
    ('{"k1": "not a certificate"}', "not a JWKS, nor PEM certificates by key id"),
    ('{"k1": 5}', "not a JWKS, nor PEM certificates by key id"),
], ids=["text", "list", "empty", "no-keys", "rsa-without-n", "keys-not-list", "bad-pem", "not-pem"])
def test_a_google_keys_file_without_usable_keys_stops_the_server(tmp_path, content, problem):
    path = tmp_path / "jwks.json"
    path.write_text(content)
    assert config_error({"gcp_jwks": str(path), "gcp_audience": AUDIENCE}) == f"{TABLE}.gcp_jwks: {path}: {problem}"


def test_jwks_keys_need_a_key_id_and_rsa(tmp_path, gcp):
    jwks = gcp.jwks()
    del jwks["keys"][1]["kid"]
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(jwks))
    assert config_error({"gcp_jwks": str(path), "gcp_audience": AUDIENCE}) == (
        f"{TABLE}.gcp_jwks: {path}: a key has no key id (kid)")
    ec_key = {"kty": "EC", "crv": "P-256", "kid": "ec", "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
              "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}
    path.write_text(json.dumps({"keys": [*gcp.jwks()["keys"], ec_key]}))
    assert config_error({"gcp_jwks": str(path), "gcp_audience": AUDIENCE}) == (
        f"{TABLE}.gcp_jwks: {path}: holds a key that is not RSA (Google signs identity tokens with RS256)")


def test_google_keys_without_an_audience_stop_the_server(files):
    assert config_error({"gcp_jwks": str(files / "jwks.json")}) == (
        f"{TABLE}.gcp_audience must be the audience clients request their tokens for (a URL)")


@pytest.mark.parametrize(("options", "message"), [
    ({"aws_certificates": "/etc/aws.pem"}, "aws_certificates must be a list of PEM file paths"),
    ({"aws_certificates": [""]}, "aws_certificates must be a list of PEM file paths"),
    ({"aws_certificates": ["{us}"], "allowed_accounts": [123456789012]},
     "allowed_accounts must be a list of AWS account ids (12 digits, in quotes)"),
    ({"aws_certificates": ["{us}"], "allowed_accounts": ["prod"]},
     "allowed_accounts must be a list of AWS account ids (12 digits, in quotes)"),
    ({"aws_certificates": ["{us}"], "max_age_since_launch": -1},
     "max_age_since_launch must be a number of seconds (0: no limit)"),
    ({"aws_certificates": ["{us}"], "max_age_since_launch": float("nan")},
     "max_age_since_launch must be a number of seconds (0: no limit)"),
    ({"aws_certificates": ["{us}"], "max_age_since_launch": True},
     "max_age_since_launch must be a number of seconds (0: no limit)"),
    ({"allowed_accounts": ["123456789012"]},
     "allowed_accounts is set but aws_certificates is not: no AWS document could verify"),
    ({"gcp_jwks": 5}, "gcp_jwks must be the path of a JWKS file"),
    ({"gcp_jwks": "{jwks}", "gcp_audience": AUDIENCE, "max_token_age": 0},
     "max_token_age must be a number of seconds above 0"),
    ({"gcp_jwks": "{jwks}", "gcp_audience": AUDIENCE, "max_token_age": "300"},
     "max_token_age must be a number of seconds above 0"),
    ({"gcp_jwks": "{jwks}", "gcp_audience": AUDIENCE, "allowed_projects": "my-project"},
     "allowed_projects must be a list of GCP project ids"),
    ({"gcp_jwks": "{jwks}", "gcp_audience": ""},
     "gcp_audience must be the audience clients request their tokens for (a URL)"),
    ({"allowed_projects": ["my-project"]}, "allowed_projects is set but gcp_jwks is not: no GCP token could verify"),
])
def test_an_unusable_option_stops_the_server_naming_it(files, options, message):
    paths = {"{us}": str(files / "us-east-1.pem"), "{jwks}": str(files / "jwks.json")}
    options = {name: paths.get(value, value) if isinstance(value, str) else
               [paths.get(v, v) for v in value] if isinstance(value, list) else value
               for name, value in options.items()}
    assert config_error(options) == f"{TABLE}.{message}"
