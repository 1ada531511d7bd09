"""``outgoing``: the journal of sent messages (``lastOutgoingMessages``), the exporter's core.

Example output for one instance (``name="sales-bot"``, ``id_instance="1101000001"``)::

    greenapi_up{id_instance="1101000001",name="sales-bot"} 1.0
    greenapi_outgoing_window_messages{id_instance="1101000001",message_type="textMessage",name="sales-bot",status="read"} 17.0
    greenapi_outgoing_messages_total{id_instance="1101000001",message_type="textMessage",name="sales-bot",send_by_api="true"} 42.0
    greenapi_outgoing_delivery_outcomes_total{id_instance="1101000001",name="sales-bot",outcome="in_time"} 39.0
    greenapi_outgoing_delivery_lag_seconds_bucket{id_instance="1101000001",le="5.0",name="sales-bot"} 12.0

``greenapi_up`` and the poll health gauges describe this collector's requests, whatever else
an instance collects.
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
from exporter.tracker import OUTCOMES, MessageTracker, TrackerSnapshot

if TYPE_CHECKING:
    from exporter.config import InstanceConfig

FAMILIES = (
    FamilySpec("greenapi_up", "gauge",
               "1 if the last poll of the outgoing journal succeeded, else 0."),
    FamilySpec("greenapi_poll_duration_seconds", "gauge", "Duration of the last poll in seconds."),
    FamilySpec("greenapi_last_poll_success_timestamp_seconds", "gauge",
               "UNIX time when the last successful poll ended."),
    FamilySpec("greenapi_outgoing_window_messages", "gauge",
               "Messages in the journal window by status and type.", ("status", "message_type")),
    FamilySpec("greenapi_outgoing_window_send_by_api_messages", "gauge",
               "Messages in the window sent through the API."),
    FamilySpec("greenapi_outgoing_window_send_by_api_ratio", "gauge",
               "Share of the window's messages sent through the API."),
    FamilySpec("greenapi_outgoing_window_forwarded_messages", "gauge",
               "Forwarded messages in the window."),
    FamilySpec("greenapi_outgoing_undelivered_messages", "gauge",
               "Messages still sent or pending for longer than undelivered_after."),
    FamilySpec("greenapi_outgoing_oldest_undelivered_timestamp_seconds", "gauge",
               "UNIX send time of the oldest undelivered message; absent when there is none."),
    FamilySpec("greenapi_outgoing_last_message_timestamp_seconds", "gauge",
               "Newest message timestamp in the window."),
    FamilySpec("greenapi_outgoing_window_truncated", "gauge",
               "1 if the last response reached max_messages and older messages may be missing."),
    FamilySpec("greenapi_outgoing_window_seconds", "gauge",
               "The configured journal window in seconds."),
    FamilySpec("greenapi_outgoing_invalid_messages", "gauge",
               "Elements of the last response that could not be used."),
    FamilySpec("greenapi_outgoing_messages_total", "counter",
               "Distinct outgoing messages seen for the first time.",
               ("message_type", "send_by_api")),
    FamilySpec("greenapi_outgoing_status_reached_total", "counter",
               "Messages seen at a status for the first time (read implies delivered and sent).",
               ("status",)),
    FamilySpec("greenapi_outgoing_forwarded_messages_total", "counter",
               "Distinct forwarded messages seen."),
    FamilySpec("greenapi_outgoing_delivery_outcomes_total", "counter",
               "Counted messages by how they stood undelivered_after after they were sent: "
               "in_time, late, failed or no_status.", ("outcome",)),
    FamilySpec("greenapi_outgoing_full_polls_total", "counter",
               "Successful reads of the whole journal window (short polls read its recent past)."),
    FamilySpec("greenapi_outgoing_resync_corrections_total", "counter",
               "Status changes a full read found that the short polls covering them did not show."),
    FamilySpec("greenapi_outgoing_dropped_messages_total", "counter",
               "Messages forgotten early: the instance already tracked the most it may."),
    FamilySpec("greenapi_outgoing_delivery_lag_seconds", "histogram",
               "Seconds from sent to first seen delivered or read."),
    FamilySpec("greenapi_outgoing_read_lag_seconds", "histogram",
               "Seconds from sent to first seen read."),
)  # fmt: skip


class OutgoingCollector(ApiCollector[MessageTracker, Journal, TrackerSnapshot]):
    name = "outgoing"
    method = "lastOutgoingMessages"
    journal = True
    families = FAMILIES
    state_key = "tracker"

    def new_state(self, config: InstanceConfig, baseline_before: float | None) -> MessageTracker:
        settings = config.settings
        return MessageTracker(settings.window, settings.undelivered_after, baseline_before)

    def configure(self, state: MessageTracker, config: InstanceConfig) -> None:
        state.configure(config.settings.window, config.settings.undelivered_after)

    def initial(self, state: MessageTracker) -> TrackerSnapshot:
        return state.snapshot()  # the counters exist, at zero or as restored, from the start

    def parse(self, body: bytes) -> Journal:
        return parse_journal_answer(body)

    def fold(self, state: MessageTracker, parsed: Journal, now: float,
             config: InstanceConfig, span: Span) -> TrackerSnapshot:  # fmt: skip
        return state.observe(parsed, now, config.settings.max_messages, span.full, span.since)

    def reads_in_full_only(self, value: TrackerSnapshot) -> bool:
        return value.filters_by_send_time

    def add_samples(self, reading: Reading, window_seconds: float, labels: Sequence[str],
                    sink: SampleSink) -> None:  # fmt: skip
        labels = list(labels)
        sink.sample("greenapi_outgoing_window_seconds", labels, window_seconds)
        status = reading.status
        if status is not None:
            sink.sample("greenapi_up", labels, 1.0 if status.up else 0.0)
            sink.sample("greenapi_poll_duration_seconds", labels, status.duration)
            if status.last_success_timestamp is not None:
                sink.sample("greenapi_last_poll_success_timestamp_seconds", labels,
                            status.last_success_timestamp)  # fmt: skip
        tracker = reading.value
        if not isinstance(tracker, TrackerSnapshot):
            return
        for (message_type, send_by_api), count in sorted(tracker.messages_total.items()):
            by_api = "true" if send_by_api else "false"
            sink.sample("greenapi_outgoing_messages_total", [*labels, message_type, by_api], count)
        for status_name, count in sorted(tracker.status_reached.items()):
            sink.sample("greenapi_outgoing_status_reached_total", [*labels, status_name], count)
        sink.sample("greenapi_outgoing_forwarded_messages_total", labels, tracker.forwarded_total)
        for outcome in OUTCOMES:
            sink.sample("greenapi_outgoing_delivery_outcomes_total", [*labels, outcome],
                        tracker.outcomes.get(outcome, 0))  # fmt: skip
        sink.sample("greenapi_outgoing_full_polls_total", labels, tracker.full_polls)
        sink.sample("greenapi_outgoing_resync_corrections_total", labels,
                    tracker.resync_corrections)  # fmt: skip
        sink.sample("greenapi_outgoing_dropped_messages_total", labels, tracker.dropped)
        sink.histogram("greenapi_outgoing_delivery_lag_seconds", labels, tracker.delivery_lag)
        sink.histogram("greenapi_outgoing_read_lag_seconds", labels, tracker.read_lag)
        window = tracker.window
        if window is None:  # no successful poll yet: the window is not known
            return
        for (status_name, message_type), count in sorted(window.by_status_type.items()):
            sink.sample("greenapi_outgoing_window_messages", [*labels, status_name, message_type],
                        count)  # fmt: skip
        sink.sample("greenapi_outgoing_window_send_by_api_messages", labels, window.send_by_api)
        if window.messages:
            sink.sample("greenapi_outgoing_window_send_by_api_ratio", labels,
                        window.send_by_api / window.messages)  # fmt: skip
        sink.sample("greenapi_outgoing_window_forwarded_messages", labels, window.forwarded)
        sink.sample("greenapi_outgoing_undelivered_messages", labels, window.undelivered)
        if window.oldest_undelivered_timestamp is not None:
            sink.sample("greenapi_outgoing_oldest_undelivered_timestamp_seconds", labels,
                        window.oldest_undelivered_timestamp)  # fmt: skip
        if window.last_message_timestamp is not None:
            sink.sample("greenapi_outgoing_last_message_timestamp_seconds", labels,
                        window.last_message_timestamp)  # fmt: skip
        sink.sample("greenapi_outgoing_window_truncated", labels, 1.0 if window.truncated else 0.0)
        sink.sample("greenapi_outgoing_invalid_messages", labels, window.invalid)

    def describe(self, reading: Reading) -> str:
        if reading.status is None:
            return "not polled yet"
        tracker = reading.value
        messages = (
            f", {tracker.window.messages} messages in the window"
            if isinstance(tracker, TrackerSnapshot) and tracker.window is not None
            else ""
        )
        return ("up" if reading.status.up else f"down ({reading.status.result})") + messages

    def tracked(self, value: TrackerSnapshot | None) -> int:
        return 0 if value is None else value.tracked

    def export(self, state: MessageTracker) -> object:
        return state.export()

    def restore(self, config: InstanceConfig, data: object) -> MessageTracker:
        tracker = self.new_state(config, baseline_before=None)
        try:
            tracker.restore(data)
        except (KeyError, TypeError) as exc:
            raise ValueError(f"tracker state incomplete: {exc}") from None
        return tracker
