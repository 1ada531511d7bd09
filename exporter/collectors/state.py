"""``state``: the instance's authorization state (``getStateInstance``).

The answer is ``{"stateInstance": "authorized"}``, ``null`` while an instance is being
created, and may carry a state nobody has seen yet: both are ``unknown`` (the instance
cannot send either way). Example output::

    greenapi_instance_state{id_instance="1101000001",name="sales-bot",state="authorized"} 1.0
    greenapi_instance_state{id_instance="1101000001",name="sales-bot",state="notAuthorized"} 0.0
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from exporter.collectors.base import (
    FamilySpec,
    InvalidAnswer,
    Reading,
    SampleSink,
    StatelessCollector,
    decode_json,
)
from exporter.journal import json_type

log = logging.getLogger("exporter.poller")

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


def parse_state(body: bytes) -> str:
    """The instance's state, bounded to :data:`INSTANCE_STATES`."""
    data = decode_json(body)
    if data is None:
        return STATE_UNKNOWN
    if not isinstance(data, dict):
        raise InvalidAnswer(f"expected a JSON object or null, got a JSON {json_type(data)}")
    state = data.get("stateInstance", ...)
    if state is ...:
        raise InvalidAnswer("no stateInstance in the answer")
    if not isinstance(state, str):
        return STATE_UNKNOWN
    return state if state in _KNOWN_STATES else STATE_UNKNOWN


class StateCollector(StatelessCollector[str]):
    name = "state"
    method = "getStateInstance"
    families = (
        FamilySpec("greenapi_instance_state", "gauge",
                   "1 for the instance's current stateInstance, 0 for the other known states.",
                   ("state",)),
    )  # fmt: skip

    def parse(self, body: bytes) -> str:
        return parse_state(body)

    def add_samples(self, reading: Reading, window_seconds: float, labels: Sequence[str],
                    sink: SampleSink) -> None:  # fmt: skip
        if not isinstance(reading.value, str):
            return  # no successful request yet
        for state in INSTANCE_STATES:
            value = 1.0 if state == reading.value else 0.0
            sink.sample("greenapi_instance_state", [*labels, state], value)

    def describe(self, reading: Reading) -> str:
        return f"state {reading.value or '-'}"

    def changed(self, previous: str | None, value: str, instance: str) -> None:
        """A change of state is news; leaving `authorized` (or starting elsewhere) a warning."""
        if value == previous or (previous is None and value == "authorized"):
            return
        extra = {"instance": instance, "state": value, "previous": previous or "none"}
        if value == "authorized":
            log.info("instance state changed", extra=extra)
        else:
            log.warning("instance state changed", extra=extra)
