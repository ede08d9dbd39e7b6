"""The provisioning callback: from a POST to a committed job, and the admin's explanation.

Order of checks (API.md section 1): unknown template 404, rate limit 429 (too
many wrong keys from the client or for the template: ratelimit.py), body
400/413/415, key 403, no inventory 400, cloud identity 403 (section 4: judged
before matching, refused whatever the resolvers find), matching 400 (unless a
verified instance that matches nothing registers: 429 over the inventory's
rate), launch checks 400, then 202. Every POST leaves one audit record,
whatever its answer.
"""

from __future__ import annotations

import hmac
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy import Connection

from tornado_callback.accounts.ratelimit import FailureLimiter
from tornado_callback.accounts.service import Accounts, Principal
from tornado_callback.errors import (
    CallbackRefused,
    NotFound,
    PermissionDenied,
    ServiceError,
)
from tornado_callback.http.values import parse_id
from tornado_callback.identity.service import CloudIdentities
from tornado_callback.inventory.registration import HostRegistrar
from tornado_callback.inventory.service import Inventories
from tornado_callback.inventory.sync import InventorySync
from tornado_callback.jobs.launch import (
    MSG_MULTIPLE,
    MSG_NO_INVENTORY,
    MSG_NO_MATCH,
    LaunchRefused,
    LaunchService,
    job_url,
)
from tornado_callback.plugin.addresses import normalise_address
from tornado_callback.plugin.chain import Resolution, ResolverChain, TraceEntry
from tornado_callback.plugin.resolver import CallbackRequest, CloudIdentity
from tornado_callback.store import queries
from tornado_callback.store.database import Database
from tornado_callback.store.models import JobTemplate
from tornado_callback.store.read_cache import ReadCache
from tornado_callback.telemetry import metrics

KEY_FIELD = "host_config_key"
IDENTITY_FIELD = "cloud_identity"
# Never handed to resolvers: the key, and the proof whose verdict they get instead.
PRIVATE_FIELDS = frozenset({KEY_FIELD, IDENTITY_FIELD})
HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
# Who found the host, in the trace, the audit record and the job, when a registration did.
REGISTRATION = "self_registration"


@dataclass(frozen=True)
class CallbackBody:
    """The POST body as parsed by the handler, or the error parsing it gave."""

    fields: Mapping[str, Any] = field(default_factory=dict)
    error: ServiceError | None = None


@dataclass(frozen=True)
class Accepted:
    job_id: int

    @property
    def url(self) -> str:
        return job_url(self.job_id)


