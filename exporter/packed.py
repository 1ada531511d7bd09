"""How one tracked message is remembered: a single Python int.

With millions of messages in memory, an object with a handful of attributes costs well over
twice what one integer does. Every fact the counters and the window gauges need is a bit
field of that integer:

=========  ======  ===============================================================
bits       width   field
=========  ======  ===============================================================
0-14       15      the statuses the message has reached (:data:`STATUS_BIT`)
15         1       forwarded (once seen forwarded, always)
16-55      40      the timestamp when first seen sent or pending (0: never)
56-59      4       its current status (index into :data:`STATUSES`)
60-64      5       its ``typeMessage`` (index into :data:`MESSAGE_TYPES`)
65         1       ``sendByApi``
66         1       absent: missing from the latest full answer, so out of the window
67-        40      its latest timestamp (the time of the last action)
=========  ======  ===============================================================
"""

from __future__ import annotations

from exporter.journal import (
    KNOWN_MESSAGE_TYPES,
    KNOWN_STATUSES,
    STATUS_OTHER,
    STATUS_UNKNOWN,
    TYPE_OTHER,
    TYPE_UNKNOWN,
    JournalMessage,
)

# The progression that implies its predecessors: a message seen `read` was also delivered
# and sent. Every other status only counts itself.
CHAIN = ("sent", "delivered", "read")

# Every status label value, the chain first; a status's index is its bit and its code.
STATUSES: tuple[str, ...] = tuple(
    sorted(KNOWN_STATUSES | {STATUS_UNKNOWN, STATUS_OTHER}, key=lambda s: (s not in CHAIN, s))
)
MESSAGE_TYPES: tuple[str, ...] = (*sorted(KNOWN_MESSAGE_TYPES), TYPE_UNKNOWN, TYPE_OTHER)
STATUS_BIT = {status: 1 << index for index, status in enumerate(STATUSES)}

TS_BITS = 40  # UNIX seconds up to year 36812: journal timestamps beyond are refused anyway
TS_MASK = (1 << TS_BITS) - 1
REACHED_MASK = (1 << 15) - 1
FORWARDED = 1 << 15
SENT_SHIFT = 16
STATUS_SHIFT = 56
TYPE_SHIFT = 60
BY_API = 1 << 65
ABSENT = 1 << 66
LAST_SHIFT = 67
# The fields a window gauge is split by: what the latest answer said of the message.
DESCRIPTION_MASK = (0xF << STATUS_SHIFT) | (0x1F << TYPE_SHIFT) | BY_API

_STATUS_CODE = {status: index << STATUS_SHIFT for index, status in enumerate(STATUSES)}
_TYPE_CODE = {kind: index << TYPE_SHIFT for index, kind in enumerate(MESSAGE_TYPES)}

assert len(STATUSES) <= 15 and len(MESSAGE_TYPES) <= 32  # they fit their fields


def description(message: JournalMessage) -> int:
    """The :data:`DESCRIPTION_MASK` bits of what ``message`` says now."""
    return (
        _STATUS_CODE[message.status]
        | _TYPE_CODE[message.message_type]
        | (BY_API if message.send_by_api else 0)
    )


def last_timestamp(packed: int) -> int:
    return packed >> LAST_SHIFT


def sent_timestamp(packed: int) -> int:
    return (packed >> SENT_SHIFT) & TS_MASK


def status_of(packed: int) -> str:
    return STATUSES[(packed >> STATUS_SHIFT) & 0xF]


def type_of(packed: int) -> str:
    return MESSAGE_TYPES[(packed >> TYPE_SHIFT) & 0x1F]


def with_last_timestamp(packed: int, timestamp: int) -> int:
    return (packed & ((1 << LAST_SHIFT) - 1)) | (timestamp << LAST_SHIFT)


def with_sent_timestamp(packed: int, timestamp: int) -> int:
    return (packed & ~(TS_MASK << SENT_SHIFT)) | (timestamp << SENT_SHIFT)


def with_description(packed: int, bits: int) -> int:
    return (packed & ~DESCRIPTION_MASK) | bits


def pack(reached: int, forwarded: bool, sent: int, last: int, description_bits: int,
         absent: bool = False) -> int:  # fmt: skip
    """A packed message from its fields (``reached``: bits of :data:`STATUS_BIT`)."""
    return (
        reached
        | (FORWARDED if forwarded else 0)
        | (sent << SENT_SHIFT)
        | description_bits
        | (ABSENT if absent else 0)
        | (last << LAST_SHIFT)
    )


def describe(status: str, message_type: str, send_by_api: bool) -> int:
    """:data:`DESCRIPTION_MASK` bits from labels (for restoring saved state)."""
    return _STATUS_CODE[status] | _TYPE_CODE[message_type] | (BY_API if send_by_api else 0)
