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
from exporter.collectors import BY_NAME, COLLECTORS, FamilySpec
from exporter.poller import InstanceSnapshot
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

# The requests of every collector, by result; then each collector's own families, in the
# registry's order. The only place the exposition's order is decided.
POLLS = FamilySpec("greenapi_polls_total", "counter",
                   "Requests to GREEN-API by collector (outgoing is the journal) and result.",
                   ("result", "collector"))  # fmt: skip
FETCHED = FamilySpec("greenapi_fetched_bytes_total", "counter",
                     "Bytes of answer bodies received from GREEN-API by collector (decompressed).",
                     ("collector",))  # fmt: skip
FAMILIES: tuple[FamilySpec, ...] = (
    POLLS, FETCHED, *(f for c in COLLECTORS for f in c.families),
)  # fmt: skip

_FAMILY_CLASSES = {
    "gauge": GaugeMetricFamily,
    "counter": CounterMetricFamily,
    "histogram": HistogramMetricFamily,
}


class _Families:
    """The per-instance metric families of one scrape, filled instance by instance: the
    :class:`~exporter.collectors.SampleSink` the collectors write their samples to."""

    def __init__(self, label_names: Sequence[str]) -> None:
        base = [*_BASE_LABELS, *label_names]
        self._gauges: dict[str, GaugeMetricFamily | CounterMetricFamily] = {}
        self._histograms: dict[str, HistogramMetricFamily] = {}
        self._all: list[Metric] = []
        for spec in FAMILIES:
            family = _FAMILY_CLASSES[spec.kind](
                spec.name, spec.documentation, labels=[*base, *spec.labels]
            )
            if isinstance(family, HistogramMetricFamily):
                self._histograms[spec.name] = family
            else:
                self._gauges[spec.name] = family
            self._all.append(family)

    def all(self) -> list[Metric]:
        return list(self._all)

    def add(self, instance: InstanceSnapshot, label_names: Sequence[str]) -> None:
        static = dict(instance.labels)
        labels = [instance.name, instance.id_instance, *(static.get(k, "") for k in label_names)]
        for collector, counts in instance.polls_total.items():
            for result in RESULTS:
                self.sample(POLLS.name, [*labels, result, collector], counts.get(result, 0))
        for collector, received in instance.fetched_bytes.items():
            self.sample(FETCHED.name, [*labels, collector], received)
        for name in instance.collect:
            BY_NAME[name].add_samples(instance.reading(name), instance.window_seconds, labels, self)

    def sample(self, family: str, labels: Sequence[str], value: float) -> None:
        self._gauges[family].add_metric(labels, value)

    def histogram(self, family: str, labels: Sequence[str], histogram: Histogram) -> None:
        buckets = [
            (_le(bound), count) for bound, count in zip(LAG_BUCKETS, histogram.buckets, strict=True)
        ]
        buckets.append(("+Inf", histogram.count))
        self._histograms[family].add_metric(labels, buckets, histogram.total)


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
        held = sum(
            BY_NAME[name].tracked(instance.reading(name).value)
            for instance in snapshot.instances
            for name in instance.collect
        )
        tracked.add_metric([], held)
        reload_ok.add_metric([], 1.0 if snapshot.reload_successful else 0.0)
        reload_time.add_metric([], snapshot.reload_success_timestamp)
    yield from (build, instances, tracked, reload_ok, reload_time)
