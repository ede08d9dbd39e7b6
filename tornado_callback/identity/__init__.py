"""Signed cloud identity (API.md section 4): offline verification of AWS instance identity
documents and GCP instance identity tokens against the trust anchors an admin configured.

    anchors = load_anchors(options, default_audience=base_url)   # once, at start
    identity = verify(body["cloud_identity"], anchors, time.time())  # or IdentityRefused

Modules: ``verdict`` (the outcome types), ``fields`` (bounded reading of the
caller's fields), ``aws`` and ``pkcs7`` (AWS's two signature forms), ``gcp``,
``verify`` (the entry), ``config`` (the plugins.toml options, the anchors).
"""

from tornado_callback.identity.config import load_anchors
from tornado_callback.identity.verdict import IdentityRefused, VerifiedIdentity
from tornado_callback.identity.verify import TrustAnchors, verify

__all__ = ["IdentityRefused", "TrustAnchors", "VerifiedIdentity", "load_anchors", "verify"]
