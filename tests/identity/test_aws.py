"""AWS instance identity documents: both signature forms verify against the configured certificates,
the facts come from the signed document, and each refusal says why."""

from __future__ import annotations

import hashlib
import json
import time

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization.pkcs7 import PKCS7Options

from tests.identity.cloud import ACCOUNT, aws_time
from tests.identity.conftest import aws_anchors, refusal
from tornado_callback.identity import TrustAnchors, verify

NONCE = "9f6c2a1e-5d4b-4e8f-a7c3-0b1d2e3f4a5b"
BAD_SIGNATURE = "Cloud identity refused: bad signature: the document does not match its signature."
UNKNOWN_CERTIFICATE = "Cloud identity refused: unknown certificate: no configured AWS certificate made this signature."


def test_a_signed_document_proves_its_instance_and_facts(aws, anchors):
    launched = time.time() - 600
    document = aws.document("i-0aaaabbbbcccc1111", pending=launched)
    identity = verify(aws.identity(document, nonce=NONCE), anchors, time.time())
    assert identity.provider == "aws"
    assert identity.instance_id == "i-0aaaabbbbcccc1111"
    assert identity.facts() == {
        "instance_id": "i-0aaaabbbbcccc1111",
        "account_id": ACCOUNT,
        "region": "us-east-1",
        "availability_zone": "us-east-1a",
        "private_ip_address": "10.0.1.23",
        "instance_type": "t3.micro",
        "image_id": "ami-0abcdef1234567890",
    }
    assert identity.describe() == "aws instance i-0aaaabbbbcccc1111 of account 123456789012 in us-east-1a"
    assert identity.launched_at == int(launched)
    assert identity.expires_at is None
    # What a replay binding keeps: digests, never the nonce or the document.
    assert identity.nonce_digest == hashlib.sha256(NONCE.encode()).hexdigest()
    assert identity.proof_digest == hashlib.sha256(document.encode()).hexdigest()


@pytest.mark.parametrize("variant", [
    {},  # as IMDS serves it: BER with indefinite lengths, the document inside
    {"streaming": False},  # DER
    {"options": (PKCS7Options.DetachedSignature,)},  # the document only beside it
    {"options": (PKCS7Options.NoAttributes, PKCS7Options.NoCerts)},  # the signature over the document itself
    {"options": ()},  # the signer's certificate carried along (not trusted, not needed)
    {"digest": hashes.SHA384()},
    {"digest": hashes.SHA512()},
], ids=["ber", "der", "detached", "no-attributes", "with-certificate", "sha384", "sha512"])
def test_the_rsa2048_form_proves_the_same(aws, anchors, variant):
    document = aws.document("i-0rsa2048")
    identity = {"provider": "aws", "document": document, "rsa2048": aws.rsa2048(document, **variant), "nonce": NONCE}
    verified = verify(identity, anchors, time.time())
    assert (verified.instance_id, verified.account, verified.zone) == ("i-0rsa2048", ACCOUNT, "us-east-1a")


@pytest.mark.parametrize("form", ["signature", "rsa2048"])
def test_a_bundle_of_certificates_verifies_each_regions_documents(aws, aws_elsewhere, form):
    anchors = aws_anchors(aws, aws_elsewhere)
    for signer in (aws, aws_elsewhere):
        document = signer.document(f"i-0in{signer.region}")
        assert verify(signer.identity(document, form=form), anchors, time.time()).region == signer.region


@pytest.mark.parametrize("form", ["signature", "rsa2048"])
def test_a_tampered_document_is_a_bad_signature(aws, anchors, form):
    signed = aws.document("i-0honest")
    identity = aws.identity(signed, form=form)
    identity["document"] = signed.replace("i-0honest", "i-0victim")
    assert refusal(identity, anchors) == BAD_SIGNATURE


@pytest.mark.parametrize("options", [(PKCS7Options.DetachedSignature,),
                                     (PKCS7Options.DetachedSignature, PKCS7Options.NoAttributes)],
                         ids=["digest-attribute", "no-attributes"])
def test_a_tampered_document_beside_a_detached_rsa2048_is_a_bad_signature(aws, anchors, options):
    signed = aws.document("i-0honest")
    identity = {"provider": "aws", "document": signed.replace("i-0honest", "i-0victim"),
                "rsa2048": aws.rsa2048(signed, options=options), "nonce": NONCE}
    assert refusal(identity, anchors) == BAD_SIGNATURE


@pytest.mark.parametrize("form", ["signature", "rsa2048"])
def test_a_signature_by_a_certificate_not_configured_is_refused(aws_elsewhere, anchors, form):
    assert refusal(aws_elsewhere.identity(form=form), anchors) == UNKNOWN_CERTIFICATE


