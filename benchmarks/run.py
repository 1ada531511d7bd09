"""Benchmarks of greenapi-exporter, each against a baseline measured in the same run.

    python benchmarks/run.py                # the quick ones (about two minutes)
    python benchmarks/run.py --scale        # also a fleet of 1,000 busy instances polled every
                                            # 60 s, short polls against full polls only (about 9 minutes)
    python benchmarks/run.py --scale --all-collectors   # the same with state, queue, incoming
    python benchmarks/run.py --soak         # also 30 instances with faults, scraped 10 times a
                                            # second (10 minutes)
    python benchmarks/run.py --demo-memory  # also the demo's RSS for 10 minutes, no MALLOC_ settings
    python benchmarks/run.py --no-quick --scale --fleet-instances 50 --duration 40 \
        --fleet-interval 10 --warmup 15     # a short try of the fleet run

Prints a table: figure, baseline, ratio, goal; the long runs print their details below it.
Figures are medians of several runs; CPU is process time (not wall time), so a busy machine
slows them less than it slows the clock. Run it on an idle machine anyway. The process sets
up glibc's allocator as the exporter does at start, so that the figures are the exporter's.

The simulated GREEN-API always runs in processes of its own, so that its CPU is not counted.
The fleet runs each mode in a fresh process (so that each peak RSS is its own); the soak and
the demo run the exporter's own command line and read its RSS and CPU from /proc.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import json
import math
import os
import platform
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from functools import partial
from pathlib import Path
from types import MappingProxyType
from typing import IO, Any

import orjson
import requests
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import Metric
from prometheus_client.openmetrics import exposition as openmetrics_exposition
from prometheus_client.openmetrics import parser as openmetrics_parser
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from exporter import __version__  # noqa: E402
from exporter.app import Exporter  # noqa: E402
from exporter.cli import ENV_PREFIX  # noqa: E402
from exporter.client import RESULTS, GreenApiClient  # noqa: E402
from exporter.collector import ExporterSnapshot, GreenApiCollector, instance_families  # noqa: E402
from exporter.collectors import OUTGOING, CollectorStatus, Reading  # noqa: E402
from exporter.collectors.base import parse_journal_answer  # noqa: E402
from exporter.collectors.state import INSTANCE_STATES  # noqa: E402
from exporter.config import COLLECTORS, Settings, parse_config  # noqa: E402
from exporter.exposition import OPENMETRICS, TEXT, Exposition, finish, render  # noqa: E402
from exporter.journal import journal_from_elements, parse_journal  # noqa: E402
from exporter.memory import TRIM_AFTER_BYTES, TRIM_MIN_INTERVAL, Allocator  # noqa: E402
from exporter.poller import InstanceSnapshot  # noqa: E402
from exporter.schedule import InstanceSchedule, JournalPolicy  # noqa: E402
from exporter.state import StateFile  # noqa: E402
from exporter.tracker import (  # noqa: E402
    LAG_BUCKETS,
    MAX_TRACKED,
    OUTCOMES,
    IncomingSnapshot,
    IncomingTracker,
    MessageTracker,
    TrackerSnapshot,
)

Row = tuple[str, str, str, str, str]

# Prometheus 2's default (before scrape_protocols), which asks for OpenMetrics first.
PROMETHEUS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
    "text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)
# Prometheus 3's default (scrape_protocols with UTF-8 names allowed): OpenMetrics first too.
PROMETHEUS_3_ACCEPT = (
    "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,"
    "application/openmetrics-text;version=0.0.1;escaping=allow-utf-8;q=0.5,"
    "text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,"
    "text/plain;version=0.0.4;escaping=allow-utf-8;q=0.3,*/*;q=0.2"
)
FORMAT_NAMES = {TEXT: "text", OPENMETRICS: "OpenMetrics"}
# prometheus_client's OpenMetrics exposition and its strict parser (untyped functions).
openmetrics_latest: Callable[[CollectorRegistry], bytes] = openmetrics_exposition.generate_latest
parse_openmetrics: Callable[[str], Iterable[Metric]] = (
    openmetrics_parser.text_string_to_metric_families
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# A busy instance: about 5,000 messages a day, the journal's depth over its 24 h window.
BUSY_RATE = 3.5  # messages a minute
SIMULATOR_START_TIMEOUT = 900.0  # seconds: 1,000 instances' day of history takes a while


def start_simulators(
    sizes: Sequence[int], rate_per_minute: float, rate_limit: bool = False
) -> tuple[list[subprocess.Popen[bytes]], list[dict[str, Any]]]:
    """Simulators in their own processes, so that their CPU is not counted as ours: one of
    each size, numbered on from one to the next, each with the simulator's 24 h of history.
    All are started before any is waited for, so that they generate their history at once.
    Returns the processes and, for each, its ``url`` and ``instances`` (the control API's
    listing)."""
    processes: list[subprocess.Popen[bytes]] = []
    urls = []
    first = 1
    try:
        for index, size in enumerate(sizes):
            port = free_port()
            args = [sys.executable, "-m", "exporter.simulator", "--listen", f"127.0.0.1:{port}",
                    "--instances", str(size), "--seed", str(index + 1), "--rate", str(rate_per_minute),
                    "--first-instance", str(first), *([] if rate_limit else ["--no-rate-limit"])]  # fmt: skip
            processes.append(subprocess.Popen(args, cwd=ROOT, stderr=subprocess.DEVNULL))
            urls.append(f"http://127.0.0.1:{port}")
            first += size
        deadline = time.monotonic() + SIMULATOR_START_TIMEOUT
        configs = [_simulator_listing(process, url, deadline) for process, url in zip(processes, urls, strict=True)]  # fmt: skip
    except BaseException:
        stop_processes(processes)
        raise
    return processes, configs


def _simulator_listing(
    process: subprocess.Popen[bytes], url: str, deadline: float
) -> dict[str, Any]:
    while True:
        if process.poll() is not None:
            raise SystemExit(f"the simulator on {url} exited with {process.returncode}")
        try:
            instances = requests.get(url + "/_sim/instances", timeout=5).json()
            return {"url": url, "instances": instances}
        except requests.RequestException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def stop_processes(processes: Iterable[subprocess.Popen[bytes]]) -> None:
    """Terminate, then kill what has not ended within 10 s."""
    processes = list(processes)
    for process in processes:
        process.terminate()
    for process in processes:
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def cpu() -> float:
    return time.process_time()


def median_cpu(action: Callable[[], object], repeats: int) -> float:
    samples = []
    for _ in range(repeats):
        gc.collect()
        started = cpu()
        action()
        samples.append(cpu() - started)
    return statistics.median(samples)


def bench_poll(repeats: int) -> Row:
    """CPU of one poll of a 5,000-message journal versus GET + json.loads of the same answer
    (and GET + orjson.loads, the decoder the exporter uses)."""
    processes, sims = start_simulators([1], 60.0)  # one message a second: the 5,000 cap is reached
    try:
        sim = sims[0]
        instance = sim["instances"][0]
        url = f"{sim['url']}/waInstance{instance['id_instance']}/lastOutgoingMessages/{instance['token']}"
        session = requests.Session()
        size = len(session.get(url, params={"minutes": "1440"}, timeout=30).content)
        count = len(session.get(url, params={"minutes": "1440"}, timeout=30).json())

        def floor() -> None:
            json.loads(session.get(url, params={"minutes": "1440"}, timeout=30).content)

        def floor_orjson() -> None:
            orjson.loads(session.get(url, params={"minutes": "1440"}, timeout=30).content)

        client = GreenApiClient()
        tracker = MessageTracker(window=86400, undelivered_after=300, baseline_before=None)

        def ours() -> int:
            fetch = client.get(url, {"minutes": "1440"}, 30, instance["token"])
            assert fetch.body is not None
            tracker.observe(parse_journal(fetch.body), time.time(), 5000)
            return len(fetch.body)

        # After a poll the exporter hands the answer's size to its allocator, which trims
        # after 4 MB of answers, at most every TRIM_MIN_INTERVAL: this clock lets every
        # poll's trim through, as for one instance polled every minute.
        ticks = itertools.count(step=TRIM_MIN_INTERVAL)
        allocator = Allocator(clock=lambda: float(next(ticks)))

        ours()  # the first poll fills the tracker; steady state is what runs every minute
        # In turns, not one block after the other: the machine's speed drifts over seconds
        # (a VM's CPU), and a drift between blocks moved the ratio from 0.8x to 1.7x.
        floors: list[float] = []
        floors_orjson: list[float] = []
        polls: list[float] = []
        trims: list[float] = []
        for _ in range(repeats):
            floors.append(median_cpu(floor, 1))
            floors_orjson.append(median_cpu(floor_orjson, 1))
            poll, trimmed = _poll_and_trim(ours, allocator, 1)
            polls.append(poll)
            trims.append(trimmed)
        baseline, baseline_orjson = statistics.median(floors), statistics.median(floors_orjson)
        measured, trim = statistics.median(polls), statistics.median(trims)
    finally:
        stop_processes(processes)
    return (f"CPU per poll, {count} messages ({size / 1e6:.1f} MB)",
            f"{measured * 1000:.1f} ms (+{trim * 1000:.1f} ms malloc_trim, at most one per {TRIM_MIN_INTERVAL:g} s)",
            f"{baseline * 1000:.1f} ms GET + json.loads ({baseline_orjson * 1000:.1f} ms with orjson.loads)",
            f"{measured / baseline:.2f}x ({measured / baseline_orjson:.2f}x of the orjson floor)",
            "<= 1.3x")  # fmt: skip


def _poll_and_trim(
    poll: Callable[[], int], allocator: Allocator, repeats: int
) -> tuple[float, float]:
    """Median CPU of a poll and of the allocator's work after it, measured apart."""
    polls, trims = [], []
    for _ in range(repeats):
        gc.collect()
        started = cpu()
        size = poll()
        polled = cpu()
        allocator.received(size)
        trims.append(cpu() - polled)
        polls.append(polled - started)
    return statistics.median(polls), statistics.median(trims)


