"""The cached text exposition is exactly what prometheus_client would render."""

from __future__ import annotations

from dataclasses import replace
from types import MappingProxyType

from prometheus_client import CollectorRegistry, generate_latest

from exporter.client import RESULTS
from exporter.collector import ExporterSnapshot, GreenApiCollector
from exporter.exposition import TextExposition
from exporter.journal import journal_from_elements
from exporter.poller import InstanceSnapshot
from exporter.tracker import IncomingTracker, MessageTracker


def instance(
    name: str, labels: tuple[tuple[str, str], ...] = (), polled: bool = True
) -> InstanceSnapshot:
    tracker = MessageTracker(window=86400, undelivered_after=300, baseline_before=None)
    tracker.observe(journal_from_elements([
        {"idMessage": "a", "chatId": "1@c.us", "timestamp": 1_800_000_000, "statusMessage": "sent"},
        {"idMessage": "b", "chatId": "1@c.us", "timestamp": 1_800_000_000, "statusMessage": "read",
         "typeMessage": "imageMessage", "sendByApi": True, "isForwarded": True},
    ]), 1_800_000_010, 5000)  # fmt: skip
    snapshot = tracker.observe(journal_from_elements([
        {"idMessage": "a", "chatId": "1@c.us", "timestamp": 1_800_000_007, "statusMessage": "delivered"},
    ]), 1_800_000_020, 5000)  # fmt: skip
    return InstanceSnapshot(
        name=name, id_instance=str(abs(hash(name)) % 10**10), labels=labels, window_seconds=86400,
        polled=polled, up=polled, last_result="success" if polled else "",
        last_poll_timestamp=1.8e9 if polled else None, last_poll_duration=0.25,
        last_success_timestamp=1.8e9 if polled else None,
        polls_total=MappingProxyType({"outgoing": {r: i for i, r in enumerate(RESULTS)}}),
        tracker=snapshot if polled else MessageTracker(60, 1, None).snapshot(),
    )  # fmt: skip


def exporter_snapshot(*instances: InstanceSnapshot) -> ExporterSnapshot:
    names = tuple(sorted({k for i in instances for k, _ in i.labels}))
    return ExporterSnapshot("0.1.0", instances, names, True, 1.8e9)


def reference(snapshot: ExporterSnapshot) -> bytes:
    registry = CollectorRegistry()
    registry.register(GreenApiCollector(lambda: snapshot))
    return generate_latest(registry)


def test_the_cached_exposition_equals_generate_latest() -> None:
    snapshot = exporter_snapshot(
        instance("a", (("team", 'sa"les\n# HELP x'),)), instance("b"), instance("c", polled=False)
    )
    assert TextExposition().render(snapshot) == reference(snapshot)


def every_collector(name: str) -> InstanceSnapshot:
    """An instance with the state, queue and incoming collectors too."""
    incoming = IncomingTracker(window=86400, baseline_before=None).observe(journal_from_elements([
        {"idMessage": "in1", "chatId": "1@c.us", "timestamp": 1_800_000_003, "typeMessage": "textMessage"},
    ]), 1_800_000_010)  # fmt: skip
    collect = ("outgoing", "state", "queue", "incoming")
    polls = {c: {r: len(c) + i for i, r in enumerate(RESULTS)} for c in collect}
    return replace(instance(name), collect=collect, polls_total=MappingProxyType(polls),
                   state="notAuthorized", send_queue=12, incoming=incoming)  # fmt: skip


def test_the_optional_collectors_render_exactly_as_generate_latest() -> None:
    snapshot = exporter_snapshot(every_collector("a"), instance("b"))
    assert TextExposition().render(snapshot) == reference(snapshot)


def test_a_changed_instance_is_rendered_again_and_a_removed_one_disappears() -> None:
    exposition = TextExposition()
    a, b = instance("a"), instance("b")
    exposition.render(exporter_snapshot(a, b))
    changed = exporter_snapshot(replace(a, up=False, last_result="timeout"))
    assert exposition.render(changed) == reference(changed)
    assert b'name="b"' not in exposition.render(changed)


def test_new_label_names_change_every_instances_lines() -> None:
    exposition = TextExposition()
    a = instance("a")
    exposition.render(exporter_snapshot(a))
    labelled = exporter_snapshot(a, instance("b", (("region", "eu"),)))
    assert exposition.render(labelled) == reference(labelled)
