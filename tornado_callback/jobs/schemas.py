"""The answers of the job endpoints, for their declarations in ``jobs.handlers``.

They describe what ``jobs.service.job_summary`` and ``event_summary`` render.
"""

from __future__ import annotations

from typing import Any

from tornado_callback.http.routes import ID, STRING, TIME, object_schema
from tornado_callback.jobs.service import LAUNCH_TYPES
from tornado_callback.store.models import JOB_STATUSES

JOB_SCHEMA = object_schema({
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
    "run_id": {"type": "string", "nullable": True,
               "description": "The ansible-playbook run that ran the job (last); null before it ran."},
    "run_job_count": {"type": "integer", "description": "How many jobs shared that run (coalesced runs)."},
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
JOB_STDOUT_SCHEMA = object_schema({
    "range": object_schema({"start": {"type": "integer"}, "end": {"type": "integer"},
                            "absolute_end": {"type": "integer"}}),
    "content": STRING,
    "events": {"type": "array", "items": object_schema({
        "counter": {"type": "integer"}, "event": STRING, "host_name": STRING, "task": STRING,
        "stdout": STRING, "failed": {"type": "boolean"}, "changed": {"type": "boolean"},
        "created": TIME,
    })},
})
CAN_CANCEL_SCHEMA = object_schema({"can_cancel": {"type": "boolean"}})