def short_poll_minutes(settings: Settings) -> int:
    """What the schedule asks a journal for one ``poll_interval`` after a full read with
    ``settings``: ``ceil((60 + 300 + 180) / 60) = 9`` minutes with the defaults."""
    clock = [0.0]
    schedule = InstanceSchedule(
        [OUTGOING.name], settings.poll_interval, lambda: clock[0], journals=frozenset({OUTGOING.name}),
        policy=JournalPolicy(settings.window, settings.undelivered_after, settings.resync_interval),
    )  # fmt: skip
    first = schedule.start(OUTGOING.name)
    schedule.finish(first, "success")
    clock[0] = settings.poll_interval
    ticket = schedule.start(OUTGOING.name)
    if ticket.full or ticket.minutes is None:
        raise SystemExit("the default settings no longer make short polls")
    return ticket.minutes


def bench_short_poll(repeats: int) -> list[Row]:
    """A steady-state short poll against a full poll of one busy journal (24 h at
    BUSY_RATE, about 5,000 messages, still being sent, delivered and read), both by the
    real client over loopback HTTP: GET + parse + fold into a tracker, as the poller does.
    Each kind has its own tracker, warmed as the exporter's is (a full read first; the
    short one then a short poll); the kinds alternate, so that both see the same load."""
    processes, sims = start_simulators([1], BUSY_RATE)
    try:
        sim = sims[0]
        instance = sim["instances"][0]
        url = f"{sim['url']}/waInstance{instance['id_instance']}/lastOutgoingMessages/{instance['token']}"
        settings = Settings()
        minutes = {True: settings.window_minutes, False: short_poll_minutes(settings)}
        client = GreenApiClient()
        started = time.time()
        trackers = {
            full: MessageTracker(settings.window, settings.undelivered_after, baseline_before=started)
            for full in (True, False)
        }  # fmt: skip

        def poll(full: bool, tracker: MessageTracker) -> tuple[int, int]:
            """(answer bytes, messages) of one poll."""
            fetch = client.get(url, {"minutes": str(minutes[full])}, settings.timeout, instance["token"])  # fmt: skip
            if fetch.body is None or fetch.result != "success":
                raise SystemExit(f"the simulator's journal: {fetch.result} {fetch.error}")
            now = time.time()
            journal = parse_journal_answer(fetch.body)
            since = None if full else now - minutes[full] * 60
            tracker.observe(journal, now, settings.max_messages, full, since)
            return len(fetch.body), len(journal.messages)

        for full, tracker in trackers.items():
            poll(True, tracker)  # the first poll reads the journal in full
            poll(full, tracker)
        cpu_samples: dict[bool, list[float]] = {True: [], False: []}
        answers: dict[bool, list[tuple[int, int]]] = {True: [], False: []}
        for _ in range(repeats):
            for full, tracker in trackers.items():
                gc.collect()
                before = cpu()
                answers[full].append(poll(full, tracker))
                cpu_samples[full].append(cpu() - before)
    finally:
        stop_processes(processes)
    cost = {full: statistics.median(samples) for full, samples in cpu_samples.items()}
    size = {full: statistics.median(b for b, _ in rows) for full, rows in answers.items()}
    held = {full: statistics.median(n for _, n in rows) for full, rows in answers.items()}
    what = f"a busy journal ({held[True]:,.0f} messages over 24 h, {BUSY_RATE:g} a minute, still moving)"
    return [
        (f"CPU of a short poll against a full poll of {what}",
         f"{cost[False] * 1000:.2f} ms (?minutes={minutes[False]}: {held[False]:.0f} messages)",
         f"{cost[True] * 1000:.1f} ms (?minutes={minutes[True]})", f"{cost[False] / cost[True]:.3f}x", "<= 0.1x"),
        ("Bytes of the same short poll against the same full poll",
         f"{size[False] / 1e3:.1f} kB", f"{size[True] / 1e6:.2f} MB", f"{size[False] / size[True]:.4f}x",
         "<= 0.05x"),
    ]  # fmt: skip


# Synthetic journals for the scrape benchmark: a first poll at FIRST_POLL, then one at
# SECOND_POLL, more than undelivered_after later, so that every message of the first
# journal has been judged (delivery outcomes) and some are undelivered.
FIRST_POLL = 1_800_000_000
UNDELIVERED_AFTER = 300
SECOND_POLL = FIRST_POLL + UNDELIVERED_AFTER + 150
# How a message of the first journal fares: (status then, status at the second poll, seconds
# from its send to the second status's timestamp; None keeps the send time).
_FATES: tuple[tuple[str, str, int | None], ...] = (
    ("read", "read", None),  # in_time
    ("delivered", "read", 120),  # in_time, read later
    ("sent", "delivered", 20),  # in_time, with a delivery lag
    ("sent", "read", 90),  # in_time, with delivery and read lags
    ("sent", "sent", None),  # late, still undelivered
    ("sent", "delivered", 400),  # late
    ("noAccount", "noAccount", None),  # failed
    ("", "", None),  # no_status
    ("pending", "sent", None),  # late, still undelivered
    ("read", "read", None),  # in_time
)
_TYPES = ("textMessage", "extendedTextMessage", "imageMessage", "documentMessage")
_VARIANTS = 8  # distinct instance histories, so that series counts differ between instances


def _tracker_variant(variant: int) -> TrackerSnapshot:
    """An outgoing journal polled twice: every outcome, lag and undelivered message occurs."""
    tracker = MessageTracker(window=86400, undelivered_after=UNDELIVERED_AFTER, baseline_before=None)  # fmt: skip
    first: list[object] = []
    second: list[object] = []
    for index in range(60 + 20 * variant):
        status, later_status, after = _FATES[index % len(_FATES)]
        sent = FIRST_POLL - 1 - index
        message = {"idMessage": f"BAE5{variant:02d}{index:08X}", "chatId": f"7900{index % 50:07d}@c.us",
                   "typeMessage": _TYPES[(index + variant) % len(_TYPES)], "sendByApi": index % 7 != 0,
                   "isForwarded": index % 11 == 0}  # fmt: skip
        first.append({**message, "timestamp": sent, "statusMessage": status})
        later = sent if after is None else sent + after + index % 30
        second.append({**message, "timestamp": later, "statusMessage": later_status})
    for index in range(5 + variant):  # sent in the last minute: not judged yet
        second.append({"idMessage": f"BAE6{variant:02d}{index:08X}", "chatId": "79000000001@c.us",
                       "timestamp": SECOND_POLL - 60 + index, "statusMessage": "sent",
                       "typeMessage": "textMessage", "sendByApi": True})  # fmt: skip
    tracker.observe(journal_from_elements(first), FIRST_POLL + 5, 5000)
    snapshot = tracker.observe(journal_from_elements(second), SECOND_POLL, 5000)
    assert all(snapshot.outcomes[outcome] for outcome in OUTCOMES), snapshot.outcomes
    return snapshot


