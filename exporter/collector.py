"""Builds the exposition from an immutable snapshot at scrape time.

There are no global metric objects: each scrape asks for the latest
:class:`ExporterSnapshot` and turns it into metric families. Registering a collector
calls :meth:`describe`, which never touches the snapshot.

Example output for one instance (``name="sales-bot"``, ``id_instance="1101000001"``, a
static label ``team``)::

    greenapi_up{id_instance="1101000001",name="sales-bot",team="sales"} 1.0
    greenapi_polls_total{collector="outgoing",id_instance="1101000001",name="sales-bot",result="success",team="sales"} 42.0
    greenapi_outgoing_window_messages{id_instance="1101000001",message_type="textMessage",name="sales-bot",status="read",team="sales"} 17.0
    greenapi_outgoing_delivery_outcomes_total{id_instance="1101000001",name="sales-bot",outcome="in_time",team="sales"} 39.0
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
from exporter.tracker import LAG_BUCKETS, OUTCOMES, Histogram


@dataclass(frozen=True)
class ExporterSnapshot:
    """What one scrape shows: every instance plus the exporter's own state."""

    version: str
    instances: tuple[InstanceSnapshot, ...]
    label_names: tuple[str, ...]  # the union of static label keys over all instances
    reload_successful: bool
    reload_success_timestamp: float


_BASE_LABELS = ("name", "id_instance")


@dataclass(frozen=True)
class FamilySpec:
    """One per-instance metric family: its full name (as the README spells it), type, help
    text and the labels it adds to ``name``, ``id_instance`` and the static labels."""

    name: str
    kind: str  # "gauge", "counter" or "histogram"
    documentation: str
    labels: tuple[str, ...] = ()


# Every per-instance family, in exposition order. The only place a name is declared.
FAMILIES: tuple[FamilySpec, ...] = (
    FamilySpec("greenapi_up", "gauge",
               "1 if the last poll of the outgoing journal succeeded, else 0."),
    FamilySpec("greenapi_poll_duration_seconds", "gauge", "Duration of the last poll in seconds."),
    FamilySpec("greenapi_last_poll_success_timestamp_seconds", "gauge",
               "UNIX time when the last successful poll ended."),
    FamilySpec("greenapi_polls_total", "counter",
               "Requests to GREEN-API by collector (outgoing is the journal) and result.",
               ("result", "collector")),
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
    FamilySpec("greenapi_outgoing_delivery_lag_seconds", "histogram",
               "Seconds from sent to first seen delivered or read."),
    FamilySpec("greenapi_outgoing_read_lag_seconds", "histogram",
               "Seconds from sent to first seen read."),
    FamilySpec("greenapi_instance_state", "gauge",
               "1 for the instance's current stateInstance, 0 for the other known states.",
               ("state",)),
    FamilySpec("greenapi_send_queue_messages", "gauge",
               "Messages waiting in the instance's send queue."),
    FamilySpec("greenapi_incoming_window_messages", "gauge",
               "Incoming messages in the window by type.", ("message_type",)),
    FamilySpec("greenapi_incoming_messages_total", "counter",
               "Distinct incoming messages seen for the first time.", ("message_type",)),
    FamilySpec("greenapi_incoming_last_message_timestamp_seconds", "gauge",
               "Newest incoming message timestamp in the window."),
)  # fmt: skip

_FAMILY_CLASSES = {
    "gauge": GaugeMetricFamily,
    "counter": CounterMetricFamily,
    "histogram": HistogramMetricFamily,
}


