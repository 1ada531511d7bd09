"""The window gauges, kept as tracked messages change instead of recounted from each answer.

A short poll (see :mod:`exporter.schedule`) brings only the journal's recent past, so the
gauges about the whole window (messages by status and type, undelivered, oldest undelivered,
...) cannot come from the answer: they are aggregates over the tracked messages that are in
the window, updated when a message is added, changes or leaves, so that a poll costs in
proportion to what it received.

A message is in the window while it is not absent (missing from the latest full answer) and
its latest timestamp is at most ``window`` old. Messages leave as time passes: the
tracker's dict of messages is kept in (nearly) ascending order of latest timestamp — a
message whose timestamp moves is moved to the end, answers are folded oldest first, and a
full poll sorts it exactly — so expiry scans only its head. Disorder is bounded by how late
the journal shows a message (two minutes) and how long a poll's answer spans; the scans stop
:data:`SLACK` past their boundary, and every full poll recomputes everything exactly.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from exporter import packed as p

# How far out of timestamp order tracked messages can be, at most, between full polls.
SLACK = 3600
_SENDING_CODES = frozenset(
    index for index, status in enumerate(p.STATUSES) if status in ("sent", "pending")
)


@dataclass(frozen=True)
class WindowStats:
    """The journal's window as of the latest successful poll."""

    by_status_type: Mapping[tuple[str, str], int]
    send_by_api: int
    forwarded: int
    messages: int
    undelivered: int
    oldest_undelivered_timestamp: int | None  # send time; None when nothing is undelivered
    last_message_timestamp: int | None
    truncated: bool
    invalid: int


# A message's status and type as one number: the 9 bits from STATUS_SHIFT (the type's field
# follows the status's).
_TYPE_OFFSET = p.TYPE_SHIFT - p.STATUS_SHIFT
_DESCRIPTION_CODE = (1 << (_TYPE_OFFSET + 5)) - 1
assert _TYPE_OFFSET == 4


def _sending(packed: int) -> bool:
    return (packed >> p.STATUS_SHIFT) & 0xF in _SENDING_CODES


class OutgoingWindow:
    """Aggregates over the tracked messages in the window. Invariant: the aggregates count
    exactly the messages that are not absent and whose latest timestamp is at least
    ``self._cutoff``."""

    def __init__(self, window: float, undelivered_after: float) -> None:
        self.window = window
        self.undelivered_after = undelivered_after
        self._cutoff = math.inf  # nothing is counted until the first rebuild
        self._valid = False
        self._counts: dict[tuple[str, str], int] = {}
        self._seen_pairs: set[tuple[str, str]] = set()  # combinations seen stay, at 0
        self._messages = self._by_api = self._forwarded = 0
        self._newest: int | None = None
        # The counted messages still sent or pending, in the order they were counted: keys
        # alone (a dict, which keeps that order); their times are read from the tracker's
        # packed integers when needed. Holding the times here too cost 32 B a message.
        self._sending: dict[str, None] = {}
        self.truncated = False
        self.invalid = 0

    def configure(self, window: float, undelivered_after: float) -> None:
        self.window, self.undelivered_after = window, undelivered_after
        self._valid = False  # recounted at the next poll

    def counted(self, packed: int) -> bool:
        return not packed & p.ABSENT and p.last_timestamp(packed) >= self._cutoff

    def add(self, key: str, packed: int) -> None:
        """Count a message that joined the window or changed (after :meth:`remove`)."""
        if not self._valid or not self.counted(packed):
            return
        pair = (p.status_of(packed), p.type_of(packed))
        self._counts[pair] = self._counts.get(pair, 0) + 1
        self._seen_pairs.add(pair)
        self._messages += 1
        self._by_api += bool(packed & p.BY_API)
        self._forwarded += bool(packed & p.FORWARDED)
        timestamp = p.last_timestamp(packed)
        if self._newest is None or timestamp > self._newest:
            self._newest = timestamp
        if _sending(packed):
            self._sending[key] = None

    def remove(self, key: str, packed: int) -> None:
        """Stop counting a message (before it changes, or as it leaves)."""
        if not self._valid or not self.counted(packed):
            return
        pair = (p.status_of(packed), p.type_of(packed))
        self._counts[pair] -= 1
        self._messages -= 1
        self._by_api -= bool(packed & p.BY_API)
        self._forwarded -= bool(packed & p.FORWARDED)
        self._sending.pop(key, None)
        if not self._messages:
            self._newest = None

    def advance(self, messages: dict[str, int], now: float, present: set[str]) -> list[str]:
        """Let the messages older than the window leave it; return the keys to forget (they
        left the window and are not in the answer just folded)."""
        cutoff = now - self.window
        if not self._valid or cutoff < self._cutoff:
            return self.rebuild(messages, now, present)
        forget: list[str] = []
        for key, packed in messages.items():
            timestamp = p.last_timestamp(packed)
            if timestamp >= cutoff + SLACK:
                break
            if timestamp < cutoff:
                self.remove(key, packed)
                if key not in present:
                    forget.append(key)
        self._cutoff = cutoff
        return forget

    def rebuild(self, messages: dict[str, int], now: float, present: set[str]) -> list[str]:
        """Count everything again, exactly (at full polls, after a reload, a restore or a
        clock that went back); the same keys to forget as :meth:`advance`.

        What :meth:`add` does for each message, in one loop over the packed integers: the
        status and type are counted by their 9 bits of code and named once at the end (a
        full poll of 5,000 messages spent a third of its CPU here, message by message)."""
        cutoff = now - self.window
        self._cutoff = cutoff
        self._valid = True
        by_code: dict[int, int] = {}
        sending: dict[str, None] = {}
        forget: list[str] = []
        total = by_api = forwarded = 0
        newest: int | None = None
        for key, packed in messages.items():
            timestamp = packed >> p.LAST_SHIFT
            if timestamp < cutoff:
                if key not in present:
                    forget.append(key)
                continue
            if packed & p.ABSENT:
                continue
            code = (packed >> p.STATUS_SHIFT) & _DESCRIPTION_CODE
            by_code[code] = by_code.get(code, 0) + 1
            total += 1
            if packed & p.BY_API:
                by_api += 1
            if packed & p.FORWARDED:
                forwarded += 1
            if newest is None or timestamp > newest:
                newest = timestamp
            if (code & 0xF) in _SENDING_CODES:
                sending[key] = None
        counts = dict.fromkeys(self._seen_pairs, 0)
        for code, count in by_code.items():
            pair = (p.STATUSES[code & 0xF], p.MESSAGE_TYPES[code >> _TYPE_OFFSET])
            counts[pair] = count
            self._seen_pairs.add(pair)
        self._counts = counts
        self._messages, self._by_api, self._forwarded = total, by_api, forwarded
        self._newest = newest
        self._sending = sending
        return forget

    def stats(self, now: float, messages: Mapping[str, int]) -> WindowStats:
        """The gauges as of ``now``: undelivered means sent or pending for longer than
        ``undelivered_after``. ``messages``: the tracker's, every counted message in it."""
        undelivered_before = now - self.undelivered_after
        young = 0
        for timestamp in (p.last_timestamp(messages[key]) for key in reversed(self._sending)):
            if timestamp < undelivered_before - SLACK:
                break
            young += timestamp >= undelivered_before
        oldest: int | None = None
        for timestamp in (p.last_timestamp(messages[key]) for key in self._sending):
            if oldest is not None and timestamp >= oldest + SLACK:
                break
            if oldest is None or timestamp < oldest:
                oldest = timestamp
        undelivered = len(self._sending) - young
        return WindowStats(
            by_status_type=MappingProxyType({**dict.fromkeys(self._seen_pairs, 0), **self._counts}),
            send_by_api=self._by_api,
            forwarded=self._forwarded,
            messages=self._messages,
            undelivered=undelivered,
            oldest_undelivered_timestamp=oldest
            if undelivered and oldest is not None and oldest < undelivered_before
            else None,
            last_message_timestamp=self._newest,
            truncated=self.truncated,
            invalid=self.invalid,
        )

    def seen_pairs(self) -> list[list[str]]:
        return [list(pair) for pair in sorted(self._seen_pairs)]

    def restore_seen_pairs(self, pairs: Iterable[tuple[str, str]]) -> None:
        self._seen_pairs = set(pairs)
        self._valid = False


