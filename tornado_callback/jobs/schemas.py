"""The answers of the job and inventory sync endpoints, for their declarations in ``admin.endpoints``.

They describe what ``jobs.job_summary``, ``jobs.event_summary`` and
``handlers.inventory_updates.update_view`` render.
"""

from __future__ import annotations

from typing import Any

from tornado_callback.http.values import INT_MAX
from tornado_callback.jobs.service import LAUNCH_TYPES
from tornado_callback.store.models import JOB_STATUSES

STRING = {"type": "string"}
TIME = {"type": "string", "nullable": True}
ID = {"type": "integer", "minimum": 1, "maximum": INT_MAX}


def _object(properties: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "required": list(properties), "properties": properties}


JOB_SCHEMA = _object({
    "id": {"type": "integer"},
    "type": {"type": "string", "enum": ["job"]},
    "url": STRING,
    "related": {"type": "object", "additionalProperties": STRING},
    "name": STRING,
    "job_template": {"type": "integer", "nullable": True},
    "inventory": {"type": "integer", "nullable": True},
    "status": {"type": "string", "enum": list(JOB_STATUSES)},
    "launch_type": STRING,
    "limit": STRING,
    "extra_vars": {"type": "string", "description": "A JSON object, as text (as AWX shows it)."},
    "created": STRING, "modified": STRING, "started": TIME, "finished": TIME,
    "elapsed": {"type": "number"},
    "failed": {"type": "boolean"},
    "job_explanation": STRING,
    "resolved_by": STRING,
})
JOB_LIST_PARAMETERS: tuple[dict[str, Any], ...] = (
    {"name": "job_template", "in": "query", "schema": ID, "description": "Only this template's jobs"},
    {"name": "status", "in": "query", "schema": {"type": "string", "enum": list(JOB_STATUSES)}},
    {"name": "launch_type", "in": "query", "schema": {"type": "string", "enum": list(LAUNCH_TYPES)}},
)
JOB_STDOUT_PARAMETERS: tuple[dict[str, Any], ...] = (
    {"name": "format", "in": "query", "schema": {"type": "string", "enum": ["json", "txt"], "default": "json"},
     "description": "txt: the output alone, as text/plain"},
)
JOB_STDOUT_SCHEMA = _object({
    "range": _object({"start": {"type": "integer"}, "end": {"type": "integer"},
                      "absolute_end": {"type": "integer"}}),
    "content": STRING,
    "events": {"type": "array", "items": _object({
        "counter": {"type": "integer"}, "event": STRING, "host_name": STRING, "task": STRING,
        "stdout": STRING, "failed": {"type": "boolean"}, "changed": {"type": "boolean"},
        "created": TIME,
    })},
})
CAN_CANCEL_SCHEMA = _object({"can_cancel": {"type": "boolean"}})
CAN_UPDATE_SCHEMA = _object({"can_update": {"type": "boolean"}})

_UPDATE_PROPERTIES: dict[str, Any] = {
    "id": {"type": "integer"},
    "type": {"type": "string", "enum": ["inventory_update"]},
    "url": STRING,
    "related": {"type": "object", "additionalProperties": STRING},
    "inventory_source": {"type": "integer"},
    "inventory": {"type": "integer"},
    "status": STRING,
    "failed": {"type": "boolean"},
    "launch_type": STRING,
    "created": STRING, "modified": STRING, "started": TIME, "finished": TIME,
    "elapsed": {"type": "number"},
    "hosts_added": {"type": "integer"},
    "hosts_updated": {"type": "integer"},
    "hosts_removed": {"type": "integer"},
    "result_stdout": STRING,
    "job_explanation": STRING,
}
INVENTORY_UPDATE_SCHEMA = _object(_UPDATE_PROPERTIES)
INVENTORY_UPDATE_STARTED_SCHEMA = _object({"inventory_update": {"type": "integer"}, **_UPDATE_PROPERTIES})
