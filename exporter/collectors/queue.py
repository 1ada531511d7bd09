"""``queue``: messages waiting in the instance's send queue (``getMessagesCount``).

The answer is ``{"count": N}``; one documentation example spells the key with a Cyrillic es
(U+0441), so both spellings are read. An answer with neither is ``invalid_response``.
Example output::

    greenapi_send_queue_messages{id_instance="1101000001",name="sales-bot"} 3.0
"""

from __future__ import annotations

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

# "count" in Latin letters, and with the Cyrillic es (U+0441) of the documentation example.
_COUNT_KEYS = ("count", "\u0441ount")


def parse_queue(body: bytes) -> int:
    """Messages waiting in the send queue."""
    data = decode_json(body)
    if not isinstance(data, dict):
        raise InvalidAnswer(f"expected a JSON object, got a JSON {json_type(data)}")
    for key in _COUNT_KEYS:
        if key in data:
            count = data[key]
            if isinstance(count, bool) or not isinstance(count, int) or count < 0:
                raise InvalidAnswer("count is not a whole number >= 0")
            return count
    raise InvalidAnswer("no count in the answer")


class QueueCollector(StatelessCollector[int]):
    name = "queue"
    method = "getMessagesCount"
    families = (
        FamilySpec("greenapi_send_queue_messages", "gauge",
                   "Messages waiting in the instance's send queue."),
    )  # fmt: skip

    def parse(self, body: bytes) -> int:
        return parse_queue(body)

    def add_samples(self, reading: Reading, window_seconds: float, labels: Sequence[str],
                    sink: SampleSink) -> None:  # fmt: skip
        if isinstance(reading.value, int):
            sink.sample("greenapi_send_queue_messages", labels, reading.value)

    def describe(self, reading: Reading) -> str:
        return f"queue {'-' if reading.value is None else reading.value}"
