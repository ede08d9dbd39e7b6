"""The callback's bodies: the POST's, JSON or form-encoded as the stock clients send
them, parsed; and the schemas of what the endpoint takes and answers."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl

from tornado_callback.callback.service import CallbackBody
from tornado_callback.errors import ServiceError

JSON_MEDIA_TYPE = "application/json"
FORM_MEDIA_TYPE = "application/x-www-form-urlencoded"
MAX_FORM_FIELDS = 1000

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


def media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def parse_error(reason: str) -> CallbackBody:
    return CallbackBody(error=ServiceError.detail(f"JSON parse error - {reason}"))


def parse_callback_body(content_type: str | None, raw: bytes) -> CallbackBody:
    media = media_type(content_type)
    if media == JSON_MEDIA_TYPE:
        try:
            value = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError:
            return parse_error("the body is not UTF-8")
        except (ValueError, RecursionError) as e:
            return parse_error(str(e) or "nesting too deep")
        if not isinstance(value, dict):
            return parse_error("the body must be a JSON object")
        return CallbackBody(fields=value)
    if media == FORM_MEDIA_TYPE or (not media and not raw):
        try:
            pairs = parse_qsl(
                raw.decode("utf-8"), keep_blank_values=True, max_num_fields=MAX_FORM_FIELDS
            )
        except (UnicodeDecodeError, ValueError) as e:
            return CallbackBody(error=ServiceError.detail(f"Form parse error - {e}"))
        return CallbackBody(fields=dict(pairs))
    shown = media or "none"
    return CallbackBody(
        error=ServiceError.detail(f'Unsupported media type "{shown}" in request.', status=415)
    )


def too_large(limit: int) -> CallbackBody:
    return CallbackBody(
        error=ServiceError.detail(f"Request body exceeds the limit of {limit} bytes.", status=413)
    )
