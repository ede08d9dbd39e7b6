"""GCP: the instance identity token (``.../service-accounts/default/identity?audience=AUD&format=full``).

An RS256 JWT that PyJWT verifies against the Google key its ``kid`` names;
``aud`` must be this server's audience, ``iss`` Google's, ``exp`` ahead and
``iat`` within ``max_token_age``. The times are checked here against the
caller's ``now`` (one clock for the whole verification, and for the tests),
not by PyJWT's own reading of the clock.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Mapping
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from tornado_callback.identity import fields
from tornado_callback.identity.fields import malformed
from tornado_callback.identity.verdict import IdentityRefused, VerifiedIdentity, digest

NOT_CONFIGURED = "provider not configured: this server has no Google keys (gcp_jwks)"
# A list, not a tuple: PyJWT 2.9 takes only a list as several accepted issuers.
ISSUERS = ["https://accounts.google.com", "accounts.google.com"]
DEFAULT_MAX_TOKEN_AGE = 300.0
INSTANCE_FACTS = ("instance_id", "instance_name", "project_id", "zone")
DECODE_OPTIONS: Any = {
    "require": ["exp", "iat", "aud", "iss"],
    # One audience, equal to ours: a token minted for a list of services is not for us alone.
    "strict_aud": True,
    "verify_exp": False,
    "verify_iat": False,
    "verify_nbf": False,
}


class GcpAnchors:
    """Google's token signing keys by key id, the audience tokens must name, and what they may prove."""

    def __init__(self, keys: Mapping[str, RSAPublicKey], audience: str, allowed_projects: Iterable[str] = (),
                 max_token_age: float = DEFAULT_MAX_TOKEN_AGE) -> None:
        self.keys = dict(keys)
        self.audience = audience
        # Empty: any project whose token verifies.
        self.allowed_projects = frozenset(allowed_projects)
        self.max_token_age = max_token_age


def verify_gcp(identity: Mapping[str, Any], anchors: GcpAnchors | None, now: float) -> VerifiedIdentity:
    if anchors is None:
        raise IdentityRefused(NOT_CONFIGURED)
    token = fields.text(identity, "token", fields.TOKEN_LIMIT)
    claims = _verified_claims(token, anchors)
    expires_at, issued_at = claims["exp"], claims["iat"]
    if not all(isinstance(t, int | float) and not isinstance(t, bool) for t in (expires_at, issued_at)):
        raise malformed("the token's exp or iat is not a time")
    if expires_at <= now:
        raise IdentityRefused(f"expired: the token expired {now - expires_at:.0f} s ago")
    if now - issued_at > anchors.max_token_age:
        raise IdentityRefused(f"too old: the token was issued {now - issued_at:.0f} s ago "
                              f"(max_token_age is {anchors.max_token_age:g} s)")
    instance = _instance(claims)
    project = instance["project_id"]
    if anchors.allowed_projects and project not in anchors.allowed_projects:
        raise IdentityRefused(f"project {project} is not allowed")
    zone = instance["zone"]
    return VerifiedIdentity(
        provider="gcp",
        instance_id=instance["instance_id"],
        account=project,
        region=zone.rsplit("-", 1)[0],
        zone=zone,
        proof_digest=digest(token),
        instance_name=instance["instance_name"],
        expires_at=float(expires_at),
    )


def _key_id(token: str) -> Any:
    """The ``kid`` of the token's header, unverified: it only chooses the key that verifies.
    Read here because PyJWT's get_unverified_header decodes and checks the whole token,
    which doubled the cost of a verification (140 us of 450 us under load)."""
    segment = token.partition(".")[0]
    try:
        header = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (ValueError, RecursionError):
        header = None
    if not isinstance(header, dict):
        raise malformed("the token is not a JWT")
    return header.get("kid")


def _verified_claims(token: str, anchors: GcpAnchors) -> dict[str, Any]:
    kid = _key_id(token)
    key = anchors.keys.get(kid) if isinstance(kid, str) else None
    if key is None:
        raise IdentityRefused("unknown key: no configured Google key has the token's key id")
    try:
        return jwt.decode(token, key, algorithms=["RS256"], audience=anchors.audience, issuer=ISSUERS,
                          options=DECODE_OPTIONS)
    except jwt.InvalidSignatureError:
        raise IdentityRefused("bad signature: the token does not match its signature") from None
    except jwt.InvalidAudienceError:
        raise IdentityRefused("wrong audience: the token was requested for another audience") from None
    except jwt.InvalidIssuerError:
        raise IdentityRefused("wrong issuer: the token was not issued by Google") from None
    except jwt.MissingRequiredClaimError as e:
        raise malformed(f"the token has no {e.claim}") from None
    except jwt.InvalidAlgorithmError:
        raise malformed("the token is not signed with RS256") from None
    except jwt.PyJWTError:
        raise malformed("the token is not a JWT") from None


def _instance(claims: Mapping[str, Any]) -> dict[str, str]:
    google = claims.get("google")
    instance = google.get("compute_engine") if isinstance(google, dict) else None
    if not isinstance(instance, dict) or not all(isinstance(instance.get(n), str) and instance[n]
                                                 for n in INSTANCE_FACTS):
        raise malformed("the token has no instance facts (request it with format=full)")
    return instance
