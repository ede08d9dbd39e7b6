"""The callback's judge of signed cloud identities, and the admin's reset of a binding.

Verification happens here, in the core, before any resolver runs: resolvers
(built-in or third-party) import only the plugin API, which sits below this
package, and a proof must be spent once per callback, not once per resolver
that looks at it. The chain receives the verdict as ``plugin.CloudIdentity``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from tornado_callback import plugin
from tornado_callback.accounts.service import Principal
from tornado_callback.errors import NotFound, PermissionDenied
from tornado_callback.identity.replay import MAX_INSTANCE_ID, ReplayGuard, unbind
from tornado_callback.identity.verdict import IdentityRefused
from tornado_callback.identity.verify import TrustAnchors, verify
from tornado_callback.store.database import Database

PROVIDERS = ("aws", "gcp")


class CloudIdentities:
    def __init__(self, db: Database, anchors: TrustAnchors) -> None:
        self.db = db
        self.anchors = anchors
        self.replay = ReplayGuard(db)

    async def judge(self, cloud_identity: Any) -> plugin.CloudIdentity:
        """The verdict on a callback's ``cloud_identity`` field. A proof that verifies is spent
        (GCP) or binds its instance (AWS) here: call this once per POST, never for a GET."""
        now = time.time()
        try:
            verified = verify(cloud_identity, self.anchors, now)
            await self.replay.admit(verified, now)
        except IdentityRefused as e:
            return plugin.CloudIdentity(provider=_claimed_provider(cloud_identity), refusal=e.reason)
        return plugin.CloudIdentity(
            provider=verified.provider,
            instance_id=verified.instance_id,
            facts=verified.facts(),
            description=verified.describe(),
        )

    async def reset(self, principal: Principal, provider: str, instance_id: str) -> None:
        """Forget the nonce an instance is bound to (it was rebuilt and made a new one), so
        that its next verified callback binds it again. Superusers only; NotFound without a binding."""
        if not principal.is_superuser:
            raise PermissionDenied()
        if provider not in PROVIDERS or len(instance_id) > MAX_INSTANCE_ID or not await self.db.write(
                unbind, provider, instance_id):
            raise NotFound()


def _claimed_provider(cloud_identity: Any) -> str:
    """The provider the caller named, for the trace: only one this server knows (it is hostile input)."""
    provider = cloud_identity.get("provider") if isinstance(cloud_identity, Mapping) else None
    return provider if provider in PROVIDERS else ""
