"""Signers with real keys, made once per session (an RSA key takes tens of milliseconds), and the
anchors a server configured with their certificates would hold."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from tests.identity.cloud import AUDIENCE, AwsSigner, GcpSigner
from tornado_callback.identity import IdentityRefused, TrustAnchors, verify
from tornado_callback.identity.aws import AwsAnchors
from tornado_callback.identity.gcp import GcpAnchors


@pytest.fixture(scope="session")
def aws() -> AwsSigner:
    return AwsSigner("us-east-1")


@pytest.fixture(scope="session")
def aws_elsewhere() -> AwsSigner:
    """Another region's signer, whose certificate the server was not given."""
    return AwsSigner("ap-east-1")


@pytest.fixture(scope="session")
def gcp() -> GcpSigner:
    return GcpSigner()


@pytest.fixture(scope="module")
def trust_files(tmp_path_factory, aws: AwsSigner, gcp: GcpSigner) -> dict[str, Any]:
    """The trust anchors' options as an admin writes them: files of the clouds' public keys."""
    directory = tmp_path_factory.mktemp("anchors")
    (directory / "aws.pem").write_bytes(aws.pem)
    (directory / "jwks.json").write_text(json.dumps(gcp.jwks()))
    return {"aws_certificates": [str(directory / "aws.pem")], "gcp_jwks": str(directory / "jwks.json")}


def aws_anchors(*signers: AwsSigner, **scope: Any) -> TrustAnchors:
    return TrustAnchors(aws=AwsAnchors([s.certificate for s in signers], **scope))


def gcp_anchors(signer: GcpSigner, **scope: Any) -> TrustAnchors:
    keys = {kid: key.public_key() for kid, key in signer.keys.items()}
    return TrustAnchors(gcp=GcpAnchors(keys, AUDIENCE, **scope))


@pytest.fixture(scope="session")
def anchors(aws: AwsSigner, gcp: GcpSigner) -> TrustAnchors:
    """Both providers configured, no scope: any account or project whose proof verifies."""
    return TrustAnchors(aws=aws_anchors(aws).aws, gcp=gcp_anchors(gcp).gcp)


def refusal(identity: Any, anchors: TrustAnchors, now: float | None = None) -> str:
    """The callback's answer to ``identity`` (``{"msg": ...}``); fails the test if it verified."""
    with pytest.raises(IdentityRefused) as refused:
        verify(identity, anchors, time.time() if now is None else now)
    return refused.value.message
