"""Replay: a proof that verified counts once (GCP), or only with the nonce it was first sent with (AWS).

A document read from the metadata service is readable by any process on the
instance, and an AWS document never expires. So a GCP token's digest is
remembered until its ``exp`` (after which verification refuses it anyway), and
an AWS instance is bound on its first verified callback to the digest of its
client's nonce, as Vault's AWS auth method binds it. Each check is one
insert-or-conflict statement on a primary key: two servers racing with the same
token or with two nonces for one instance cannot both win, on SQLite and on
PostgreSQL, where a read-then-write would let both pass.
"""

from __future__ import annotations

import hmac

from sqlalchemy import Connection, delete
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from tornado_callback.identity.fields import malformed
from tornado_callback.identity.verdict import NONCE_MISMATCH, REPLAYED, IdentityRefused, VerifiedIdentity
from tornado_callback.store.database import Database
from tornado_callback.store.models import CloudIdentityBinding, CloudTokenUse

_tokens = CloudTokenUse.__table__
_bindings = CloudIdentityBinding.__table__
# Both dialects' inserts take ON CONFLICT ... RETURNING (SQLite since 3.35).
_INSERTS = {"sqlite": sqlite_insert, "postgresql": postgresql_insert}
MAX_INSTANCE_ID = _bindings.c.instance_id.type.length
# Seconds between deletions of expired token digests, per process: not one DELETE per callback.
PRUNE_INTERVAL = 60.0


def spend_token(db: Connection, digest: str, expires_at: float, prune_before: float | None) -> bool:
    """Remember the token of ``digest``; False when it was already remembered (a replay).
    ``prune_before``: forget the tokens that expired before it, too."""
    if prune_before is not None:
        db.execute(delete(_tokens).where(_tokens.c.expires_at < prune_before))
    statement = (_INSERTS[db.dialect.name](_tokens)
                 .values(digest=digest, expires_at=expires_at)
                 .on_conflict_do_nothing()
                 .returning(_tokens.c.digest))
    return db.execute(statement).first() is not None


def bind_nonce(db: Connection, provider: str, instance_id: str, nonce_digest: str) -> str:
    """The nonce digest the instance is bound to: ``nonce_digest`` if this binds it, else the
    one it was bound to first. The update on conflict changes nothing; it is there so that
    RETURNING hands back the stored digest in the same statement, with no window between."""
    insert = _INSERTS[db.dialect.name](_bindings)
    statement = (insert
                 .values(provider=provider, instance_id=instance_id, nonce_digest=nonce_digest)
                 .on_conflict_do_update(index_elements=[_bindings.c.provider, _bindings.c.instance_id],
                                        set_={"nonce_digest": _bindings.c.nonce_digest})
                 .returning(_bindings.c.nonce_digest))
    return db.execute(statement).scalar_one()


def unbind(db: Connection, provider: str, instance_id: str) -> bool:
    """Forget the instance's binding; False when it had none."""
    deleted = db.execute(delete(_bindings).where(_bindings.c.provider == provider,
                                                 _bindings.c.instance_id == instance_id))
    return deleted.rowcount > 0


class ReplayGuard:
    """Admits a verified identity once per token (GCP) or per bound nonce (AWS)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._pruned_at = 0.0

    async def admit(self, identity: VerifiedIdentity, now: float) -> None:
        """Raises IdentityRefused for a replay; records the use (or the binding) otherwise."""
        if identity.nonce_digest is not None:
            await self._check_binding(identity.provider, identity.instance_id, identity.nonce_digest)
        elif identity.expires_at is not None:
            await self._spend(identity.proof_digest, identity.expires_at, now)
        else:  # fail closed: a proof that neither expires nor is bound could be replayed for ever
            raise IdentityRefused("malformed: this proof cannot be checked against replay")

    async def _spend(self, digest: str, expires_at: float, now: float) -> None:
        prune_before = None
        if now - self._pruned_at >= PRUNE_INTERVAL:
            self._pruned_at = prune_before = now
        if not await self.db.write(spend_token, digest, expires_at, prune_before):
            raise IdentityRefused(REPLAYED)

    async def _check_binding(self, provider: str, instance_id: str, nonce_digest: str) -> None:
        if len(instance_id) > MAX_INSTANCE_ID:
            raise malformed(f"the instance id is longer than {MAX_INSTANCE_ID} characters")
        bound = await self.db.write(bind_nonce, provider, instance_id, nonce_digest)
        if not hmac.compare_digest(bound, nonce_digest):
            raise IdentityRefused(NONCE_MISMATCH)
