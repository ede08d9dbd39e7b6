"""The admin API's resources, each declared once: fields, lists, links, access, hooks.

Field names and defaults follow AWX's ``/api/v2/`` so that its clients (the
awx CLI, the ``awx.awx`` collection, scripts) find what they expect.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any

from sqlalchemy import inspect

from tornado_callback.accounts.credentials import ASK, BECOME_METHODS
from tornado_callback.accounts.secrets import SecretsUnreadable
from tornado_callback.accounts.service import new_token
from tornado_callback.admin.fields import (
    ENCRYPTED,
    Boolean,
    Choice,
    Data,
    DateTime,
    ForeignKey,
    Integer,
    PrivateKey,
    Secret,
    String,
    ValidationError,
    Variables,
)
from tornado_callback.admin.resource import (
    Hooks,
    Membership,
    OwnedByUser,
    Resource,
    RoleScoped,
    SubList,
    SuperuserOnly,
    WriteContext,
)
from tornado_callback.inventory.ansible_inventory import SOURCE_KINDS
from tornado_callback.store.models import (
    DEFAULT_REGISTRATION_GROUP,
    CallbackAttempt,
    Credential,
    Group,
    GroupChild,
    GroupHost,
    Host,
    Inventory,
    InventorySource,
    JobTemplate,
    Token,
    User,
)

TEXT = 65536
MSG_CALLBACK_NEEDS_INVENTORY = "Cannot enable provisioning callback without an inventory set."


def name_field(max_length: int = 512) -> String:
    return String("name", required=True, allow_blank=False, max_length=max_length)


def description_field() -> String:
    return String("description", max_length=TEXT)


def inventory_link(role: str = "admin") -> ForeignKey:
    return ForeignKey("inventory", attr_name="inventory_id", resource="inventories",
                      role=role, required=True, create_only=True)


def trimmed_name(values: Mapping[str, Any]) -> dict[str, list[str]]:
    """Host and group names are matched exactly: surrounding spaces would never match."""
    name = values.get("name") or ""
    return {"name": ["Names may not begin or end with spaces."]} if name != name.strip() else {}


def trimmed_group(values: Mapping[str, Any]) -> dict[str, list[str]]:
    """The registration group is a group name: matched exactly, like the names above."""
    group = values.get("registration_group") or ""
    return {"registration_group": ["Names may not begin or end with spaces."]} if group != group.strip() else {}


def new_host_config_key() -> str:
    """A callback key for templates made where none is chosen (``template create``, the demo)."""
    return secrets.token_hex(16)


def callback_needs_inventory(values: Mapping[str, Any]) -> dict[str, list[str]]:
    if values.get("host_config_key") and values.get("inventory_id") is None:
        return {"host_config_key": [MSG_CALLBACK_NEEDS_INVENTORY]}
    return {}


class UserHooks(Hooks):
    async def before_flush(self, ctx: WriteContext, obj: User) -> None:
        if obj.id == ctx.principal.id and ctx.changes.get("is_superuser") is False:
            # Nobody locks themselves (perhaps the last superuser) out by accident.
            raise ValidationError.one("is_superuser", "You cannot remove your own superuser status.")
        if "password" in ctx.changes:
            obj.password_hash = await ctx.accounts.hash_password(ctx.changes["password"])

    async def after_flush(self, ctx: WriteContext, obj: User) -> None:
        ctx.accounts.forget_verified()


class TokenHooks(Hooks):
    async def before_flush(self, ctx: WriteContext, obj: Token) -> None:
        if ctx.creating:
            text, digest = new_token()
            obj.user_id = ctx.principal.id
            obj.token_hash = digest
            ctx.shown_once["token"] = text


class HostHooks(Hooks):
    async def after_flush(self, ctx: WriteContext, obj: Host) -> None:
        # Matching reads only the index: it must change with the host, in the same transaction.
        await ctx.index_writer.write(ctx.session, [obj])


class JobTemplateHooks(Hooks):
    async def before_flush(self, ctx: WriteContext, obj: JobTemplate) -> None:
        if not ctx.principal.is_superuser and inspect(obj).attrs.project_dir.history.has_changes():
            # Runs are shown their project: choosing the directory is choosing what
            # of this machine a playbook reads, which is the machine's owner's call
            # (AWX keeps projects under PROJECTS_ROOT for the same reason).
            raise ValidationError.one("project_dir", "Only a superuser may set a template's project directory.")


CREDENTIAL_SECRETS = ("ssh_key_data", "ssh_key_unlock", "password", "become_password")


class CredentialHooks(Hooks):
    """Secrets are sealed before they reach the database; ``$encrypted$`` sent back keeps the old value."""

    async def before_flush(self, ctx: WriteContext, obj: Credential) -> None:
        box = ctx.secrets
        asked = False
        for name in CREDENTIAL_SECRETS:
            try:
                if name in ctx.changes and ctx.changes[name] != ENCRYPTED:
                    setattr(obj, name, box.encrypt(ctx.changes[name]))
                asked = asked or box.decrypt(getattr(obj, name)) == ASK
            except (ValueError, SecretsUnreadable) as e:
                raise ValidationError.one(name, str(e)) from e
        obj.ask_at_launch = asked


USERS = Resource(
    "users", "user", User,
    description="Accounts (superusers only).",
    fields=(
        String("username", required=True, allow_blank=False, max_length=150),
        Secret("password", write_only=True, required=True, allow_blank=False, max_length=1024,
               help="Write-only; stored as an argon2 hash."),
        Boolean("is_superuser"),
        String("email", max_length=254),
        String("first_name", max_length=150),
        String("last_name", max_length=150),
    ),
    access=SuperuserOnly(),
    search_fields=("username", "email", "first_name", "last_name"),
    filter_fields=("username", "is_superuser"),
    unique=(("username",),),
    hooks=UserHooks(),
)

TOKENS = Resource(
    "tokens", "token", Token,
    description="Personal access tokens. POST creates one for the caller; "
                "its text is in that answer only (stored as a SHA-256 hash).",
    fields=(
        String("description", max_length=512),
        ForeignKey("user", attr_name="user_id", resource="users", read_only=True),
        DateTime("expires"),
    ),
    access=OwnedByUser(),
    search_fields=("description",),
    filter_fields=(),
    hooks=TokenHooks(),
)

INVENTORIES = Resource(
    "inventories", "inventory", Inventory,
    fields=(
        name_field(), description_field(), Variables("variables"),
        # Whoever may change the inventory decides whether callers add hosts to it.
        Boolean("register_verified_hosts",
                help="Verified self-registration: a callback whose signed cloud identity verifies and "
                     "matches no host (after update on launch) creates the host, named by the instance "
                     "id, with the verified facts as variables, then launches. Off by default."),
        String("registration_group", default=DEFAULT_REGISTRATION_GROUP, allow_blank=False, max_length=512,
               help="The group a self-registered host joins (created if missing)."),
    ),
    access=RoleScoped("inventory", "id"),
    unique=(("name",),),
    checks=(trimmed_group,),
    related=(("hosts", "hosts/"), ("groups", "groups/"),
             ("inventory_sources", "inventory_sources/"), ("roles", "roles/")),
)

HOSTS = Resource(
    "hosts", "host", Host,
    description="Hosts. A callback is matched, as in AWX, with a host's effective host only: "
                "ansible_host, else ansible_ssh_host, else the name (an address, or a name "
                "for DNS); and with the cloud address variables of ip_match's "
                "address_variables (private_ip_address, public_ip_address).",
    fields=(
        name_field(), description_field(), inventory_link(),
        Boolean("enabled", default=True), Variables("variables"),
        Boolean("registered_by_callback", read_only=True,
                help="Created by verified self-registration (its inventory's register_verified_hosts)."),
    ),
    access=RoleScoped("inventory", "inventory_id"),
    filter_fields=("name", "inventory", "enabled", "registered_by_callback"),
    unique=(("inventory", "name"),),
    related=(("groups", "groups/"),),
    checks=(trimmed_name,),
    hooks=HostHooks(),
)

GROUPS = Resource(
    "groups", "group", Group,
    fields=(name_field(), description_field(), inventory_link(), Variables("variables")),
    access=RoleScoped("inventory", "inventory_id"),
    filter_fields=("name", "inventory"),
    unique=(("inventory", "name"),),
    related=(("hosts", "hosts/"), ("children", "children/")),
    checks=(trimmed_name,),
)

INVENTORY_SOURCES = Resource(
    "inventory_sources", "inventory_source", InventorySource,
    fields=(
        name_field(), description_field(), inventory_link(),
        Choice("source", required=True, choices=SOURCE_KINDS),
        String("source_path", max_length=4096, help="A path `ansible-inventory -i` understands."),
        Boolean("update_on_launch"),
        Integer("update_cache_timeout", help="Seconds a sync stays fresh."),
        Boolean("overwrite"), Boolean("overwrite_vars"),
        Integer("timeout"),
        ForeignKey("last_update", attr_name="last_update_id", resource="inventory_updates",
                   read_only=True, nullable=True),
        DateTime("last_successful_update"),
    ),
    access=RoleScoped("inventory", "inventory_id"),
    filter_fields=("name", "inventory", "source"),
    unique=(("inventory", "name"),),
)

CREDENTIALS = Resource(
    "credentials", "credential", Credential,
    description="SSH credentials (superusers only). Secrets are encrypted at rest and read back "
                "as $encrypted$; sending $encrypted$ keeps the stored value; ASK means typed at launch.",
    fields=(
        name_field(), description_field(),
        Choice("kind", choices=("ssh",), default="ssh"),
        String("username", max_length=512),
        PrivateKey("ssh_key_data"), Secret("ssh_key_unlock"), Secret("password"),
        Choice("become_method", default="", choices=BECOME_METHODS),
        String("become_username", max_length=512),
        Secret("become_password"),
        Boolean("ask_at_launch", read_only=True),
    ),
    access=SuperuserOnly(),
    filter_fields=("name", "kind"),
    unique=(("name",),),
    hooks=CredentialHooks(),
)

JOB_TEMPLATES = Resource(
    "job_templates", "job_template", JobTemplate,
    fields=(
        name_field(), description_field(),
        ForeignKey("inventory", attr_name="inventory_id", resource="inventories", role="use",
                   nullable=True),
        String("project_dir", max_length=4096),
        String("playbook", required=True, allow_blank=False, max_length=1024),
        ForeignKey("credential", attr_name="credential_id", resource="credentials", role="use",
                   nullable=True),
        Variables("extra_vars"),
        String("limit", max_length=TEXT),
        Integer("forks"),
        Integer("verbosity", maximum=5),
        String("job_tags", max_length=TEXT),
        String("skip_tags", max_length=TEXT),
        Integer("timeout"),
        Boolean("ask_variables_on_launch"),
        Boolean("ask_limit_on_launch"),
        Boolean("survey_enabled"),
        # Whoever holds the key can have any host of the inventory configured:
        # it is for those who may edit the template, not for readers or executors.
        String("host_config_key", max_length=1024, shown_to="change",
               help="Enables provisioning callbacks; empty disables them. Needs an inventory."),
        Boolean("allow_simultaneous"),
        Boolean("allow_coalesced_runs", default=True,
                help="Its callback jobs may share one ansible-playbook run (README: Coalesced runs)."),
    ),
    access=RoleScoped("job_template", "id"),
    filter_fields=("name", "inventory"),
    unique=(("name",),),
    related=(("launch", "launch/"), ("survey_spec", "survey_spec/"), ("callback", "callback/"),
             ("callback_attempts", "callback_attempts/"), ("roles", "roles/")),
    checks=(callback_needs_inventory,),
    hooks=JobTemplateHooks(),
)

CALLBACK_ATTEMPTS = Resource(
    "callback_attempts", "callback_attempt", CallbackAttempt,
    description="The provisioning callback audit trail: one record per POST, newest first "
                "(template admins only). The key itself is never recorded.",
    fields=(
        ForeignKey("job_template", attr_name="job_template_id", resource="job_templates",
                   read_only=True, nullable=True),
        String("peer_address", read_only=True),
        Data("client_addresses", json_schema=(("type", "array"), ("items", {"type": "string"}))),
        Integer("status_code", read_only=True),
        String("msg", read_only=True, max_length=TEXT),
        ForeignKey("host", attr_name="host_id", resource="hosts", read_only=True, nullable=True),
        String("host_name", read_only=True),
        ForeignKey("job", attr_name="job_id", resource="jobs", read_only=True, nullable=True),
        String("resolved_by", read_only=True),
        Data("trace", json_schema=(("type", "array"), ("items", {"type": "object"}))),
        Data("elapsed_ms", json_schema=(("type", "number"),)),
    ),
    access=RoleScoped("job_template", "job_template_id", read_role="admin"),
    search_fields=("host_name", "peer_address", "msg"),
    filter_fields=("status_code", "host_name"),
    writable=False,
    has_detail=False,
    newest_first=True,
)

RESOURCES: dict[str, Resource] = {r.name: r for r in (
    USERS, TOKENS, INVENTORIES, HOSTS, GROUPS, INVENTORY_SOURCES, CREDENTIALS, JOB_TEMPLATES,
    CALLBACK_ATTEMPTS,
)}

SUB_LISTS = (
    SubList("inventories", "hosts", "hosts", "inventory"),
    SubList("inventories", "groups", "groups", "inventory"),
    SubList("inventories", "inventory_sources", "inventory_sources", "inventory"),
    SubList("job_templates", "callback_attempts", "callback_attempts", "job_template",
            parent_action="admin"),
)

MEMBERSHIPS = (
    Membership("groups", "hosts", "hosts", GroupHost, "group_id", "host_id"),
    Membership("groups", "children", "groups", GroupChild, "parent_id", "child_id"),
    Membership("hosts", "groups", "groups", GroupHost, "host_id", "group_id"),
)
