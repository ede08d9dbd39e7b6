"""Typed SQLAlchemy 2.0 models.

Invariants live here, in the schema: one active callback job per (template,
host) is a unique partial index on ``jobs``; the host lookup index
(``host_keys``) is what matching reads, so it never scans ``hosts``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
    text,
    true,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

ACTIVE_JOB_STATUSES = ("pending", "waiting", "running")
FINISHED_JOB_STATUSES = ("successful", "failed", "error", "canceled")
JOB_STATUSES = ACTIVE_JOB_STATUSES + FINISHED_JOB_STATUSES
# The group a self-registered host joins unless its inventory names another.
DEFAULT_REGISTRATION_GROUP = "registered_by_callback"


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Aware UTC datetimes on every backend (SQLite would hand back naive ones)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime stored; use tornado_callback.store.models.utcnow()")
        return value.astimezone(dt.UTC) if value is not None else None

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {dt.datetime: UTCDateTime, dict[str, Any]: JSON}


class Timestamped:
    created: Mapped[dt.datetime] = mapped_column(default=utcnow)
    modified: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class User(Timestamped, Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(150), unique=True)
    password_hash: Mapped[str | None] = mapped_column(String(255))
    is_superuser: Mapped[bool] = mapped_column(default=False)
    email: Mapped[str] = mapped_column(String(254), default="")
    first_name: Mapped[str] = mapped_column(String(150), default="")
    last_name: Mapped[str] = mapped_column(String(150), default="")


class Token(Timestamped, Base):
    """A personal access token. Only its SHA-256 is kept: tokens are random, so
    a fast hash suffices and lets a bearer header be found by index."""

    __tablename__ = "tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    description: Mapped[str] = mapped_column(String(512), default="")
    expires: Mapped[dt.datetime | None]

    user: Mapped[User] = relationship(lazy="joined")


class RoleAssignment(Base):
    """A role a user holds on one object (``resource_type`` job_template or inventory)."""

    __tablename__ = "role_assignments"
    __table_args__ = (UniqueConstraint("user_id", "resource_type", "resource_id", "role"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    resource_type: Mapped[str] = mapped_column(String(32))
    resource_id: Mapped[int]
    role: Mapped[str] = mapped_column(String(32))
    created: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Inventory(Timestamped, Base):
    __tablename__ = "inventories"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(512), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    variables: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # Verified self-registration (API.md section 4): a verified cloud instance that no host
    # carries gets one, in ``registration_group``. Off unless the inventory's admin says so.
    register_verified_hosts: Mapped[bool] = mapped_column(default=False, server_default=false())
    registration_group: Mapped[str] = mapped_column(
        String(512), default=DEFAULT_REGISTRATION_GROUP, server_default=DEFAULT_REGISTRATION_GROUP)


class GroupHost(Base):
    __tablename__ = "group_hosts"

    group_id: Mapped[int] = mapped_column(
        ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True
    )
    host_id: Mapped[int] = mapped_column(
        ForeignKey("hosts.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class GroupChild(Base):
    __tablename__ = "group_children"

    parent_id: Mapped[int] = mapped_column(
        ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True
    )
    child_id: Mapped[int] = mapped_column(
        ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class Group(Timestamped, Base):
    __tablename__ = "groups"
    __table_args__ = (UniqueConstraint("inventory_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    inventory_id: Mapped[int] = mapped_column(ForeignKey("inventories.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(512))
    description: Mapped[str] = mapped_column(Text, default="")
    variables: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # The source that last listed it (None: added by hand); an overwrite sync
    # removes only what its own source stopped listing.
    inventory_source_id: Mapped[int | None] = mapped_column(
        ForeignKey("inventory_sources.id", ondelete="SET NULL"), index=True
    )


class Host(Timestamped, Base):
    __tablename__ = "hosts"
    __table_args__ = (UniqueConstraint("inventory_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    inventory_id: Mapped[int] = mapped_column(ForeignKey("inventories.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(512))
    description: Mapped[str] = mapped_column(Text, default="")
    enabled: Mapped[bool] = mapped_column(default=True)
    variables: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # The source that last listed it (None: added by hand); an overwrite sync
    # removes only what its own source stopped listing.
    inventory_source_id: Mapped[int | None] = mapped_column(
        ForeignKey("inventory_sources.id", ondelete="SET NULL"), index=True
    )
    # Created by verified self-registration; with ``created``, what its rate limit counts.
    registered_by_callback: Mapped[bool] = mapped_column(default=False, server_default=false())


class HostKey(Base):
    """The host lookup index: (inventory, kind, value) -> host.

    Kinds are chosen by the resolvers that fill them (``name``, ``address``,
    ``instance_id``, a plugin's own); values are normalised by the same
    resolver that later looks them up.
    """

    __tablename__ = "host_keys"
    __table_args__ = (
        UniqueConstraint("host_id", "kind", "value"),
        # host_id last: the lookup reads it from the index itself (a covering
        # index), one B-tree descent fewer per callback than through the row.
        Index("ix_host_keys_lookup", "inventory_id", "kind", "value", "host_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    inventory_id: Mapped[int] = mapped_column(ForeignKey("inventories.id", ondelete="CASCADE"))
    host_id: Mapped[int] = mapped_column(ForeignKey("hosts.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(64))
    value: Mapped[str] = mapped_column(String(512))


class IndexState(Base):
    """What the host index was built with, so a changed resolver set triggers a rebuild."""

    __tablename__ = "index_state"

    id: Mapped[int] = mapped_column(primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(128))
    built: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Credential(Timestamped, Base):
    """An SSH credential. Secret fields hold Fernet tokens, never clear text."""

    __tablename__ = "credentials"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(512), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    kind: Mapped[str] = mapped_column(String(32), default="ssh")
    username: Mapped[str] = mapped_column(String(512), default="")
    ssh_key_data: Mapped[bytes | None] = mapped_column(LargeBinary)
    ssh_key_unlock: Mapped[bytes | None] = mapped_column(LargeBinary)
    password: Mapped[bytes | None] = mapped_column(LargeBinary)
    become_method: Mapped[str] = mapped_column(String(32), default="")
    become_username: Mapped[str] = mapped_column(String(512), default="")
    become_password: Mapped[bytes | None] = mapped_column(LargeBinary)
    # "ASK" in any secret field means it must be typed at launch: a callback
    # cannot do that, so such templates answer "user input required".
    ask_at_launch: Mapped[bool] = mapped_column(default=False)


class InventorySource(Timestamped, Base):
    __tablename__ = "inventory_sources"
    __table_args__ = (UniqueConstraint("inventory_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    inventory_id: Mapped[int] = mapped_column(ForeignKey("inventories.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(512))
    description: Mapped[str] = mapped_column(Text, default="")
    source: Mapped[str] = mapped_column(String(32))
    source_path: Mapped[str] = mapped_column(Text, default="")
    update_on_launch: Mapped[bool] = mapped_column(default=False)
    update_cache_timeout: Mapped[int] = mapped_column(default=0)
    overwrite: Mapped[bool] = mapped_column(default=False)
    overwrite_vars: Mapped[bool] = mapped_column(default=False)
    timeout: Mapped[int] = mapped_column(default=0)
    last_update_id: Mapped[int | None]
    last_successful_update: Mapped[dt.datetime | None]


class InventoryUpdate(Timestamped, Base):
    __tablename__ = "inventory_updates"

    id: Mapped[int] = mapped_column(primary_key=True)
    inventory_source_id: Mapped[int] = mapped_column(
        ForeignKey("inventory_sources.id", ondelete="CASCADE"), index=True
    )
    status: Mapped[str] = mapped_column(String(20), default="pending")
    launch_type: Mapped[str] = mapped_column(String(20), default="manual")
    started: Mapped[dt.datetime | None]
    finished: Mapped[dt.datetime | None]
    hosts_added: Mapped[int] = mapped_column(default=0)
    hosts_updated: Mapped[int] = mapped_column(default=0)
    hosts_removed: Mapped[int] = mapped_column(default=0)
    result_stdout: Mapped[str] = mapped_column(Text, default="")
    job_explanation: Mapped[str] = mapped_column(Text, default="")


class JobTemplate(Timestamped, Base):
    __tablename__ = "job_templates"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(512), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    inventory_id: Mapped[int | None] = mapped_column(
        ForeignKey("inventories.id", ondelete="SET NULL"), index=True
    )
    project_dir: Mapped[str] = mapped_column(Text, default="")
    playbook: Mapped[str] = mapped_column(Text, default="")
    credential_id: Mapped[int | None] = mapped_column(
        ForeignKey("credentials.id", ondelete="SET NULL")
    )
    extra_vars: Mapped[dict[str, Any]] = mapped_column(default=dict)
    limit: Mapped[str] = mapped_column(Text, default="")
    forks: Mapped[int] = mapped_column(default=0)
    verbosity: Mapped[int] = mapped_column(default=0)
    job_tags: Mapped[str] = mapped_column(Text, default="")
    skip_tags: Mapped[str] = mapped_column(Text, default="")
    timeout: Mapped[int] = mapped_column(default=0)
    ask_variables_on_launch: Mapped[bool] = mapped_column(default=False)
    ask_limit_on_launch: Mapped[bool] = mapped_column(default=False)
    survey_enabled: Mapped[bool] = mapped_column(default=False)
    survey_spec: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # Kept as given: the admin GET shows it back, as AWX does. Compared in constant time.
    host_config_key: Mapped[str] = mapped_column(String(1024), default="")
    allow_simultaneous: Mapped[bool] = mapped_column(default=False)
    # Whether its callback jobs may share one ansible-playbook run (executor.py).
    allow_coalesced_runs: Mapped[bool] = mapped_column(default=True, server_default=true())


class Job(Timestamped, Base):
    __tablename__ = "jobs"
    __table_args__ = (
        # "One active job per template and host", enforced by the database so
        # that concurrent callbacks (in any process, on any machine) cannot race.
        Index(
            "uq_jobs_active_callback",
            "job_template_id",
            "host_id",
            unique=True,
            sqlite_where=text(
                "host_id IS NOT NULL AND status IN ('pending', 'waiting', 'running')"
            ),
            postgresql_where=text(
                "host_id IS NOT NULL AND status IN ('pending', 'waiting', 'running')"
            ),
        ),
        Index("ix_jobs_status_id", "status", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    job_template_id: Mapped[int | None] = mapped_column(
        ForeignKey("job_templates.id", ondelete="SET NULL"), index=True
    )
    inventory_id: Mapped[int | None] = mapped_column(
        ForeignKey("inventories.id", ondelete="SET NULL")
    )
    # Set for callback jobs only: the host that called, for the uniqueness rule.
    host_id: Mapped[int | None] = mapped_column(ForeignKey("hosts.id", ondelete="SET NULL"))
    name: Mapped[str] = mapped_column(String(512), default="")
    status: Mapped[str] = mapped_column(String(20), default="pending")
    launch_type: Mapped[str] = mapped_column(String(20), default="manual")
    limit: Mapped[str] = mapped_column(Text, default="")
    extra_vars: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # The part of extra_vars given at launch: data, never templated (executor).
    launch_vars: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default=text("'{}'"))
    resolved_by: Mapped[str] = mapped_column(String(128), default="")
    launched_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    started: Mapped[dt.datetime | None]
    finished: Mapped[dt.datetime | None]
    failed: Mapped[bool] = mapped_column(default=False)
    job_explanation: Mapped[str] = mapped_column(Text, default="")
    result_stdout: Mapped[str] = mapped_column(Text, default="")
    cancel_requested: Mapped[bool] = mapped_column(default=False)
    worker_id: Mapped[str] = mapped_column(String(128), default="")
    lease_expires: Mapped[dt.datetime | None]
    # The run that ran it (last), and how many jobs shared that run.
    run_id: Mapped[str | None] = mapped_column(String(32))
    run_job_count: Mapped[int] = mapped_column(default=0, server_default=text("0"))

    @property
    def elapsed(self) -> float:
        if self.started is None:
            return 0.0
        end = self.finished or utcnow()
        return round((end - self.started).total_seconds(), 3)


class JobEvent(Base):
    __tablename__ = "job_events"
    __table_args__ = (UniqueConstraint("job_id", "counter"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    counter: Mapped[int]
    event: Mapped[str] = mapped_column(String(100))
    host_name: Mapped[str] = mapped_column(String(512), default="")
    task: Mapped[str] = mapped_column(Text, default="")
    stdout: Mapped[str] = mapped_column(Text, default="")
    event_data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    failed: Mapped[bool] = mapped_column(default=False)
    changed: Mapped[bool] = mapped_column(default=False)
    created: Mapped[dt.datetime] = mapped_column(default=utcnow)


class CallbackAttempt(Base):
    """One provisioning callback POST, accepted or refused. Never holds the key."""

    __tablename__ = "callback_attempts"
    __table_args__ = (Index("ix_callback_attempts_template_created", "job_template_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    created: Mapped[dt.datetime] = mapped_column(default=utcnow)
    job_template_id: Mapped[int | None] = mapped_column(
        ForeignKey("job_templates.id", ondelete="SET NULL")
    )
    peer_address: Mapped[str] = mapped_column(String(64))
    client_addresses: Mapped[list[str]] = mapped_column(JSON, default=list)
    status_code: Mapped[int] = mapped_column(Integer)
    msg: Mapped[str] = mapped_column(Text, default="")
    host_id: Mapped[int | None] = mapped_column(ForeignKey("hosts.id", ondelete="SET NULL"))
    host_name: Mapped[str] = mapped_column(String(512), default="")
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"))
    resolved_by: Mapped[str] = mapped_column(String(128), default="")
    trace: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    elapsed_ms: Mapped[float] = mapped_column(Float, default=0.0)


class AuthFailure(Base):
    """A wrong host_config_key or password, kept for as long as a rate limit counts it,
    so that every process and server sharing the database counts it (ratelimit.py)."""

    __tablename__ = "auth_failures"
    __table_args__ = (Index("ix_auth_failures_subject", "subject", "failed_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    # A digest of the limit's kind and the subject: never a user name someone typed.
    subject: Mapped[str] = mapped_column(String(64))
    # Wall-clock seconds (time.time()): every process compares the same clock's readings.
    failed_at: Mapped[float] = mapped_column(Float, index=True)


class CloudTokenUse(Base):
    """A GCP identity token accepted once (API.md section 4): its digest, kept until the token
    expires, when verification refuses it anyway. The primary key makes the second use
    conflict, in every process and server sharing the database."""

    __tablename__ = "cloud_token_uses"

    # SHA-256 of the token, hex: never the token.
    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    # The token's exp, seconds since the epoch: the row is pruned after it.
    expires_at: Mapped[float] = mapped_column(Float, index=True)


class CloudIdentityBinding(Base):
    """An AWS instance bound, on its first verified callback, to its client's nonce: an AWS
    document never expires, so a copy of it proves nothing without that nonce."""

    __tablename__ = "cloud_identity_bindings"

    provider: Mapped[str] = mapped_column(String(16), primary_key=True)
    instance_id: Mapped[str] = mapped_column(String(256), primary_key=True)
    # SHA-256 of the nonce, hex: never the nonce.
    nonce_digest: Mapped[str] = mapped_column(String(64))
    created: Mapped[dt.datetime] = mapped_column(default=utcnow)
