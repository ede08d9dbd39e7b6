"""What a route is: a path, the handler class that serves it, and what each method takes and answers.

Each domain ends its handlers module with its list of ``Endpoint``s, as
jupyter_server's ``services/<domain>/handlers.py`` ends with
``default_handlers``; ``app.make_app`` turns them into the route table, and
the OpenAPI document is built from the same list, so that what is served and
what is documented cannot drift apart.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import tornado.web

from tornado_callback.http.values import DEFAULT_PAGE_SIZE, INT_MAX, MAX_PAGE, MAX_PAGE_SIZE, MAX_SEARCH_LENGTH

# The Application setting holding every Endpoint the application serves (the OpenAPI handler reads it).
ENDPOINTS = "endpoints"


@dataclass(frozen=True)
class Operation:
    method: str
    summary: str
    status: int  # of success
    request: dict[str, Any] | str | None = None  # a schema, or a component name
    response: dict[str, Any] | str | None = None
    paged: bool = False  # the response is a page of ``response``
    list_of: str | None = None  # the admin resource whose list parameters apply
    authenticated: bool = True
    # Statuses other than success this operation answers with; None: the admin API's usual ones.
    errors: tuple[int, ...] | None = None
    parameters: tuple[dict[str, Any], ...] = ()
    request_types: tuple[str, ...] = ("application/json",)
    plain_text: bool = False  # the success may also be the body alone as text/plain (stdout's format=txt)


@dataclass(frozen=True)
class Endpoint:
    path: str  # OpenAPI style: /api/v2/hosts/{id}/
    handler: type[tornado.web.RequestHandler]
    operations: tuple[Operation, ...]
    # What a generic handler serves on this route (the admin API's: a resource's name, a SubList, a Membership).
    serves: Any = None

    @cached_property  # read on every request (APIHandler.initialize)
    def methods(self) -> frozenset[str]:
        return frozenset(op.method for op in self.operations)

    @property
    def pattern(self) -> str:
        """The path as a Tornado pattern, served with and without the trailing slash: the stock
        client scripts treat a redirect as a failure."""
        escaped = re.escape(self.path).replace(r"\{", "{").replace(r"\}", "}")
        pattern = re.sub(r"\{[^}]+\}", "([^/]+)", escaped)
        return pattern[:-1] + "/?" if pattern.endswith("/") else pattern


PAGE_PARAMETERS: tuple[dict[str, Any], ...] = (
    {"name": "page", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE}},
    {"name": "page_size", "in": "query",
     "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE_SIZE, "default": DEFAULT_PAGE_SIZE}},
)


def search_parameter(description: str) -> dict[str, Any]:
    return {"name": "search", "in": "query", "description": description,
            "schema": {"type": "string", "maxLength": MAX_SEARCH_LENGTH}}


# Pieces of the answers' schemas that several domains describe alike.
STRING = {"type": "string"}
TIME = {"type": "string", "nullable": True}
ID = {"type": "integer", "minimum": 1, "maximum": INT_MAX}


def object_schema(properties: dict[str, Any]) -> dict[str, Any]:
    """An object with exactly these properties, every one always present."""
    return {"type": "object", "required": list(properties), "properties": properties}
