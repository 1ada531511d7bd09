"""Benchmarks of greenapi-exporter, each against a baseline measured in the same run.

    python benchmarks/run.py                # the quick ones (about two minutes)
    python benchmarks/run.py --scale        # also 1,000 instances polled every 60 s (about 5 minutes)
    python benchmarks/run.py --scale --all-collectors   # the same with state, queue, incoming
    python benchmarks/run.py --demo-memory  # also the demo's RSS for 10 minutes, no MALLOC_ settings

Prints a table: figure, baseline, ratio, goal. Figures are medians of several runs; CPU is
process time (not wall time), so a busy machine slows them less than it slows the clock.
Run it on an idle machine anyway. The process sets up glibc's allocator as the exporter does
at start, so that the figures are the exporter's.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import json
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
from collections.abc import Callable, Iterable, Mapping
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

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from exporter import __version__  # noqa: E402
from exporter.app import Exporter  # noqa: E402
from exporter.cli import ENV_PREFIX  # noqa: E402
from exporter.client import RESULTS, GreenApiClient  # noqa: E402
from exporter.collector import ExporterSnapshot, GreenApiCollector, instance_families  # noqa: E402
from exporter.collectors import CollectorStatus, Reading  # noqa: E402
from exporter.collectors.state import INSTANCE_STATES  # noqa: E402
from exporter.config import COLLECTORS, parse_config  # noqa: E402
from exporter.exposition import OPENMETRICS, TEXT, Exposition, finish, render  # noqa: E402
from exporter.journal import journal_from_elements, parse_journal  # noqa: E402
from exporter.memory import TRIM_MIN_INTERVAL, Allocator  # noqa: E402
from exporter.poller import InstanceSnapshot  # noqa: E402
from exporter.tracker import (  # noqa: E402
    LAG_BUCKETS,
    OUTCOMES,
    IncomingSnapshot,
    IncomingTracker,
    MessageTracker,
    TrackerSnapshot,
)

Row = tuple[str, str, str, str, str]

# Prometheus's own default, which asks for OpenMetrics first.
PROMETHEUS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
    "text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
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


def start_simulators(
    count: int, instances: int, rate_per_minute: float
) -> tuple[list[subprocess.Popen[bytes]], list[dict[str, Any]]]:
    """Simulators in their own processes, so that their CPU is not counted as ours."""
    processes, configs = [], []
    for index in range(count):
        port = free_port()
        args = [sys.executable, "-m", "exporter.simulator", "--listen", f"127.0.0.1:{port}",
                "--instances", str(instances), "--seed", str(index + 1), "--rate", str(rate_per_minute),
                "--no-rate-limit", "--first-instance", str(index * instances + 1)]  # fmt: skip
        processes.append(subprocess.Popen(args, cwd=ROOT, stderr=subprocess.DEVNULL))
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 300
        while True:
            try:
                configs.append(
                    {
                        "url": url,
                        "instances": requests.get(url + "/_sim/instances", timeout=5).json(),
                    }
                )
                break
            except requests.RequestException:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
    return processes, configs


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
    processes, sims = start_simulators(1, 1, 60.0)  # one message a second: the 5,000 cap is reached
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
        baseline = median_cpu(floor, repeats)
        baseline_orjson = median_cpu(floor_orjson, repeats)
        measured, trim = _poll_and_trim(ours, allocator, repeats)
    finally:
        for process in processes:
            process.terminate()
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


def bench_memory() -> Row:
    """Bytes per tracked message: everything a tracker of N messages holds (keys included),
    divided by N."""
    count = 200_000
    gc.collect()
    rss_before = _rss_kib()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    tracker = MessageTracker(window=86400 * 90, undelivered_after=300, baseline_before=None)
    elements: list[object] = [
        {"idMessage": f"BAE5{index:012X}", "chatId": f"7900{index % 5000:07d}@c.us", "timestamp": 1_800_000_000 + index,
         "statusMessage": "read", "typeMessage": "textMessage", "sendByApi": True}
        for index in range(count)
    ]  # fmt: skip
    journal = journal_from_elements(elements)
    del elements
    tracker.observe(journal, 1_800_000_000 + count, 10**9)
    del journal  # what stays is the tracker's own memory, the key strings included
    gc.collect()
    held = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    rss = (_rss_kib() - rss_before) * 1024
    per_message = held / count
    # The baseline: a plain dict of the same keys to None, the least any tracker must hold.
    tracemalloc.start()
    start = tracemalloc.get_traced_memory()[0]
    floor = {f"7900{index % 5000:07d}@c.us\x1fBAE5{index:012X}": None for index in range(count)}
    floor_bytes = (tracemalloc.get_traced_memory()[0] - start) / count
    tracemalloc.stop()
    del floor, tracker
    return ("Memory per tracked message (key included)", f"{per_message:.0f} B (RSS growth {rss / count:.0f} B)",
            f"{floor_bytes:.0f} B (dict of keys)", f"{per_message / floor_bytes:.2f}x", "<= 250 B")  # fmt: skip


def _rss_kib(pid: int | str = "self") -> int:
    """VmRSS of a process, in KiB (0 if the kernel does not say)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def bench_scale(duration: float, all_collectors: bool = False) -> Row:
    """One exporter process polling 1,000 simulated instances every 60 s (with every
    collector: four requests per instance and poll)."""
    collect = ["outgoing", "state", "queue", "incoming"] if all_collectors else ["outgoing"]
    # About 1,440 messages a day each.
    processes, sims = start_simulators(4, 250, 1.0)
    try:
        document: dict[str, Any] = {
            "defaults": {"poll_interval": "60s", "timeout": "20s", "collect": collect},
            "concurrency": 16,
            "instances": [
                {"name": i["name"], "id_instance": i["id_instance"], "api_token": i["token"], "api_url": sim["url"]}
                for sim in sims for i in sim["instances"]
            ],
        }  # fmt: skip
        config = parse_config(document, "bench", {})
        exporter = Exporter(lambda: config)
        started_cpu, started = cpu(), time.monotonic()
        exporter.start()
        time.sleep(duration)
        used = cpu() - started_cpu
        elapsed = time.monotonic() - started
        late = exporter._scheduler.max_lateness
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        snap = exporter.snapshot()
        counts = [polls for i in snap.instances for polls in i.polls_total.values()]
        ok = sum(polls["success"] for polls in counts)
        failed = sum(sum(polls.values()) - polls["success"] for polls in counts)
        exporter.stop()
    finally:
        for process in processes:
            process.terminate()
    what = f"{len(collect)} collectors" if all_collectors else "the journal"
    return (f"1,000 instances every 60 s ({what}), {elapsed:.0f} s: {ok} requests, {failed} failed",
            f"{used / elapsed * 100:.0f} % of a core, peak RSS {peak:.0f} MiB",
            "one core", f"latest start {late:.1f} s late", "< 50 %, no poll an interval late")  # fmt: skip


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


