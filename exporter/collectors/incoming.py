"""``incoming``: the journal of received messages (``lastIncomingMessages``).

Same shape and rules as the outgoing journal (key, baseline, forgetting), without statuses.
It is a journal method: it counts against the plan's monthly journal quota. Example output::

    greenapi_incoming_window_messages{id_instance="1101000001",message_type="textMessage",name="sales-bot"} 5.0
    greenapi_incoming_messages_total{id_instance="1101000001",message_type="textMessage",name="sales-bot"} 8.0
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from exporter.collectors.base import (
    ApiCollector,
    FamilySpec,
    Reading,
    SampleSink,
    Span,
    parse_journal_answer,
)
from exporter.journal import Journal
from exporter.tracker import IncomingSnapshot, IncomingTracker

if TYPE_CHECKING:
    from exporter.config import InstanceConfig


class IncomingCollector(ApiCollector[IncomingTracker, Journal, IncomingSnapshot]):
    name = "incoming"
    method = "lastIncomingMessages"
    journal = True
    state_key = "incoming"
    families = (
        FamilySpec("greenapi_incoming_window_messages", "gauge",
                   "Incoming messages in the window by type.", ("message_type",)),
        FamilySpec("greenapi_incoming_messages_total", "counter",
                   "Distinct incoming messages seen for the first time.", ("message_type",)),
        FamilySpec("greenapi_incoming_last_message_timestamp_seconds", "gauge",
                   "Newest incoming message timestamp in the window."),
        FamilySpec("greenapi_incoming_dropped_messages_total", "counter",
                   "Incoming messages forgotten early: the instance tracked the most it may."),
    )  # fmt: skip

    def new_state(self, config: InstanceConfig, baseline_before: float | None) -> IncomingTracker:
        return IncomingTracker(config.settings.window, baseline_before)

    def configure(self, state: IncomingTracker, config: InstanceConfig) -> None:
        state.configure(config.settings.window)

    def initial(self, state: IncomingTracker) -> IncomingSnapshot:
        return state.snapshot()

    def parse(self, body: bytes) -> Journal:
        return parse_journal_answer(body)

    def fold(self, state: IncomingTracker, parsed: Journal, now: float,
             config: InstanceConfig, span: Span) -> IncomingSnapshot:  # fmt: skip
        return state.observe(parsed, now, full=span.full)

    def add_samples(self, reading: Reading, window_seconds: float, labels: Sequence[str],
                    sink: SampleSink) -> None:  # fmt: skip
        incoming = reading.value
        if not isinstance(incoming, IncomingSnapshot):
            return
        for message_type, count in sorted(incoming.messages_total.items()):
            sink.sample("greenapi_incoming_messages_total", [*labels, message_type], count)
        if incoming.window is not None:
            for message_type, count in sorted(incoming.window.items()):
                sink.sample("greenapi_incoming_window_messages", [*labels, message_type], count)
        if incoming.last_message_timestamp is not None:
            sink.sample("greenapi_incoming_last_message_timestamp_seconds", labels,
                        incoming.last_message_timestamp)  # fmt: skip
        sink.sample("greenapi_incoming_dropped_messages_total", labels, incoming.dropped)

    def describe(self, reading: Reading) -> str:
        incoming = reading.value
        if not isinstance(incoming, IncomingSnapshot) or incoming.window is None:
            return "incoming -"
        return f"incoming {sum(incoming.window.values())} in the window"

    def tracked(self, value: IncomingSnapshot | None) -> int:
        return 0 if value is None else value.tracked

    def export(self, state: IncomingTracker) -> object:
        return state.export()

    def restore(self, config: InstanceConfig, data: object) -> IncomingTracker:
        tracker = self.new_state(config, baseline_before=None)
        tracker.restore(data)
        return tracker
