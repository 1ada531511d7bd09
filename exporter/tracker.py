"""State of one instance across polls: what has been counted, and the window as last seen.

The journal is a sliding window, not a stream. Counting "messages sent" therefore means
remembering which (chatId, idMessage) keys were already seen and which status each one
reached; lags come from the API's own timestamps (``timestamp`` is the time of the last
action, so it moves forward on delivery and on read).

An answer is *full* (the whole ``window``) or *short* (only the journal's recent past, see
:mod:`exporter.schedule`). Both are folded the same way: a message absent from a short answer
is unchanged; one absent from a full answer is gone from the window (it stays remembered, so
that it is not counted again if the journal shows it once more). The window gauges are kept
over the tracked messages (:mod:`exporter.window`), so they are what full polls would show.

A :class:`MessageTracker` is owned by one poll at a time (the scheduler never runs two
polls of an instance at once), and hands out immutable :class:`TrackerSnapshot` values
that the collector reads from other threads.
"""

from __future__ import annotations

import bisect
import itertools
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from exporter import packed as p
from exporter.journal import STATUS_UNKNOWN, TYPE_UNKNOWN, Journal, JournalMessage
from exporter.packed import CHAIN, STATUS_BIT
from exporter.window import (
    INCOMING_ABSENT,
    IncomingWindow,
    OutgoingWindow,
    WindowStats,
    incoming_timestamp,
    incoming_type,
    pack_incoming,
)

__all__ = ["CHAIN", "LAG_BUCKETS", "OUTCOMES", "WindowStats"]

LAG_BUCKETS: tuple[float, ...] = (
    1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 21600, 86400,
)  # fmt: skip

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

# Messages remembered per instance, at most: twenty times the journal's depth. Beyond, the
# oldest are forgotten early (and counted): a hostile or broken upstream that invents new
# messages at every poll must not grow the exporter without bound.
MAX_TRACKED = 200_000

# How late the journal can show a message or its new status (GREEN-API: up to 2 minutes).
JOURNAL_DELAY = 120
# Short polls remembered between two full polls, for the self-check (the oldest go first).
_MAX_SHORT_SPANS = 1000
_BY_TIMESTAMP = operator.attrgetter("timestamp")


@dataclass(frozen=True)
class Histogram:
    """Cumulative bucket counts (``le`` order, without +Inf), their sum and total count."""

    buckets: tuple[int, ...] = (0,) * len(LAG_BUCKETS)
    count: int = 0
    total: float = 0.0


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
    full_polls: int = 0  # successful full reads of the journal
    resync_corrections: int = 0  # status changes short polls should have shown and did not
    filters_by_send_time: bool = False  # what the self-check found out about ?minutes=
    dropped: int = 0  # messages forgotten early because the instance tracked MAX_TRACKED


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


def _unchanged(packed: int, message: JournalMessage, described: int) -> bool:
    """True when ``message`` tells nothing new about the tracked message ``packed``: the
    common case at every poll."""
    return bool(
        packed & p.DESCRIPTION_MASK == described
        and packed & STATUS_BIT[message.status]
        and packed >> p.LAST_SHIFT >= message.timestamp
        and not packed & p.ABSENT
        and (packed & p.FORWARDED or not message.forwarded)
        and (p.sent_timestamp(packed) or message.status not in _SENDING)
    )


def statuses_implied(status: str) -> tuple[str, ...]:
    """The statuses a message at ``status`` has reached: ``read`` → sent, delivered, read."""
    if status in CHAIN:
        return CHAIN[: CHAIN.index(status) + 1]
    return (status,)


