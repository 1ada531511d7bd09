"""The exposition, in both formats: exactly what prometheus_client renders, valid for its own
strict parsers and for promtool, and pinned by golden files so that a change of a name, a
help text or a label order shows in review.

Regenerate the golden files after an intended change with::

    .venv/bin/python -m tests.test_exposition --update
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client import generate_latest as text_latest
from prometheus_client.openmetrics.exposition import generate_latest as openmetrics_latest
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as parse_openmetrics,
)
from prometheus_client.parser import text_string_to_metric_families as parse_text

from exporter.client import RESULTS
from exporter.collector import ExporterSnapshot, GreenApiCollector
from exporter.collectors import CollectorStatus, Reading
from exporter.exposition import OPENMETRICS, TEXT, Exposition, finish
from exporter.journal import journal_from_elements
from exporter.poller import InstanceSnapshot
from exporter.tracker import IncomingTracker, MessageTracker
from tests.test_rules import promtool

GOLDEN = Path(__file__).resolve().parent / "golden"
GOLDEN_FILES = {TEXT: GOLDEN / "exposition.txt", OPENMETRICS: GOLDEN / "exposition.om.txt"}
T0 = 1_800_000_000


def instance(
    name: str,
    id_instance: str,
    labels: tuple[tuple[str, str], ...] = (),
    polled: bool = True,
) -> InstanceSnapshot:
    """An instance after two polls: a message sent then delivered, one first seen read
    (forwarded image), one stuck in sent past undelivered_after, one without status."""
    tracker = MessageTracker(window=86400, undelivered_after=300, baseline_before=None)
    tracker.observe(journal_from_elements([
        {"idMessage": "a", "chatId": "1@c.us", "timestamp": T0, "statusMessage": "sent"},
        {"idMessage": "b", "chatId": "1@c.us", "timestamp": T0, "statusMessage": "read",
         "typeMessage": "imageMessage", "sendByApi": True, "isForwarded": True},
        {"idMessage": "c", "chatId": "2@c.us", "timestamp": T0, "statusMessage": "sent"},
        {"idMessage": "d", "chatId": "2@c.us", "timestamp": T0, "statusMessage": ""},
    ]), T0 + 10, 5000)  # fmt: skip
    snapshot = tracker.observe(journal_from_elements([
        {"idMessage": "a", "chatId": "1@c.us", "timestamp": T0 + 7, "statusMessage": "delivered"},
        {"idMessage": "c", "chatId": "2@c.us", "timestamp": T0, "statusMessage": "sent"},
        {"idMessage": "d", "chatId": "2@c.us", "timestamp": T0, "statusMessage": ""},
    ]), T0 + 400, 5000)  # fmt: skip
    status = CollectorStatus("success", "", T0 + 400, 0.25, T0 + 400)
    return InstanceSnapshot(
        name=name, id_instance=id_instance, labels=labels, window_seconds=86400,
        collect=("outgoing",),
        polls_total=MappingProxyType({"outgoing": {r: i for i, r in enumerate(RESULTS)}}),
        fetched_bytes=MappingProxyType({"outgoing": 123_456 if polled else 0}),
        readings=MappingProxyType({"outgoing": Reading(status, snapshot) if polled
                                   else Reading(None, MessageTracker(60, 1, None).snapshot())}),
    )  # fmt: skip


def every_collector(name: str, id_instance: str) -> InstanceSnapshot:
    """An instance with the state, queue and incoming collectors too."""
    incoming = IncomingTracker(window=86400, baseline_before=None).observe(journal_from_elements([
        {"idMessage": "in1", "chatId": "1@c.us", "timestamp": T0 + 3, "typeMessage": "textMessage"},
    ]), T0 + 10)  # fmt: skip
    collect = ("outgoing", "state", "queue", "incoming")
    polls = {c: {r: len(c) + i for i, r in enumerate(RESULTS)} for c in collect}
    base = instance(name, id_instance, (("team", "support"),))
    status = CollectorStatus("success", "", T0 + 10, 0.1, T0 + 10)
    readings = {**base.readings, "state": Reading(status, "notAuthorized"),
                "queue": Reading(status, 12), "incoming": Reading(status, incoming)}  # fmt: skip
    fetched = {"outgoing": 123_456, "state": 512, "queue": 256, "incoming": 2048}
    return replace(base, collect=collect, polls_total=MappingProxyType(polls),
                   fetched_bytes=MappingProxyType(fetched),
                   readings=MappingProxyType(readings))  # fmt: skip


def exporter_snapshot(*instances: InstanceSnapshot) -> ExporterSnapshot:
    names = tuple(sorted({k for i in instances for k, _ in i.labels}))
    return ExporterSnapshot("0.0.0+golden", instances, names, True, T0)


def golden_snapshot() -> ExporterSnapshot:
    """Every kind of series: static labels with characters to escape, all four collectors,
    an instance not polled yet, one without static labels."""
    return exporter_snapshot(
        instance("sales-bot", "1101000001", (("team", 'sa"les\\\n# HELP x'),)),
        every_collector("support-bot", "1101000002"),
        instance("new-bot", "3100000003", polled=False),
    )


def reference(snapshot: ExporterSnapshot, fmt: str) -> bytes:
    """What prometheus_client itself renders for the snapshot."""
    registry = CollectorRegistry()
    registry.register(GreenApiCollector(lambda: snapshot))
    return (openmetrics_latest if fmt == OPENMETRICS else text_latest)(registry)


def rendered(exposition: Exposition, snapshot: ExporterSnapshot, fmt: str) -> bytes:
    return finish(exposition.render(snapshot, fmt), fmt)


FORMATS = [TEXT, OPENMETRICS]


@pytest.mark.parametrize("fmt", FORMATS)
def test_the_exposition_matches_its_golden_file(fmt: str) -> None:
    expected = GOLDEN_FILES[fmt].read_bytes()
    actual = rendered(Exposition(), golden_snapshot(), fmt)
    assert actual == expected, (
        f"{GOLDEN_FILES[fmt].name} is out of date; if the change is intended, run "
        "`.venv/bin/python -m tests.test_exposition --update` and review the diff"
    )


@pytest.mark.parametrize("fmt", FORMATS)
def test_the_cached_exposition_is_byte_identical_to_prometheus_client(fmt: str) -> None:
    snapshot = golden_snapshot()
    assert rendered(Exposition(), snapshot, fmt) == reference(snapshot, fmt)


def test_the_openmetrics_exposition_passes_the_strict_openmetrics_parser() -> None:
    text = rendered(Exposition(), golden_snapshot(), OPENMETRICS).decode()
    families = {family.name: family.type for family in parse_openmetrics(text)}
    assert families["greenapi_outgoing_window_messages"] == "gauge"
    assert families["greenapi_outgoing_messages"] == "counter"
    assert families["greenapi_outgoing_delivery_outcomes"] == "counter"


def test_the_text_exposition_passes_the_text_parser() -> None:
    text = rendered(Exposition(), golden_snapshot(), TEXT).decode()
    names = {sample.name for family in parse_text(text) for sample in family.samples}
    assert {"greenapi_outgoing_window_messages", "greenapi_outgoing_messages_total"} <= names


@pytest.mark.process
def test_promtool_finds_no_problem_in_the_text_exposition() -> None:
    text = rendered(Exposition(), golden_snapshot(), TEXT).decode()
    result = promtool("check", "metrics", input=text)
    assert result.returncode == 0 and not (result.stdout + result.stderr).strip(), (
        result.stdout + result.stderr
    )


def test_every_delivery_outcome_is_exposed_from_the_first_poll() -> None:
    text = rendered(Exposition(), golden_snapshot(), TEXT).decode()
    outcomes = {
        sample.labels["outcome"]: sample.value
        for family in parse_text(text)
        for sample in family.samples
        if sample.name == "greenapi_outgoing_delivery_outcomes_total"
        and sample.labels["name"] == "sales-bot"
    }
    assert outcomes == {"in_time": 2.0, "late": 1.0, "failed": 0.0, "no_status": 1.0}


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_changed_instance_is_rendered_again_and_a_removed_one_disappears(fmt: str) -> None:
    exposition = Exposition()
    a, b = instance("a", "1"), instance("b", "2")
    rendered(exposition, exporter_snapshot(a, b), fmt)
    down = CollectorStatus("timeout", "timed out", T0 + 460, 10.0, T0 + 400)
    changed = exporter_snapshot(replace(a, readings=MappingProxyType(
        {"outgoing": Reading(down, a.reading("outgoing").value)})))  # fmt: skip
    assert rendered(exposition, changed, fmt) == reference(changed, fmt)
    assert b'name="b"' not in rendered(exposition, changed, fmt)


@pytest.mark.parametrize("fmt", FORMATS)
def test_new_label_names_change_every_instances_lines(fmt: str) -> None:
    exposition = Exposition()
    a = instance("a", "1")
    rendered(exposition, exporter_snapshot(a), fmt)
    labelled = exporter_snapshot(a, instance("b", "2", (("region", "eu"),)))
    assert rendered(exposition, labelled, fmt) == reference(labelled, fmt)


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_refreshed_instance_is_what_the_next_scrape_shows(fmt: str) -> None:
    exposition = Exposition()
    a = instance("a", "1")
    snapshot = exporter_snapshot(a)
    rendered(exposition, snapshot, fmt)
    slow = CollectorStatus("success", "", T0 + 460, 9.5, T0 + 460)
    later = replace(a, readings=MappingProxyType(
        {"outgoing": Reading(slow, a.reading("outgoing").value)}))  # fmt: skip
    exposition.refresh(later, snapshot.label_names)
    again = exporter_snapshot(later)
    assert rendered(exposition, again, fmt) == reference(again, fmt)


def test_both_formats_render_the_same_sample_lines_with_this_prometheus_client() -> None:
    """The exposition formats an instance once for both formats when this holds."""
    exposition = Exposition()
    rendered(exposition, golden_snapshot(), TEXT)
    assert exposition.shared_samples is True


@pytest.mark.parametrize("fmt", FORMATS)
def test_each_format_is_formatted_on_its_own_when_their_samples_differ(fmt: str) -> None:
    exposition = Exposition()
    exposition.shared_samples = False  # as if a prometheus_client release rendered them apart
    snapshot = golden_snapshot()
    assert rendered(exposition, snapshot, fmt) == reference(snapshot, fmt)


def update_golden_files() -> None:
    GOLDEN.mkdir(exist_ok=True)
    for fmt, path in GOLDEN_FILES.items():
        path.write_bytes(rendered(Exposition(), golden_snapshot(), fmt))
        print(f"wrote {path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path}")


if __name__ == "__main__":
    if sys.argv[1:] != ["--update"]:
        sys.exit("usage: python -m tests.test_exposition --update")
    update_golden_files()
