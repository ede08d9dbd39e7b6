"""Helpers for the admin API tests: users with tokens, JSON requests, a seeded world."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from cryptography.fernet import Fernet

from tornado_callback.accounts.service import Principal
from tornado_callback.services import Services

SECRET_KEY = Fernet.generate_key().decode()
Fetch = Callable[..., Awaitable[Any]]


async def user_with_token(services: Services, name: str, *, superuser: bool = False) -> dict[str, str]:
    """A user (no password: no argon2 cost) and the Authorization header of a fresh token."""
    await services.accounts.create_user(name, None, superuser=superuser)
    return {"Authorization": f"Bearer {await services.accounts.create_token(name)}"}


async def call(fetch: Fetch, method: str, path: str, auth: dict[str, str] | None = None,
               body: Any = None) -> tuple[int, Any]:
    """(status, parsed JSON body or None) of one request."""
    headers = {"Content-Type": "application/json", **(auth or {})}
    payload = None if body is None else json.dumps(body)
    if method in ("POST", "PUT", "PATCH") and payload is None:
        payload = ""
    response = await fetch(path, method=method, headers=headers, body=payload,
                           allow_nonstandard_methods=True)
    return response.code, json.loads(response.body) if response.body else None


@dataclass
class World:
    """An inventory with a host, a group and a source; a template on it with a callback key."""

    inventory: int
    host: int
    group: int
    source: int
    template: int
    credential: int


async def seed_world(services: Services, root: Principal) -> World:
    admin = services.admin
    inventory = await admin.create("inventories", root, {"name": "inv"})
    host = await admin.create("hosts", root, {
        "name": "web1", "inventory": inventory["id"], "variables": {"ansible_host": "127.0.0.1"}})
    group = await admin.create("groups", root, {"name": "web", "inventory": inventory["id"]})
    source = await admin.create("inventory_sources", root, {
        "name": "src", "inventory": inventory["id"], "source": "file", "source_path": "/dev/null"})
    credential = await admin.create("credentials", root, {"name": "cred", "username": "root"})
    template = await admin.create("job_templates", root, {
        "name": "tpl", "playbook": "site.yml", "inventory": inventory["id"], "host_config_key": "k3y"})
    return World(inventory["id"], host["id"], group["id"], source["id"], template["id"], credential["id"])
