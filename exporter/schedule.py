"""When one instance's collectors make their next request, and what a journal request asks.

GREEN-API allows one request per second per instance and method, and an instance's
collectors share that budget: requests of one instance never overlap and start at least
:data:`MIN_SPACING` apart. Each collector has its own due time; a 429 or a 466 backs off only
the collector that got it (limits and quotas are per method). Times are seconds of an
injected monotonic clock, so the policy is tested without waiting.

Short polls between resyncs: a journal's window of a busy instance is megabytes, almost all
of it what the previous poll saw. So a journal is read in full only at its first request, after
a reload that changed the instance, every ``resync_interval`` and whenever the short window
would not be shorter than the whole one; in between a *short poll* asks for the time since
its last successful request, plus ``undelivered_after`` (so that every message is watched
through the moment it is judged, whatever the journal filters by), plus three minutes (the
journal shows messages up to two minutes late), in whole minutes rounded up. The journal's
own tracker tells when short polls cannot be trusted (:meth:`read_in_full_only`).

An :class:`InstanceSchedule` is owned by one poller, which calls it under its own lock.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

# A little more than a second, so that network jitter cannot make two requests of an
# instance arrive less than a second apart.
MIN_SPACING = 1.1
# After a 466 the monthly plan quota is spent: retrying every minute only burns log lines.
QUOTA_BACKOFF = 3600.0
# Upper bounds for exponential 429 back-off and for honouring a Retry-After header.
RATE_LIMIT_BACKOFF_CAP = 600.0
RETRY_AFTER_CAP = 3600.0
# Slack for comparing due times: a request due in 10 ms is due now.
_EPSILON = 0.01
# What a short poll asks for beyond the time since the last success and undelivered_after:
# the journal shows messages up to two minutes late, and one more for the rounding.
SHORT_POLL_MARGIN = 180.0


@dataclass(frozen=True)
class JournalPolicy:
    """What decides a journal request's ``?minutes=``: the instance's settings."""

    window: float = 86400.0
    undelivered_after: float = 300.0
    resync_interval: float = 3600.0  # 0: every request reads the whole window

    @property
    def window_minutes(self) -> int:
        return max(1, int(self.window // 60))


@dataclass(frozen=True)
class Ticket:
    """One request under way: which collector, when it started, under which settings, and
    for a journal what it asks for (``minutes``; ``full``: the whole window)."""

    collector: str
    started: float
    generation: int
    minutes: int | None = None
    full: bool = True


class InstanceSchedule:
    """The due times of one instance's collectors.

    ``collectors`` is in request order: when several are due (all are at the first poll),
    the first listed goes first. ``interval`` is the instance's ``poll_interval``.
    """

    def __init__(
        self,
        collectors: Sequence[str],
        interval: float,
        clock: Callable[[], float],
        rng: random.Random | None = None,
        journals: frozenset[str] = frozenset(),
        policy: JournalPolicy | None = None,
    ) -> None:
        self._clock = clock
        self._journals = journals
        self._policy = policy or JournalPolicy()
        self._last_success: dict[str, float] = {}  # journal → start of its latest success
        self._last_full: dict[str, float] = {}  # journal → start of its latest full success
        self._full_only: set[str] = set()  # journals whose short polls cannot be trusted
        self._rng = rng or random.Random()
        self._interval = interval
        self._order = tuple(collectors)
        self._due = dict.fromkeys(self._order, -math.inf)  # every collector due at once
        self._rate_limited = dict.fromkeys(self._order, 0)  # 429s in a row
        self._last_request: float | None = None
        # Bumped when the settings that shape a request change: a request that was under way
        # then must not push the next one away with the old settings' back-off.
        self._generation = 0

    @property
    def collectors(self) -> tuple[str, ...]:
        return self._order

    def now(self) -> float:
        return self._clock()

    def due(self) -> str | None:
        """The collector whose request should start now, or None (nothing due yet, or too
        soon after the previous request)."""
        now = self._clock()
        if self._last_request is not None and now < self._last_request + MIN_SPACING - _EPSILON:
            return None
        due = [name for name in self._order if self._due[name] <= now + _EPSILON]
        if not due:
            return None
        return min(due, key=lambda name: (self._due[name], self._order.index(name)))

    def start(self, collector: str) -> Ticket:
        """Note that ``collector``'s request starts now; for a journal, decide what it asks."""
        now = self._clock()
        self._last_request = now
        if collector not in self._journals:
            return Ticket(collector, now, self._generation)
        full, minutes = self._journal_request(collector, now)
        return Ticket(collector, now, self._generation, minutes, full)

    def read_in_full_only(self, collector: str) -> bool:
        """Read ``collector``'s journal in full from now on; True the first time."""
        first = collector not in self._full_only
        self._full_only.add(collector)
        return first

    def _journal_request(self, collector: str, now: float) -> tuple[bool, int]:
        """(full, minutes) of a journal's next request."""
        policy = self._policy
        whole = policy.window_minutes
        last_full = self._last_full.get(collector)
        last_success = self._last_success.get(collector)
        if (
            policy.resync_interval <= 0
            or collector in self._full_only
            or last_full is None
            or last_success is None
            or now - last_full >= policy.resync_interval
        ):
            return True, whole
        span = now - last_success + policy.undelivered_after + SHORT_POLL_MARGIN
        minutes = math.ceil(span / 60)
        return (True, whole) if minutes >= whole else (False, minutes)

    def finish(self, ticket: Ticket, result: str, retry_after: float | None = None) -> None:
        """Schedule the collector's next request after its request ended with ``result``
        (a ``greenapi_polls_total`` result), unless a reload changed things meanwhile."""
        name = ticket.collector
        if result == "success" and ticket.minutes is not None:
            self._last_success[name] = ticket.started
            if ticket.full:
                self._last_full[name] = ticket.started
        if name not in self._due or ticket.generation != self._generation:
            return  # removed by a reload, or made due again by it
        self._due[name] = ticket.started + self._delay_after(name, result, retry_after)

    def next_time(self) -> float:
        """When the next request may and should start (clock seconds; in the past: now)."""
        if not self._due:
            return self._clock() + self._interval
        next_due = min(self._due.values())
        if self._last_request is not None:
            next_due = max(next_due, self._last_request + MIN_SPACING)
        return max(next_due, self._clock()) if math.isinf(next_due) else next_due

    def delay(self) -> float:
        """Seconds until :meth:`next_time`, from now."""
        return max(0.0, self.next_time() - self._clock())

    def first_delay(self) -> float:
        """Spread first polls over a few seconds rather than fire them all together."""
        return self._rng.uniform(0.0, min(self._interval, 2.0))

    def reconfigure(self, collectors: Sequence[str], interval: float, retarget: bool,
                    policy: JournalPolicy | None = None, changed: bool = False) -> bool:  # fmt: skip
        """Adopt reloaded settings. ``retarget``: what a request looks like changed (token,
        URL, interval), so every collector is due at once, whatever its back-off. A
        collector added is due at once; a removed one stops. ``changed``: the instance's
        settings changed, so each journal's next request reads it in full. Returns True when
        something became due, so that the caller can move its next run to now (spacing still
        holds)."""
        added = [name for name in collectors if name not in self._due]
        if changed:
            self._last_full.clear()
        if policy is not None:
            self._policy = policy
        self._interval = interval
        self._order = tuple(collectors)
        if retarget:
            self._generation += 1
            self._due = dict.fromkeys(self._order, -math.inf)
        else:
            self._due = {name: self._due.get(name, -math.inf) for name in self._order}
        self._rate_limited = {name: self._rate_limited.get(name, 0) for name in self._order}
        return retarget or bool(added)

    def _delay_after(self, collector: str, result: str, retry_after: float | None) -> float:
        """Seconds from a request's start to the collector's next: the interval, or a
        back-off."""
        interval = self._interval
        if result == "http_429":
            self._rate_limited[collector] += 1
            if retry_after is not None:
                delay = max(interval, min(retry_after, RETRY_AFTER_CAP))
            else:
                exponent = min(self._rate_limited[collector], 16)
                cap = max(interval, RATE_LIMIT_BACKOFF_CAP)
                delay = min(cap, interval * 2**exponent) * self._rng.uniform(0.8, 1.2)
        else:
            self._rate_limited[collector] = 0
            if result == "http_466":
                delay = max(interval, QUOTA_BACKOFF)
            else:
                # A little jitter, so that instances configured alike drift apart.
                delay = interval * self._rng.uniform(0.97, 1.03)
        return max(delay, MIN_SPACING)