def _incoming_variant(variant: int) -> IncomingSnapshot:
    tracker = IncomingTracker(window=86400, baseline_before=None)
    elements: list[object] = [
        {"idMessage": f"IN{variant:02d}{index:06X}", "chatId": f"7900{index % 20:07d}@c.us",
         "timestamp": SECOND_POLL - 10 * index, "typeMessage": _TYPES[index % 3]}
        for index in range(20 + 5 * variant)
    ]  # fmt: skip
    return tracker.observe(journal_from_elements(elements), SECOND_POLL)


def snapshot_for(instances: int) -> ExporterSnapshot:
    """A realistic scrape: instances with a few types, statuses, delivery outcomes and full
    histograms; a quarter of them also collect state, queue and the incoming journal; a few
    are failing; a static label that only some instances set."""
    trackers = [_tracker_variant(v) for v in range(_VARIANTS)]
    incoming = [_incoming_variant(v) for v in range(_VARIANTS)]
    return ExporterSnapshot(
        version=__version__,
        instances=tuple(
            _instance(i, trackers[i % _VARIANTS], incoming[i % _VARIANTS]) for i in range(instances)
        ),
        label_names=("env", "team"),
        reload_successful=True,
        reload_success_timestamp=1.8e9,
    )


def _instance(index: int, tracker: TrackerSnapshot, incoming: IncomingSnapshot) -> InstanceSnapshot:
    collect = COLLECTORS if index % 4 == 0 else ("outgoing",)
    failing = index % 50 == 7
    result = "timeout" if failing else "success"
    polls = MappingProxyType(
        {c: MappingProxyType({r: (1000 + n if r == "success" else n) for n, r in enumerate(RESULTS)})
         for c in collect}
    )  # fmt: skip
    labels = (("env", "prod"), ("team", f"t{index % 7}")) if index % 3 else (("team", f"t{index % 7}"),)  # fmt: skip
    journal_status = CollectorStatus(
        result, "answer not complete within 20s" if failing else "", SECOND_POLL, 0.2,
        SECOND_POLL - (3600 if failing else 0),
    )  # fmt: skip
    ok = CollectorStatus("success", "", SECOND_POLL, 0.05, SECOND_POLL)
    values: dict[str, object] = {
        "outgoing": tracker,
        "state": INSTANCE_STATES[1] if index % 20 == 0 else INSTANCE_STATES[0],
        "queue": index % 13,
        "incoming": incoming,
    }
    readings = {c: Reading(journal_status if c == "outgoing" else ok, values[c]) for c in collect}
    return InstanceSnapshot(
        name=f"bot-{index}",
        id_instance=f"{1101000000 + index}",
        labels=labels,
        window_seconds=86400,
        collect=collect,
        polls_total=polls,
        readings=MappingProxyType(readings),
    )


def _scrape(exposition: Exposition, snapshot: ExporterSnapshot, fmt: str) -> bytes:
    """A whole ``/metrics`` answer as the server assembles it (without the process metrics of
    prometheus_client's runtime collectors, which change from one call to the next)."""
    return finish(exposition.render(snapshot, fmt), fmt)


def _check_identical(fmt: str, ours: bytes, reference: bytes) -> None:
    if ours == reference:
        return
    pairs = itertools.zip_longest(ours.splitlines(True), reference.splitlines(True), fillvalue=b"")
    for line, (got, want) in enumerate(pairs, 1):
        if got != want:
            raise SystemExit(f"{FORMAT_NAMES[fmt]} exposition differs from prometheus_client's at "
                             f"line {line}:\n  ours:      {got!r}\n  reference: {want!r}")  # fmt: skip


def bench_render(repeats: int) -> list[Row]:
    """/metrics for 1,000 instances in both formats, warm (a quarter of the instances polled
    since the previous scrape) and cold, and what a poll spends formatting its instance."""
    snapshot = snapshot_for(1000)
    registry = CollectorRegistry(auto_describe=True)
    registry.register(GreenApiCollector(lambda: snapshot))
    reference = {TEXT: generate_latest(registry), OPENMETRICS: openmetrics_latest(registry)}
    for fmt, expected in reference.items():
        _check_identical(fmt, _scrape(Exposition(), snapshot, fmt), expected)
    samples = {
        fmt: sum(1 for line in text.splitlines() if line and not line.startswith(b"#"))
        for fmt, text in reference.items()
    }
    plain = _plain_registry(samples[TEXT])
    base = statistics.median(_wall(partial(generate_latest, plain)) for _ in range(repeats))

    # A scrape formats again only the instances polled since the previous scrape: with 60 s
    # polls and 15 s scrapes, a quarter of them. Scrapes alternate between the formats on the
    # same fragments, as when both kinds of client scrape one exporter.
    changed = 250
    exposition = Exposition()
    instances = list(snapshot.instances)
    _scrape(exposition, snapshot, TEXT)

    def polls() -> None:  # in the poll threads, right after each poll
        for index in range(changed):
            previous = instances[index]
            journal = previous.reading("outgoing")
            assert journal.status is not None
            status = replace(journal.status, duration=journal.status.duration + 1)
            readings = {**previous.readings, "outgoing": Reading(status, journal.value)}
            instances[index] = replace(previous, readings=MappingProxyType(readings))
            exposition.refresh(instances[index], snapshot.label_names)

    warm: dict[str, list[float]] = {TEXT: [], OPENMETRICS: []}
    refreshes = []
    for _ in range(repeats):
        for fmt, times in warm.items():
            refreshes.append(_wall(polls) / changed)
            current = replace(snapshot, instances=tuple(instances))
            times.append(_wall(partial(_scrape, exposition, current, fmt)))
    # A cold scrape formats every instance in both formats: the first scrape after start.
    # Seconds each, so fewer of them; the formats alternate, as in the warm loop.
    cold_times: dict[str, list[float]] = {TEXT: [], OPENMETRICS: []}
    for _ in range(max(1, min(repeats, 5))):
        for fmt, times in cold_times.items():
            times.append(_wall(partial(_scrape, Exposition(), snapshot, fmt)))
    cold = {fmt: statistics.median(times) for fmt, times in cold_times.items()}

    def text_alone() -> None:  # what formatting a polled instance cost with one format
        for instance in instances[:changed]:
            render(instance_families(snapshot.label_names, (instance,)), TEXT)

    text_only = statistics.median(_wall(text_alone) / changed for _ in range(repeats))
    per_poll = statistics.median(refreshes)
    text, om = (statistics.median(warm[fmt]) for fmt in (TEXT, OPENMETRICS))
    size = {fmt: len(body) / 1e6 for fmt, body in reference.items()}
    return [
        (f"/metrics text, 1,000 instances ({samples[TEXT]} samples, {size[TEXT]:.1f} MB), 250 polled since the last scrape",
         f"{text * 1000:.0f} ms (cold: {cold[TEXT] * 1000:.0f} ms)",
         f"{base * 1000:.0f} ms (plain registry, text)", f"{text / base:.3f}x", "<= 1.5x and < 250 ms"),
        (f"/metrics OpenMetrics, the same ({samples[OPENMETRICS]} samples, {size[OPENMETRICS]:.1f} MB)",
         f"{om * 1000:.0f} ms (cold: {cold[OPENMETRICS] * 1000:.0f} ms)",
         f"{text * 1000:.0f} ms (text; cold: {cold[TEXT] * 1000:.0f} ms)",
         f"{om / text:.2f}x (cold: {cold[OPENMETRICS] / cold[TEXT]:.2f}x)", "OpenMetrics <= 1.5x text"),
        ("Formatting one polled instance in both formats (in its poll's thread)",
         f"{per_poll * 1000:.2f} ms per poll", f"{text_only * 1000:.2f} ms (text alone, prometheus_client)",
         f"{per_poll / text_only:.2f}x", "none set"),
    ]  # fmt: skip


