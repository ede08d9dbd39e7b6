"""The replay records on a real database: spent tokens pruned once expired, one nonce winning a
race for an instance, and a proof that could be replayed for ever refused."""

from __future__ import annotations

import asyncio
import time

import pytest
from sqlalchemy import select

from tornado_callback.identity.replay import PRUNE_INTERVAL, ReplayGuard
from tornado_callback.identity.verdict import NONCE_MISMATCH, IdentityRefused, VerifiedIdentity, digest
from tornado_callback.store.models import CloudIdentityBinding, CloudTokenUse

pytestmark = pytest.mark.gen_test(timeout=30)


def identity(**fields) -> VerifiedIdentity:
    return VerifiedIdentity(**{"provider": "gcp", "instance_id": "42", "account": "p", "region": "r",
                               "zone": "r-a", "proof_digest": digest("token"), **fields})


async def remembered(services) -> list[str]:
    async with services.db.session() as session:
        return sorted(await session.scalars(select(CloudTokenUse.digest)))


async def test_expired_token_digests_are_pruned(services):
    guard = ReplayGuard(services.db)
    now = time.time()
    await guard.admit(identity(proof_digest=digest("old"), expires_at=now + 10), now)
    # Still remembered within the interval; gone at the first spend after it, once expired.
    await guard.admit(identity(proof_digest=digest("new"), expires_at=now + 3600), now + 20)
    assert await remembered(services) == sorted([digest("old"), digest("new")])
    await guard.admit(identity(proof_digest=digest("newer"), expires_at=now + 3600), now + PRUNE_INTERVAL + 1)
    assert await remembered(services) == sorted([digest("new"), digest("newer")])


async def test_of_nonces_racing_for_one_instance_exactly_one_binds_it(services):
    guards = [ReplayGuard(services.db) for _ in range(2)]  # as two servers on one database

    async def bind(n: int) -> str | None:
        try:
            await guards[n % 2].admit(identity(provider="aws", nonce_digest=digest(f"nonce-{n}")), time.time())
        except IdentityRefused as e:
            return e.reason
        return None

    reasons = await asyncio.gather(*(bind(n) for n in range(16)))
    assert sorted(reasons, key=str) == [None] + [NONCE_MISMATCH] * 15
    async with services.db.session() as session:
        bound = (await session.scalars(select(CloudIdentityBinding.nonce_digest))).all()
    assert bound == [digest(f"nonce-{reasons.index(None)}")]


async def test_a_proof_that_neither_expires_nor_binds_is_refused(services):
    with pytest.raises(IdentityRefused, match="cannot be checked against replay"):
        await ReplayGuard(services.db).admit(identity(), time.time())