class CallbackService:
    def __init__(
        self,
        db: Database,
        chain: ResolverChain,
        inventories: Inventories,
        launcher: LaunchService,
        accounts: Accounts,
        limiter: FailureLimiter,
        inventory_sync: InventorySync,
        identities: CloudIdentities,
        registrar: HostRegistrar,
    ) -> None:
        self.db = db
        self.chain = chain
        self.inventories = inventories
        self.launcher = launcher
        self.accounts = accounts
        self.limiter = limiter
        self.inventory_sync = inventory_sync
        self.identities = identities
        self.registrar = registrar
        self._templates: ReadCache[JobTemplate] = ReadCache(db, {"job_templates", "inventories"})

    async def _template(self, template_ref: str) -> JobTemplate:
        template_id = parse_id(template_ref)
        if template_id is None:
            raise NotFound()
        template = await self._templates.get(
            template_id, lambda: self.db.read(queries.template_by_id, template_id))
        if template is None:
            raise NotFound()
        return template

    async def resolve(self, template: JobTemplate, request: CallbackRequest) -> Resolution:
        assert template.inventory_id is not None
        return await self.chain.resolve(request, self.inventories.lookup(template.inventory_id))

    async def launch(
        self, template_ref: str, peer: str, headers: tuple[tuple[str, str], ...], body: CallbackBody
    ) -> Accepted:
        started = time.perf_counter()
        # The audit record (a callback_attempts row), filled in as the checks go.
        attempt: dict[str, Any] = {"peer_address": peer, "client_addresses": [peer], "status_code": 202}
        try:
            accepted = await self._launch(template_ref, peer, headers, body, attempt, started)
        except ServiceError as e:
            attempt["status_code"] = e.status
            attempt["msg"] = str(e.body.get("msg") or e.body.get("detail") or "")
            attempt["elapsed_ms"] = _ms_since(started)
            await self.db.write(queries.insert_attempt, attempt)
            outcome = refusal_outcome(e.status, attempt["msg"])
            metrics.callback_answered(attempt.get("job_template_id"), e.status, outcome, time.perf_counter() - started)
            raise
        metrics.callback_answered(attempt["job_template_id"], 202, "accepted", time.perf_counter() - started)
        return accepted

    async def _launch(
        self,
        template_ref: str,
        peer: str,
        headers: tuple[tuple[str, str], ...],
        body: CallbackBody,
        attempt: dict[str, Any],
        started: float,
    ) -> Accepted:
        template = await self._template(template_ref)
        attempt["job_template_id"] = template.id
        request = CallbackRequest(
            peer=peer,
            headers=headers,
            body={k: v for k, v in body.fields.items() if k not in PRIVATE_FIELDS},
        )
        # Wrong keys count against the client (behind a trusted proxy: the one it
        # names, not the proxy) and against the template, whatever the address.
        client = self.chain.client_address(request)
        attempt["client_addresses"] = [client]
        limits = self.limiter.limits
        async with self.limiter.attempt(
            ((limits.bad_key_per_address, client), (limits.bad_key_per_template, str(template.id)))
        ) as key_check:
            if body.error is not None:
                raise body.error
            if not key_matches(template.host_config_key, body.fields.get(KEY_FIELD)):
                key_check.failed()
                raise PermissionDenied()
        if template.inventory_id is None:
            raise CallbackRefused(MSG_NO_INVENTORY)
        identity = None
        if IDENTITY_FIELD in body.fields:
            # Judged once, after the key: only a caller with the key may spend a proof.
            identity = await self.identities.judge(body.fields[IDENTITY_FIELD])
            request = replace(request, cloud_identity=identity)
        refusal = identity.refusal if identity is not None else None

        resolution = await self.resolve(template, request)
        # Update on launch (AWX's rule): not exactly one host, so sync the due
        # sources and match again. Not for a refused identity, which no sync can
        # make acceptable. A GET (explain) never gets here.
        if (resolution.outcome != "matched" and refusal is None
                and await self.inventory_sync.refresh_for_callback(template.inventory_id)):
            resolution = await self.resolve(template, request)
        attempt.update(
            client_addresses=list(resolution.client_addresses),
            trace=resolution.trace_dicts(),
            resolved_by=resolution.resolved_by,
        )
        if refusal is not None:
            # Decisive whatever the chain found (cloud_metadata stops it, but it may be
            # disabled, or outranked): a failed proof is never overruled by an address.
            raise ServiceError({"msg": f"Cloud identity refused: {refusal}."}, status=403)
        if resolution.outcome == "ambiguous":
            raise CallbackRefused(MSG_MULTIPLE)
        if resolution.host is None and identity is not None:
            # Verified (a refusal was answered above), and matching nothing even after the sync.
            resolution = await self._register(template.inventory_id, identity, resolution)
            attempt.update(trace=resolution.trace_dicts(), resolved_by=resolution.resolved_by)
        host = resolution.host
        if host is None:
            raise CallbackRefused(MSG_NO_MATCH)
        attempt.update(host_id=host.id, host_name=host.name)

        def commit_job(db: Connection) -> int:
            job_id = self.launcher.create_callback_job(db, template, job)
            attempt.update(job_id=job_id, elapsed_ms=_ms_since(started))
            queries.insert_attempt(db, attempt)
            return job_id

        try:
            # Variables and survey answers are checked here, not in the write
            # transaction, which would hold SQLite's write lock meanwhile.
            job = self.launcher.callback_job(template, host, body.fields.get("extra_vars"), resolution.resolved_by)
            # The 202 goes out only after this commit: the job is durable before the host hears of it.
            job_id = await self.db.write(commit_job)
        except LaunchRefused as e:
            raise CallbackRefused(e.msg, **e.extra) from e
        self.launcher.queued(job_id, job)
        return Accepted(job_id)

    async def _register(self, inventory_id: int, identity: CloudIdentity, resolution: Resolution) -> Resolution:
        """``resolution`` with the host verified self-registration gave, and a trace entry saying
        how; unchanged when the inventory does not allow it (API.md section 4)."""
        started = time.perf_counter()
        registration = await self.registrar.register(inventory_id, identity)
        if registration is None:
            return resolution
        found = () if registration.host is None else (registration.host,)
        entry = TraceEntry(
            resolver=REGISTRATION, priority=0, outcome="matched" if found else "no_match",
            evidence=(registration.evidence,), hosts=tuple(h.name for h in found), elapsed_ms=_ms_since(started))
        return replace(
            resolution, outcome="matched" if found else "no_match", host=registration.host, candidates=found,
            resolved_by=REGISTRATION if found else "", trace=(*resolution.trace, entry))

    async def explain(
        self, template_ref: str, principal: Principal, request: CallbackRequest
    ) -> dict[str, Any]:
        """What the admin GET shows: which host would match this request, and why."""
        template = await self._template(template_ref)
        await self.accounts.require_role(principal, "job_template", template.id, "admin")
        if template.inventory_id is None:
            matching: list[str] = []
            remote = {"peer": request.peer, "addresses": [request.peer], "names": []}
            trace: list[dict[str, Any]] = []
        else:
            resolution = await self.resolve(template, request)
            matching = resolution.matching_hosts
            remote = {
                "peer": request.peer,
                "addresses": list(resolution.client_addresses),
                "names": list(resolution.names),
            }
            trace = resolution.trace_dicts()
        return {
            "host_config_key": template.host_config_key,
            "matching_hosts": matching,
            "remote": remote,
            "resolution": trace,
        }


