"""The OpenAPI 3 document of the API, built from the endpoint and field declarations.

Nothing here describes a resource by hand: object, create and update schemas
come from the fields; paths, parameters and answers from the endpoints.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from http import HTTPStatus
from typing import Any

from tornado_callback import __version__
from tornado_callback.admin.catalog import RESOURCES
from tornado_callback.admin.fields import Variables
from tornado_callback.admin.resource import Resource
from tornado_callback.admin.service import timestamps
from tornado_callback.http.routes import ID, PAGE_PARAMETERS, STRING, Endpoint, Operation, search_parameter

ERROR = {"description": "An error: {\"detail\": ...} or {\"field\": [messages]}",
         "content": {"application/json": {"schema": {"type": "object"}}}}
ERROR_STATUSES = {"400": "Invalid request", "401": "Not authenticated",
                  "403": "Not permitted", "404": "Not found (or not visible to the caller)"}


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def object_schema(resource: Resource) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "id": {"type": "integer"},
        "type": {"type": "string", "enum": [resource.type]},
        "url": {"type": "string"},
        "related": {"type": "object", "additionalProperties": {"type": "string"}},
    }
    for f in resource.fields + timestamps(resource):
        if not f.write_only:
            properties[f.name] = f.schema()
    return {"type": "object", "description": resource.description, "properties": properties,
            "required": list(properties)}


def input_schema(resource: Resource, *, creating: bool) -> dict[str, Any]:
    properties = {
        f.name: f.input_schema() if isinstance(f, Variables) else f.schema()
        for f in resource.writable_fields
    }
    schema: dict[str, Any] = {"type": "object", "properties": properties, "additionalProperties": False}
    required = [f.name for f in resource.writable_fields if f.required]
    if creating and required:
        schema["required"] = required
    return schema


def schema_of(value: dict[str, Any] | str) -> dict[str, Any]:
    return ref(value) if isinstance(value, str) else value


def list_parameters(resource: Resource) -> list[dict[str, Any]]:
    orders = [p + name for name in resource.order_fields for p in ("", "-")]
    params = [
        *PAGE_PARAMETERS,
        search_parameter("Case-insensitive substring of " + ", ".join(resource.search_fields)),
        {"name": "order_by", "in": "query", "schema": {"type": "string", "enum": orders}},
    ]
    for name in resource.filter_fields:
        schema = resource.field(name).value_schema()
        schema.pop("nullable", None)
        params.append({"name": name, "in": "query", "description": f"Only objects whose {name} equals this",
                       "schema": schema})
    return params


def paged(item: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "required": ["count", "next", "previous", "results"], "properties": {
        "count": {"type": "integer"},
        "next": {"type": "string", "nullable": True},
        "previous": {"type": "string", "nullable": True},
        "results": {"type": "array", "items": item},
    }}


def operation(endpoint: Endpoint, op: Operation) -> dict[str, Any]:
    out: dict[str, Any] = {"summary": op.summary, "operationId": f"{op.method.lower()}:{endpoint.path}"}
    # Every {name} of the path; an id is a row's, any other (a provider's name) a string.
    parameters = [{"name": name, "in": "path", "required": True, "schema": ID if name == "id" else STRING}
                  for name in re.findall(r"\{([^}]+)\}", endpoint.path)]
    if op.list_of:
        parameters += list_parameters(RESOURCES[op.list_of])
    elif op.paged:
        parameters += list(PAGE_PARAMETERS)
    parameters += list(op.parameters)
    if parameters:
        out["parameters"] = parameters
    if op.request is not None:
        out["requestBody"] = {"required": True,
                              "content": {kind: {"schema": schema_of(op.request)} for kind in op.request_types}}
    success: dict[str, Any] = {"description": "Success"}
    if op.response is not None:
        body = schema_of(op.response)
        success["content"] = {"application/json": {"schema": paged(body) if op.paged else body}}
    if op.plain_text:
        success.setdefault("content", {})["text/plain"] = {"schema": {"type": "string"}}
    responses = {str(op.status): success}
    errors = op.errors if op.errors is not None else tuple(int(s) for s in ERROR_STATUSES)
    responses.update({str(status): {**ERROR, "description": ERROR_STATUSES.get(str(status), HTTPStatus(status).phrase)}
                      for status in errors})
    if not op.authenticated:
        out["security"] = []
    out["responses"] = responses
    return out


def openapi_document(endpoints: Sequence[Endpoint]) -> dict[str, Any]:
    schemas: dict[str, Any] = {}
    for resource in RESOURCES.values():
        schemas[resource.type] = object_schema(resource)
        if resource.writable:
            schemas[f"{resource.type}_create"] = input_schema(resource, creating=True)
            schemas[f"{resource.type}_update"] = input_schema(resource, creating=False)
    paths: dict[str, Any] = {}
    for endpoint in endpoints:
        paths[endpoint.path] = {op.method.lower(): operation(endpoint, op) for op in endpoint.operations}
    return {
        "openapi": "3.0.3",
        "info": {"title": "tornado-callback admin API", "version": __version__,
                 "description": "AWX-shaped administration API (/api/v2/)."},
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"basic": {"type": "http", "scheme": "basic"},
                                "bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"basic": []}, {"bearer": []}],
    }
