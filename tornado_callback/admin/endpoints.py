"""Every endpoint of the API, declared once: the route table and the OpenAPI document both read this list.

An ``Endpoint`` names the handler kind that serves it, what it serves (a
resource, a sub-list, an association) and its operations with their bodies
and answers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tornado_callback.admin.catalog import MEMBERSHIPS, RESOURCES, SUB_LISTS
from tornado_callback.admin.grants import ROLE_ENTRY_SCHEMA, grant_schema
from tornado_callback.admin.resource import (
    API,
    Membership,
    Resource,
    RoleScoped,
    SubList,
)
from tornado_callback.admin.template_actions import (
    LAUNCH_BODY_SCHEMA,
    LAUNCH_INFO_SCHEMA,
    LAUNCHED_SCHEMA,
    SURVEY_SPEC_SCHEMA,
)
from tornado_callback.http.values import DEFAULT_PAGE_SIZE, INT_MAX, MAX_PAGE, MAX_PAGE_SIZE, MAX_SEARCH_LENGTH
from tornado_callback.jobs.schemas import (
    CAN_CANCEL_SCHEMA,
    CAN_UPDATE_SCHEMA,
    INVENTORY_UPDATE_SCHEMA,
    INVENTORY_UPDATE_STARTED_SCHEMA,
    JOB_LIST_PARAMETERS,
    JOB_SCHEMA,
    JOB_STDOUT_PARAMETERS,
    JOB_STDOUT_SCHEMA,
)

ASSOCIATION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["id"],
    "properties": {"id": {"type": "integer", "minimum": 1, "maximum": INT_MAX},
                   "disassociate": {"type": "boolean"}},
}


@dataclass(frozen=True)
class Operation:
    method: str
    summary: str
    status: int  # of success
    request: dict[str, Any] | str | None = None  # a schema, or a component name
    response: dict[str, Any] | str | None = None
    paged: bool = False  # the response is a page of ``response``
    list_of: str | None = None  # the resource whose list parameters apply
    authenticated: bool = True
    # Statuses other than success this operation answers with; None: the admin API's usual ones.
    errors: tuple[int, ...] | None = None
    parameters: tuple[dict[str, Any], ...] = ()
    request_types: tuple[str, ...] = ("application/json",)
    plain_text: bool = False  # the success may also be the body alone as text/plain (stdout's format=txt)


@dataclass(frozen=True)
class Endpoint:
    path: str  # OpenAPI style: /api/v2/hosts/{id}/
    kind: str  # which handler class serves it
    operations: tuple[Operation, ...]
    resource: str = ""
    sub_list: SubList | None = None
    membership: Membership | None = None

    @property
    def methods(self) -> frozenset[str]:
        return frozenset(op.method for op in self.operations)


def _collection(r: Resource) -> list[Endpoint]:
    ops = [Operation("GET", f"List {r.name}", 200, response=r.type, paged=True, list_of=r.name)]
    if r.writable:
        ops.append(Operation("POST", f"Create a {r.type}", 201, request=f"{r.type}_create", response=r.type))
    found = [Endpoint(f"{API}/{r.name}/", "list", tuple(ops), resource=r.name)]
    if r.has_detail:
        detail = [Operation("GET", f"Read a {r.type}", 200, response=r.type)]
        if r.writable:
            detail += [
                Operation("PUT", f"Replace a {r.type}", 200, request=f"{r.type}_create", response=r.type),
                Operation("PATCH", f"Change a {r.type}", 200, request=f"{r.type}_update", response=r.type),
                Operation("DELETE", f"Delete a {r.type}", 204),
            ]
        found.append(Endpoint(f"{API}/{r.name}/{{id}}/", "detail", tuple(detail), resource=r.name))
    if isinstance(r.access, RoleScoped) and r.access.owner == "id":
        found.append(Endpoint(f"{API}/{r.name}/{{id}}/roles/", "roles", (
            Operation("GET", f"Who holds which role on a {r.type}", 200, response=ROLE_ENTRY_SCHEMA, paged=True),
            Operation("POST", f"Grant (or with disassociate, revoke) a role on a {r.type}", 204,
                      request=grant_schema(r.access.resource_type)),
        ), resource=r.name))
    return found


def _sub_list(spec: SubList) -> Endpoint:
    child = RESOURCES[spec.child]
    ops = [Operation("GET", f"List the {spec.segment} of a {RESOURCES[spec.parent].type}", 200,
                     response=child.type, paged=True, list_of=child.name)]
    if child.writable:
        ops.append(Operation("POST", f"Create a {child.type} here", 201,
                             request=f"{child.type}_create", response=child.type))
    return Endpoint(f"{API}/{spec.parent}/{{id}}/{spec.segment}/", "sub_list", tuple(ops),
                    resource=child.name, sub_list=spec)


def _membership(spec: Membership) -> Endpoint:
    child = RESOURCES[spec.child]
    return Endpoint(f"{API}/{spec.parent}/{{id}}/{spec.segment}/", "members", (
        Operation("GET", f"List the {spec.segment} of a {RESOURCES[spec.parent].type}", 200,
                  response=child.type, paged=True, list_of=child.name),
        Operation("POST", f"Associate (or with disassociate, remove) a {child.type}", 204,
                  request=ASSOCIATION_SCHEMA),
    ), resource=child.name, membership=spec)


PAGE_PARAMETERS: tuple[dict[str, Any], ...] = (
    {"name": "page", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE}},
    {"name": "page_size", "in": "query",
     "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE_SIZE, "default": DEFAULT_PAGE_SIZE}},
)


def search_parameter(description: str) -> dict[str, Any]:
    return {"name": "search", "in": "query", "description": description,
            "schema": {"type": "string", "maxLength": MAX_SEARCH_LENGTH}}


CALLBACK_BODY: dict[str, Any] = {
    "type": "object",
    "required": ["host_config_key"],
    "properties": {
        "host_config_key": {"type": "string"},
        "extra_vars": {"oneOf": [{"type": "object"}, {"type": "string"}],
                       "description": "Applied with ask_variables_on_launch, or the survey's variables."},
        "cloud_identity": {"type": "object", "description": "A signed instance identity document."},
    },
}
CALLBACK_ACCEPTED: dict[str, Any] = {
    "type": "object", "required": ["job", "url"],
    "properties": {"job": {"type": "integer"}, "url": {"type": "string"}},
}
CALLBACK_EXPLAINED: dict[str, Any] = {
    "type": "object",
    "required": ["host_config_key", "matching_hosts", "remote", "resolution"],
    "properties": {
        "host_config_key": {"type": "string"},
        "matching_hosts": {"type": "array", "items": {"type": "string"}},
        "remote": {"type": "object", "properties": {
            "peer": {"type": "string"},
            "addresses": {"type": "array", "items": {"type": "string"}},
            "names": {"type": "array", "items": {"type": "string"}}}},
        "resolution": {"type": "array", "items": {"type": "object", "properties": {
            "resolver": {"type": "string"}, "priority": {"type": "integer"},
            "outcome": {"type": "string", "enum": ["matched", "ambiguous", "no_match", "skipped", "error", "timeout"]},
            "evidence": {"type": "array", "items": {"type": "string"}},
            "hosts": {"type": "array", "items": {"type": "string"}},
            "elapsed_ms": {"type": "number"}}}},
    },
}


def public_endpoints() -> list[Endpoint]:
    """The server's health check and the provisioning callback (API.md sections 1 and 3)."""
    return [
        Endpoint(f"{API}/ping/", "ping", (
            Operation("GET", "Whether the server and its database are up", 200, authenticated=False,
                      errors=(), response={"type": "object", "required": ["version", "database"],
                                           "properties": {"version": {"type": "string"},
                                                          "database": {"type": "boolean"}}}),)),
        Endpoint(f"{API}/job_templates/{{id}}/callback/", "callback", (
            Operation("GET", "Which host this request (or a simulated one) would match, and why "
                      "(template admin role)", 200, response=CALLBACK_EXPLAINED, parameters=(
                          *PAGE_PARAMETERS,
                          search_parameter("Case-insensitive substring of the matching hosts' names"),
                          {"name": "address", "in": "query", "schema": {"type": "string"},
                           "description": "Evaluate as if the TCP peer were this IP address."},
                          {"name": "header", "in": "query", "description": "Name: value, repeatable",
                           "schema": {"type": "array", "items": {"type": "string"}}})),
            Operation("POST", "A host asks to be configured, proving itself with the template's key",
                      202, request=CALLBACK_BODY, response=CALLBACK_ACCEPTED, authenticated=False,
                      errors=(400, 403, 404, 413, 415, 429),
                      request_types=("application/json", "application/x-www-form-urlencoded")),
        )),
    ]