def simulated_request(peer: str, address: str | None, header_lines: Sequence[str]) -> CallbackRequest:
    """The request an admin asks to evaluate: from ``address`` (default: the real
    ``peer``) carrying ``header_lines`` ("Name: value"), shared by the GET and ``explain``."""
    if address is not None:
        normalised = normalise_address(address)
        if normalised is None:
            raise ServiceError.detail(f"address {address!r} is not an IP address.")
        peer = normalised
    headers = []
    for line in header_lines:
        name, sep, value = line.partition(":")
        if not sep or not HEADER_NAME.match(name.strip()):
            raise ServiceError.detail(f"header {line!r} must look like 'Name: value'.")
        headers.append((name.strip(), value.strip()))
    return CallbackRequest(peer=peer, headers=tuple(headers))


# A refusal's outcome label on /metrics, by status; a 400 by its message, when it is one of matching's.
REFUSAL_OUTCOMES = {403: "forbidden", 404: "not_found", 413: "too_large", 415: "unsupported_media_type",
                    429: "rate_limited"}
MATCHING_OUTCOMES = {MSG_NO_MATCH: "no_match", MSG_MULTIPLE: "multiple", MSG_NO_INVENTORY: "no_inventory"}


def refusal_outcome(status: int, msg: str) -> str:
    """What a refused callback came to, in a word out of a fixed few (never the message itself)."""
    if status == 400:
        return MATCHING_OUTCOMES.get(msg, "bad_request")
    return REFUSAL_OUTCOMES.get(status, "refused")


def key_matches(expected: str, given: Any) -> bool:
    """Constant-time comparison; a template without a key refuses every key, as in AWX."""
    if not expected or not isinstance(given, str) or not given:
        return False
    return hmac.compare_digest(expected.encode("utf-8"), given.encode("utf-8", "surrogatepass"))


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)