class MessageTracker:
    """Counts distinct messages, status transitions, delivery outcomes and lags of one
    instance's journal, and keeps its window gauges.

    ``baseline_before``: at the first observed journal, messages whose timestamp is older
    than this are recorded but not counted, so that a restart does not replay a day of
    traffic as a spike. ``None`` counts everything (used after restoring saved state).

    Every counted message is judged once, ``undelivered_after`` after it was sent (see
    :class:`_Judgement`): the delivery outcomes are what an SLI is built on.

    The self-check: the docs do not say whether ``?minutes=`` counts back from the time of a
    message's last action or from its send time. Short polls are right only in the first
    case. A full answer that shows a status change which short polls covering its timestamp
    did not show proves the second: :attr:`filters_by_send_time` turns True (the poller then
    reads the journal in full only) and the change counts as a resync correction.
    """

    def __init__(self, window: float, undelivered_after: float,
                 baseline_before: float | None) -> None:  # fmt: skip
        self.window = window
        self.undelivered_after = undelivered_after
        self._baseline_before = baseline_before
        # key → packed message (exporter.packed), in ascending order of latest timestamp
        self._messages: dict[str, int] = {}
        self._window = OutgoingWindow(window, undelivered_after)
        self._messages_total: dict[tuple[str, bool], int] = {}
        self._status_reached: dict[str, int] = dict.fromkeys(CHAIN, 0)
        self._forwarded_total = 0
        self._outcomes: dict[str, int] = dict.fromkeys(OUTCOMES, 0)
        # Counted messages not judged yet: sent less than undelivered_after ago, a few
        # minutes of traffic.
        self._unjudged: dict[str, _Judgement] = {}
        self._delivery_lag = _LagHistogram()
        self._read_lag = _LagHistogram()
        self._stats: WindowStats | None = None
        self._full_polls = 0
        self._corrections = 0
        self._dropped = 0  # forgotten early, over MAX_TRACKED
        self.filters_by_send_time = False
        # (when, since) of the short polls since the latest full one, for the self-check
        self._short_spans: list[tuple[float, float]] = []

    def observe(self, journal: Journal, now: float, max_messages: int, full: bool = True,
                since: float | None = None) -> TrackerSnapshot:  # fmt: skip
        """Fold one successful poll (ended at ``now``, UNIX time) into the counters and
        return the new snapshot. ``full``: the answer covers the whole window; else it is a
        short one, covering the journal since ``since``."""
        baseline = self._baseline_before
        self._baseline_before = None  # the baseline applies to the first journal only
        changes: list[int] | None = [] if full else None
        # Oldest first, so that the tracked messages stay in timestamp order (the journal
        # answers newest first).
        for message in sorted(journal.messages, key=_BY_TIMESTAMP):
            self._observe_message(message, baseline, now, changes)
        self._judge(now)
        present = {message.key for message in journal.messages}
        if full:
            assert changes is not None
            self._check_short_polls(changes)
            self._mark_absent(present, now)
            forget = self._window.rebuild(self._messages, now, present)
            self._window.truncated = journal.elements >= max_messages
            self._full_polls += 1
        else:
            if since is not None:
                self._short_spans = [*self._short_spans[-_MAX_SHORT_SPANS + 1 :], (now, since)]
            forget = self._window.advance(self._messages, now, present)
            # Only a full answer can tell that the window is whole; a short one at the depth
            # cap proves it is not.
            self._window.truncated |= journal.elements >= max_messages
        for key in forget:
            del self._messages[key]
        self._dropped += _drop_oldest(self._messages, MAX_TRACKED, self._forget)
        self._window.invalid = journal.invalid
        self._stats = self._window.stats(now, self._messages)
        return self.snapshot()

    def _forget(self, key: str, packed: int) -> None:
        self._window.remove(key, packed)
        self._unjudged.pop(key, None)

    def configure(self, window: float, undelivered_after: float) -> None:
        """Apply changed settings after a reload; counters and tracked messages stay.
        Messages waiting for their judgement keep the deadline they were given."""
        self.window = window
        self.undelivered_after = undelivered_after
        self._window.configure(window, undelivered_after)

    def snapshot(self) -> TrackerSnapshot:
        return TrackerSnapshot(
            messages_total=MappingProxyType(dict(self._messages_total)),
            status_reached=MappingProxyType(dict(self._status_reached)),
            forwarded_total=self._forwarded_total,
            outcomes=MappingProxyType(dict(self._outcomes)),
            delivery_lag=self._delivery_lag.freeze(),
            read_lag=self._read_lag.freeze(),
            window=self._stats,
            tracked=len(self._messages),
            full_polls=self._full_polls,
            resync_corrections=self._corrections,
            filters_by_send_time=self.filters_by_send_time,
            dropped=self._dropped,
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
            "window_keys": self._window.seen_pairs(),
            "full_polls": self._full_polls,
            "resync_corrections": self._corrections,
            "dropped": self._dropped,
            "filters_by_send_time": self.filters_by_send_time,
            "messages": [
                [
                    key,
                    sorted(s for s, bit in STATUS_BIT.items() if packed & bit),
                    p.sent_timestamp(packed),
                    p.last_timestamp(packed),
                    bool(packed & p.FORWARDED),
                    p.status_of(packed),
                    p.type_of(packed),
                    bool(packed & p.BY_API),
                    bool(packed & p.ABSENT),
                ]
                for key, packed in self._messages.items()
            ],
        }

    def export_changes(self, complete: bool = False) -> dict[str, object]:
        """:meth:`export` for an incremental save of the state file (:mod:`exporter.state`).

        The counters are as in :meth:`export`. ``messages`` and ``unjudged`` list only the
        messages written since the previous call, and ``judged`` the keys whose judgement
        came meanwhile, unless ``complete``, or this is the first call, or the messages
        were rebuilt since (a full poll and :meth:`restore` rebuild them):
        ``messages_complete`` says which. Forgotten messages are not listed: merged changes
        keep their last row until the next complete export, and the first poll after a
        restore (a full one) forgets them again.
        """
        messages, unjudged = self._messages, self._unjudged
        if isinstance(messages, _WrittenKeys) and not complete:
            written = messages.take()
            judged = messages.unjudged - unjudged.keys()
            messages.unjudged = set(unjudged)
            # export() lists self._messages and self._unjudged: for the moment, only what
            # was written.
            self._messages = {key: messages[key] for key in written if key in messages}
            self._unjudged = {key: unjudged[key] for key in written if key in unjudged}
            try:
                changes = self.export()
            finally:
                self._messages, self._unjudged = messages, unjudged
            return {**changes, "judged": sorted(judged), "messages_complete": False}
        if isinstance(messages, _WrittenKeys):
            messages.take()
        else:
            self._messages = messages = _WrittenKeys(messages)
        messages.unjudged = set(unjudged)
        return {**self.export(), "messages_complete": True}

    def restore(self, data: object) -> None:
        """Resume from :meth:`export` output. Raises ValueError (and changes nothing) when
        the data is not what export writes; counting then resumes with no baseline. Files
        written by earlier versions (no delivery outcomes, messages without their current
        status and type) restore too: the first poll after a restart reads the whole
        window, which puts every message back in its place."""
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
        pairs = [(_str(a), _str(b)) for a, b in _rows(data["window_keys"], 2)]
        tracked = {key: packed for key, packed in map(_restored_message, _list(data["messages"]))}
        if not set(unjudged) <= set(tracked):
            raise ValueError("a message waiting for its judgement is not tracked")
        full_polls = _count(data.get("full_polls", 0))
        corrections = _count(data.get("resync_corrections", 0))
        dropped = _count(data.get("dropped", 0))
        by_send_time = _bool(data.get("filters_by_send_time", False))
        self._messages_total = messages_total
        self._status_reached = {**dict.fromkeys(CHAIN, 0), **status_reached}
        self._forwarded_total = forwarded_total
        self._outcomes = {**dict.fromkeys(OUTCOMES, 0), **outcomes}
        self._unjudged = unjudged
        self._delivery_lag = delivery_lag
        self._read_lag = read_lag
        self._messages = dict(sorted(tracked.items(), key=lambda item: item[1] >> p.LAST_SHIFT))
        self._window = OutgoingWindow(self.window, self.undelivered_after)
        self._window.restore_seen_pairs(pairs)
        self._full_polls, self._corrections, self._dropped = full_polls, corrections, dropped
        self.filters_by_send_time = by_send_time
        self._short_spans = []
        self._baseline_before = None  # what happened while we were down is news, not history

    def _observe_message(self, message: JournalMessage, baseline: float | None, now: float,
                         changes: list[int] | None) -> None:  # fmt: skip
        key = message.key
        old = self._messages.get(key)
        described = p.description(message)
        if old is not None and _unchanged(old, message, described):
            return
        status = message.status
        counting = True
        if old is None:
            reached = sent = last = 0
            forwarded = False
            counting = baseline is None or message.timestamp >= baseline
            if counting:
                kind = (message.message_type, message.send_by_api)
                self._messages_total[kind] = self._messages_total.get(kind, 0) + 1
                # The send time is known for a message first seen sent or pending; for one
                # first seen later on, its timestamp is the latest the send can have been.
                self._unjudged[key] = _Judgement(message.timestamp + self.undelivered_after, 0.0)
        else:
            self._window.remove(key, old)
            reached = old & p.REACHED_MASK
            forwarded = bool(old & p.FORWARDED)
            sent, last = p.sent_timestamp(old), p.last_timestamp(old)
        previous_timestamp = last
        moved = message.timestamp > last
        if moved:
            last = message.timestamp
        if message.forwarded and not forwarded:
            forwarded = True
            if counting:
                self._forwarded_total += 1
        if status in _SENDING and not sent:
            sent = message.timestamp
        new = [s for s in statuses_implied(status) if not reached & STATUS_BIT[s]]
        for status_name in new:
            reached |= STATUS_BIT[status_name]
        packed = p.pack(reached, forwarded, sent, last, described)
        if old is not None and moved:
            del self._messages[key]  # to the end: the dict stays in timestamp order
        self._messages[key] = packed
        self._window.add(key, packed)
        if not new:
            return
        if changes is not None and old is not None:
            changes.append(message.timestamp)
        if counting:
            for status_name in new:
                self._status_reached[status_name] = self._status_reached.get(status_name, 0) + 1
        if "delivered" not in new and "read" not in new:
            return
        # The journal's timestamp is the time of the last action, so it moves on delivery
        # and read. Where it did not (some products give the send time), the poll that first
        # saw the new status is the best bound there is: a lag of 0 would be a lie.
        at = float(message.timestamp) if message.timestamp > previous_timestamp else now
        judgement = self._unjudged.get(key)
        if judgement is not None and not judgement.delivered_at:
            judgement.delivered_at = at
        if not sent:  # never seen on its way: no start to measure a lag from
            return
        lag = at - sent
        if message.timestamp < sent or lag < 0:
            return  # the journal's clock went backwards, or disagrees with ours: no honest lag
        if "delivered" in new:
            self._delivery_lag.observe(lag)
        if "read" in new:
            self._read_lag.observe(lag)

    def _mark_absent(self, present: set[str], now: float) -> None:
        """After a full answer: what it does not hold leaves the window (and is forgotten
        once its timestamp lies outside the window, either side: a broken clock's future
        dates included); then the tracked messages are put in exact timestamp order."""
        oldest, newest = now - self.window, now + self.window
        kept = []
        for key, packed in self._messages.items():
            if key not in present:
                if not oldest <= packed >> p.LAST_SHIFT <= newest:
                    continue
                packed |= p.ABSENT
            kept.append((key, packed))
        kept.sort(key=lambda item: item[1] >> p.LAST_SHIFT)
        self._messages = dict(kept)

    def _check_short_polls(self, changes: list[int]) -> None:
        """The self-check (see the class docstring), on the status changes a full answer
        showed: ``changes`` holds their timestamps."""
        spans = self._short_spans
        self._short_spans = []
        if not spans:
            return
        missed = sum(
            1
            for timestamp in changes
            if any(since <= timestamp and timestamp + JOURNAL_DELAY <= at for at, since in spans)
        )
        if missed:
            self._corrections += missed
            self.filters_by_send_time = True

    def _judge(self, now: float) -> None:
        """Give every message whose judgement is due its delivery outcome, once."""
        due = [key for key, judgement in self._unjudged.items() if judgement.due <= now]
        for key in due:
            judgement = self._unjudged.pop(key)
            packed = self._messages.get(key)
            reached = 0 if packed is None else packed & p.REACHED_MASK
            self._outcomes[judgement.outcome(reached)] += 1
        if len(due) > 1024 and len(self._unjudged) < len(due):
            # A burst was judged: a dict never gives back the room it grew to.
            self._unjudged = dict(self._unjudged)


