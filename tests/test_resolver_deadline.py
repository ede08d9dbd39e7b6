"""``within``: the resolver's time limit, armed only once the resolver waits.

The chain relies on it for every resolver; these pin down what it must keep
of plain ``await`` (results, exceptions, cancellation reaching the resolver,
several waits) and that the limit holds from the start, not from the first wait.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from tornado_callback.resolution import within

pytestmark = pytest.mark.gen_test


async def answers_at_once():
    return "at once"


async def waits(steps, value="after waiting"):
    for _ in range(steps):
        await asyncio.sleep(0)
    await asyncio.sleep(0.01)
    return value


async def test_an_answer_without_waiting_is_returned():
    assert await within(answers_at_once(), 1.0) == "at once"


async def test_an_answer_after_several_waits_is_returned():
    assert await within(waits(5), 1.0) == "after waiting"


async def test_a_resolver_that_never_answers_times_out_at_its_limit():
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        await within(asyncio.sleep(30), 0.2)
    assert 0.15 < time.monotonic() - started < 2


async def test_time_spent_before_the_first_wait_counts():
    async def busy_then_waits():
        time.sleep(0.5)  # a resolver hogging the loop before it waits
        await asyncio.sleep(30)

    started = time.monotonic()
    with pytest.raises(TimeoutError):
        await within(busy_then_waits(), 0.4)
    # Out of time at its first wait, not 0.4 s after it.
    assert time.monotonic() - started < 0.8


async def test_errors_before_and_after_waiting_reach_the_caller():
    async def fails(wait_first):
        if wait_first:
            await asyncio.sleep(0)
        raise LookupError("resolver bug")

    for wait_first in (False, True):
        with pytest.raises(LookupError, match="resolver bug"):
            await within(fails(wait_first), 1.0)


async def test_the_timeout_reaches_the_resolver_so_it_can_clean_up():
    cleaned = asyncio.Event()

    async def holds_a_resource():
        try:
            await asyncio.sleep(30)
        finally:
            cleaned.set()

    with pytest.raises(TimeoutError):
        await within(holds_a_resource(), 0.1)
    assert cleaned.is_set()


async def test_cancelling_the_caller_cancels_the_resolver():
    entered, cleaned = asyncio.Event(), asyncio.Event()

    async def resolver():
        entered.set()
        try:
            await asyncio.sleep(30)
        finally:
            cleaned.set()

    task = asyncio.ensure_future(within(resolver(), 60))
    await entered.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert cleaned.is_set()
