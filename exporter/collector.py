"""Builds the exposition from an immutable snapshot at scrape time.

There are no global metric objects: each scrape asks for the latest
:class:`ExporterSnapshot` and turns it into metric families. Registering a collector
calls :meth:`describe`, which never touches the snapshot.

Example output for one instance (``name="sales-bot"``, ``id_instance="1101000001"``, a
static label ``team``)::

    greenapi_up{id_instance="1101000001",name="sales-bot",team="sales"} 1.0
    greenapi_polls_total{collector="outgoing",id_instance="1101000001",name="sales-bot",result="success",team="sales"} 42.0
    greenapi_outgoing_messages{id_instance="1101000001",message_type="textMessage",name="sales-bot",status="read",team="sales"} 17.0
    greenapi_outgoing_delivery_lag_seconds_bucket{id_instance="1101000001",le="5.0",name="sales-bot",team="sales"} 12.0
    greenapi_instance_state{id_instance="1101000001",name="sales-bot",state="authorized",team="sales"} 1.0
    greenapi_instance_state{id_instance="1101000001",name="sales-bot",state="notAuthorized",team="sales"} 0.0
    greenapi_send_queue_messages{id_instance="1101000001",name="sales-bot",team="sales"} 3.0
    greenapi_incoming_messages_total{id_instance="1101000001",message_type="textMessage",name="sales-bot",team="sales"} 8.0

The families of a collector that an instance does not ``collect`` have no series for it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from exporter.client import RESULTS
from exporter.poller import InstanceSnapshot
from exporter.status import INSTANCE_STATES
from exporter.tracker import LAG_BUCKETS, Histogram


@dataclass(frozen=True)
class ExporterSnapshot:
    """What one scrape shows: every instance plus the exporter's own state."""

    version: str
    instances: tuple[InstanceSnapshot, ...]
    label_names: tuple[str, ...]  # the union of static label keys over all instances
    reload_successful: bool
    reload_success_timestamp: float


_BASE_LABELS = ("name", "id_instance")


