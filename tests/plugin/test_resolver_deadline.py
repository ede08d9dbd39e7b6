"""A resolver's time limit, as the chain's trace shows it.

The chain awaits each resolver with ``plugin.deadline.within``: an answer given
without waiting, or after several waits, is used; a resolver out of time is a
``timeout`` entry (counted from its start, not from its first wait) and sees
the cancellation, so that it can clean up.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from tornado_callback.plugin import CallbackRequest, HostRef, HostResolver, ResolverResult
from tornado_callback.plugin.chain import RankedResolver, ResolverChain

pytestmark = pytest.mark.gen_test

WEB1 = HostRef(id=1, name="web1")


class NoHosts:
    async def find(self, kind, values):
        return []


class Scripted(HostResolver):
    name = "scripted"
    priority = 100

    def __init__(self, body):
        self.body = body

    async def resolve(self, request, state, hosts):
        return await self.body()


def chain_of(body, timeout=1.0):
    return ResolverChain([RankedResolver(Scripted(body), 100, timeout, {}, "test")])


async def outcome_of(body, timeout=1.0):
    resolution = await chain_of(body, timeout).resolve(CallbackRequest(peer="127.0.0.1"), NoHosts())
    (entry,) = resolution.trace
    return entry


async def test_an_answer_without_waiting_is_used():
    async def at_once():
        return ResolverResult(hosts=[WEB1])

    assert (await outcome_of(at_once)).outcome == "matched"


async def test_an_answer_after_several_waits_is_used():
    async def after_waits():
        for _ in range(5):
            await asyncio.sleep(0)
        await asyncio.sleep(0.01)
        return ResolverResult(hosts=[WEB1])

    assert (await outcome_of(after_waits)).outcome == "matched"


async def test_a_resolver_that_never_answers_times_out_at_its_limit():
    async def never():
        await asyncio.sleep(30)

    started = time.monotonic()
    entry = await outcome_of(never, timeout=0.2)
    assert (entry.outcome, entry.evidence) == ("timeout", ("no answer within 0.2s",))
    assert 0.15 < time.monotonic() - started < 2


async def test_time_spent_before_the_first_wait_counts():
    async def busy_then_waits():
        time.sleep(0.5)  # a resolver hogging the loop before it waits
        await asyncio.sleep(30)

    started = time.monotonic()
    assert (await outcome_of(busy_then_waits, timeout=0.4)).outcome == "timeout"
    # Out of time at its first wait, not 0.4 s after it.
    assert time.monotonic() - started < 0.8


async def test_errors_before_and_after_waiting_are_error_entries():
    async def fails(wait_first):
        if wait_first:
            await asyncio.sleep(0)
        raise LookupError("resolver bug")

    for wait_first in (False, True):
        entry = await outcome_of(lambda wait_first=wait_first: fails(wait_first))
        assert (entry.outcome, entry.evidence) == ("error", ("LookupError: resolver bug",))


async def test_the_timeout_reaches_the_resolver_so_it_can_clean_up():
    cleaned = asyncio.Event()

    async def holds_a_resource():
        try:
            await asyncio.sleep(30)
        finally:
            cleaned.set()

    assert (await outcome_of(holds_a_resource, timeout=0.1)).outcome == "timeout"
    assert cleaned.is_set()


async def test_cancelling_the_request_cancels_the_resolver():
    entered, cleaned = asyncio.Event(), asyncio.Event()

    async def waits_long():
        entered.set()
        try:
            await asyncio.sleep(30)
        finally:
            cleaned.set()

    task = asyncio.ensure_future(outcome_of(waits_long, timeout=60))
    await entered.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert cleaned.is_set()
