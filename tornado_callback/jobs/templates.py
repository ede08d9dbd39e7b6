"""Job templates: creation and lookup for the CLI and the demo."""

from __future__ import annotations

import secrets
from typing import Any

from sqlalchemy import select

from tornado_callback.http.values import parse_id
from tornado_callback.store.database import Database
from tornado_callback.store.models import JobTemplate


class TemplateError(ValueError):
    """A template request that cannot be carried out (the message says why)."""


UPDATABLE = frozenset(
    c.key for c in JobTemplate.__table__.columns if c.key not in ("id", "created", "modified")
)


def new_host_config_key() -> str:
    return secrets.token_hex(16)


class Templates:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def create(
        self,
        name: str,
        *,
        inventory_id: int,
        playbook: str,
        project_dir: str = "",
        host_config_key: str | None = None,
        ask_variables_on_launch: bool = False,
        extra_vars: dict[str, Any] | None = None,
    ) -> JobTemplate:
        async with self.db.session() as session:
            if await session.scalar(select(JobTemplate.id).where(JobTemplate.name == name)):
                raise TemplateError(f"job template {name!r} already exists")
            template = JobTemplate(
                name=name,
                inventory_id=inventory_id,
                playbook=playbook,
                project_dir=project_dir,
                host_config_key=host_config_key if host_config_key is not None else new_host_config_key(),
                ask_variables_on_launch=ask_variables_on_launch,
                extra_vars=dict(extra_vars or {}),
            )
            session.add(template)
            await session.commit()
            return template

    async def update(self, template_id: int, **fields: Any) -> JobTemplate:
        async with self.db.session() as session:
            template = await session.get(JobTemplate, template_id)
            if template is None:
                raise TemplateError(f"no job template {template_id}")
            for name, value in fields.items():
                if name not in UPDATABLE:
                    raise TemplateError(f"job templates have no field {name!r}")
                setattr(template, name, value)
            await session.commit()
            return template

    async def by_name(self, name: str) -> JobTemplate | None:
        async with self.db.session() as session:
            return await session.scalar(select(JobTemplate).where(JobTemplate.name == name))

    async def get(self, ref: str) -> JobTemplate | None:
        """A template by id or name."""
        if (template_id := parse_id(ref)) is not None:
            async with self.db.session() as session:
                found = await session.get(JobTemplate, template_id)
            if found is not None:
                return found
        return await self.by_name(ref)
