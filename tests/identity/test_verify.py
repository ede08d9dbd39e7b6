"""The entry, ``verify``: any body a caller can send ends in a verified identity or a refusal that names
the problem, never in another exception, and never repeats the caller's proof."""

from __future__ import annotations

import time
from types import MappingProxyType

import pytest

from tests.identity.conftest import refusal
from tornado_callback.identity import IdentityRefused, verify

HOSTILE_VALUES = [None, 0, 1.5, True, [], ["x"], {}, {"a": 1}, "", " ", "x" * 100_000, "\ud800", "é", "\0"]


@pytest.mark.parametrize("body", ["aws", ["provider", "aws"], None, 5])
def test_a_cloud_identity_that_is_not_an_object_is_malformed(anchors, body):
    assert refusal(body, anchors) == "Cloud identity refused: malformed: cloud_identity must be an object."


@pytest.mark.parametrize("provider", [None, "azure", "AWS", ["aws"], {"aws": 1}, 1])
def test_an_unknown_provider_is_malformed(anchors, provider):
    assert refusal({"provider": provider, "token": "x"}, anchors) == (
        "Cloud identity refused: malformed: provider must be aws or gcp.")


@pytest.mark.parametrize(("value", "reason"), [
    (None, "is missing"),
    (42, "must be a string"),
    (["a"], "must be a string"),
    ({"a": 1}, "must be a string"),
    ("", "is empty"),
    ("caf\u00e9", "is not ASCII text"),
    ("\ud800", "is not ASCII text"),
])
@pytest.mark.parametrize(("provider", "field"), [("aws", "document"), ("aws", "nonce"), ("aws", "signature"),
                                                 ("aws", "rsa2048"), ("gcp", "token")])
def test_a_field_of_the_wrong_kind_is_named(aws, gcp, anchors, provider, field, value, reason):
    identity = aws.identity(form="rsa2048" if field == "rsa2048" else "signature") if provider == "aws" \
        else gcp.identity()
    identity[field] = value
    assert refusal(identity, anchors) == f"Cloud identity refused: malformed: {field} {reason}."


@pytest.mark.parametrize("form", ["aws-signature", "aws-rsa2048", "gcp"])
def test_no_hostile_value_in_any_field_raises_anything_but_a_refusal(aws, gcp, anchors, form):
    original = {"aws-signature": aws.identity(), "aws-rsa2048": aws.identity(form="rsa2048"),
                "gcp": gcp.identity()}[form]
    for field in original:
        for value in HOSTILE_VALUES:
            with pytest.raises(IdentityRefused):
                verify({**original, field: value}, anchors, time.time())


def test_any_mapping_may_carry_the_identity(aws, anchors):
    assert verify(MappingProxyType(aws.identity()), anchors, time.time()).instance_id == "i-0123456789abcdef0"


def test_a_refusal_never_repeats_the_proof(aws, aws_elsewhere, gcp, anchors):
    nonce = "NONCE-THAT-MUST-STAY-SECRET-0001"
    document = aws.document()
    refusals = [
        refusal({**aws.identity(document, nonce=nonce), "document": document.replace("i-0", "i-9")}, anchors),
        refusal(aws_elsewhere.identity(nonce=nonce), anchors),
        refusal(aws.identity(aws.document(pendingTime="soon"), nonce=nonce), anchors),
        refusal({**aws.identity(nonce=nonce), "signature": "@@@"}, anchors),
        refusal(gcp.identity(gcp.token(audience="https://elsewhere.example/")), anchors),
    ]
    token = gcp.token()
    proofs = [nonce, document, *document.splitlines()[1:-1], token, *token.split(".")]
    assert not [(m, p) for m in refusals for p in proofs if p.strip() and p.strip() in m]