def run_endpoints() -> list[Endpoint]:
    """Jobs (API.md section 2) and inventory syncs: read them, cancel a job, start a sync."""
    return [
        Endpoint(f"{API}/jobs/", "jobs", (
            Operation("GET", "List the jobs of the templates the caller may read, newest first", 200,
                      response=JOB_SCHEMA, paged=True, parameters=JOB_LIST_PARAMETERS),)),
        Endpoint(f"{API}/jobs/{{id}}/", "job", (
            Operation("GET", "Read a job (template read role)", 200, response=JOB_SCHEMA),)),
        Endpoint(f"{API}/jobs/{{id}}/stdout/", "job_stdout", (
            Operation("GET", "A job's output and events (template read role)", 200,
                      response=JOB_STDOUT_SCHEMA, parameters=JOB_STDOUT_PARAMETERS, plain_text=True),)),
        Endpoint(f"{API}/jobs/{{id}}/cancel/", "job_cancel", (
            Operation("GET", "Whether the job can still be canceled (template read role)", 200,
                      response=CAN_CANCEL_SCHEMA),
            Operation("POST", "Cancel a pending or running job (template execute role); "
                      "405 once it has finished", 202, errors=(401, 403, 404, 405)),
        )),
        Endpoint(f"{API}/inventory_sources/{{id}}/update/", "inventory_source_update", (
            Operation("GET", "Whether the source can be synced (inventory admin role)", 200,
                      response=CAN_UPDATE_SCHEMA),
            Operation("POST", "Start a sync of the source in the background (inventory admin role)", 202,
                      response=INVENTORY_UPDATE_STARTED_SCHEMA, errors=(401, 403, 404)),
        )),
        Endpoint(f"{API}/inventory_updates/{{id}}/", "inventory_update", (
            Operation("GET", "Read a sync (inventory read role)", 200, response=INVENTORY_UPDATE_SCHEMA),)),
    ]


