"""Inventory syncs over HTTP: start one (``inventory_sources/{id}/update/``), read one
(``inventory_updates/{id}/``). The sources' CRUD lives with the other admin resources.

Sources and their updates belong to an inventory: without a role on it they do
not exist (``require_role`` answers 404)."""

from __future__ import annotations

from typing import Any

from tornado_callback.errors import DETAIL_NOT_FOUND
from tornado_callback.http.base import APIError, APIHandler
from tornado_callback.http.routes import Endpoint, Operation
from tornado_callback.http.values import api_datetime
from tornado_callback.inventory.schemas import (
    CAN_UPDATE_SCHEMA,
    INVENTORY_UPDATE_SCHEMA,
    INVENTORY_UPDATE_STARTED_SCHEMA,
)


def update_url(update_id: int) -> str:
    return f"/api/v2/inventory_updates/{update_id}/"


def update_view(update: Any, inventory_id: int) -> dict[str, Any]:
    return {
        "id": update.id,
        "type": "inventory_update",
        "url": update_url(update.id),
        "related": {"inventory_source": f"/api/v2/inventory_sources/{update.inventory_source_id}/"},
        "inventory_source": update.inventory_source_id,
        "inventory": inventory_id,
        "status": update.status,
        "failed": update.status in ("failed", "error"),
        "launch_type": update.launch_type,
        "created": api_datetime(update.created),
        "modified": api_datetime(update.modified),
        "started": api_datetime(update.started),
        "finished": api_datetime(update.finished),
        "elapsed": round((update.finished - update.started).total_seconds(), 3)
        if update.started and update.finished else 0.0,
        "hosts_added": update.hosts_added,
        "hosts_updated": update.hosts_updated,
        "hosts_removed": update.hosts_removed,
        "result_stdout": update.result_stdout,
        "job_explanation": update.job_explanation,
    }


class InventorySourceUpdateHandler(APIHandler):
    async def _source(self, source_ref: str) -> Any:
        principal = await self.authenticated_user()
        source = await self.services.inventory_sync.get_source(self.object_id(source_ref))
        if source is None:
            raise APIError(404, {"detail": DETAIL_NOT_FOUND})
        await self.services.accounts.require_role(principal, "inventory", source.inventory_id, "admin")
        return source

    async def get(self, source_ref: str) -> None:
        await self._source(source_ref)
        self.write_json({"can_update": True})

    async def post(self, source_ref: str) -> None:
        source = await self._source(source_ref)
        update = await self.services.inventory_sync.start_update(source.id)
        self.set_header("Location", update_url(update.id))
        self.write_json(
            {"inventory_update": update.id, **update_view(update, source.inventory_id)}, status=202
        )


class InventoryUpdateHandler(APIHandler):
    async def get(self, update_ref: str) -> None:
        principal = await self.authenticated_user()
        update = await self.services.inventory_sync.get_update(self.object_id(update_ref))
        source = await self.services.inventory_sync.get_source(update.inventory_source_id) if update else None
        if update is None or source is None:
            raise APIError(404, {"detail": DETAIL_NOT_FOUND})
        await self.services.accounts.require_role(principal, "inventory", source.inventory_id, "read")
        self.write_json(update_view(update, source.inventory_id))


endpoints = [
    Endpoint("/api/v2/inventory_sources/{id}/update/", InventorySourceUpdateHandler, (
        Operation("GET", "Whether the source can be synced (inventory admin role)", 200,
                  response=CAN_UPDATE_SCHEMA),
        Operation("POST", "Start a sync of the source in the background (inventory admin role)", 202,
                  response=INVENTORY_UPDATE_STARTED_SCHEMA, errors=(401, 403, 404)),
    )),
    Endpoint("/api/v2/inventory_updates/{id}/", InventoryUpdateHandler, (
        Operation("GET", "Read a sync (inventory read role)", 200, response=INVENTORY_UPDATE_SCHEMA),)),
]
