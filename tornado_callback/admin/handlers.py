"""The admin API's handlers: parse the request, call the admin service, render AWX's shapes.

Routes come from ``admin.endpoints``, the same declarations the OpenAPI
document is built from.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

import tornado.web

from tornado_callback.admin.endpoints import Endpoint, api_endpoints
from tornado_callback.admin.grants import change_role, list_roles
from tornado_callback.admin.memberships import change_membership
from tornado_callback.admin.openapi import openapi_document
from tornado_callback.admin.service import AdminService, ListQuery, Page
from tornado_callback.callback.handlers import CallbackHandler
from tornado_callback.http.base import (
    APIError,
    APIHandler,
    bad_request,
)
from tornado_callback.http.ping import PingHandler
from tornado_callback.inventory.handlers import InventorySourceUpdateHandler, InventoryUpdateHandler
from tornado_callback.jobs.handlers import (
    JobCancelHandler,
    JobDetailHandler,
    JobListHandler,
    JobStdoutHandler,
)

if TYPE_CHECKING:  # the wiring imports every domain; handlers only name its type
    from tornado_callback.services import Services

LIST_ARGUMENTS = frozenset({"page", "page_size", "search", "order_by"})


class AdminHandler(APIHandler):
    endpoint: Endpoint

    def initialize(self, services: Services, endpoint: Endpoint) -> None:  # type: ignore[override]
        super().initialize(services)
        self.endpoint = endpoint

    @property
    def admin(self) -> AdminService:
        return self.services.admin

    async def prepare(self) -> None:
        if self.request.method not in self.endpoint.methods:
            raise APIError(405, {"detail": f'Method "{self.request.method}" not allowed.'},
                           {"Allow": ", ".join(sorted(self.endpoint.methods))})
        self.principal = await self.authenticated_user()

    def json_body(self) -> Any:
        if not self.request.body:
            return {}
        try:
            return json.loads(self.request.body.decode("utf-8"))
        except UnicodeDecodeError as e:
            raise bad_request("JSON parse error - the body is not UTF-8") from e
        except (ValueError, RecursionError) as e:
            raise bad_request(f"JSON parse error - {e or 'nesting too deep'}") from e

    def list_query(self) -> ListQuery:
        page, page_size = self.page_arguments()
        return ListQuery(
            page=page,
            page_size=page_size,
            search=self.search_argument(),
            order_by=self.get_query_argument("order_by", "") or "",
            filters={name: self.get_query_argument(name) or ""
                     for name in self.request.query_arguments if name not in LIST_ARGUMENTS},
        )

    def write_list(self, page: Page, query: ListQuery) -> None:
        self.write_page(page.count, page.results, query.page, query.page_size)

    def write_no_content(self) -> None:
        self.clear_header("Content-Type")
        self.set_status(204)
        self.finish()


class ListHandler(AdminHandler):
    async def get(self) -> None:
        query = self.list_query()
        self.write_list(await self.admin.list(self.endpoint.resource, self.principal, query), query)

    async def post(self) -> None:
        created = await self.admin.create(self.endpoint.resource, self.principal, self.json_body())
        self.write_json(created, status=201)


class DetailHandler(AdminHandler):
    async def get(self, obj_id: str) -> None:
        self.write_json(await self.admin.get(self.endpoint.resource, self.principal, self.object_id(obj_id)))

    async def put(self, obj_id: str) -> None:
        await self._update(obj_id, partial=False)

    async def patch(self, obj_id: str) -> None:
        await self._update(obj_id, partial=True)

    async def _update(self, obj_id: str, *, partial: bool) -> None:
        self.write_json(await self.admin.update(
            self.endpoint.resource, self.principal, self.object_id(obj_id), self.json_body(), partial=partial))

    async def delete(self, obj_id: str) -> None:
        await self.admin.delete(self.endpoint.resource, self.principal, self.object_id(obj_id))
        self.write_no_content()


class SubListHandler(AdminHandler):
    async def get(self, parent_id: str) -> None:
        spec = self.endpoint.sub_list
        query = self.list_query()
        self.write_list(await self.admin.sub_list(spec, self.principal, self.object_id(parent_id), query), query)

    async def post(self, parent_id: str) -> None:
        created = await self.admin.create_in(
            self.endpoint.sub_list, self.principal, self.object_id(parent_id), self.json_body())
        self.write_json(created, status=201)


class MembersHandler(AdminHandler):
    async def get(self, parent_id: str) -> None:
        query = self.list_query()
        self.write_list(await self.admin.members(
            self.endpoint.membership, self.principal, self.object_id(parent_id), query), query)

    async def post(self, parent_id: str) -> None:
        await change_membership(
            self.admin, self.endpoint.membership, self.principal, self.object_id(parent_id), self.json_body())
        self.write_no_content()


class RolesHandler(AdminHandler):
    async def get(self, obj_id: str) -> None:
        query = self.list_query()
        self.write_list(await list_roles(
            self.admin, self.endpoint.resource, self.principal, self.object_id(obj_id), query), query)

    async def post(self, obj_id: str) -> None:
        await change_role(
            self.admin, self.endpoint.resource, self.principal, self.object_id(obj_id), self.json_body())
        self.write_no_content()


class SurveySpecHandler(AdminHandler):
    async def get(self, template_id: str) -> None:
        self.write_json(await self.services.template_actions.survey_spec(
            self.principal, self.object_id(template_id)))

    async def post(self, template_id: str) -> None:
        await self.services.template_actions.set_survey_spec(
            self.principal, self.object_id(template_id), self.json_body())
        self.write_no_content()

    async def delete(self, template_id: str) -> None:
        await self.services.template_actions.set_survey_spec(
            self.principal, self.object_id(template_id), None)
        self.write_no_content()


class LaunchHandler(AdminHandler):
    async def get(self, template_id: str) -> None:
        self.write_json(await self.services.template_actions.launch_info(
            self.principal, self.object_id(template_id)))

    async def post(self, template_id: str) -> None:
        launched = await self.services.template_actions.launch(
            self.principal, self.object_id(template_id), self.json_body())
        self.set_header("Location", launched["url"])
        self.write_json(launched, status=201)


class MeHandler(AdminHandler):
    async def get(self) -> None:
        query = ListQuery()
        self.write_list(await self.admin.me(self.principal), query)


class OpenAPIHandler(AdminHandler):
    async def prepare(self) -> None:
        """Public, like AWX's schema: it describes the API, it holds no data."""

    async def get(self) -> None:
        self.write_json(openapi_document(api_endpoints()))