class _Families:
    """The per-instance metric families of one scrape, filled instance by instance."""

    def __init__(self, label_names: Sequence[str]) -> None:
        base = [*_BASE_LABELS, *label_names]
        self._by_name: dict[str, Metric] = {
            spec.name: _FAMILY_CLASSES[spec.kind](
                spec.name, spec.documentation, labels=[*base, *spec.labels]
            )
            for spec in FAMILIES
        }

    def all(self) -> list[Metric]:
        return list(self._by_name.values())

    def add(self, instance: InstanceSnapshot, label_names: Sequence[str]) -> None:
        static = dict(instance.labels)
        labels = [instance.name, instance.id_instance, *(static.get(k, "") for k in label_names)]
        sample = self._sample
        for collector, counts in instance.polls_total.items():
            for result in RESULTS:
                sample("greenapi_polls_total", [*labels, result, collector], counts.get(result, 0))
        if "outgoing" in instance.collect:
            self._add_outgoing(instance, labels)
        if "state" in instance.collect and instance.state is not None:
            for state in INSTANCE_STATES:
                value = 1.0 if state == instance.state else 0.0
                sample("greenapi_instance_state", [*labels, state], value)
        if "queue" in instance.collect and instance.send_queue is not None:
            sample("greenapi_send_queue_messages", labels, instance.send_queue)
        if "incoming" in instance.collect:
            self._add_incoming(instance, labels)

    def _sample(self, family: str, labels: Sequence[str], value: float) -> None:
        metric = self._by_name[family]
        assert isinstance(metric, (GaugeMetricFamily, CounterMetricFamily))
        metric.add_metric(labels, value)

    def _histogram(self, family: str, labels: list[str], histogram: Histogram) -> None:
        metric = self._by_name[family]
        assert isinstance(metric, HistogramMetricFamily)
        buckets = [
            (_le(bound), count) for bound, count in zip(LAG_BUCKETS, histogram.buckets, strict=True)
        ]
        buckets.append(("+Inf", histogram.count))
        metric.add_metric(labels, buckets, histogram.total)

    def _add_outgoing(self, instance: InstanceSnapshot, labels: list[str]) -> None:
        sample = self._sample
        sample("greenapi_outgoing_window_seconds", labels, instance.window_seconds)
        if instance.polled:
            sample("greenapi_up", labels, 1.0 if instance.up else 0.0)
            sample("greenapi_poll_duration_seconds", labels, instance.last_poll_duration)
        if instance.last_success_timestamp is not None:
            sample(
                "greenapi_last_poll_success_timestamp_seconds",
                labels,
                instance.last_success_timestamp,
            )

        tracker = instance.tracker
        for (message_type, send_by_api), count in sorted(tracker.messages_total.items()):
            by_api = "true" if send_by_api else "false"
            sample("greenapi_outgoing_messages_total", [*labels, message_type, by_api], count)
        for status, count in sorted(tracker.status_reached.items()):
            sample("greenapi_outgoing_status_reached_total", [*labels, status], count)
        sample("greenapi_outgoing_forwarded_messages_total", labels, tracker.forwarded_total)
        for outcome in OUTCOMES:
            count = tracker.outcomes.get(outcome, 0)
            sample("greenapi_outgoing_delivery_outcomes_total", [*labels, outcome], count)
        self._histogram("greenapi_outgoing_delivery_lag_seconds", labels, tracker.delivery_lag)
        self._histogram("greenapi_outgoing_read_lag_seconds", labels, tracker.read_lag)

        window = tracker.window
        if window is None:  # no successful poll yet: the window is not known
            return
        for (status, message_type), count in sorted(window.by_status_type.items()):
            sample("greenapi_outgoing_window_messages", [*labels, status, message_type], count)
        sample("greenapi_outgoing_window_send_by_api_messages", labels, window.send_by_api)
        if window.messages:
            ratio = window.send_by_api / window.messages
            sample("greenapi_outgoing_window_send_by_api_ratio", labels, ratio)
        sample("greenapi_outgoing_window_forwarded_messages", labels, window.forwarded)
        sample("greenapi_outgoing_undelivered_messages", labels, window.undelivered)
        if window.oldest_undelivered_timestamp is not None:
            sample(
                "greenapi_outgoing_oldest_undelivered_timestamp_seconds",
                labels,
                window.oldest_undelivered_timestamp,
            )
        if window.last_message_timestamp is not None:
            sample(
                "greenapi_outgoing_last_message_timestamp_seconds",
                labels,
                window.last_message_timestamp,
            )
        sample("greenapi_outgoing_window_truncated", labels, 1.0 if window.truncated else 0.0)
        sample("greenapi_outgoing_invalid_messages", labels, window.invalid)

    def _add_incoming(self, instance: InstanceSnapshot, labels: list[str]) -> None:
        incoming = instance.incoming
        sample = self._sample
        for message_type, count in sorted(incoming.messages_total.items()):
            sample("greenapi_incoming_messages_total", [*labels, message_type], count)
        if incoming.window is not None:
            for message_type, count in sorted(incoming.window.items()):
                sample("greenapi_incoming_window_messages", [*labels, message_type], count)
        if incoming.last_message_timestamp is not None:
            sample(
                "greenapi_incoming_last_message_timestamp_seconds",
                labels,
                incoming.last_message_timestamp,
            )


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
