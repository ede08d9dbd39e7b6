"""Limits on the failures that guessing is made of: wrong host_config_keys, wrong passwords.

A failure counts against subjects (the client's address, the job template, the
user name), each under a ``Limit``: at most ``count`` failures in ``window``
seconds. A subject at its limit is refused with 429 before the secret is even
compared, so that an answer past the limit tells nothing about the guess,
until its oldest failure leaves the window.

Every process and every server sharing the database counts the same failures:
each is written to the database (``auth_failures``), and the write brings back
the shared count of its subjects. Checking costs no database round trip while
this process knows of fewer than a tenth of a subject's limit in failures (the
case of an honest caller, and of a template no one is guessing at), and one
read of the shared count before each attempt from then on. What escapes the shared
count: failures another process is still writing, and the tenth a process lets
through before it first reads. With P processes on the database, guesses that
come one after another get at most ``count + P - 1`` a window (a process that
has not seen another's newest failure lets one more through, then knows); a
burst at once, a few more (docs/configuration.md, "Rate limits"); one process alone never
more than ``count``, as it counts its own at once.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections import OrderedDict, deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from types import TracebackType

from tornado_callback.config import Settings
from tornado_callback.errors import TooManyRequests
from tornado_callback.store import queries
from tornado_callback.store.database import Database
from tornado_callback.telemetry import metrics

log = logging.getLogger("tornado_callback.accounts.ratelimit")


@dataclass(frozen=True, slots=True)
class Limit:
    """At most ``count`` failures per ``window`` seconds for one subject of this ``kind``."""

    kind: str
    count: int
    window: float
    # What the 429 says, before "Try again in N seconds."
    refusal: str
    # Whether the log may name the subject: not a user name, which may be a mistyped password.
    subject_logged: bool = True

    @property
    def shared_from(self) -> int:
        """Failures known to this process from which each attempt reads the shared count first.

        Not from the first: a template with one host calling with a stale key would
        cost all its good callbacks a database round trip. A tenth bounds what a
        burst gets past the shared count."""
        return math.ceil(self.count / 10)


@dataclass(frozen=True, slots=True)
class Limits:
    """The rules, from the settings."""

    bad_key_per_address: Limit
    bad_key_per_template: Limit
    login_per_user: Limit
    login_per_address: Limit

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        return cls(
            Limit("bad_key_address", settings.bad_key_limit, settings.bad_key_window,
                  "Too many bad host_config_key attempts from this address."),
            Limit("bad_key_template", settings.bad_key_template_limit, settings.bad_key_window,
                  "Too many bad host_config_key attempts for this job template."),
            Limit("login_user", settings.login_user_limit, settings.login_window,
                  "Too many failed logins for this user.", subject_logged=False),
            Limit("login_address", settings.login_address_limit, settings.login_window,
                  "Too many failed logins from this address."),
        )

    def __iter__(self) -> Iterator[Limit]:
        return iter((self.bad_key_per_address, self.bad_key_per_template,
                     self.login_per_user, self.login_per_address))


Subjects = Sequence[tuple[Limit, str]]
Key = tuple[str, str]  # (kind, subject)


def _digest(limit: Limit, subject: str) -> str:
    """How the database knows a subject: never the text itself (a mistyped user name may be a password)."""
    return hashlib.sha256(f"{limit.kind}\0{subject}".encode("utf-8", "surrogatepass")).hexdigest()


class FailureLimiter:
    """Checks and counts failures under ``Limits``; see the module's documentation.

    Memory is bounded by forgetting the least recently failed subjects (the
    database still counts them).
    """

    def __init__(self, db: Database, limits: Limits, max_subjects: int = 100_000) -> None:
        self.db = db
        self.limits = limits
        self.max_subjects = max_subjects
        # Rows older than the longest window count for no limit any more.
        self._kept_for = max(limit.window for limit in limits)
        # A subject's newest failures known here (wall-clock times, oldest first): all a limit needs.
        self._failures: OrderedDict[Key, deque[float]] = OrderedDict()
        # Attempts checked and not yet ended count against the limit too, so that
        # concurrent guesses cannot all pass the check before the first one fails.
        self._in_flight: dict[Key, int] = {}

    def attempt(self, subjects: Subjects) -> Attempt:
        """An attempt on ``subjects``, to use as ``async with``: entering raises TooManyRequests
        when one of them is at its limit; ``failed()`` inside counts a failure."""
        return Attempt(self, subjects)

    async def _admit(self, subjects: Subjects) -> None:
        # Nothing known of any subject is every good callback's case, the hot path's:
        # no clock, no pruning.
        if self._failures or self._in_flight:
            now = time.time()
            doubtful = [(limit, subject) for limit, subject in subjects
                        if self._known(limit, (limit.kind, subject), now) >= limit.shared_from]
            if doubtful:
                shared = await self.db.read(queries.recent_auth_failures, self._questions(doubtful, now))
                self._learn(doubtful, shared)
                now = time.time()
            waits = [(wait, limit, subject) for limit, subject in subjects
                     if (wait := self._wait(limit, (limit.kind, subject), now)) is not None]
            if waits:
                wait, limit, subject = max(waits, key=lambda w: w[0])
                metrics.rate_limit_refused(limit.kind)
                log.warning("rate limit %s tripped%s: refused for %d s (%d failures in %g s allowed)", limit.kind,
                            f" by {subject}" if limit.subject_logged else "", wait, limit.count, limit.window)
                raise TooManyRequests(wait, limit.refusal)
        for limit, subject in subjects:
            key = (limit.kind, subject)
            self._in_flight[key] = self._in_flight.get(key, 0) + 1

    def _end(self, subjects: Subjects) -> None:
        for limit, subject in subjects:
            key = (limit.kind, subject)
            left = self._in_flight[key] - 1
            if left:
                self._in_flight[key] = left
            else:
                del self._in_flight[key]

    def _known(self, limit: Limit, key: Key, now: float) -> int:
        """Failures in the window known here, and attempts in flight."""
        failures = self._failures.get(key)
        if failures is not None:
            while failures and failures[0] <= now - limit.window:
                failures.popleft()
            if not failures:
                del self._failures[key]
                failures = None
        return (len(failures) if failures else 0) + self._in_flight.get(key, 0)

    def _wait(self, limit: Limit, key: Key, now: float) -> int | None:
        """Seconds until the subject may try again, or None if it may now."""
        over = self._known(limit, key, now) - limit.count
        if over < 0:
            return None
        failures = self._failures.get(key, ())
        if over >= len(failures):
            return 1  # only attempts in flight stand in the way, and they end in moments
        return max(1, math.ceil(failures[over] + limit.window - now))

    async def _record_failure(self, subjects: Subjects) -> None:
        now = time.time()
        # Known here before the database hears of it: an attempt checked while the
        # write is under way already counts this failure.
        for limit, subject in subjects:
            self._remember(limit, (limit.kind, subject), [now])
        shared = await self.db.write(
            queries.record_auth_failures, self._questions(subjects, now), now, now - self._kept_for)
        self._learn(subjects, shared)

    @staticmethod
    def _questions(subjects: Subjects, now: float) -> list[tuple[str, float, int]]:
        """For each subject, what the database is asked: its newest ``count`` failures in the window."""
        return [(_digest(limit, subject), now - limit.window, limit.count) for limit, subject in subjects]

    def _learn(self, subjects: Subjects, shared: Sequence[Sequence[float]]) -> None:
        for (limit, subject), newest in zip(subjects, shared, strict=True):
            self._remember(limit, (limit.kind, subject), newest)

    def _remember(self, limit: Limit, key: Key, times: Sequence[float]) -> None:
        known = self._failures.pop(key, ())
        # A failure of this process carries the same time here and in the database.
        merged = sorted({*known, *times})[-limit.count:]
        if merged:
            self._failures[key] = deque(merged, maxlen=limit.count)
            while len(self._failures) > self.max_subjects:
                self._failures.popitem(last=False)


class Attempt:
    """One check of a secret, from the limit check to its outcome."""

    __slots__ = ("limiter", "subjects", "_failed")

    def __init__(self, limiter: FailureLimiter, subjects: Subjects) -> None:
        self.limiter = limiter
        self.subjects = subjects
        self._failed = False

    def failed(self) -> None:
        """The secret was wrong: counted when the attempt ends."""
        self._failed = True

    async def __aenter__(self) -> Attempt:
        await self.limiter._admit(self.subjects)
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.limiter._end(self.subjects)
        if self._failed:
            await self.limiter._record_failure(self.subjects)