class _Families:
    """The per-instance metric families of one scrape, filled instance by instance."""

    def __init__(self, label_names: Sequence[str]) -> None:
        labels = [*_BASE_LABELS, *label_names]

        def gauge(name: str, doc: str, *extra: str) -> GaugeMetricFamily:
            return GaugeMetricFamily(name, doc, labels=[*labels, *extra])

        def counter(name: str, doc: str, *extra: str) -> CounterMetricFamily:
            return CounterMetricFamily(name, doc, labels=[*labels, *extra])

        def histogram(name: str, doc: str) -> HistogramMetricFamily:
            return HistogramMetricFamily(name, doc, labels=labels)

        self.up = gauge(
            "greenapi_up", "1 if the last poll of the outgoing journal succeeded, else 0."
        )
        self.poll_duration = gauge(
            "greenapi_poll_duration_seconds", "Duration of the last poll in seconds."
        )
        self.last_success = gauge(
            "greenapi_last_poll_success_timestamp_seconds",
            "UNIX time when the last successful poll ended.",
        )
        self.polls = counter(
            "greenapi_polls",
            "Requests to GREEN-API by collector (outgoing is the journal) and result.",
            "result",
            "collector",
        )
        self.messages = gauge(
            "greenapi_outgoing_messages",
            "Messages in the journal window by status and type.",
            "status",
            "message_type",
        )
        self.send_by_api = gauge(
            "greenapi_outgoing_send_by_api_messages", "Messages in the window sent through the API."
        )
        self.send_by_api_ratio = gauge(
            "greenapi_outgoing_send_by_api_ratio",
            "Share of the window's messages sent through the API.",
        )
        self.forwarded = gauge(
            "greenapi_outgoing_forwarded_messages", "Forwarded messages in the window."
        )
        self.undelivered = gauge(
            "greenapi_outgoing_undelivered_messages",
            "Messages still sent, pending or of unknown status for longer than undelivered_after.",
        )
        self.oldest_undelivered = gauge(
            "greenapi_outgoing_oldest_undelivered_age_seconds",
            "Age of the oldest undelivered message in seconds; 0 when there is none.",
        )
        self.last_message = gauge(
            "greenapi_outgoing_last_message_timestamp_seconds",
            "Newest message timestamp in the window.",
        )
        self.truncated = gauge(
            "greenapi_outgoing_window_truncated",
            "1 if the last response reached max_messages and older messages may be missing.",
        )
        self.window_seconds = gauge(
            "greenapi_outgoing_window_seconds", "The configured journal window in seconds."
        )
        self.invalid = gauge(
            "greenapi_outgoing_invalid_messages",
            "Elements of the last response that could not be used.",
        )
        self.messages_total = counter(
            "greenapi_outgoing_messages",
            "Distinct outgoing messages seen for the first time.",
            "message_type",
            "send_by_api",
        )
        self.status_reached = counter(
            "greenapi_outgoing_status_reached",
            "Messages seen at a status for the first time (read implies delivered and sent).",
            "status",
        )
        self.forwarded_total = counter(
            "greenapi_outgoing_forwarded_messages", "Distinct forwarded messages seen."
        )
        self.delivery_lag = histogram(
            "greenapi_outgoing_delivery_lag_seconds",
            "Seconds from sent to first seen delivered or read, from the API's timestamps.",
        )
        self.read_lag = histogram(
            "greenapi_outgoing_read_lag_seconds",
            "Seconds from sent to first seen read, from the API's timestamps.",
        )
        self.instance_state = gauge(
            "greenapi_instance_state",
            "1 for the instance's current stateInstance, 0 for the other known states.",
            "state",
        )
        self.send_queue = gauge(
            "greenapi_send_queue_messages", "Messages waiting in the instance's send queue."
        )
        self.incoming = gauge(
            "greenapi_incoming_messages", "Incoming messages in the window by type.", "message_type"
        )
        self.incoming_total = counter(
            "greenapi_incoming_messages",
            "Distinct incoming messages seen for the first time.",
            "message_type",
        )
        self.incoming_last = gauge(
            "greenapi_incoming_last_message_timestamp_seconds",
            "Newest incoming message timestamp in the window.",
        )

    def all(self) -> list[Metric]:
        return [
            self.up,
            self.poll_duration,
            self.last_success,
            self.polls,
            self.messages,
            self.send_by_api,
            self.send_by_api_ratio,
            self.forwarded,
            self.undelivered,
            self.oldest_undelivered,
            self.last_message,
            self.truncated,
            self.window_seconds,
            self.invalid,
            self.messages_total,
            self.status_reached,
            self.forwarded_total,
            self.delivery_lag,
            self.read_lag,
            self.instance_state,
            self.send_queue,
            self.incoming,
            self.incoming_total,
            self.incoming_last,
        ]

    def add(self, instance: InstanceSnapshot, label_names: Sequence[str]) -> None:
        static = dict(instance.labels)
        labels = [instance.name, instance.id_instance, *(static.get(k, "") for k in label_names)]
        for collector, counts in instance.polls_total.items():
            for result in RESULTS:
                self.polls.add_metric([*labels, result, collector], counts.get(result, 0))
        if "outgoing" in instance.collect:
            self._add_outgoing(instance, labels)
        if "state" in instance.collect and instance.state is not None:
            for state in INSTANCE_STATES:
                self.instance_state.add_metric(
                    [*labels, state], 1.0 if state == instance.state else 0.0
                )
        if "queue" in instance.collect and instance.send_queue is not None:
            self.send_queue.add_metric(labels, instance.send_queue)
        if "incoming" in instance.collect:
            self._add_incoming(instance, labels)

    def _add_outgoing(self, instance: InstanceSnapshot, labels: list[str]) -> None:
        self.window_seconds.add_metric(labels, instance.window_seconds)
        if instance.polled:
            self.up.add_metric(labels, 1.0 if instance.up else 0.0)
            self.poll_duration.add_metric(labels, instance.last_poll_duration)
        if instance.last_success_timestamp is not None:
            self.last_success.add_metric(labels, instance.last_success_timestamp)

        tracker = instance.tracker
        for (message_type, send_by_api), count in sorted(tracker.messages_total.items()):
            by_api = "true" if send_by_api else "false"
            self.messages_total.add_metric([*labels, message_type, by_api], count)
        for status, count in sorted(tracker.status_reached.items()):
            self.status_reached.add_metric([*labels, status], count)
        self.forwarded_total.add_metric(labels, tracker.forwarded_total)
        _add_histogram(self.delivery_lag, labels, tracker.delivery_lag)
        _add_histogram(self.read_lag, labels, tracker.read_lag)

        window = tracker.window
        if window is None:  # no successful poll yet: the window is not known
            return
        for (status, message_type), count in sorted(window.by_status_type.items()):
            self.messages.add_metric([*labels, status, message_type], count)
        self.send_by_api.add_metric(labels, window.send_by_api)
        if window.messages:
            self.send_by_api_ratio.add_metric(labels, window.send_by_api / window.messages)
        self.forwarded.add_metric(labels, window.forwarded)
        self.undelivered.add_metric(labels, window.undelivered)
        self.oldest_undelivered.add_metric(labels, window.oldest_undelivered_age)
        if window.last_message_timestamp is not None:
            self.last_message.add_metric(labels, window.last_message_timestamp)
        self.truncated.add_metric(labels, 1.0 if window.truncated else 0.0)
        self.invalid.add_metric(labels, window.invalid)

    def _add_incoming(self, instance: InstanceSnapshot, labels: list[str]) -> None:
        incoming = instance.incoming
        for message_type, count in sorted(incoming.messages_total.items()):
            self.incoming_total.add_metric([*labels, message_type], count)
        if incoming.window is not None:
            for message_type, count in sorted(incoming.window.items()):
                self.incoming.add_metric([*labels, message_type], count)
        if incoming.last_message_timestamp is not None:
            self.incoming_last.add_metric(labels, incoming.last_message_timestamp)


