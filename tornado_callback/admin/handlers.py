"""The admin API's handlers: parse the request, call the admin service, render AWX's shapes.

The module ends with its endpoints: the catalog's resources (a collection, a
detail and a roles list each, sub-lists, memberships), each generated from the
resource's declaration, and the template actions, ``me`` and this document.
"""

from __future__ import annotations

import json
from typing import Any

from tornado_callback.admin.catalog import MEMBERSHIPS, RESOURCES, SUB_LISTS
from tornado_callback.admin.grants import ROLE_ENTRY_SCHEMA, change_role, grant_schema, list_roles
from tornado_callback.admin.memberships import change_membership
from tornado_callback.admin.openapi import openapi_document
from tornado_callback.admin.resource import API, Membership, Resource, RoleScoped, SubList
from tornado_callback.admin.service import AdminService, ListQuery, Page
from tornado_callback.admin.template_actions import (
    LAUNCH_BODY_SCHEMA,
    LAUNCH_INFO_SCHEMA,
    LAUNCHED_SCHEMA,
    SURVEY_SPEC_SCHEMA,
)
from tornado_callback.http.base import APIHandler, bad_request
from tornado_callback.http.routes import ENDPOINTS, ID, Endpoint, Operation

LIST_ARGUMENTS = frozenset({"page", "page_size", "search", "order_by"})
ASSOCIATION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["id"],
    "properties": {"id": ID, "disassociate": {"type": "boolean"}},
}


class AdminHandler(APIHandler):
    """Authenticated before any method runs."""

    endpoint: Endpoint

    @property
    def admin(self) -> AdminService:
        return self.services.admin

    async def prepare(self) -> None:
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


class ResourceHandler(AdminHandler):
    @property
    def resource(self) -> str:
        """The name of the catalog's resource this route serves."""
        return self.endpoint.serves


class ListHandler(ResourceHandler):
    async def get(self) -> None:
        query = self.list_query()
        self.write_list(await self.admin.list(self.resource, self.principal, query), query)

    async def post(self) -> None:
        self.write_json(await self.admin.create(self.resource, self.principal, self.json_body()), status=201)


class DetailHandler(ResourceHandler):
    async def get(self, obj_id: str) -> None:
        self.write_json(await self.admin.get(self.resource, self.principal, self.object_id(obj_id)))

    async def put(self, obj_id: str) -> None:
        await self._update(obj_id, partial=False)

    async def patch(self, obj_id: str) -> None:
        await self._update(obj_id, partial=True)

    async def _update(self, obj_id: str, *, partial: bool) -> None:
        self.write_json(await self.admin.update(
            self.resource, self.principal, self.object_id(obj_id), self.json_body(), partial=partial))

    async def delete(self, obj_id: str) -> None:
        await self.admin.delete(self.resource, self.principal, self.object_id(obj_id))
        self.write_no_content()


class RolesHandler(ResourceHandler):
    async def get(self, obj_id: str) -> None:
        query = self.list_query()
        self.write_list(await list_roles(
            self.admin, self.resource, self.principal, self.object_id(obj_id), query), query)

    async def post(self, obj_id: str) -> None:
        await change_role(self.admin, self.resource, self.principal, self.object_id(obj_id), self.json_body())
        self.write_no_content()


class SubListHandler(AdminHandler):
    @property
    def sub_list(self) -> SubList:
        return self.endpoint.serves

    async def get(self, parent_id: str) -> None:
        query = self.list_query()
        self.write_list(await self.admin.sub_list(
            self.sub_list, self.principal, self.object_id(parent_id), query), query)

    async def post(self, parent_id: str) -> None:
        created = await self.admin.create_in(
            self.sub_list, self.principal, self.object_id(parent_id), self.json_body())
        self.write_json(created, status=201)


class MembersHandler(AdminHandler):
    @property
    def membership(self) -> Membership:
        return self.endpoint.serves

    async def get(self, parent_id: str) -> None:
        query = self.list_query()
        self.write_list(await self.admin.members(
            self.membership, self.principal, self.object_id(parent_id), query), query)

    async def post(self, parent_id: str) -> None:
        await change_membership(
            self.admin, self.membership, self.principal, self.object_id(parent_id), self.json_body())
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
        await self.services.template_actions.set_survey_spec(self.principal, self.object_id(template_id), None)
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
        self.write_list(await self.admin.me(self.principal), ListQuery())


