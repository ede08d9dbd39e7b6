"""The answers of the inventory sync endpoints, for their declarations in ``inventory.handlers``.

They describe what ``inventory.handlers.update_view`` renders.
"""

from __future__ import annotations

from typing import Any

from tornado_callback.http.routes import STRING, TIME, object_schema

CAN_UPDATE_SCHEMA = object_schema({"can_update": {"type": "boolean"}})

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
INVENTORY_UPDATE_SCHEMA = object_schema(_UPDATE_PROPERTIES)
INVENTORY_UPDATE_STARTED_SCHEMA = object_schema({"inventory_update": {"type": "integer"}, **_UPDATE_PROPERTIES})