def _add_histogram(family: HistogramMetricFamily, labels: list[str], histogram: Histogram) -> None:
    buckets = [
        (_le(bound), count) for bound, count in zip(LAG_BUCKETS, histogram.buckets, strict=True)
    ]
    buckets.append(("+Inf", histogram.count))
    family.add_metric(labels, buckets, histogram.total)


def _le(bound: float) -> str:
    return str(float(bound))


class GreenApiCollector(Collector):
    """Every metric of the exporter, for ``/metrics``."""

    def __init__(self, snapshot: Callable[[], ExporterSnapshot]) -> None:
        self._snapshot = snapshot

    def describe(self) -> Iterator[Metric]:
        yield from _Families(()).all()
        yield from exporter_families(None)

    def collect(self) -> Iterator[Metric]:
        snapshot = self._snapshot()
        yield from instance_families(snapshot.label_names, snapshot.instances)
        yield from exporter_families(snapshot)


class ProbeCollector(Collector):
    """The series of one configured instance, for ``/probe?target=NAME``."""

    def __init__(self, snapshot: ExporterSnapshot, instance: InstanceSnapshot) -> None:
        self._snapshot = snapshot
        self._instance = instance

    def describe(self) -> Iterator[Metric]:
        yield from _Families(()).all()

    def collect(self) -> Iterator[Metric]:
        label_names = tuple(k for k, _ in self._instance.labels)
        families = _Families(label_names)
        families.add(self._instance, label_names)
        yield from families.all()


def instance_families(
    label_names: tuple[str, ...], instances: Iterable[InstanceSnapshot]
) -> list[Metric]:
    """The per-instance metric families of ``instances``, in exposition order."""
    families = _Families(label_names)
    for instance in instances:
        families.add(instance, label_names)
    return families.all()


def exporter_families(snapshot: ExporterSnapshot | None) -> Iterator[Metric]:
    """The exporter's own metrics (build info, instances, reloads)."""
    build = GaugeMetricFamily(
        "greenapi_exporter_build_info", "Version of the exporter; always 1.", labels=["version"]
    )
    instances = GaugeMetricFamily("greenapi_exporter_instances", "Configured instances.")
    tracked = GaugeMetricFamily(
        "greenapi_exporter_tracked_messages", "Messages held in memory across all instances."
    )
    reload_ok = GaugeMetricFamily(
        "greenapi_exporter_config_last_reload_successful",
        "1 if the last configuration reload succeeded, else 0.",
    )
    reload_time = GaugeMetricFamily(
        "greenapi_exporter_config_last_reload_success_timestamp_seconds",
        "UNIX time of the last successful configuration load.",
    )
    if snapshot is not None:
        build.add_metric([snapshot.version], 1.0)
        instances.add_metric([], len(snapshot.instances))
        tracked.add_metric(
            [], sum(i.tracker.tracked + i.incoming.tracked for i in snapshot.instances)
        )
        reload_ok.add_metric([], 1.0 if snapshot.reload_successful else 0.0)
        reload_time.add_metric([], snapshot.reload_success_timestamp)
    yield from (build, instances, tracked, reload_ok, reload_time)