class OpenAPIHandler(AdminHandler):
    async def prepare(self) -> None:
        """Public, like AWX's schema: it describes the API, it holds no data."""

    async def get(self) -> None:
        # Every endpoint the application routes (app.make_app hands them over), not only admin's.
        self.write_json(openapi_document(self.application.settings[ENDPOINTS]))


def _collection(r: Resource) -> list[Endpoint]:
    ops = [Operation("GET", f"List {r.name}", 200, response=r.type, paged=True, list_of=r.name)]
    if r.writable:
        ops.append(Operation("POST", f"Create a {r.type}", 201, request=f"{r.type}_create", response=r.type))
    found = [Endpoint(f"{API}/{r.name}/", ListHandler, tuple(ops), serves=r.name)]
    detail = [Operation("GET", f"Read a {r.type}", 200, response=r.type)]
    if r.writable:
        detail += [
            Operation("PUT", f"Replace a {r.type}", 200, request=f"{r.type}_create", response=r.type),
            Operation("PATCH", f"Change a {r.type}", 200, request=f"{r.type}_update", response=r.type),
            Operation("DELETE", f"Delete a {r.type}", 204),
        ]
    found.append(Endpoint(f"{API}/{r.name}/{{id}}/", DetailHandler, tuple(detail), serves=r.name))
    if isinstance(r.access, RoleScoped) and r.access.owner == "id":
        found.append(Endpoint(f"{API}/{r.name}/{{id}}/roles/", RolesHandler, (
            Operation("GET", f"Who holds which role on a {r.type}", 200, response=ROLE_ENTRY_SCHEMA, paged=True),
            Operation("POST", f"Grant (or with disassociate, revoke) a role on a {r.type}", 204,
                      request=grant_schema(r.access.resource_type)),
        ), serves=r.name))
    return found


def _sub_list(spec: SubList) -> Endpoint:
    child = RESOURCES[spec.child]
    ops = [Operation("GET", f"List the {spec.segment} of a {RESOURCES[spec.parent].type}", 200,
                     response=child.type, paged=True, list_of=child.name)]
    if child.writable:
        ops.append(Operation("POST", f"Create a {child.type} here", 201,
                             request=f"{child.type}_create", response=child.type))
    return Endpoint(f"{API}/{spec.parent}/{{id}}/{spec.segment}/", SubListHandler, tuple(ops), serves=spec)


def _membership(spec: Membership) -> Endpoint:
    child = RESOURCES[spec.child]
    return Endpoint(f"{API}/{spec.parent}/{{id}}/{spec.segment}/", MembersHandler, (
        Operation("GET", f"List the {spec.segment} of a {RESOURCES[spec.parent].type}", 200,
                  response=child.type, paged=True, list_of=child.name),
        Operation("POST", f"Associate (or with disassociate, remove) a {child.type}", 204,
                  request=ASSOCIATION_SCHEMA),
    ), serves=spec)


endpoints = [
    Endpoint("/api/v2/me/", MeHandler, (
        Operation("GET", "The caller's own user, as a one-item list", 200, response="user", paged=True),)),
    Endpoint("/api/v2/openapi.json", OpenAPIHandler, (
        Operation("GET", "This document", 200, response={"type": "object"}, authenticated=False),)),
    Endpoint("/api/v2/job_templates/{id}/survey_spec/", SurveySpecHandler, (
        Operation("GET", "Read the survey (template read role)", 200, response=SURVEY_SPEC_SCHEMA),
        Operation("POST", "Replace the survey (template admin role)", 204, request=SURVEY_SPEC_SCHEMA),
        Operation("DELETE", "Remove the survey (template admin role)", 204),
    )),
    Endpoint("/api/v2/job_templates/{id}/launch/", LaunchHandler, (
        Operation("GET", "What a launch needs (template execute role)", 200, response=LAUNCH_INFO_SCHEMA),
        Operation("POST", "Launch a job (template execute role); launch_type manual", 201,
                  request=LAUNCH_BODY_SCHEMA, response=LAUNCHED_SCHEMA),
    )),
    *(endpoint for resource in RESOURCES.values() if resource.has_detail for endpoint in _collection(resource)),
    *(_sub_list(spec) for spec in SUB_LISTS),
    *(_membership(spec) for spec in MEMBERSHIPS),
]
