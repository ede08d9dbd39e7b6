"""A resolver's time limit, armed only once the resolver waits: the chain's one performance trick."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Coroutine, Generator
from typing import Any, Generic, TypeVar

T = TypeVar("T")


async def within(coroutine: Coroutine[Any, Any, T], seconds: float) -> T:
    """``await coroutine``, raising TimeoutError once it has taken ``seconds``.

    The timer is armed only when the coroutine first waits. Most resolvers
    answer from what they hold (x_forwarded_for, a resolver with nothing to
    look at) and never wait, and arming and disarming a timer cost as much as
    such a resolver's whole work. Measured against a plain ``async with
    asyncio.timeout()`` around every resolver (issue 16's A/B, bench/NOTES.md):
    1.643-1.649 M instructions a GET against 1.709-1.717 M (3.9 %), and the
    GET at 0.50-0.62 of hello against 0.52-0.56 in bench/run.py. ``asyncio.timeout``,
    not ``wait_for``: the coroutine runs in this task, not in a new one per
    resolver and request.
    """
    deadline = asyncio.get_running_loop().time() + seconds
    try:
        awaited = coroutine.send(None)
    except StopIteration as done:
        return done.value
    async with asyncio.timeout_at(deadline):
        return await _Resumed(coroutine, awaited)


class _Resumed(Generic[T]):
    """The rest of a coroutine whose first step has run: ``await`` forwards to it what
    the task sends or throws, as ``yield from`` would have from the start."""

    def __init__(self, coroutine: Coroutine[Any, Any, T], awaited: Any) -> None:
        self._coroutine = coroutine
        self._awaited = awaited

    def __await__(self) -> Generator[Any, Any, T]:
        coroutine, awaited = self._coroutine, self._awaited
        while True:
            try:
                sent = yield awaited
            except GeneratorExit:
                coroutine.close()
                raise
            except BaseException as e:  # e.g. the timeout's cancellation: the coroutine sees it
                step = functools.partial(coroutine.throw, e)
            else:
                step = functools.partial(coroutine.send, sent)
            try:
                awaited = step()
            except StopIteration as done:
                return done.value