def _plain_registry(samples: int) -> CollectorRegistry:
    """The same number of samples, in gauges, counters and histograms of a plain registry."""
    plain = CollectorRegistry()
    per_instance = samples // 1000
    histogram_samples = 2 * (len(LAG_BUCKETS) + 3)
    names = ["name", "id_instance", "team", "k"]
    gauge = Gauge("plain_gauge", "g", names, registry=plain)
    counter = Counter("plain_counter", "c", names, registry=plain)
    hist = Histogram("plain_hist", "h", names, buckets=LAG_BUCKETS, registry=plain)
    for i in range(1000):
        labels = (f"bot-{i}", f"{1101000000 + i}", f"t{i % 7}")
        hist.labels(*labels, "d").observe(3)
        hist.labels(*labels, "r").observe(30)
        rest = per_instance - histogram_samples
        for k in range(rest // 2):
            gauge.labels(*labels, str(k)).set(k)
            counter.labels(*labels, str(k)).inc(k)
    return plain


def _wall(action: Callable[[], object]) -> float:
    gc.collect()
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


# Statuses of a busy instance's tracked messages: mostly read or delivered, one in a hundred
# still sent (late, or never to be delivered), a few failed.
_BUSY_STATUSES = ("read",) * 60 + ("delivered",) * 37 + ("sent", "noAccount", "pending")
MEMORY_MESSAGES = 200_000  # as many as an instance may track (MAX_TRACKED)


def bench_memory() -> list[Row]:
    """Bytes per tracked message: everything a tracker of N messages holds (keys, the
    window's index of undelivered messages and the judgements under way included), divided
    by N; with a busy instance's statuses, and with every message still sent (deliveries
    stalled: the index at its largest)."""
    busy, busy_rss = _tracker_bytes(lambda index: _BUSY_STATUSES[index % len(_BUSY_STATUSES)])
    stalled, _ = _tracker_bytes(lambda index: "sent")
    # The baseline: a plain dict of the same keys to None, the least any tracker must hold.
    count = MEMORY_MESSAGES
    tracemalloc.start()
    start = tracemalloc.get_traced_memory()[0]
    floor = {f"7900{index % 5000:07d}@c.us\x1fBAE5{index:012X}": None for index in range(count)}
    floor_bytes = (tracemalloc.get_traced_memory()[0] - start) / count
    tracemalloc.stop()
    del floor
    return [
        (f"Memory per tracked message (key included; {count:,} messages, 1 % still sent)",
         f"{busy:.0f} B (RSS growth after malloc_trim: {busy_rss:.0f} B)", f"{floor_bytes:.0f} B (dict of keys)",
         f"{busy / floor_bytes:.2f}x", "< 200 B"),
        ("The same, every message still sent (deliveries stalled)", f"{stalled:.0f} B",
         f"{busy:.0f} B (1 % still sent)", f"{stalled / busy:.2f}x", "none set"),
    ]  # fmt: skip


def _trim_malloc() -> None:
    """Hand the C allocator's free pages back, as the exporter does after large answers."""
    Allocator().received(TRIM_AFTER_BYTES)


def _tracker_bytes(status_of: Callable[[int], str]) -> tuple[float, float]:
    """(traced bytes, RSS growth) per message of a tracker that saw MEMORY_MESSAGES
    messages, the last five minutes of them not judged yet."""
    count = MEMORY_MESSAGES
    gc.collect()
    _trim_malloc()
    rss_before = _rss_kib()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    tracker = MessageTracker(window=86400 * 90, undelivered_after=300, baseline_before=None)
    elements: list[object] = [
        {"idMessage": f"BAE5{index:012X}", "chatId": f"7900{index % 5000:07d}@c.us", "timestamp": 1_800_000_000 + index,
         "statusMessage": status_of(index), "typeMessage": "textMessage", "sendByApi": True}
        for index in range(count)
    ]  # fmt: skip
    journal = journal_from_elements(elements)
    del elements
    snapshot = tracker.observe(journal, 1_800_000_000 + count, 10**9)
    del journal  # what stays is the tracker's own memory, the key strings included
    gc.collect()
    held = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    _trim_malloc()
    rss = (_rss_kib() - rss_before) * 1024
    if snapshot.tracked != count or snapshot.window is None or snapshot.window.messages != count:
        raise SystemExit(f"the tracker holds {snapshot.tracked} messages, not {count}: "
                         "the memory benchmark no longer measures what it says")  # fmt: skip
    del tracker, snapshot
    return held / count, rss / count


STATE_INSTANCES = 5  # of MAX_TRACKED messages each: a million tracked messages in all
STATE_CHANGED = 100  # messages a short poll of one instance changes


def bench_state_save(repeats: int) -> Row:
    """What a save of the state file costs after a short poll that changed STATE_CHANGED
    messages of one instance, against writing the whole state (a compaction, or the first
    save), with a million tracked messages in the file. Wall time: a save ends with an
    fdatasync, which is I/O, not CPU."""
    base = 1_800_000_000
    trackers = []
    for instance in range(STATE_INSTANCES):
        tracker = MessageTracker(window=86400 * 90, undelivered_after=300, baseline_before=None)
        elements: list[object] = [
            {"idMessage": f"BAE5{instance:02X}{index:010X}", "chatId": f"7900{index % 5000:07d}@c.us",
             "timestamp": base + index, "statusMessage": "sent", "typeMessage": "textMessage",
             "sendByApi": True}
            for index in range(MAX_TRACKED)
        ]  # fmt: skip
        tracker.observe(journal_from_elements(elements), base + MAX_TRACKED, 10**9)
        trackers.append(tracker)
    del elements
    names = [f"bot-{instance}" for instance in range(STATE_INSTANCES)]

    def entry(tracker: MessageTracker, complete: bool) -> dict[str, object]:
        return {"id_instance": "1", "tracker": tracker.export_changes(complete)}

    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "state.json")
        state, _ = StateFile.open(path, None)
        try:
            started = time.perf_counter()
            state.rewrite([(n, entry(t, True)) for n, t in zip(names, trackers, strict=True)],
                          abort=lambda: False)  # fmt: skip
            whole_seconds = time.perf_counter() - started
            whole_bytes = os.path.getsize(path)
            seconds: list[float] = []
            appended: list[int] = []
            now = base + MAX_TRACKED
            for step in range(repeats):
                now += 60
                first = step * STATE_CHANGED
                changed: list[object] = [
                    {"idMessage": f"BAE500{index:010X}", "chatId": f"7900{index % 5000:07d}@c.us",
                     "timestamp": now - 30, "statusMessage": "delivered",
                     "typeMessage": "textMessage", "sendByApi": True}
                    for index in range(first, first + STATE_CHANGED)
                ]  # fmt: skip
                trackers[0].observe(journal_from_elements(changed), now, 10**9, full=False,
                                    since=now - 600)  # fmt: skip
                size = os.path.getsize(path)
                started = time.perf_counter()
                state.append([(names[0], entry(trackers[0], False))], keep=names)
                seconds.append(time.perf_counter() - started)
                appended.append(os.path.getsize(path) - size)
        finally:
            state.close()
    save = statistics.median(seconds)
    return (
        f"A save of the state file ({STATE_INSTANCES * MAX_TRACKED:,} tracked messages in "
        f"{STATE_INSTANCES} instances) after a short poll that changed {STATE_CHANGED} of one",
        f"{save * 1000:.1f} ms, {statistics.median(appended) / 1024:.1f} KiB appended",
        f"{whole_seconds:.2f} s, {whole_bytes / 2**20:.0f} MiB: the whole state written",
        f"{save / whole_seconds:.4f}x",
        "in proportion to what changed",
    )