# An incoming message is one int: its type (5 bits), absent (1 bit), then its timestamp.
INCOMING_ABSENT = 1 << 5
INCOMING_SHIFT = 6


def pack_incoming(timestamp: int, kind: str, absent: bool = False) -> int:
    return (
        (timestamp << INCOMING_SHIFT)
        | p.MESSAGE_TYPES.index(kind)
        | (INCOMING_ABSENT if absent else 0)
    )


def incoming_timestamp(packed: int) -> int:
    return packed >> INCOMING_SHIFT


def incoming_type(packed: int) -> str:
    return p.MESSAGE_TYPES[packed & 0x1F]


class IncomingWindow:
    """Incoming messages in the window, by type (the same rules as :class:`OutgoingWindow`,
    without statuses)."""

    def __init__(self, window: float) -> None:
        self.window = window
        self._cutoff = math.inf
        self._valid = False
        self._counts: dict[str, int] = {}
        self._seen_types: set[str] = set()
        self._newest: int | None = None

    def configure(self, window: float) -> None:
        self.window = window
        self._valid = False

    def counted(self, packed: int) -> bool:
        return not packed & INCOMING_ABSENT and incoming_timestamp(packed) >= self._cutoff

    def add(self, packed: int) -> None:
        if not self._valid or not self.counted(packed):
            return
        kind = incoming_type(packed)
        self._counts[kind] = self._counts.get(kind, 0) + 1
        self._seen_types.add(kind)
        timestamp = incoming_timestamp(packed)
        if self._newest is None or timestamp > self._newest:
            self._newest = timestamp

    def remove(self, packed: int) -> None:
        if not self._valid or not self.counted(packed):
            return
        self._counts[incoming_type(packed)] -= 1
        if not any(self._counts.values()):
            self._newest = None

    def advance(self, messages: dict[str, int], now: float, present: set[str]) -> list[str]:
        cutoff = now - self.window
        if not self._valid or cutoff < self._cutoff:
            return self.rebuild(messages, now, present)
        forget = []
        for key, packed in messages.items():
            timestamp = incoming_timestamp(packed)
            if timestamp >= cutoff + SLACK:
                break
            if timestamp < cutoff:
                self.remove(packed)
                if key not in present:
                    forget.append(key)
        self._cutoff = cutoff
        return forget

    def rebuild(self, messages: dict[str, int], now: float, present: set[str]) -> list[str]:
        self._cutoff = now - self.window
        self._valid = True
        self._counts = {}
        self._newest = None
        forget = []
        for key, packed in messages.items():
            if incoming_timestamp(packed) < self._cutoff and key not in present:
                forget.append(key)
            else:
                self.add(packed)
        return forget

    def counts(self) -> Mapping[str, int]:
        return MappingProxyType({**dict.fromkeys(self._seen_types, 0), **self._counts})

    @property
    def newest(self) -> int | None:
        return self._newest

    def seen_types(self) -> list[str]:
        return sorted(self._seen_types)

    def restore_seen_types(self, types: Iterable[str]) -> None:
        self._seen_types = set(types)
        self._valid = False
