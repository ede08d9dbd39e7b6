"""/api/v2/cloud_identities/{provider}/{instance_id}/: an admin resets an instance's nonce binding."""

from __future__ import annotations

from tornado_callback.http.base import APIHandler
from tornado_callback.http.routes import Endpoint, Operation


class CloudIdentityBindingHandler(APIHandler):
    async def delete(self, provider: str, instance_id: str) -> None:
        principal = await self.authenticated_user()
        await self.services.identities.reset(principal, provider, instance_id)
        self.clear_header("Content-Type")
        self.set_status(204)
        self.finish()


endpoints = [
    Endpoint("/api/v2/cloud_identities/{provider}/{instance_id}/", CloudIdentityBindingHandler, (
        Operation("DELETE", "Forget the client nonce an instance is bound to (superuser), so that its "
                  "next verified callback binds it again; 404 when it has no binding", 204,
                  errors=(401, 403, 404)),
    )),
]
