"""One simulated instance's traffic: generation, the send queue, outages, stalls, journals.

A :class:`SimulatedInstance` generates messages at its ``rate`` (a Poisson process drawn
from its own seeded generator, so the same seed and clock give the same journal). Each one
passes through a send queue (``getMessagesCount``): it leaves a moment after being queued,
one a second at most, and not at all while the instance is not authorized
(``getStateInstance``: the explicit state, or the outage schedule). Once sent, its recipient
delivers and reads it after its own delays (:mod:`exporter.simulator.messages`) unless the
stall schedule holds it: then it happens a few seconds to a minute after the stall's end.
``journal`` and ``incoming`` answer ``lastOutgoingMessages`` and ``lastIncomingMessages``
(replies: :mod:`exporter.simulator.replies`).

Nothing here locks or reads a clock: the caller (:class:`exporter.simulator.fleet.Fleet`)
holds the instance's ``lock`` and passes ``now``.
"""

from __future__ import annotations

import hashlib
import math
import random
import threading
from dataclasses import dataclass, field
from typing import Any

from exporter.simulator.messages import Message, new_message
from exporter.simulator.replies import replies

RETENTION = 90 * 86400.0  # the API keeps three months of journal


# What lastOutgoingMessages' ?minutes= can count back from (a per-instance knob).
MINUTES_BY = ("last_action", "send_time")


