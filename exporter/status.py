"""Parsing the two small status answers: ``getStateInstance`` and ``getMessagesCount``.

Both are tiny JSON objects, but not always the documented ones: the state is ``null`` while
an instance is being created, a new product may bring a state nobody has seen, and one
documentation example spells the queue's ``count`` with a Cyrillic es (U+0441). Such answers are
mapped, not refused; only a body that says nothing usable raises :class:`InvalidAnswer`.
"""

from __future__ import annotations

import json

from exporter.journal import describe_json_error, json_type

# Every value of greenapi_instance_state{state}: the states GREEN-API documents across its
# products (WhatsApp, MAX: suspended, Telegram: pendingCode/pendingPassword), then `unknown`.
INSTANCE_STATES: tuple[str, ...] = (
    "authorized",
    "notAuthorized",
    "blocked",
    "sleepMode",
    "starting",
    "yellowCard",
    "suspended",
    "pendingCode",
    "pendingPassword",
    "unknown",
)
STATE_UNKNOWN = "unknown"
_KNOWN_STATES = frozenset(INSTANCE_STATES)

# "count" in Latin letters, and with the Cyrillic es (U+0441) of the documentation example.
_COUNT_KEYS = ("count", "\u0441ount")


class InvalidAnswer(ValueError):
    """The body cannot be used. The message never quotes the body."""


def parse_state(body: bytes) -> str:
    """The instance's state, bounded to :data:`INSTANCE_STATES`.

    ``null`` (an instance being created) and a state this version does not know are
    ``unknown``: the instance is not usable for sending either way.
    """
    data = _loads(body)
    if data is None:
        return STATE_UNKNOWN
    if not isinstance(data, dict):
        raise InvalidAnswer(f"expected a JSON object or null, got a JSON {json_type(data)}")
    state = data.get("stateInstance", ...)
    if state is ...:
        raise InvalidAnswer("no stateInstance in the answer")
    if state is None or not isinstance(state, str):
        return STATE_UNKNOWN
    return state if state in _KNOWN_STATES else STATE_UNKNOWN


def parse_queue(body: bytes) -> int:
    """Messages waiting in the send queue."""
    data = _loads(body)
    if not isinstance(data, dict):
        raise InvalidAnswer(f"expected a JSON object, got a JSON {json_type(data)}")
    for key in _COUNT_KEYS:
        if key in data:
            count = data[key]
            if isinstance(count, bool) or not isinstance(count, int) or count < 0:
                raise InvalidAnswer("count is not a whole number >= 0")
            return count
    raise InvalidAnswer("no count in the answer")


def _loads(body: bytes) -> object:
    try:
        return json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise InvalidAnswer(describe_json_error(exc)) from None