def _restored_message(row: object) -> tuple[str, int]:
    """One row of the state file's messages: 9 values, or the 5 of earlier versions."""
    values = _list(row)
    if len(values) not in (5, 9):
        raise ValueError("expected rows of 9 values")
    key, reached_list, sent_ts, last_ts, forwarded = values[:5]
    reached = 0
    for status in _list(reached_list):
        if _str(status) not in STATUS_BIT:
            raise ValueError(f"unknown status {status!r}")
        reached |= STATUS_BIT[_str(status)]
    status_name, kind, by_api, absent = (
        values[5:] if len(values) == 9 else (STATUS_UNKNOWN, TYPE_UNKNOWN, False, True)
    )
    if _str(status_name) not in p.STATUSES or _str(kind) not in p.MESSAGE_TYPES:
        raise ValueError("unknown status or message type")
    described = p.describe(_str(status_name), _str(kind), _bool(by_api))
    packed = p.pack(reached, _bool(forwarded), _timestamp(sent_ts), _timestamp(last_ts),
                    described, _bool(absent))  # fmt: skip
    return _str(key), packed


_DELIVERED_BITS = sum(STATUS_BIT[s] for s in _DELIVERED)
_FAILURE_BITS = sum(STATUS_BIT[s] for s in FAILURE_STATUSES)
_STATUS_BITS = sum(STATUS_BIT[s] for s in (*CHAIN, "pending"))


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
    dropped: int = 0  # messages forgotten early because the instance tracked MAX_TRACKED