HANDLERS: dict[str, type[APIHandler]] = {
    "list": ListHandler, "detail": DetailHandler, "sub_list": SubListHandler,
    "members": MembersHandler, "roles": RolesHandler, "survey_spec": SurveySpecHandler,
    "launch": LaunchHandler, "me": MeHandler, "openapi": OpenAPIHandler,
    "ping": PingHandler, "callback": CallbackHandler,
    "jobs": JobListHandler, "job": JobDetailHandler, "job_stdout": JobStdoutHandler,
    "job_cancel": JobCancelHandler, "inventory_source_update": InventorySourceUpdateHandler,
    "inventory_update": InventoryUpdateHandler,
}


def route_pattern(path: str) -> str:
    """``/api/v2/hosts/{id}/`` as a Tornado pattern, served with and without the trailing slash."""
    pattern = re.sub(r"\{[^}]+\}", "([^/]+)", re.escape(path).replace(r"\{", "{").replace(r"\}", "}"))
    return pattern[:-1] + "/?" if pattern.endswith("/") else pattern


def api_routes() -> list[tuple[str, type[tornado.web.RequestHandler], dict[str, Any]]]:
    """Every declared endpoint's route; admin handlers also receive their declaration."""
    return [
        (route_pattern(e.path), HANDLERS[e.kind],
         {"endpoint": e} if issubclass(HANDLERS[e.kind], AdminHandler) else {})
        for e in api_endpoints()
    ]
