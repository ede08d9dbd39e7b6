from __future__ import annotations

from tornado_callback import __version__
from tornado_callback.http.base import APIHandler


class PingHandler(APIHandler):
    """No authentication: load balancers and monitoring ask whether we are up."""

    async def get(self) -> None:
        self.write_json({"version": __version__, "database": await self.services.db.ping()})