class IncomingTracker:
    """Counts distinct incoming messages of one instance by type.

    The same rules as :class:`MessageTracker`: a message is keyed by chatId + idMessage, the
    first journal's messages older than ``baseline_before`` are a baseline, short answers
    change only what they hold, a full one removes from the window what it does not hold,
    and a message is forgotten once its timestamp has left the window. Incoming messages
    have no status: all that is remembered of one is its type and timestamp.
    """

    def __init__(self, window: float, baseline_before: float | None) -> None:
        self.window = window
        self._baseline_before = baseline_before
        self._messages: dict[str, int] = {}  # key → window.pack_incoming(), timestamp order
        self._window = IncomingWindow(window)
        self._messages_total: dict[str, int] = {}
        self._dropped = 0
        self._snapshot = IncomingSnapshot()

    def observe(self, journal: Journal, now: float, full: bool = True) -> IncomingSnapshot:
        """Fold one successful poll into the counters and return the new snapshot."""
        baseline = self._baseline_before
        self._baseline_before = None
        for message in sorted(journal.messages, key=_BY_TIMESTAMP):
            self._observe_message(message, baseline)
        present = {message.key for message in journal.messages}
        if full:
            self._mark_absent(present, now)
            forget = self._window.rebuild(self._messages, now, present)
        else:
            forget = self._window.advance(self._messages, now, present)
        for key in forget:
            del self._messages[key]
        self._dropped += _drop_oldest(
            self._messages, MAX_TRACKED, lambda _key, packed: self._window.remove(packed)
        )
        self._snapshot = IncomingSnapshot(
            messages_total=MappingProxyType(dict(self._messages_total)),
            window=self._window.counts(),
            last_message_timestamp=self._window.newest,
            tracked=len(self._messages),
            dropped=self._dropped,
        )
        return self._snapshot

    def configure(self, window: float) -> None:
        self.window = window
        self._window.configure(window)

    def snapshot(self) -> IncomingSnapshot:
        return self._snapshot

    def export(self) -> dict[str, object]:
        """Plain data for the state file."""
        return {
            "messages_total": dict(self._messages_total),
            "dropped": self._dropped,
            "window_types": self._window.seen_types(),
            "messages": [
                [key, incoming_timestamp(v), incoming_type(v)] for key, v in self._messages.items()
            ],
        }

    def restore(self, data: object) -> None:
        """Resume from :meth:`export` output; ValueError (and nothing changed) otherwise.
        Rows of earlier versions (key and timestamp) restore with an unknown type."""
        mapping = _mapping(data)
        try:
            totals = {_str(k): _count(v) for k, v in _mapping(mapping["messages_total"]).items()}
            types = {_str(t) for t in _list(mapping["window_types"])}
            messages = dict(map(_restored_incoming, _list(mapping["messages"])))
            dropped = _count(mapping.get("dropped", 0))
        except KeyError as exc:
            raise ValueError(f"incoming state incomplete: {exc}") from None
        self._messages_total = totals
        self._dropped = dropped
        self._messages = dict(sorted(messages.items(), key=lambda item: item[1]))
        self._window = IncomingWindow(self.window)
        self._window.restore_seen_types(types)
        self._baseline_before = None
        self._snapshot = IncomingSnapshot(
            messages_total=MappingProxyType(dict(totals)), tracked=len(messages), dropped=dropped
        )

    def _observe_message(self, message: JournalMessage, baseline: float | None) -> None:
        key = message.key
        old = self._messages.get(key)
        if old is None:
            if baseline is None or message.timestamp >= baseline:
                kind = message.message_type
                self._messages_total[kind] = self._messages_total.get(kind, 0) + 1
            timestamp = message.timestamp
        else:
            timestamp = max(incoming_timestamp(old), message.timestamp)
        packed = pack_incoming(timestamp, message.message_type)
        if packed == old:
            return
        if old is not None:
            self._window.remove(old)
            if timestamp > incoming_timestamp(old):
                del self._messages[key]  # to the end: the dict stays in timestamp order
        self._messages[key] = packed
        self._window.add(packed)

    def _mark_absent(self, present: set[str], now: float) -> None:
        oldest, newest = now - self.window, now + self.window
        kept = []
        for key, value in self._messages.items():
            if key not in present:
                if not oldest <= incoming_timestamp(value) <= newest:
                    continue
                value |= INCOMING_ABSENT
            kept.append((key, value))
        kept.sort(key=lambda item: item[1])
        self._messages = dict(kept)


