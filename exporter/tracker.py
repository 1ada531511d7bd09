"""State of one instance across polls: what has been counted, and the window as last seen.

The journal is a sliding window, not a stream. Counting "messages sent" therefore means
remembering which (chatId, idMessage) keys were already seen and which status each one
reached; lags come from the API's own timestamps (``timestamp`` is the time of the last
action, so it moves forward on delivery and on read).

A :class:`MessageTracker` is owned by one poll at a time (the scheduler never runs two
polls of an instance at once), and hands out immutable :class:`TrackerSnapshot` values
that the collector reads from other threads.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from exporter.journal import (
    KNOWN_STATUSES,
    STATUS_OTHER,
    STATUS_UNKNOWN,
    Journal,
    JournalMessage,
)

LAG_BUCKETS: tuple[float, ...] = (
    1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 21600, 86400,
)  # fmt: skip

# The progression that implies its predecessors: a message seen `read` was also delivered
# and sent. Every other status only counts itself.
CHAIN = ("sent", "delivered", "read")
# Still on its way: `unknown` (no status in the journal) is not undelivered, there is nothing
# to judge.
UNDELIVERED_STATUSES = frozenset({"sent", "pending"})
_SENDING = UNDELIVERED_STATUSES
_DELIVERED = frozenset({"delivered", "read"})
# Statuses that say the message will not be delivered (`failed` comes from the status webhook
# and is not written to the journal, but it means the same if it ever is).
FAILURE_STATUSES = frozenset({"noAccount", "notInGroup", "yellowCard", "failed"})

# Every value of greenapi_outgoing_delivery_outcomes_total{outcome}: how each counted message
# stood `undelivered_after` after it was sent.
OUTCOMES = ("in_time", "late", "failed", "no_status")


@dataclass(frozen=True)
class Histogram:
    """Cumulative bucket counts (``le`` order, without +Inf), their sum and total count."""

    buckets: tuple[int, ...] = (0,) * len(LAG_BUCKETS)
    count: int = 0
    total: float = 0.0


@dataclass(frozen=True)
class WindowStats:
    """The journal as the latest successful poll saw it."""

    by_status_type: Mapping[tuple[str, str], int]
    send_by_api: int
    forwarded: int
    messages: int
    undelivered: int
    oldest_undelivered_timestamp: int | None  # send time; None when nothing is undelivered
    last_message_timestamp: int | None
    truncated: bool
    invalid: int


@dataclass(frozen=True)
class TrackerSnapshot:
    """Counters kept across polls, plus the latest window. Never mutated once built."""

    messages_total: Mapping[tuple[str, bool], int] = field(
        default_factory=lambda: MappingProxyType({})
    )  # keyed by (message_type, send_by_api)
    status_reached: Mapping[str, int] = field(
        default_factory=lambda: MappingProxyType(dict.fromkeys(CHAIN, 0))
    )
    forwarded_total: int = 0
    outcomes: Mapping[str, int] = field(
        default_factory=lambda: MappingProxyType(dict.fromkeys(OUTCOMES, 0))
    )
    delivery_lag: Histogram = field(default_factory=Histogram)
    read_lag: Histogram = field(default_factory=Histogram)
    window: WindowStats | None = None
    tracked: int = 0


class _LagHistogram:
    """A mutable histogram owned by the tracker; frozen into :class:`Histogram` on publish."""

    __slots__ = ("count", "counts", "total")

    def __init__(self) -> None:
        self.counts = [0] * len(LAG_BUCKETS)
        self.count = 0
        self.total = 0.0

    def observe(self, seconds: float) -> None:
        index = bisect.bisect_left(LAG_BUCKETS, seconds)
        if index < len(self.counts):
            self.counts[index] += 1
        self.count += 1
        self.total += seconds

    def freeze(self) -> Histogram:
        cumulative: list[int] = []
        running = 0
        for value in self.counts:
            running += value
            cumulative.append(running)
        return Histogram(buckets=tuple(cumulative), count=self.count, total=self.total)


# Status bits of a tracked message: every status label value has one.
_STATUS_BIT = {
    status: 1 << index
    for index, status in enumerate(
        sorted(KNOWN_STATUSES | {STATUS_UNKNOWN, STATUS_OTHER}, key=lambda s: (s not in CHAIN, s))
    )
}
_TS_BITS = 40  # UNIX seconds up to year 36812: journal timestamps beyond are refused anyway
_TS_MASK = (1 << _TS_BITS) - 1
_FLAG_BITS = 16  # status bits (15 at most) and the forwarded flag in the top one
_FORWARDED = 1 << (_FLAG_BITS - 1)


class _Tracked:
    """What is remembered of one message, unpacked for an update.

    In the tracker's dict each message is a single int (flags, then two 40-bit
    timestamps): about 40 bytes instead of an object with four attributes, which matters
    with millions of messages in memory.
    """

    __slots__ = ("forwarded", "last_timestamp", "reached", "sent_timestamp")

    def __init__(self, packed: int = 0) -> None:
        self.reached = packed & (_FORWARDED - 1)  # bits of _STATUS_BIT
        self.forwarded = bool(packed & _FORWARDED)
        self.sent_timestamp = (
            packed >> _FLAG_BITS
        ) & _TS_MASK  # first while sent/pending; 0 = never
        self.last_timestamp = packed >> _LAST_SHIFT

    def pack(self) -> int:
        flags = self.reached | (_FORWARDED if self.forwarded else 0)
        return flags | (self.sent_timestamp << _FLAG_BITS) | (self.last_timestamp << _LAST_SHIFT)


_LAST_SHIFT = _FLAG_BITS + _TS_BITS  # where last_timestamp starts in a packed message


def _unchanged(packed: int, message: JournalMessage) -> bool:
    """True when ``message`` tells nothing new about the tracked message ``packed``."""
    return bool(
        packed & _STATUS_BIT[message.status]
        and packed >> _LAST_SHIFT >= message.timestamp
        and (packed & _FORWARDED or not message.forwarded)
        and (packed >> _FLAG_BITS & _TS_MASK or message.status not in _SENDING)
    )


def statuses_implied(status: str) -> tuple[str, ...]:
    """The statuses a message at ``status`` has reached: ``read`` → sent, delivered, read."""
    if status in CHAIN:
        return CHAIN[: CHAIN.index(status) + 1]
    return (status,)


class MessageTracker:
    """Counts distinct messages, status transitions, delivery outcomes and lags of one
    instance's journal.

    ``baseline_before``: at the first observed journal, messages whose timestamp is older
    than this are recorded but not counted, so that a restart does not replay a day of
    traffic as a spike. ``None`` counts everything (used after restoring saved state).

    Every counted message is judged once, ``undelivered_after`` after it was sent (see
    :class:`_Judgement`): the delivery outcomes are what an SLI is built on.
    """

    def __init__(self, window: float, undelivered_after: float,
                 baseline_before: float | None) -> None:  # fmt: skip
        self.window = window
        self.undelivered_after = undelivered_after
        self._baseline_before = baseline_before
        self._messages: dict[str, int] = {}  # key → _Tracked.pack()
        self._messages_total: dict[tuple[str, bool], int] = {}
        self._status_reached: dict[str, int] = dict.fromkeys(CHAIN, 0)
        self._forwarded_total = 0
        self._outcomes: dict[str, int] = dict.fromkeys(OUTCOMES, 0)
        # Counted messages not judged yet: sent less than undelivered_after ago, a few
        # minutes of traffic.
        self._unjudged: dict[str, _Judgement] = {}
        self._delivery_lag = _LagHistogram()
        self._read_lag = _LagHistogram()
        self._window: WindowStats | None = None
        self._window_keys: set[tuple[str, str]] = set()

    def observe(self, journal: Journal, now: float, max_messages: int) -> TrackerSnapshot:
        """Fold one successful poll (ended at ``now``, UNIX time) into the counters and
        return the new snapshot."""
        baseline = self._baseline_before
        self._baseline_before = None  # the baseline applies to the first journal only
        for message in journal.messages:
            self._observe_message(message, baseline, now)
        self._judge(now)
        _forget_left_window(self._messages, journal, now, self.window, _LAST_SHIFT)
        self._window = self._window_stats(journal, now, max_messages)
        return self.snapshot()

    def configure(self, window: float, undelivered_after: float) -> None:
        """Apply changed settings after a reload; counters and tracked messages stay.
        Messages waiting for their judgement keep the deadline they were given."""
        self.window = window
        self.undelivered_after = undelivered_after

    def snapshot(self) -> TrackerSnapshot:
        return TrackerSnapshot(
            messages_total=MappingProxyType(dict(self._messages_total)),
            status_reached=MappingProxyType(dict(self._status_reached)),
            forwarded_total=self._forwarded_total,
            outcomes=MappingProxyType(dict(self._outcomes)),
            delivery_lag=self._delivery_lag.freeze(),
            read_lag=self._read_lag.freeze(),
            window=self._window,
            tracked=len(self._messages),
        )

    def export(self) -> dict[str, object]:
        """Plain data for the state file: counters, lags and tracked messages."""
        return {
            "messages_total": [[t, b, n] for (t, b), n in self._messages_total.items()],
            "status_reached": dict(self._status_reached),
            "forwarded_total": self._forwarded_total,
            "outcomes": dict(self._outcomes),
            "unjudged": [[k, j.due, j.delivered_at] for k, j in self._unjudged.items()],
            "delivery_lag": _export_histogram(self._delivery_lag),
            "read_lag": _export_histogram(self._read_lag),
            "window_keys": [list(pair) for pair in sorted(self._window_keys)],
            "messages": [
                [
                    key,
                    sorted(status for status, bit in _STATUS_BIT.items() if t.reached & bit),
                    t.sent_timestamp,
                    t.last_timestamp,
                    t.forwarded,
                ]
                for key, t in ((k, _Tracked(v)) for k, v in self._messages.items())
            ],
        }

    def restore(self, data: object) -> None:
        """Resume from :meth:`export` output. Raises ValueError (and changes nothing) when
        the data is not what export writes; counting then resumes with no baseline. Files
        written before delivery outcomes existed restore with the outcomes at zero."""
        if not isinstance(data, dict):
            raise ValueError("tracker state is not an object")
        messages_total = {
            (_str(t), _bool(b)): _count(n) for t, b, n in _rows(data["messages_total"], 3)
        }
        status_reached = {_str(k): _count(v) for k, v in _mapping(data["status_reached"]).items()}
        forwarded_total = _count(data["forwarded_total"])
        outcomes = {_str(k): _count(v) for k, v in _mapping(data.get("outcomes", {})).items()}
        if not set(outcomes) <= set(OUTCOMES):
            raise ValueError(f"unknown delivery outcomes {sorted(set(outcomes) - set(OUTCOMES))}")
        unjudged = {
            _str(key): _Judgement(_number(due), _number(delivered_at))
            for key, due, delivered_at in _rows(data.get("unjudged", []), 3)
        }
        delivery_lag = _restore_histogram(data["delivery_lag"])
        read_lag = _restore_histogram(data["read_lag"])
        window_keys = {(_str(a), _str(b)) for a, b in _rows(data["window_keys"], 2)}
        tracked: dict[str, int] = {}
        for key, reached, sent_ts, last_ts, forwarded in _rows(data["messages"], 5):
            entry = _Tracked()
            for status in _list(reached):
                if _str(status) not in _STATUS_BIT:
                    raise ValueError(f"unknown status {status!r}")
                entry.reached |= _STATUS_BIT[_str(status)]
            entry.sent_timestamp = _timestamp(sent_ts)
            entry.last_timestamp = _timestamp(last_ts)
            entry.forwarded = _bool(forwarded)
            tracked[_str(key)] = entry.pack()
        if not set(unjudged) <= set(tracked):
            raise ValueError("a message waiting for its judgement is not tracked")
        self._messages_total = messages_total
        self._status_reached = {**dict.fromkeys(CHAIN, 0), **status_reached}
        self._forwarded_total = forwarded_total
        self._outcomes = {**dict.fromkeys(OUTCOMES, 0), **outcomes}
        self._unjudged = unjudged
        self._delivery_lag = delivery_lag
        self._read_lag = read_lag
        self._window_keys = window_keys
        self._messages = tracked
        self._baseline_before = None  # what happened while we were down is news, not history

    def _observe_message(self, message: JournalMessage, baseline: float | None,
                         now: float) -> None:  # fmt: skip
        packed = self._messages.get(message.key)
        status = message.status
        if packed is not None and _unchanged(packed, message):
            return  # the common case at every poll: nothing new about this message
        counting = True
        if packed is None:
            tracked = _Tracked()
            counting = baseline is None or message.timestamp >= baseline
            if counting:
                kind = (message.message_type, message.send_by_api)
                self._messages_total[kind] = self._messages_total.get(kind, 0) + 1
                # The send time is known for a message first seen sent or pending; for one
                # first seen later on, its timestamp is the latest the send can have been.
                self._unjudged[message.key] = _Judgement(
                    message.timestamp + self.undelivered_after, 0.0
                )
        else:
            tracked = _Tracked(packed)
        previous_timestamp = tracked.last_timestamp
        if message.timestamp > tracked.last_timestamp:
            tracked.last_timestamp = message.timestamp

        if message.forwarded and not tracked.forwarded:
            tracked.forwarded = True
            if counting:
                self._forwarded_total += 1

        if status in _SENDING and not tracked.sent_timestamp:
            tracked.sent_timestamp = message.timestamp

        new = [s for s in statuses_implied(status) if not tracked.reached & _STATUS_BIT[s]]
        for reached in new:
            tracked.reached |= _STATUS_BIT[reached]
        self._messages[message.key] = tracked.pack()
        if not new:
            return
        if counting:
            for reached in new:
                self._status_reached[reached] = self._status_reached.get(reached, 0) + 1
        if "delivered" not in new and "read" not in new:
            return
        # The journal's timestamp is the time of the last action, so it moves on delivery
        # and read. Where it did not (some products give the send time), the poll that first
        # saw the new status is the best bound there is: a lag of 0 would be a lie.
        sent_at = tracked.sent_timestamp
        at = float(message.timestamp) if message.timestamp > previous_timestamp else now
        judgement = self._unjudged.get(message.key)
        if judgement is not None and not judgement.delivered_at:
            judgement.delivered_at = at
        if not sent_at:  # never seen on its way: no start to measure a lag from
            return
        lag = at - sent_at
        if message.timestamp < sent_at or lag < 0:
            return  # the journal's clock went backwards, or disagrees with ours: no honest lag
        if "delivered" in new:
            self._delivery_lag.observe(lag)
        if "read" in new:
            self._read_lag.observe(lag)

    def _judge(self, now: float) -> None:
        """Give every message whose judgement is due its delivery outcome, once."""
        due = [key for key, judgement in self._unjudged.items() if judgement.due <= now]
        for key in due:
            judgement = self._unjudged.pop(key)
            packed = self._messages.get(key)
            reached = 0 if packed is None else packed & (_FORWARDED - 1)
            self._outcomes[judgement.outcome(reached)] += 1
        if len(due) > 1024 and len(self._unjudged) < len(due):
            # A burst was judged: a dict never gives back the room it grew to.
            self._unjudged = dict(self._unjudged)

    def _window_stats(self, journal: Journal, now: float, max_messages: int) -> WindowStats:
        counts: dict[tuple[str, str], int] = dict.fromkeys(self._window_keys, 0)
        send_by_api = forwarded = undelivered = 0
        oldest_undelivered: int | None = None
        newest: int | None = None
        undelivered_before = now - self.undelivered_after
        for message in journal.messages:
            pair = (message.status, message.message_type)
            counts[pair] = counts.get(pair, 0) + 1
            send_by_api += message.send_by_api
            forwarded += message.forwarded
            if newest is None or message.timestamp > newest:
                newest = message.timestamp
            if message.status in UNDELIVERED_STATUSES and message.timestamp < undelivered_before:
                undelivered += 1
                if oldest_undelivered is None or message.timestamp < oldest_undelivered:
                    oldest_undelivered = message.timestamp
        # Combinations seen once stay as 0 rather than vanish, so graphs drop to zero.
        self._window_keys.update(counts)
        return WindowStats(
            by_status_type=MappingProxyType(counts),
            send_by_api=send_by_api,
            forwarded=forwarded,
            messages=len(journal.messages),
            undelivered=undelivered,
            oldest_undelivered_timestamp=oldest_undelivered,
            last_message_timestamp=newest,
            truncated=journal.elements >= max_messages,
            invalid=journal.invalid,
        )


_DELIVERED_BITS = sum(_STATUS_BIT[s] for s in _DELIVERED)
_FAILURE_BITS = sum(_STATUS_BIT[s] for s in FAILURE_STATUSES)
_STATUS_BITS = sum(_STATUS_BIT[s] for s in (*CHAIN, "pending"))


class _Judgement:
    """A counted message waiting for its delivery outcome.

    ``due``: its send time plus ``undelivered_after`` (UNIX seconds). ``delivered_at``: when
    it was first seen delivered or read (0 while it was not). At ``due`` it is ``in_time``
    if it had been delivered by then, else ``failed`` after a failure status, ``late`` if
    the journal gave it a status of the sent → delivered → read chain, and ``no_status``
    when the journal never said anything usable.
    """

    __slots__ = ("delivered_at", "due")

    def __init__(self, due: float, delivered_at: float) -> None:
        self.due = due
        self.delivered_at = delivered_at

    def outcome(self, reached: int) -> str:
        if reached & _DELIVERED_BITS and 0 < self.delivered_at <= self.due:
            return "in_time"
        if reached & _FAILURE_BITS:
            return "failed"
        if reached & _STATUS_BITS:
            return "late"
        return "no_status"


@dataclass(frozen=True)
class IncomingSnapshot:
    """The incoming journal: counters kept across polls and the latest window."""

    messages_total: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))
    window: Mapping[str, int] | None = None  # by message_type; None before a successful poll
    last_message_timestamp: int | None = None
    tracked: int = 0


class IncomingTracker:
    """Counts distinct incoming messages of one instance by type.

    The same rules as :class:`MessageTracker`: a message is keyed by chatId + idMessage, the
    first journal's messages older than ``baseline_before`` are a baseline, and a message is
    forgotten once its timestamp has left the window. Incoming messages have no status, so
    all that is remembered of one is its timestamp.
    """

    def __init__(self, window: float, baseline_before: float | None) -> None:
        self.window = window
        self._baseline_before = baseline_before
        self._messages: dict[str, int] = {}  # key → timestamp
        self._messages_total: dict[str, int] = {}
        self._window_types: set[str] = set()
        self._snapshot = IncomingSnapshot()

    def observe(self, journal: Journal, now: float) -> IncomingSnapshot:
        """Fold one successful poll into the counters and return the new snapshot."""
        baseline = self._baseline_before
        self._baseline_before = None
        counts: dict[str, int] = dict.fromkeys(self._window_types, 0)
        newest: int | None = None
        for message in journal.messages:
            kind = message.message_type
            counts[kind] = counts.get(kind, 0) + 1
            if newest is None or message.timestamp > newest:
                newest = message.timestamp
            seen = self._messages.get(message.key)
            if seen is None and (baseline is None or message.timestamp >= baseline):
                self._messages_total[kind] = self._messages_total.get(kind, 0) + 1
            if seen is None or message.timestamp > seen:
                self._messages[message.key] = message.timestamp
        _forget_left_window(self._messages, journal, now, self.window, 0)
        self._window_types.update(counts)
        self._snapshot = IncomingSnapshot(
            messages_total=MappingProxyType(dict(self._messages_total)),
            window=MappingProxyType(counts),
            last_message_timestamp=newest,
            tracked=len(self._messages),
        )
        return self._snapshot

    def configure(self, window: float) -> None:
        self.window = window

    def snapshot(self) -> IncomingSnapshot:
        return self._snapshot

    def export(self) -> dict[str, object]:
        """Plain data for the state file."""
        return {
            "messages_total": dict(self._messages_total),
            "window_types": sorted(self._window_types),
            "messages": [[key, ts] for key, ts in self._messages.items()],
        }

    def restore(self, data: object) -> None:
        """Resume from :meth:`export` output; ValueError (and nothing changed) otherwise."""
        mapping = _mapping(data)
        try:
            totals = {_str(k): _count(v) for k, v in _mapping(mapping["messages_total"]).items()}
            types = {_str(t) for t in _list(mapping["window_types"])}
            messages = {_str(k): _timestamp(ts) for k, ts in _rows(mapping["messages"], 2)}
        except KeyError as exc:
            raise ValueError(f"incoming state incomplete: {exc}") from None
        self._messages_total = totals
        self._window_types = types
        self._messages = messages
        self._baseline_before = None
        self._snapshot = IncomingSnapshot(
            messages_total=MappingProxyType(dict(totals)), tracked=len(messages)
        )


def _forget_left_window(
    messages: dict[str, int], journal: Journal, now: float, window: float, shift: int
) -> None:
    """Drop tracked messages that left the window; ``messages[key] >> shift`` is the
    message's latest timestamp. One missing from a single response (the journal loses
    messages now and then) is kept while its timestamp is in the window, so that it is not
    counted again when it comes back. One whose timestamp lies more than a window in the
    future (a broken clock) is dropped as soon as it is missing: it would otherwise stay for
    as long as its timestamp is ahead."""
    oldest, newest = now - window, now + window
    present = {message.key for message in journal.messages}
    stale = [
        key
        for key, value in messages.items()
        if key not in present and not oldest <= value >> shift <= newest
    ]
    for key in stale:
        del messages[key]


def _export_histogram(histogram: _LagHistogram) -> dict[str, object]:
    return {"counts": list(histogram.counts), "count": histogram.count, "total": histogram.total}


def _restore_histogram(data: object) -> _LagHistogram:
    mapping = _mapping(data)
    counts = [_count(c) for c in _list(mapping["counts"])]
    if len(counts) != len(LAG_BUCKETS):
        raise ValueError("histogram buckets differ from this version's")
    histogram = _LagHistogram()
    histogram.counts = counts
    histogram.count = _count(mapping["count"])
    total = mapping["total"]
    if isinstance(total, bool) or not isinstance(total, (int, float)) or total < 0:
        raise ValueError("histogram total is not a number")
    histogram.total = float(total)
    return histogram


def _rows(value: object, width: int) -> list[list[object]]:
    rows = [_list(row) for row in _list(value)]
    if any(len(row) != width for row in rows):
        raise ValueError(f"expected rows of {width} values")
    return rows


def _list(value: object) -> list[object]:
    if not isinstance(value, list):
        raise ValueError("expected a list")
    return value


def _mapping(value: object) -> dict[str, object]:
    if not isinstance(value, dict):
        raise ValueError("expected an object")
    return value


def _str(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError("expected a string")
    return value


def _bool(value: object) -> bool:
    if not isinstance(value, bool):
        raise ValueError("expected true or false")
    return value


def _timestamp(value: object) -> int:
    number = _count(value)
    if number > _TS_MASK:
        raise ValueError("timestamp out of range")
    return number


def _number(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise ValueError("expected a number >= 0")
    return float(value)


def _count(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError("expected a whole number >= 0")
    return value