def _rss_kib(pid: int | str = "self") -> int:
    """VmRSS of a process, in KiB (0 if the kernel does not say)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


# The fleet: one exporter process polling many busy instances, with short polls (the
# default) and with resync_interval: 0 (full polls only), one after the other against the
# same simulators, each exporter in a process of its own.
FLEET_CONCURRENCY = 16
FLEET_SIMULATORS = 4


def fleet_document(sims: Sequence[Mapping[str, Any]], interval: float, collect: Sequence[str],
                   resync_interval: float | None) -> dict[str, Any]:  # fmt: skip
    """The exporter configuration for every simulated instance: default settings but the
    poll interval, the collectors and (unless None) ``resync_interval``."""
    defaults: dict[str, Any] = {
        "poll_interval": interval,
        "timeout": "20s",
        "collect": list(collect),
    }
    if resync_interval is not None:
        defaults["resync_interval"] = resync_interval
    return {
        "defaults": defaults,
        "concurrency": FLEET_CONCURRENCY,
        "instances": [
            {"name": i["name"], "id_instance": i["id_instance"], "api_token": i["token"], "api_url": sim["url"]}
            for sim in sims for i in sim["instances"]
        ],
    }  # fmt: skip


class _FleetCount:
    """What an exporter's snapshot says it has done so far, summed over its instances."""

    def __init__(self, snapshot: ExporterSnapshot) -> None:
        instances = snapshot.instances
        self.fetched = sum(sum(i.fetched_bytes.values()) for i in instances)
        self.polls = sum(
            sum(counts.values()) for i in instances for counts in i.polls_total.values()
        )
        self.failed = self.polls - sum(
            counts["success"] for i in instances for counts in i.polls_total.values()
        )
        journals = [i.reading(OUTGOING.name).value for i in instances]
        self.full_reads = sum(j.full_polls for j in journals if isinstance(j, TrackerSnapshot))  # fmt: skip


def run_fleet(document: dict[str, Any], duration: float, warmup: float) -> dict[str, float]:
    """In a process of its own: run an exporter on ``document`` for ``duration`` seconds
    and measure its steady state, from when every instance has finished its first (full)
    poll, and at least ``warmup`` seconds after the start, to the end."""
    config = parse_config(document, "bench", {})
    interval = config.instances[0].settings.poll_interval
    exporter = Exporter(lambda: config)
    started = time.monotonic()
    exporter.start()
    try:
        while not exporter.ready():
            if time.monotonic() - started > duration - interval:
                raise SystemExit(f"the first round of polls was not over {duration - interval:.0f} s "
                                 "after the start: run longer (--duration)")  # fmt: skip
            time.sleep(0.5)
        first_round = time.monotonic() - started
        time.sleep(max(0.0, started + warmup - time.monotonic()))
        begin, begin_cpu = time.monotonic(), cpu()
        before = _FleetCount(exporter.snapshot())
        exporter._scheduler.max_lateness = 0.0  # lateness in the steady state only
        time.sleep(max(0.0, started + duration - time.monotonic()))
        used, end = cpu() - begin_cpu, time.monotonic()
        after = _FleetCount(exporter.snapshot())
        late = exporter._scheduler.max_lateness
    finally:
        exporter.stop()
    return {
        "instances": len(config.instances), "interval": interval, "first_round": first_round,
        "collectors": len(config.instances[0].settings.collect), "start": begin - started, "end": end - started,
        "cpu": used, "fetched": after.fetched - before.fetched, "polls": after.polls - before.polls,
        "failed": after.failed - before.failed, "full_reads": after.full_reads - before.full_reads,
        "late": late, "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "rss_mib": _rss_kib() / 1024,
    }  # fmt: skip


def _fleet_in_a_process(document: dict[str, Any], duration: float, warmup: float) -> dict[str, float]:  # fmt: skip
    """:func:`run_fleet` in a fresh process, so that its peak RSS is its own."""
    child = subprocess.run(
        [sys.executable, __file__, "--only-fleet", "--duration", str(duration), "--warmup", str(warmup)],
        input=json.dumps(document), capture_output=True, text=True,
    )  # fmt: skip
    if child.returncode != 0:
        raise SystemExit(f"the fleet run exited with {child.returncode}:\n{child.stderr[-3000:]}")
    result: dict[str, float] = json.loads(child.stdout.splitlines()[-1])
    return result