def _drop_oldest(messages: dict[str, int], limit: int,
                 forget: Callable[[str, int], None]) -> int:  # fmt: skip
    """Forget the oldest messages (the dict is in timestamp order) beyond ``limit``; how many."""
    excess = len(messages) - limit
    if excess <= 0:
        return 0
    for key in list(itertools.islice(messages, excess)):
        forget(key, messages.pop(key))
    return excess


def _restored_incoming(row: object) -> tuple[str, int]:
    values = _list(row)
    if len(values) not in (2, 3):
        raise ValueError("expected rows of 3 values")
    kind = _str(values[2]) if len(values) == 3 else TYPE_UNKNOWN
    if kind not in p.MESSAGE_TYPES:
        raise ValueError(f"unknown message type {kind!r}")
    return _str(values[0]), pack_incoming(_timestamp(values[1]), kind, absent=len(values) == 2)


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
    if number > p.TS_MASK:
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


class _WrittenKeys(dict[str, int]):
    """A tracker's messages that also note which keys were written (by item assignment,
    the only way the tracker writes one) since :meth:`take`, and which were waiting for a
    judgement then; for :meth:`MessageTracker.export_changes`."""

    __slots__ = ("_written", "unjudged")

    def __init__(self, messages: Mapping[str, int]) -> None:
        super().__init__(messages)
        self._written: set[str] = set()
        self.unjudged: set[str] = set()  # the keys waiting for a judgement at the last export

    def __setitem__(self, key: str, value: int) -> None:
        super().__setitem__(key, value)
        self._written.add(key)

    def take(self) -> set[str]:
        """The keys written since the previous call."""
        written, self._written = self._written, set()
        return written
