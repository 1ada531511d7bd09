"""Benchmarks of greenapi-exporter, each against a baseline measured in the same run.

    python benchmarks/run.py            # the quick ones (about a minute)
    python benchmarks/run.py --scale    # also 1,000 instances polled every 60 s (about 5 minutes)
    python benchmarks/run.py --scale --all-collectors   # the same with state, queue, incoming

Prints a table: figure, baseline, ratio, goal. Figures are medians of several runs; CPU is
process time (not wall time), so a busy machine slows them less than it slows the clock.
Run it on an idle machine anyway.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import resource
import socket
import statistics
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

import requests
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from exporter import __version__  # noqa: E402
from exporter import journal as journal_module  # noqa: E402
from exporter.app import Exporter  # noqa: E402
from exporter.client import RESULTS, GreenApiClient  # noqa: E402
from exporter.collector import ExporterSnapshot, GreenApiCollector  # noqa: E402
from exporter.config import parse_config  # noqa: E402
from exporter.exposition import TextExposition  # noqa: E402
from exporter.journal import journal_from_elements, parse_journal  # noqa: E402
from exporter.poller import InstanceSnapshot  # noqa: E402
from exporter.tracker import LAG_BUCKETS, MessageTracker  # noqa: E402

Row = tuple[str, str, str, str, str]


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
    """CPU of one poll of a 5,000-message journal versus GET + json.loads of the same answer."""
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

        client = GreenApiClient()
        tracker = MessageTracker(window=86400, undelivered_after=300, baseline_before=None)

        def ours() -> None:
            fetch = client.get(url, {"minutes": "1440"}, 30, instance["token"])
            assert fetch.body is not None
            tracker.observe(parse_journal(fetch.body), time.time(), 5000)

        ours()  # the first poll fills the tracker; steady state is what runs every minute
        baseline = median_cpu(floor, repeats)
        measured = median_cpu(ours, repeats)
        fast_loads, journal_module._fast_loads = journal_module._fast_loads, None
        stdlib_only = median_cpu(ours, repeats)  # without the optional orjson
        journal_module._fast_loads = fast_loads
    finally:
        for process in processes:
            process.terminate()
    parser = "orjson" if fast_loads is not None else "json"
    return (f"CPU per poll, {count} messages ({size / 1e6:.1f} MB)",
            f"{measured * 1000:.1f} ms with {parser} ({stdlib_only * 1000:.1f} ms, {stdlib_only / baseline:.2f}x with json)",
            f"{baseline * 1000:.1f} ms (GET + json.loads)", f"{measured / baseline:.2f}x", "<= 1.3x")  # fmt: skip


def snapshot_for(instances: int) -> ExporterSnapshot:
    """A realistic scrape: 1,000 instances with a few types, statuses and full histograms."""
    tracker = MessageTracker(window=86400, undelivered_after=300, baseline_before=None)
    elements: list[object] = []
    for index, (status, kind) in enumerate([("read", "textMessage"), ("delivered", "textMessage"),
                                            ("sent", "imageMessage"), ("read", "extendedTextMessage"),
                                            ("noAccount", "textMessage")] * 20):  # fmt: skip
        elements.append({"idMessage": f"M{index}", "chatId": "1@c.us", "timestamp": 1_800_000_000 + index,
                         "statusMessage": status, "typeMessage": kind, "sendByApi": index % 7 != 0})  # fmt: skip
    tracked = tracker.observe(journal_from_elements(elements), 1_800_000_100, 5000)
    polls = MappingProxyType({"outgoing": {result: 1000 + i for i, result in enumerate(RESULTS)}})
    return ExporterSnapshot(
        version=__version__,
        instances=tuple(
            InstanceSnapshot(
                name=f"bot-{i}",
                id_instance=f"{1101000000 + i}",
                labels=(("team", f"t{i % 7}"),),
                window_seconds=86400,
                polled=True,
                up=True,
                last_result="success",
                last_poll_timestamp=1.8e9,
                last_poll_duration=0.2,
                last_success_timestamp=1.8e9,
                polls_total=polls,
                tracker=tracked,
            )
            for i in range(instances)
        ),
        label_names=("team",),
        reload_successful=True,
        reload_success_timestamp=1.8e9,
    )


def bench_render(repeats: int) -> Row:
    snapshot = snapshot_for(1000)
    registry = CollectorRegistry(auto_describe=True)
    registry.register(GreenApiCollector(lambda: snapshot))
    text = generate_latest(registry)
    samples = sum(1 for line in text.splitlines() if line and not line.startswith(b"#"))

    # Baseline: the same number of samples, in gauges, counters and histograms of a plain registry.
    plain = CollectorRegistry()
    per_instance = samples // 1000
    histogram_samples = 2 * (len(LAG_BUCKETS) + 3)
    gauge = Gauge("plain_gauge", "g", ["name", "id_instance", "team", "k"], registry=plain)
    counter = Counter("plain_counter", "c", ["name", "id_instance", "team", "k"], registry=plain)
    hist = Histogram(
        "plain_hist", "h", ["name", "id_instance", "team", "k"], buckets=LAG_BUCKETS, registry=plain
    )
    for i in range(1000):
        labels = (f"bot-{i}", f"{1101000000 + i}", f"t{i % 7}")
        hist.labels(*labels, "d").observe(3)
        hist.labels(*labels, "r").observe(30)
        rest = per_instance - histogram_samples
        for k in range(rest // 2):
            gauge.labels(*labels, str(k)).set(k)
            counter.labels(*labels, str(k)).inc(k)

    exposition = TextExposition()
    assert exposition.render(snapshot) == generate_latest(registry)
    # A scrape formats again only the instances polled since the previous scrape: with 60 s
    # polls and 15 s scrapes, a quarter of them.
    changed = 250
    instances = list(snapshot.instances)

    def polls() -> None:  # in the poll threads, right after each poll
        for index in range(changed):
            previous = instances[index]
            instances[index] = replace(previous, last_poll_duration=previous.last_poll_duration + 1)
            exposition.refresh(instances[index], snapshot.label_names)

    def scrape() -> None:
        exposition.render(replace(snapshot, instances=tuple(instances)))

    warm_samples = []
    for _ in range(repeats):
        polls()
        warm_samples.append(_wall(scrape))
    warm = statistics.median(warm_samples)
    per_poll = _wall(polls) / changed
    cold = statistics.median(
        _wall(lambda: TextExposition().render(snapshot)) for _ in range(repeats)
    )
    base = statistics.median(_wall(lambda: generate_latest(plain)) for _ in range(repeats))
    return (f"/metrics for 1,000 instances ({samples} samples, {len(text) / 1e6:.1f} MB), 250 polled since the last scrape",
            f"{warm * 1000:.0f} ms (+{per_poll * 1000:.1f} ms per poll; cold: {cold * 1000:.0f} ms)",
            f"{base * 1000:.0f} ms (plain registry)", f"{warm / base:.3f}x", "<= 1.5x and < 250 ms")  # fmt: skip


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
    elements = [
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


def _rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
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
    parser.add_argument("--only-scale", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.only_scale:  # in a process of its own, so that its peak RSS is its own
        print(json.dumps(bench_scale(args.duration, args.all_collectors)))
        return 0

    print(f"greenapi-exporter {__version__}, Python {platform.python_version()}, {platform.machine()}, "
          f"{os.cpu_count()} CPUs, {platform.platform()}")  # fmt: skip
    rows = [bench_poll(args.repeats), bench_render(args.repeats), bench_memory()]
    if args.scale:
        output = subprocess.run(
            [sys.executable, __file__, "--only-scale", "--duration", str(args.duration),
             *(["--all-collectors"] if args.all_collectors else [])],
            check=True, capture_output=True, text=True,
        ).stdout  # fmt: skip
        rows.append(tuple(json.loads(output.splitlines()[-1])))  # type: ignore[arg-type]
    header = ("benchmark", "measured", "baseline", "ratio", "goal")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(5)]
    for row in [header, tuple("-" * w for w in widths), *rows]:
        print(" | ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