@dataclass
class SimulatedInstance:
    """One fake instance: its identity, generated traffic, and the knobs tests turn.

    Generated messages go through a send queue: each leaves a moment after the bot queued
    it, one a second at most, and only while the instance is authorized. ``state`` is the
    explicit state (:meth:`Fleet.set_state`); the outage schedule (``outage_start``,
    ``outage_duration``, ``outage_period``, in clock seconds) makes an instance whose
    explicit state is ``authorized`` ``notAuthorized`` for a while, repeatedly when
    ``outage_period`` is set. Messages queued meanwhile go out one a second from the
    moment it is authorized again.

    Recipients: most get a message within seconds; ``offline_ratio`` of them have their
    phone off and get it minutes to hours later (a day at most); ``stuck_ratio`` never get
    it. The stall schedule (``stall_start``, ``stall_duration``, ``stall_period``, in clock
    seconds, like the outages) stops every delivery and read for a while: what falls into a
    stall happens a few seconds to a minute after its end. ``statuses`` False makes the
    journal say ``statusMessage: ""`` on every message, as some journals do.
    """

    name: str
    id_instance: str
    token: str
    v3: bool = False
    rate: float = 1 / 60  # messages per second
    stuck_ratio: float = 0.005  # never delivered
    offline_ratio: float = 0.025  # delivered minutes to hours later
    rng: random.Random = field(default_factory=random.Random, repr=False)
    messages: list[Message] = field(default_factory=list, repr=False)
    next_send: float = 0.0
    scripted: list[Any] | None = None
    scripted_incoming: list[Any] | None = None
    fault: tuple[str, dict[str, Any], str | None] | None = None  # mode, params, method
    state: str | None = "authorized"
    outage_start: float | None = None
    outage_duration: float = 0.0
    outage_period: float | None = None
    stall_start: float | None = None
    stall_duration: float = 0.0
    stall_period: float | None = None
    statuses: bool = True
    longest_read_lag: float = 0.0  # send to read, the longest yet: how far back replies go
    longest_action_lag: float = 0.0  # send to the last action (delivery or read), the longest
    # What ?minutes= counts back from: the time of a message's last action, or its send time
    # (GREEN-API does not document which; the exporter checks which one it meets).
    minutes_by: str = "last_action"  # or "send_time": see MINUTES_BY
    waiting: list[Message] = field(default_factory=list, repr=False)  # held, no send time yet
    send_free_at: float = -math.inf  # the queue sends one message a second at most
    queue_count: int = 0
    queue_cyrillic: bool = False
    thumbnail: str = field(default="", repr=False)
    last_request: dict[str, float] = field(default_factory=dict, repr=False)
    log: list[dict[str, Any]] = field(default_factory=list, repr=False)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    chats: list[str] = field(default_factory=list, repr=False)
    counter: int = 0

    # --- authorization and the send queue ----------------------------------------------

    def _outage_end(self, at: float) -> float | None:
        """The end of the scheduled outage under way at ``at``; None outside outages."""
        return scheduled_end(at, self.outage_start, self.outage_duration, self.outage_period)

    def effective_state(self, now: float) -> str | None:
        """What getStateInstance answers at ``now`` (None: a ``null`` body)."""
        if self.state != "authorized":
            return self.state
        return "authorized" if self._outage_end(now) is None else "notAuthorized"

    def _authorized_from(self, at: float) -> float:
        """The first moment from ``at`` on when the instance is authorized (inf: not known)."""
        if self.state != "authorized":
            return math.inf  # until someone sets it back
        end = self._outage_end(at)
        return at if end is None else end

    def _schedule(self, message: Message) -> None:
        """Give a queued message its send time, or hold it while that is not known."""
        at = self._authorized_from(max(message.ready_at, self.send_free_at))
        if self.waiting or math.isinf(at):
            self.waiting.append(message)
            return
        message.sent_at = at
        self.plan(message)
        self.messages.append(message)
        self.send_free_at = at + self._spacing()

    def _spacing(self) -> float:
        """Seconds between two sends: 1, less for a generator so fast it would fall behind."""
        return min(1.0, 0.5 / self.rate) if self.rate > 0 else 1.0

    def replan(self, now: float) -> None:
        """Send again what has not left by ``now``, after the state or the schedule changed."""
        pending: list[Message] = []
        while self.messages and self.messages[-1].sent_at > now:
            pending.append(self.messages.pop())
        pending.reverse()
        pending += self.waiting
        self.waiting = []
        last = self.messages[-1].sent_at + self._spacing() if self.messages else -math.inf
        self.send_free_at = max(last, now)
        for message in pending:
            self._schedule(message)

    def queued(self, now: float) -> int:
        """Generated messages that have not been sent by ``now``."""
        count = sum(1 for m in self.waiting if m.queued_at <= now)
        for message in reversed(self.messages):
            if message.sent_at <= now:
                break
            count += message.queued_at <= now
        return count

    def queue_length(self, now: float, depth: int) -> int:
        """What getMessagesCount answers at ``now``: the ``queue_count`` knob plus what the
        generated traffic has queued (nothing while the journal is scripted)."""
        if self.scripted is not None:
            return self.queue_count
        self.advance(now, depth)
        return self.queue_count + self.queued(now)

    # --- deliveries and the stall schedule ------------------------------------------------

    def _stall_end(self, at: float) -> float | None:
        """The end of the scheduled stall under way at ``at``; None outside stalls."""
        return scheduled_end(at, self.stall_start, self.stall_duration, self.stall_period)

    def _clear_of_stalls(self, at: float, key: str) -> float:
        """``at``, or a few seconds to a minute after the end of a stall under way then."""
        if self.stall_start is None:  # the common case, kept cheap
            return at
        end = None if math.isinf(at) else self._stall_end(at)
        if end is None or math.isinf(end):
            return at if end is None else end
        delay = _release_delay(f"{key}:{end}")
        if self.stall_period:  # never as late as the next stall
            delay = min(delay, (self.stall_period - self.stall_duration) / 2)
        return end + delay

    def _event_at(self, natural: float, now: float, key: str) -> float:
        """When an event due at ``natural`` happens, planned at ``now``."""
        if natural <= now:  # held past its time by a stall that has been changed since
            natural = now + _release_delay(f"{key}:{now}")
        return self._clear_of_stalls(natural, key)

    def plan(self, message: Message, now: float = -math.inf) -> None:
        """Set when ``message`` is delivered and read under the stall schedule.

        What had happened by ``now`` stays as it was: planning again after the schedule
        changed never takes a status back.
        """
        if message.delivery_delay is None:
            message.delivered_at = message.read_at = None
            return
        if message.delivered_at is None or message.delivered_at > now:
            natural = message.sent_at + message.delivery_delay
            message.delivered_at = self._event_at(natural, now, f"delivered:{message.id_message}")
        if math.isfinite(message.delivered_at):
            lag = message.delivered_at - message.sent_at
            self.longest_action_lag = max(self.longest_action_lag, lag)
        if message.read_delay is None:
            message.read_at = None
            return
        if message.read_at is None or message.read_at > now:
            natural = message.delivered_at + message.read_delay
            message.read_at = self._event_at(natural, now, f"read:{message.id_message}")
        if math.isfinite(message.read_at):
            self.longest_read_lag = max(self.longest_read_lag, message.read_at - message.sent_at)
            self.longest_action_lag = max(self.longest_action_lag, self.longest_read_lag)

    def replan_deliveries(self, now: float) -> None:
        """Plan every sent message again, after the stall schedule changed at ``now``."""
        for message in self.messages:
            self.plan(message, now)

    # --- generation ------------------------------------------------------------------------

    def advance(self, now: float, depth: int) -> None:
        """Generate the messages queued up to ``now`` and forget what no answer can show."""
        if self.rate <= 0:
            return
        while self.next_send <= now:
            self._schedule(self._new_message(self.next_send))
            self.next_send += self.rng.expovariate(self.rate)
        unsent = self.queued(now) - len(self.waiting)  # kept beyond the depth
        if len(self.messages) > depth + unsent:
            del self.messages[: len(self.messages) - depth - unsent]
        horizon = now - RETENTION
        while self.messages and self.messages[0].sent_at < horizon:
            self.messages.pop(0)

    def enqueue(self, count: int, now: float) -> None:
        """The bot queues ``count`` messages at once at ``now`` (after :meth:`advance`)."""
        for _ in range(count):
            self._schedule(self._new_message(now))

    def change_rate(self, rate: float, now: float) -> None:
        """Generate ``rate`` messages a second from ``now`` on (after :meth:`advance`)."""
        self.rate = rate
        if rate > 0:  # the wait for the next message starts again: it has no memory
            self.next_send = now + self.rng.expovariate(rate)

    def _new_message(self, queued_at: float) -> Message:
        self.counter += 1
        return new_message(self.rng, self.chats, queued_at, stuck_ratio=self.stuck_ratio,
                           offline_ratio=self.offline_ratio)  # fmt: skip

    # --- answers ---------------------------------------------------------------------------

    def journal(self, now: float, minutes: int, depth: int) -> list[Any]:
        """What lastOutgoingMessages answers at ``now``: newest first, like the real API."""
        cutoff = now - minutes * 60
        if self.scripted is not None:
            return [e for e in self.scripted if _scripted_in_window(e, cutoff)]
        self.advance(now, depth)
        by_action = self.minutes_by == "last_action"
        # A message sent before the cutoff may have acted (been delivered, read) since.
        horizon = cutoff - self.longest_action_lag if by_action else cutoff
        elements: list[Any] = []
        for message in reversed(self.messages):
            if message.sent_at > now:
                continue
            if message.sent_at < horizon or len(elements) >= depth:
                break
            if by_action and message.state(now)[1] < cutoff:
                continue
            elements.append(message.element(now, self.thumbnail, self.statuses))
        return elements

    def incoming(self, now: float, minutes: int, depth: int) -> list[Any]:
        """What lastIncomingMessages answers at ``now``: customers' replies to some read
        messages (:mod:`exporter.simulator.replies`), or the scripted elements."""
        cutoff = now - minutes * 60
        if self.scripted_incoming is not None:
            return [e for e in self.scripted_incoming if _scripted_in_window(e, cutoff)]
        self.advance(now, depth)
        return replies(self.messages, now=now, cutoff=cutoff, depth=depth,
                       longest_read_lag=self.longest_read_lag, thumbnail=self.thumbnail)  # fmt: skip


def scheduled_end(
    at: float, start: float | None, duration: float, period: float | None
) -> float | None:
    """The end of the scheduled spell (an outage, a stall) under way at ``at``, or None."""
    if start is None or duration <= 0 or at < start:
        return None
    begin = start
    if period:
        if duration >= period:
            return math.inf  # back to back: it never ends
        begin = start + math.floor((at - start) / period) * period
    end = begin + duration
    return end if at < end else None


def _release_delay(key: str) -> float:
    """3 to 60 s, mostly short: how long after a stall something it held happens."""
    share = hashlib.sha256(key.encode()).digest()[0] / 255
    return 3 + 57 * share * share


def _scripted_in_window(element: Any, cutoff: float) -> bool:
    if not isinstance(element, dict):
        return True
    timestamp = element.get("timestamp")
    if isinstance(timestamp, bool) or not isinstance(timestamp, int):
        return True
    return timestamp >= cutoff
