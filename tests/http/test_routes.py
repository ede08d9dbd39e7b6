"""The route table as a reader and a client rely on it (issue 16): each route names the class
that serves it, the OpenAPI document describes exactly the routes, and a method a route does
not serve is answered 405 with the methods it does."""

from __future__ import annotations

import json
import re

import pytest
import tornado.web
from tornado.routing import Rule

from tornado_callback.http.routes import Endpoint

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")


def implemented(handler: type[tornado.web.RequestHandler]) -> set[str]:
    """The methods a handler class defines (Tornado's defaults answer 405)."""
    return {m for m in METHODS if getattr(handler, m.lower()) is not getattr(tornado.web.RequestHandler, m.lower())}


def api_rules(app: tornado.web.Application) -> list[Rule]:
    """The API's routes: all but the console's, which follow them (tests/console)."""
    return [rule for rule in app.wildcard_router.rules if not rule.matcher.regex.pattern.startswith("/console")]


def declarations(app: tornado.web.Application) -> list[Endpoint]:
    """The declaration each route of ``app`` was built from, in route order."""
    return [rule.target_kwargs["endpoint"] for rule in api_rules(app)]


def example_path(endpoint: Endpoint) -> str:
    return re.sub(r"\{[^}]+\}", "1", endpoint.path)


def test_every_route_names_the_class_that_serves_the_methods_it_declares(app):
    rules = api_rules(app)
    assert len(rules) > 30
    declared: dict[type[tornado.web.RequestHandler], set[str]] = {}
    for rule, endpoint in zip(rules, declarations(app), strict=True):
        assert rule.target is endpoint.handler, endpoint.path
        assert endpoint.methods <= implemented(rule.target), endpoint.path
        declared.setdefault(rule.target, set()).update(endpoint.methods)
        # No earlier route takes this path, with or without its trailing slash.
        for path in (example_path(endpoint), example_path(endpoint).rstrip("/")):
            first = next(r for r in rules if r.matcher.regex.match(path))
            assert first is rule, (path, first.target)
    # A generic class (a resource's list) serves fewer methods on a read-only resource's
    # route, but none that no route declares: that code could never run.
    assert {handler: implemented(handler) for handler in declared} == declared


@pytest.mark.gen_test
async def test_the_openapi_document_describes_exactly_the_routes(app, fetch):
    response = await fetch("/api/v2/openapi.json")
    assert response.code == 200
    documented = {(path, method.upper())
                  for path, operations in json.loads(response.body)["paths"].items() for method in operations}
    routed = {(endpoint.path, method) for endpoint in declarations(app) for method in endpoint.methods}
    assert documented == routed


@pytest.mark.gen_test(timeout=60)
async def test_a_method_a_route_does_not_serve_is_405_with_the_methods_it_does(app, fetch):
    for endpoint in declarations(app):
        allow = ", ".join(sorted(endpoint.methods))
        for method in (*METHODS, "PROPFIND"):
            if method in endpoint.methods:
                continue
            # Without credentials, with a body: the method is refused before either is looked at.
            response = await fetch(example_path(endpoint), method=method, body=None if method == "HEAD" else "{}",
                                   allow_nonstandard_methods=True)
            assert (response.code, response.headers.get("Allow")) == (405, allow), (method, endpoint.path)
            if method != "HEAD":
                assert json.loads(response.body) == {"detail": f'Method "{method}" not allowed.'}