def bench_fleet(instances: int, rate: float, interval: float, duration: float, warmup: float,
                all_collectors: bool = False) -> tuple[list[Row], list[str]]:  # fmt: skip
    """The fleet with the default settings (short polls) against the same fleet with
    ``resync_interval: 0``. Returns the table's row and the details printed below it."""
    collect = list(COLLECTORS) if all_collectors else [OUTGOING.name]
    count = min(FLEET_SIMULATORS, instances)
    sizes = [instances // count + (index < instances % count) for index in range(count)]
    generating = time.monotonic()
    processes, sims = start_simulators(sizes, rate)
    generated = time.monotonic() - generating
    progress(
        f"the simulators made 24 h of history for {instances:,} instances in {generated:.0f} s"
    )
    try:
        short = _fleet_in_a_process(fleet_document(sims, interval, collect, None), duration, warmup)
        progress("the fleet with short polls is done; now resync_interval 0")
        full = _fleet_in_a_process(fleet_document(sims, interval, collect, 0), duration, warmup)
    finally:
        stop_processes(processes)
    runs = {"short": short, "full": full}
    core = {name: _per_second(r, "cpu") for name, r in runs.items()}  # share of one core
    hourly = {name: _per_second(r, "fetched") * 3600 for name, r in runs.items()}
    what = f"{len(collect)} collectors" if all_collectors else "the journal"
    row = (
        f"{instances:,} instances of {rate * 1440:,.0f} messages a day every {interval:g} s ({what}), default settings "
        f"(short polls), steady state {short['start']:.0f}-{short['end']:.0f} s",
        f"{core['short'] * 100:.1f} % of a core, peak RSS {short['peak_rss_mib']:.0f} MiB ({short['rss_mib']:.0f} at the end), {hourly['short'] / 1e9:.2f} GB an hour",
        f"resync_interval 0: {core['full'] * 100:.1f} % of a core, peak RSS {full['peak_rss_mib']:.0f} MiB ({full['rss_mib']:.0f} at the end), "
        f"{hourly['full'] / 1e9:.2f} GB an hour",
        f"{core['short'] / core['full']:.3f}x CPU, {hourly['short'] / hourly['full']:.4f}x bytes, "
        f"{short['peak_rss_mib'] / full['peak_rss_mib']:.2f}x peak RSS",
        "< 20 % of a core",
    )  # fmt: skip
    details = [
        f"fleet: {instances:,} instances with 24 h of history ({rate:g} messages a minute) generated in {generated:.0f} s "
        f"by {count} simulator processes, not counted",
        *(_fleet_detail(name, r) for name, r in (("short polls", short), ("resync_interval 0", full))),
        _amortised_resync(short, full, Settings().resync_interval),
    ]  # fmt: skip
    return [row], details


def _per_second(r: Mapping[str, float], key: str) -> float:
    """``key`` of a fleet run's measurement, per second of it."""
    return r[key] / (r["end"] - r["start"])


def _fleet_detail(name: str, r: Mapping[str, float]) -> str:
    rounds = (
        r["polls"] / r["collectors"] / r["instances"] / ((r["end"] - r["start"]) / r["interval"])
    )
    return (f"fleet, {name}: every instance's first poll (a full read) over {r['first_round']:.0f} s after "
            f"the start; measured from {r['start']:.0f} to {r['end']:.0f} s: {r['polls']:,.0f} requests "
            f"({rounds:.2f} of each collector per instance and interval), {r['failed']:.0f} failed, "
            f"{r['full_reads']:.0f} full reads of the outgoing journal, latest start {r['late']:.1f} s late")  # fmt: skip


def _amortised_resync(short: Mapping[str, float], full: Mapping[str, float], resync: float) -> str:
    """The steady state of short polls holds no resync (one every ``resync`` seconds):
    what they add. A resync is a full read instead of a short one, so it costs the
    difference between the two runs per round (every collector of an instance polled once)."""

    def per_round(r: Mapping[str, float], key: str) -> float:
        return r[key] / (r["polls"] / r["collectors"])

    extra_cpu = per_round(full, "cpu") - per_round(short, "cpu")
    extra_bytes = per_round(full, "fetched") - per_round(short, "fetched")
    resyncs = short["instances"] * 3600 / resync  # an hour's
    core = _per_second(short, "cpu") + resyncs * extra_cpu / 3600
    hourly = _per_second(short, "fetched") * 3600 + resyncs * extra_bytes
    full_hourly = _per_second(full, "fetched") * 3600
    return (f"fleet, short polls with their resyncs counted ({resyncs:,.0f} an hour, each {extra_bytes / 1e6:.2f} MB "
            f"and {extra_cpu * 1000:.0f} ms of CPU more than a short poll, from the two runs): "
            f"{core * 100:.1f} % of a core, {hourly / 1e9:.2f} GB an hour, "
            f"{hourly / full_hourly:.3f}x the bytes of full polls only")  # fmt: skip


# What changes the C or Python allocator, and the exporter's own settings: the demo is
# measured as a default install runs it.
_ALLOCATOR_VARIABLES = frozenset(
    {"GLIBC_TUNABLES", "LD_PRELOAD", "PYTHONMALLOC", "PYTHONMALLOCSTATS", "PYTHONTRACEMALLOC",
     "PYTHONDEVMODE"}
)  # fmt: skip
SCRAPE_INTERVAL = 15.0  # Prometheus's default scrape_interval of the example configuration
SCRAPE_TIMEOUT = 10.0  # Prometheus's default scrape_timeout
RSS_INTERVAL = 10.0


def default_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """``environ`` without allocator settings (MALLOC_ARENA_MAX and the like) or exporter
    flags."""
    return {
        key: value
        for key, value in environ.items()
        if not key.startswith(("MALLOC_", ENV_PREFIX)) and key not in _ALLOCATOR_VARIABLES
    }


def bench_demo_memory(duration: float) -> tuple[Row, list[tuple[float, int]]]:
    """RSS of ``greenapi-exporter --demo`` (its own process, default allocator settings)
    while Prometheus-like scrapes come every 15 s."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryFile() as output:
        started = time.monotonic()
        child = subprocess.Popen(
            [sys.executable, "-m", "exporter", "--demo", "--web.listen-address", f"127.0.0.1:{port}"],
            cwd=ROOT, env=default_environment(os.environ), stdout=output, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            _wait_healthy(child, url + "/-/healthy", output)
            samples, scrapes, failures = _observe_demo(child, url + "/metrics", started, duration, output)  # fmt: skip
        finally:
            child.terminate()
            try:
                child.wait(10)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
    if failures:
        print(f"demo: {len(failures)} scrapes failed; the first: {failures[0]}", file=sys.stderr)
    minute = next(rss for at, rss in samples if at >= 60.0) / 1024
    end, peak = samples[-1][1] / 1024, max(rss for _, rss in samples) / 1024
    return (
        (f"Demo (4 instances, every collector, no MALLOC_ variables), {duration:.0f} s: {scrapes} scrapes as Prometheus, {len(failures)} failed",
         f"{end:.1f} MiB RSS at the end (max {peak:.1f} MiB)", f"{minute:.1f} MiB at 1 minute",
         f"{end / minute:.2f}x", "<= 1.3x, no failed scrape"),
        samples,
    )  # fmt: skip


def _wait_healthy(
    child: subprocess.Popen[bytes], url: str, output: IO[bytes], name: str = "the demo"
) -> None:
    deadline = time.monotonic() + 60
    while True:
        _check_running(child, output, name)
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"{name} did not answer {url} within 60 s")
        time.sleep(0.2)


def _check_running(child: subprocess.Popen[bytes], output: IO[bytes], name: str = "the demo") -> None:  # fmt: skip
    if child.poll() is not None:
        output.seek(0)
        tail = output.read().decode(errors="replace")[-2000:]
        raise SystemExit(f"{name} exited with {child.returncode}:\n{tail}")


def _observe_demo(
    child: subprocess.Popen[bytes], url: str, started: float, duration: float, output: IO[bytes]
) -> tuple[list[tuple[float, int]], int, list[str]]:
    """Scrape every SCRAPE_INTERVAL and sample RSS every RSS_INTERVAL (and at the end), both
    counted from the child's start. Returns the (seconds, KiB) samples, the number of scrapes
    and what went wrong with those that failed."""
    session = requests.Session()
    session.headers.update({"Accept": PROMETHEUS_ACCEPT, "Accept-Encoding": "gzip"})
    samples: list[tuple[float, int]] = []
    failures: list[str] = []
    scrapes = 0
    next_sample, next_scrape = RSS_INTERVAL, SCRAPE_INTERVAL
    while True:
        _check_running(child, output)
        elapsed = time.monotonic() - started
        if elapsed >= duration:
            samples.append((elapsed, _rss_kib(child.pid)))
            return samples, scrapes, failures
        if elapsed >= next_sample:
            samples.append((elapsed, _rss_kib(child.pid)))
            next_sample += RSS_INTERVAL
        if elapsed >= next_scrape:
            scrapes += 1
            failure = _scrape_failure(session, url)
            if failure:
                failures.append(f"at {elapsed:.0f} s: {failure}")
            next_scrape += SCRAPE_INTERVAL
        time.sleep(max(0.0, min(next_sample, next_scrape, duration) - (time.monotonic() - started)))


def _scrape_failure(session: requests.Session, url: str) -> str:
    """Why a scrape would fail in Prometheus ("" when it would not): an error status, a
    timeout, or a page that is not valid OpenMetrics."""
    return _timed_scrape(session, url, parse=True)[1]


def _timed_scrape(
    session: requests.Session, url: str, parse: bool, accept: str | None = None
) -> tuple[float, str]:
    """The seconds the HTTP exchange took, and why the scrape would fail ("" when it would
    not); ``parse``: the page is checked by the strict parser, else only its status, its
    type and its terminating ``# EOF``. ``accept``: instead of the session's Accept."""
    started = time.monotonic()
    headers = None if accept is None else {"Accept": accept}
    try:
        response = session.get(url, timeout=SCRAPE_TIMEOUT, headers=headers)
    except requests.RequestException as exc:
        return time.monotonic() - started, f"{type(exc).__name__}: {exc}"
    took = time.monotonic() - started
    content_type = response.headers.get("Content-Type", "")
    if response.status_code != 200:
        return took, f"HTTP {response.status_code}"
    if not content_type.startswith("application/openmetrics-text"):
        return took, f"Content-Type {content_type!r}, not OpenMetrics"
    if not parse:
        return took, "" if response.content.endswith(b"# EOF\n") else "no # EOF at the end"
    try:
        for _ in parse_openmetrics(response.text):
            pass
    except Exception as exc:  # the parser raises ValueError mostly, but not only
        return took, f"invalid OpenMetrics: {exc}"
    return took, ""


# The soak: one exporter process (its own command line, default allocator settings) polling
# instances of which two in three misbehave, in the ways of the simulator's fault table, the
# faults moving from instance to instance at every step; scraped far more often than any
# Prometheus would, to show that nothing accumulates.
SOAK_SCRAPE_INTERVAL = 0.1  # ten scrapes a second
SOAK_POLL_INTERVAL = "5s"  # so that ten minutes hold 120 polls of each collector
SOAK_TIMEOUT = "5s"
SOAK_UNDELIVERED_AFTER = "30s"  # with --soak-window: shorter than any window allowed
SOAK_FAULT_SHIFT = 7  # coprime with len(SOAK_FAULTS): every instance meets every fault in turn
Fault = tuple[str, str | None, dict[str, object]]  # mode, method (None: every method), params
SOAK_FAULTS: tuple[Fault | None, ...] = (
    ("status", None, {"code": 500}),
    ("delay", None, {"seconds": 2}),  # slow, within the timeout
    None,
    ("hang", "getStateInstance", {}),  # until the timeout
    ("broken_json", None, {}),
    None,
    ("status", None, {"code": 429, "retry_after": 30}),
    ("status", "lastOutgoingMessages", {"code": 466}),
    None,
    ("huge", "lastOutgoingMessages", {"megabytes": 50}),  # under the answer limit: decoded
    ("empty_objects", "lastOutgoingMessages", {"megabytes": 40}),
    None,
    ("reset", None, {}),
    ("delay", None, {"seconds": 8}),  # slower than the timeout
    None,
    ("truncated_json", None, {}),
    ("html", None, {}),
    None,
    ("status", None, {"code": 502, "body": "upstream unavailable"}),
    ("not_array", None, {}),
    None,
    ("huge", "lastIncomingMessages", {"megabytes": 80}),  # over the answer limit
    ("large_journal", "lastOutgoingMessages", {"count": 10000}),
    None,
    ("future_timestamps", "lastOutgoingMessages", {}),
    ("duplicate_ids", "lastOutgoingMessages", {}),
    None,
    ("epoch_timestamps", "lastIncomingMessages", {}),
    ("status", "getMessagesCount", {"code": 503}),
    None,
)


def soak_fault(instance: int, step: int) -> Fault | None:
    """The fault of the ``instance``-th instance (from 0) during the ``step``-th step."""
    return SOAK_FAULTS[(instance + SOAK_FAULT_SHIFT * step) % len(SOAK_FAULTS)]


def _set_soak_faults(sim: Mapping[str, Any], step: int) -> int:
    """Give every instance its fault of ``step`` through the control API; how many have one."""
    faulty = 0
    for index, instance in enumerate(sim["instances"]):
        url = f"{sim['url']}/_sim/instances/{instance['name']}/fault"
        fault = soak_fault(index, step)
        if fault is None:
            response = requests.delete(url, timeout=10)
        else:
            mode, method, params = fault
            response = requests.put(
                url, json={"mode": mode, "method": method, **params}, timeout=10
            )
            faulty += 1
        response.raise_for_status()
    return faulty


SOAK_RSS_INTERVAL = 1.0  # seconds between RSS samples
# The strict parser takes a tenth of a second for the soak's page: two scrapes in this many
# (one of each Accept) are parsed in full, the others checked for their status, type and
# terminating # EOF.
SOAK_PARSE_EVERY = 40


class SoakStep:
    """One step of the soak: the exporter's RSS sampled every SOAK_RSS_INTERVAL, the CPU it
    used, the scrapes' latencies (the HTTP exchange, not the checks) and failures."""

    def __init__(self, faulty: int) -> None:
        self.faulty = faulty
        self.end = 0.0
        self.cpu = 0.0
        self.rss_kib: list[int] = []
        self.latencies: list[float] = []
        self.failures: list[str] = []
        self.tracked = 0  # messages the exporter tracks at the step's end

    @property
    def rss(self) -> float:
        """The median of the step's RSS samples, in MiB: a leak raises it, an answer being
        decoded at the moment of one sample does not."""
        return statistics.median(self.rss_kib or [0]) / 1024

    def line(self, length: float) -> str:
        times = sorted(self.latencies) or [0.0]
        p99 = times[min(len(times) - 1, math.ceil(0.99 * len(times)) - 1)]
        return (f"{self.end:5.0f} s: RSS {self.rss:6.1f} MiB (median; max {max(self.rss_kib or [0]) / 1024:.1f}), "
                f"CPU {self.cpu:5.2f} s ({self.cpu / length * 100:4.1f} % of a core); {len(self.latencies)} scrapes "
                f"(median {statistics.median(times) * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms, "
                f"max {times[-1] * 1000:.0f} ms), {len(self.failures)} failed; "
                f"{self.faulty} instances with a fault; {self.tracked:,} tracked messages")  # fmt: skip


def _tracked_messages(session: requests.Session, url: str) -> int:
    """greenapi_exporter_tracked_messages summed over the exporter's instances."""
    page = session.get(url, timeout=SCRAPE_TIMEOUT, headers={"Accept": "text/plain"}).text
    return sum(
        int(float(sample.value))
        for family in text_string_to_metric_families(page)
        if family.name == "greenapi_exporter_tracked_messages"
        for sample in family.samples
    )


def _cpu_seconds(pid: int) -> float:
    """User and system CPU of a process so far, from /proc/PID/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def bench_soak(duration: float, instances: int, step: float, window: str | None = None) -> tuple[Row, list[str]]:  # fmt: skip
    """``greenapi-exporter`` on its own command line polling ``instances`` simulated busy
    instances with every collector, two in three with a fault that moves on at every step,
    scraped SOAK_SCRAPE_INTERVAL apart with Prometheus's Accept headers (2 and 3, in turn)
    and gzip for ``duration`` seconds; RSS and CPU at every step."""
    processes, sims = start_simulators([instances], BUSY_RATE, rate_limit=True)
    sim = sims[0]
    document = {
        "defaults": {"poll_interval": SOAK_POLL_INTERVAL, "timeout": SOAK_TIMEOUT, "collect": list(COLLECTORS),
                     # A short window: the tracked messages stop growing within it, so that
                     # what still grows after is what the exporter keeps and should not.
                     **({"window": window, "undelivered_after": SOAK_UNDELIVERED_AFTER} if window else {})},
        "instances": [{"name": i["name"], "id_instance": i["id_instance"], "api_token": i["token"],
                       "api_url": sim["url"]} for i in sim["instances"]],
    }  # fmt: skip
    port = free_port()
    try:
        faulty = _set_soak_faults(sim, 0)
        with tempfile.TemporaryDirectory() as directory, tempfile.TemporaryFile() as output:
            config = Path(directory, "config.yml")
            config.write_text(json.dumps(document))  # JSON is YAML
            started = time.monotonic()
            child = subprocess.Popen(
                [sys.executable, "-m", "exporter", "--config.file", str(config),
                 "--web.listen-address", f"127.0.0.1:{port}"],
                cwd=ROOT, env=default_environment(os.environ), stdout=output, stderr=subprocess.STDOUT,
            )  # fmt: skip
            try:
                url = f"http://127.0.0.1:{port}"
                _wait_healthy(child, url + "/-/healthy", output, "the exporter")
                steps = _observe_soak(child, url + "/metrics", sim, started, duration, step, faulty, output)  # fmt: skip
            finally:
                stop_processes([child])
    finally:
        stop_processes(processes)
    return _soak_row(steps, instances, duration, step)


def _observe_soak(child: subprocess.Popen[bytes], url: str, sim: Mapping[str, Any], started: float,
                  duration: float, step: float, faulty: int, output: IO[bytes]) -> list[SoakStep]:  # fmt: skip
    """Scrape every SOAK_SCRAPE_INTERVAL and sample the child's RSS every SOAK_RSS_INTERVAL
    until ``duration`` (counted from the child's start); at the end of each step, note the
    CPU it used and move the faults on."""
    session = requests.Session()
    session.headers.update({"Accept-Encoding": "gzip",
                            "X-Prometheus-Scrape-Timeout-Seconds": f"{SCRAPE_TIMEOUT:g}"})  # fmt: skip
    accepts = (PROMETHEUS_ACCEPT, PROMETHEUS_3_ACCEPT)  # scrapes alternate: Prometheus 2 and 3
    steps: list[SoakStep] = []
    current = SoakStep(faulty)
    cpu_before = 0.0  # the first step holds the start-up
    scrapes = 0
    next_scrape = next_sample = time.monotonic()
    step_end = started + step
    while True:
        _check_running(child, output, "the exporter")
        now = time.monotonic()
        if now >= step_end - 1e-3:
            used = _cpu_seconds(child.pid)
            current.end, current.cpu, cpu_before = step_end - started, used - cpu_before, used
            current.rss_kib.append(_rss_kib(child.pid))
            current.tracked = _tracked_messages(session, url)
            steps.append(current)
            if step_end >= started + duration - 1e-3:
                return steps
            current = SoakStep(_set_soak_faults(sim, len(steps)))
            step_end += step
            continue
        if now >= next_sample:
            current.rss_kib.append(_rss_kib(child.pid))
            next_sample += SOAK_RSS_INTERVAL
        if now >= next_scrape:
            scrapes += 1
            took, failure = _timed_scrape(session, url, parse=scrapes % SOAK_PARSE_EVERY in (1, 2),
                                          accept=accepts[scrapes % 2])  # fmt: skip
            current.latencies.append(took)
            if failure:
                current.failures.append(f"at {now - started:.1f} s: {failure}")
            # Never a burst to catch up: a slow scrape delays the next one, as in Prometheus.
            next_scrape = max(next_scrape + SOAK_SCRAPE_INTERVAL, time.monotonic())
        time.sleep(max(0.0, min(next_scrape, next_sample, step_end) - time.monotonic()))


def _soak_row(steps: Sequence[SoakStep], instances: int, duration: float, step: float) -> tuple[Row, list[str]]:  # fmt: skip
    """The table's row and one line per step. "Flat after the first step": the last step
    against the second, in RSS (medians) and CPU; the first holds the start-up."""
    scrapes = sum(len(s.latencies) for s in steps)
    failures = [failure for s in steps for failure in s.failures]
    second, last = steps[1], steps[-1]
    most = max(s.faulty for s in steps)
    row = (
        f"Soak, {duration:.0f} s: {instances} instances, every collector every {SOAK_POLL_INTERVAL}, up to {most} with "
        f"faults (moving every {step:g} s), {scrapes:,} scrapes as Prometheus ({duration / SOAK_SCRAPE_INTERVAL:,.0f} due), "
        f"{len(failures)} failed",
        f"{last.rss:.1f} MiB RSS, {last.cpu:.1f} s CPU in the last {step:g} s ({last.tracked:,} tracked messages)",
        f"{second.rss:.1f} MiB RSS, {second.cpu:.1f} s CPU in the second {step:g} s ({second.tracked:,} tracked)",
        f"{last.rss / second.rss:.2f}x RSS, {last.cpu / second.cpu:.2f}x CPU",
        "<= 1.2x both, no failed scrape",
    )  # fmt: skip
    lines = [f"soak, {s.line(step)}" for s in steps]
    lines += [f"soak: failed scrape {failure}" for failure in failures[:10]]
    return row, lines


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--no-quick", action="store_true",
                        help="skip the quick benchmarks (poll, short poll, /metrics, memory)")  # fmt: skip
    fleet = parser.add_argument_group("the fleet (--scale)")
    fleet.add_argument("--scale", action="store_true",
                       help="also run the fleet, short polls and resync_interval 0 (slow)")  # fmt: skip
    fleet.add_argument("--fleet-instances", type=int, default=1000, metavar="N")
    fleet.add_argument("--fleet-rate", type=float, default=BUSY_RATE, metavar="PER_MINUTE",
                       help=f"messages a minute of each instance (default {BUSY_RATE:g}: about 5,000 a day)")  # fmt: skip
    fleet.add_argument("--fleet-interval", type=float, default=60.0, metavar="SECONDS",
                       help="poll_interval (default 60)")  # fmt: skip
    fleet.add_argument("--duration", type=float, default=200.0, metavar="SECONDS",
                       help="seconds of each fleet run (default 200)")  # fmt: skip
    fleet.add_argument("--warmup", type=float, default=70.0, metavar="SECONDS",
                       help="measure from this long after the start, and not before every instance's "
                            "first poll is over (default 70)")  # fmt: skip
    fleet.add_argument("--all-collectors", action="store_true",
                       help="the fleet with state, queue and incoming as well")  # fmt: skip
    soak = parser.add_argument_group("the soak (--soak)")
    soak.add_argument("--soak", action="store_true",
                      help="also run the soak: instances with faults, scraped 10 times a second")  # fmt: skip
    soak.add_argument("--soak-duration", type=float, default=600.0, metavar="SECONDS")
    soak.add_argument("--soak-instances", type=int, default=30, metavar="N")
    soak.add_argument("--soak-window", metavar="DURATION",
                      help="the instances' window (e.g. 1m: the tracked messages stop growing "
                           "after it; default: the exporter's, 24 h)")  # fmt: skip
    soak.add_argument("--soak-step", type=float, default=60.0, metavar="SECONDS",
                      help="how often RSS and CPU are sampled and the faults move (default 60)")  # fmt: skip
    demo = parser.add_argument_group("the demo (--demo-memory)")
    demo.add_argument("--demo-memory", action="store_true",
                      help="also run the demo exporter, scraped as Prometheus does, and sample its RSS")  # fmt: skip
    demo.add_argument("--demo-duration", type=float, default=600.0, metavar="SECONDS",
                      help="seconds of the demo memory run (default 600; more than 60)")  # fmt: skip
    parser.add_argument("--only-fleet", action="store_true", help=argparse.SUPPRESS)
    return parser


def _check_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.demo_memory and args.demo_duration <= 60:
        parser.error("--demo-duration: more than 60 s, the run compares the end with 1 minute")
    if args.scale and args.duration - args.warmup < args.fleet_interval:
        parser.error(
            "--duration: at least --warmup plus one --fleet-interval, the steady state measured"
        )
    if args.scale and args.fleet_instances < 1:
        parser.error("--fleet-instances: at least 1")
    if args.soak and args.soak_duration < 3 * args.soak_step:
        parser.error(
            "--soak-duration: at least three --soak-step, the last compared with the second"
        )
    if args.soak and args.soak_instances < 1:
        parser.error("--soak-instances: at least 1")


def main() -> int:
    parser = _parser()
    args = parser.parse_args()
    _check_arguments(parser, args)
    # As the exporter does at start, before any thread: bounded arenas, fixed mmap threshold.
    Allocator().configure()
    if args.only_fleet:  # in a process of its own, so that its peak RSS is its own
        print(json.dumps(run_fleet(json.load(sys.stdin), args.duration, args.warmup)))
        return 0

    print(f"greenapi-exporter {__version__}, Python {platform.python_version()}, {platform.machine()}, "
          f"{os.cpu_count()} CPUs, {platform.platform()}")  # fmt: skip
    rows: list[Row] = []
    details: list[str] = []
    if not args.no_quick:
        rows += [bench_poll(args.repeats), *bench_short_poll(args.repeats), *bench_render(args.repeats),
                 *bench_memory(), bench_state_save(args.repeats)]  # fmt: skip
    if args.scale:
        progress(f"the fleet: {args.fleet_instances:,} instances, two runs of {args.duration:g} s")
        fleet_rows, fleet_details = bench_fleet(args.fleet_instances, args.fleet_rate, args.fleet_interval,
                                                args.duration, args.warmup, args.all_collectors)  # fmt: skip
        rows += fleet_rows
        details += fleet_details
    if args.soak:
        progress(f"the soak: {args.soak_instances} instances for {args.soak_duration:g} s")
        row, lines = bench_soak(
            args.soak_duration, args.soak_instances, args.soak_step, args.soak_window
        )
        rows.append(row)
        details += lines
    if args.demo_memory:
        progress(f"the demo for {args.demo_duration:g} s")
        row, rss_timeline = bench_demo_memory(args.demo_duration)
        rows.append(row)
        details.append("demo RSS (MiB) every 10 s: " + " ".join(f"{rss / 1024:.0f}" for _, rss in rss_timeline))  # fmt: skip
    _print_table(rows)
    for line in details:
        print(line)
    return 0


def progress(message: str) -> None:
    """What the long runs are doing, on stderr: the table comes at the end."""
    print(f"{time.strftime('%H:%M:%S')} {message}", file=sys.stderr, flush=True)


def _print_table(rows: Sequence[Row]) -> None:
    header = ("benchmark", "measured", "baseline", "ratio", "goal")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(5)]
    for line in [header, tuple("-" * w for w in widths), *rows]:
        print(" | ".join(str(cell).ljust(width) for cell, width in zip(line, widths, strict=True)))


if __name__ == "__main__":
    raise SystemExit(main())
