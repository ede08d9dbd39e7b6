"""Verified self-registration (API.md section 4, issue 17): the host a verified cloud instance
gets in an inventory that allows it, when no host of that inventory carries its instance id.

Each registration is one transaction, safe under concurrency and across servers
without a read-then-write: a host's name is unique in its inventory, so the
insert is insert-or-conflict, and whoever conflicts re-reads the host the
winner made (then launches on it, or finds its job pending). The rate limit
counts the inventory's registrations of the last minute in that transaction,
after the inventory's row is locked (PostgreSQL; SQLite has one writer), so
that every server sharing the database shares it exactly; over it, the
transaction rolls back. The host's index keys are written by the one writer
(``HostIndexWriter``), in the same transaction.

Only the verified facts become variables: never anything else of the callback's body.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from tornado_callback.config import Settings
from tornado_callback.errors import TooManyRequests
from tornado_callback.inventory.apply import Written
from tornado_callback.inventory.index import HostIndexWriter
from tornado_callback.plugin.resolver import INSTANCE_KIND, CloudIdentity, HostRef
from tornado_callback.store.database import Database
from tornado_callback.store.models import Group, GroupHost, Host, HostKey, Inventory, utcnow
from tornado_callback.telemetry import metrics

log = logging.getLogger("tornado_callback.inventory.registration")

WINDOW = dt.timedelta(minutes=1)
MSG_TOO_MANY = "Too many hosts registered by callback in this inventory."


@dataclass(frozen=True)
class Registration:
    """What came of asking: ``host`` to launch on (None: none, and ``evidence`` says why)."""

    host: HostRef | None
    evidence: str


def host_variables(identity: CloudIdentity) -> dict[str, Any]:
    """The verified facts, and ``ansible_host``: the private address the cloud signed."""
    variables: dict[str, Any] = dict(identity.facts)
    if "private_ip_address" in variables:
        variables["ansible_host"] = variables["private_ip_address"]
    return variables


def _existing(host: Any) -> Registration:
    """This instance's host, found where a registration would have put one."""
    if not host.enabled:
        return Registration(None, f"host {host.name} has this instance id but is disabled: not registered again")
    return Registration(HostRef(host.id, host.name), f"host {host.name} already has this instance id: "
                                                     "not registered again")


class HostRegistrar:
    def __init__(self, db: Database, index_writer: HostIndexWriter, settings: Settings) -> None:
        self.db = db
        self.index_writer = index_writer
        self.per_minute = settings.registrations_per_minute
        self.gcp_by_name = settings.register_gcp_by_name
        self._insert = postgresql_insert if db.is_postgresql else sqlite_insert

    def host_name(self, identity: CloudIdentity) -> str:
        if identity.provider == "gcp" and self.gcp_by_name and identity.facts.get("instance_name"):
            return identity.facts["instance_name"]
        return identity.instance_id

    async def register(self, inventory_id: int, identity: CloudIdentity) -> Registration | None:
        """The verified ``identity``'s host in the inventory, created if need be; None when the
        inventory does not allow self-registration. Raises TooManyRequests over the rate limit."""
        assert identity.verified
        name = self.host_name(identity)
        async with self.db.session() as session:
            allowed = (await session.execute(
                select(Inventory.register_verified_hosts, Inventory.registration_group)
                .where(Inventory.id == inventory_id)
                # Registrations of one inventory queue here, so that the count below is exact
                # (NO KEY UPDATE: hosts saved meanwhile by others, which only share-lock the key, never wait).
                .with_for_update(key_share=True)
            )).first()
            if allowed is None or not allowed.register_verified_hosts:
                return None
            # Saved since matching ran (a concurrent registration, a sync), or passed over by
            # matching (disabled): this instance's host already, not to be doubled.
            carrier = (await session.execute(
                select(Host.id, Host.name, Host.enabled).join(HostKey, HostKey.host_id == Host.id)
                .where(HostKey.inventory_id == inventory_id, HostKey.kind == INSTANCE_KIND,
                       HostKey.value == identity.instance_id).limit(1))).first()
            if carrier is not None:
                return _existing(carrier)
            variables = host_variables(identity)
            host_id = await session.scalar(
                self._insert(Host).values(
                    inventory_id=inventory_id, name=name, variables=variables, enabled=True,
                    description=f"Registered by provisioning callback: {identity.description}",
                    registered_by_callback=True,
                ).on_conflict_do_nothing().returning(Host.id))
            if host_id is None:
                # The name is taken: by a concurrent registration of this instance (whose transaction
                # has committed once the insert returns), or by a host of another instance.
                taken = (await session.execute(
                    select(Host.id, Host.name, Host.enabled, Host.variables)
                    .where(Host.inventory_id == inventory_id, Host.name == name))).first()
                if taken is None or (taken.variables or {}).get("instance_id") != identity.instance_id:
                    return Registration(None, f"host name {name} is taken by a host without this "
                                              "instance id: not registered")
                return _existing(taken)
            await self._within_rate(session, inventory_id)
            group = allowed.registration_group
            await self._join_group(session, inventory_id, host_id, group)
            await self.index_writer.write(session, [Written(host_id, inventory_id, name, variables)])
            await session.commit()
        return Registration(HostRef(host_id, name), f"registered host {name} in group {group}")

    async def _within_rate(self, session: AsyncSession, inventory_id: int) -> None:
        """Raises TooManyRequests (rolling this registration back) when it is one too many."""
        now = utcnow()
        recent = list(await session.scalars(
            select(Host.created)
            .where(Host.inventory_id == inventory_id, Host.registered_by_callback, Host.created > now - WINDOW)
            .order_by(Host.created.desc()).limit(self.per_minute + 1)))
        if len(recent) > self.per_minute:
            # Once the oldest of these leaves the window, this one fits.
            wait = max(1, math.ceil((recent[-1] + WINDOW - now).total_seconds()))
            metrics.rate_limit_refused("registrations")
            log.warning("rate limit registrations tripped by inventory %s: refused for %d s (%d a minute allowed)",
                        inventory_id, wait, self.per_minute)
            raise TooManyRequests(wait, MSG_TOO_MANY)

    async def _join_group(self, session: AsyncSession, inventory_id: int, host_id: int, group: str) -> None:
        """Into ``group``, created if missing (insert-or-conflict too: registrations of two
        instances may create it at once)."""
        await session.execute(self._insert(Group).values(inventory_id=inventory_id, name=group)
                              .on_conflict_do_nothing())
        group_id = await session.scalar(
            select(Group.id).where(Group.inventory_id == inventory_id, Group.name == group))
        await session.execute(self._insert(GroupHost).values(group_id=group_id, host_id=host_id))
