"""``/``, ``/api/`` and ``/api/v2/``: where a client or a browser starts, as in AWX.

``/api/`` is AWX's version document (ApiRootView); ``/api/v2/`` its index of
resources (ApiV2RootView), built from the routes served, so that it names
exactly what this server has.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from tornado_callback.http.base import APIHandler
from tornado_callback.http.routes import ENDPOINTS, STRING, Endpoint, Operation, object_schema

API_V2 = "/api/v2/"
# Where ``GET /`` sends a browser: the admins' console (tornado_callback/console), which asks
# for a login first; scripts start at /api/ or /api/v2/.
HOME = "/console/"
# A resource listed at the top of the API: /api/v2/NAME/.
TOP_LEVEL = re.compile(r"/api/v2/([a-z_]+)/")
# AWX's index names its resources by their paths, but one.
AWX_NAMES = {"inventories": "inventory"}


def resource_index(endpoints: Iterable[Endpoint]) -> dict[str, str]:
    """AWX's ``/api/v2/`` answer: each top-level resource this server reads, by AWX's name."""
    return {
        AWX_NAMES.get(found[1], found[1]): endpoint.path
        for endpoint in endpoints
        if (found := TOP_LEVEL.fullmatch(endpoint.path)) and "GET" in endpoint.methods
    }


class HomeHandler(APIHandler):
    def get(self) -> None:
        self.redirect(HOME)


class VersionsHandler(APIHandler):
    def get(self) -> None:
        self.write_json({"description": "tornado-callback REST API", "current_version": API_V2,
                         "available_versions": {"v2": API_V2}})


class IndexHandler(APIHandler):
    def get(self) -> None:
        self.write_json(resource_index(self.application.settings[ENDPOINTS]))


endpoints = [
    Endpoint("/", HomeHandler, (
        Operation("GET", f"Redirects to {HOME}", 302, authenticated=False, errors=()),)),
    Endpoint("/api/", VersionsHandler, (
        Operation("GET", "The API versions served, as AWX lists them", 200, authenticated=False, errors=(),
                  response=object_schema({"description": STRING, "current_version": STRING,
                                          "available_versions": {"type": "object",
                                                                 "additionalProperties": STRING}})),)),
    Endpoint(API_V2, IndexHandler, (
        Operation("GET", "The resources served, by AWX's names, and their paths", 200, authenticated=False,
                  errors=(), response={"type": "object", "additionalProperties": STRING}),)),
]