def test_an_account_outside_allowed_accounts_is_refused(aws):
    elsewhere = aws.identity(aws.document(accountId="210987654321"))
    anchors = aws_anchors(aws, allowed_accounts=[ACCOUNT])
    assert refusal(elsewhere, anchors) == "Cloud identity refused: account 210987654321 is not allowed."
    assert verify(aws.identity(), anchors, time.time()).account == ACCOUNT


def test_a_document_older_than_max_age_since_launch_is_refused(aws):
    launched = 1_700_000_000
    identity = aws.identity(aws.document(pending=launched))
    anchors = aws_anchors(aws, max_age_since_launch=3600)
    assert verify(identity, anchors, launched + 3600).launched_at == launched
    assert refusal(identity, anchors, now=launched + 7200) == (
        "Cloud identity refused: too old: the instance was launched 7200 s ago (max_age_since_launch is 3600 s).")
    # 0, the default: an instance may call back however long ago it was launched.
    assert verify(identity, aws_anchors(aws), launched + 10 * 365 * 86400).instance_id


@pytest.mark.parametrize(("document", "reason"), [
    ("not json at all", "the document is not JSON"),
    ('["a", "list"]', "the document is not a JSON object"),
    ('{"accountId": "123456789012"}', "the document has no instanceId"),
])
def test_a_signed_document_that_is_not_an_identity_document_is_malformed(aws, anchors, document, reason):
    assert refusal(aws.identity(document), anchors) == f"Cloud identity refused: malformed: {reason}."


@pytest.mark.parametrize(("fields", "reason"), [
    ({"instanceId": 42}, "the document has no instanceId"),
    ({"region": ""}, "the document has no region"),
    ({"pendingTime": "last tuesday"}, "the document's pendingTime is not a time"),
    ({"pendingTime": "2016-11-19T16:32:11"}, "the document's pendingTime is not a time"),  # no zone: no time
    ({"privateIp": ["10.0.0.1"]}, "the document's privateIp is not a string"),
])
def test_a_signed_document_with_unusable_fields_is_malformed(aws, anchors, fields, reason):
    assert refusal(aws.identity(aws.document(**fields)), anchors) == f"Cloud identity refused: malformed: {reason}."


def test_optional_facts_may_be_missing(aws, anchors):
    document = json.dumps({"instanceId": "i-0bare", "accountId": ACCOUNT, "region": "eu-west-1",
                           "availabilityZone": "eu-west-1c", "pendingTime": aws_time(time.time()),
                           "privateIp": None})
    identity = verify(aws.identity(document), anchors, time.time())
    assert identity.facts() == {"instance_id": "i-0bare", "account_id": ACCOUNT, "region": "eu-west-1",
                                "availability_zone": "eu-west-1c"}


@pytest.mark.parametrize(("change", "reason"), [
    (lambda i: i.pop("nonce"), "nonce is missing"),
    (lambda i: i.update(nonce="short"), "nonce is shorter than 16 characters"),
    (lambda i: i.update(nonce="n" * 129), "nonce is longer than 128 characters"),
    (lambda i: i.update(rsa2048="TUlJ"), "give one of signature and rsa2048"),
    (lambda i: i.pop("signature"), "give one of signature and rsa2048"),
    (lambda i: i.update(signature="not base64!"), "signature is not base64"),
    (lambda i: i.update(signature="QUJD" * 600), "signature is longer than 2048 characters"),
    (lambda i: i.update(document="{" + " " * 5000 + "}"), "document is longer than 4096 characters"),
])
def test_a_malformed_aws_identity_is_refused_before_any_signature_check(aws, anchors, change, reason):
    identity = aws.identity()
    change(identity)
    assert refusal(identity, anchors) == f"Cloud identity refused: malformed: {reason}."


def test_a_signature_of_the_wrong_length_was_made_by_no_configured_certificate(aws, anchors):
    identity = aws.identity()
    identity["signature"] = "QUJDRA=="  # valid base64 of four bytes
    assert refusal(identity, anchors) == UNKNOWN_CERTIFICATE


def test_without_aws_certificates_aws_documents_are_refused_as_not_configured(aws):
    anchors = TrustAnchors()
    assert refusal(aws.identity(), anchors) == (
        "Cloud identity refused: provider not configured: this server has no AWS certificates (aws_certificates).")
    # Even a malformed one: the admin learns what is missing, not what else is wrong.
    assert refusal({"provider": "aws"}, anchors) == refusal(aws.identity(), anchors)