def api_endpoints() -> list[Endpoint]:
    found = public_endpoints() + run_endpoints() + [
        Endpoint(f"{API}/me/", "me", (
            Operation("GET", "The caller's own user, as a one-item list", 200, response="user", paged=True),)),
        Endpoint(f"{API}/openapi.json", "openapi", (
            Operation("GET", "This document", 200, response={"type": "object"}, authenticated=False),)),
        Endpoint(f"{API}/job_templates/{{id}}/survey_spec/", "survey_spec", (
            Operation("GET", "Read the survey (template read role)", 200, response=SURVEY_SPEC_SCHEMA),
            Operation("POST", "Replace the survey (template admin role)", 204, request=SURVEY_SPEC_SCHEMA),
            Operation("DELETE", "Remove the survey (template admin role)", 204),
        )),
        Endpoint(f"{API}/job_templates/{{id}}/launch/", "launch", (
            Operation("GET", "What a launch needs (template execute role)", 200, response=LAUNCH_INFO_SCHEMA),
            Operation("POST", "Launch a job (template execute role); launch_type manual", 201,
                      request=LAUNCH_BODY_SCHEMA, response=LAUNCHED_SCHEMA),
        )),
    ]
    for resource in RESOURCES.values():
        found += _collection(resource) if resource.has_detail else []
    found += [_sub_list(spec) for spec in SUB_LISTS]
    found += [_membership(spec) for spec in MEMBERSHIPS]
    return found