def _wait_healthy(child: subprocess.Popen[bytes], url: str, output: IO[bytes]) -> None:
    deadline = time.monotonic() + 60
    while True:
        _check_running(child, output)
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"the demo did not answer {url} within 60 s")
        time.sleep(0.2)


def _check_running(child: subprocess.Popen[bytes], output: IO[bytes]) -> None:
    if child.poll() is not None:
        output.seek(0)
        tail = output.read().decode(errors="replace")[-2000:]
        raise SystemExit(f"the demo exited with {child.returncode}:\n{tail}")


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
    try:
        response = session.get(url, timeout=SCRAPE_TIMEOUT)
    except requests.RequestException as exc:
        return f"{type(exc).__name__}: {exc}"
    content_type = response.headers.get("Content-Type", "")
    if response.status_code != 200:
        return f"HTTP {response.status_code}"
    if not content_type.startswith("application/openmetrics-text"):
        return f"Content-Type {content_type!r}, not OpenMetrics"
    try:
        for _ in parse_openmetrics(response.text):
            pass
    except Exception as exc:  # the parser raises ValueError mostly, but not only
        return f"invalid OpenMetrics: {exc}"
    return ""


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--scale", action="store_true", help="also run the 1,000-instance test (slow)"
    )
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--duration", type=float, default=200.0, help="seconds of the scale test")
    parser.add_argument("--all-collectors", action="store_true",
                        help="the scale test with state, queue and incoming as well")  # fmt: skip
    parser.add_argument("--demo-memory", action="store_true",
                        help="also run the demo exporter, scraped as Prometheus does, and sample its RSS")  # fmt: skip
    parser.add_argument("--demo-duration", type=float, default=600.0, metavar="SECONDS",
                        help="seconds of the demo memory run (default 600; more than 60)")  # fmt: skip
    parser.add_argument("--only-scale", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.demo_memory and args.demo_duration <= 60:
        parser.error("--demo-duration: more than 60 s, the run compares the end with 1 minute")
    # As the exporter does at start, before any thread: bounded arenas, fixed mmap threshold.
    Allocator().configure()
    if args.only_scale:  # in a process of its own, so that its peak RSS is its own
        print(json.dumps(bench_scale(args.duration, args.all_collectors)))
        return 0

    print(f"greenapi-exporter {__version__}, Python {platform.python_version()}, {platform.machine()}, "
          f"{os.cpu_count()} CPUs, {platform.platform()}")  # fmt: skip
    rows = [bench_poll(args.repeats), *bench_render(args.repeats), bench_memory()]
    if args.scale:
        output = subprocess.run(
            [sys.executable, __file__, "--only-scale", "--duration", str(args.duration),
             *(["--all-collectors"] if args.all_collectors else [])],
            check=True, capture_output=True, text=True,
        ).stdout  # fmt: skip
        name, measured, baseline, ratio, goal = (str(cell) for cell in json.loads(output.splitlines()[-1]))  # fmt: skip
        rows.append((name, measured, baseline, ratio, goal))
    rss_timeline: list[tuple[float, int]] = []
    if args.demo_memory:
        row, rss_timeline = bench_demo_memory(args.demo_duration)
        rows.append(row)
    header = ("benchmark", "measured", "baseline", "ratio", "goal")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(5)]
    for line in [header, tuple("-" * w for w in widths), *rows]:
        print(" | ".join(str(cell).ljust(width) for cell, width in zip(line, widths, strict=True)))
    if rss_timeline:
        print(
            "demo RSS (MiB) every 10 s: " + " ".join(f"{rss / 1024:.0f}" for _, rss in rss_timeline)
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
