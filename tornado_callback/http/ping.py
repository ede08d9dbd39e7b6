"""/api/v2/ping/: whether the server and its database are up."""

from __future__ import annotations

from tornado_callback import __version__
from tornado_callback.http.base import APIHandler
from tornado_callback.http.routes import Endpoint, Operation


class PingHandler(APIHandler):
    """No authentication: load balancers and monitoring ask whether we are up."""

    async def get(self) -> None:
        self.write_json({"version": __version__, "database": await self.services.db.ping()})


endpoints = [
    Endpoint("/api/v2/ping/", PingHandler, (
        Operation("GET", "Whether the server and its database are up", 200, authenticated=False,
                  errors=(), response={"type": "object", "required": ["version", "database"],
                                       "properties": {"version": {"type": "string"},
                                                      "database": {"type": "boolean"}}}),)),
]
