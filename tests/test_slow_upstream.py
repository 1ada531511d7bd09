"""The exporter as a process while ``concurrency`` instances answer a byte at a time.

Eight instances (as many as there are poll workers) point at a fake GREEN-API that never
finishes an answer: it trickles the status line, a header, the body, or endless interim
``100 Continue`` answers, a byte or an answer every 0.2 s. Two more instances are healthy
(the simulator). Every poll of a trickling instance must end within ``timeout`` and free its
worker, so the healthy instances keep their ``poll_interval``: each of their polls may be late
by at most one ``timeout`` (the time for a worker to come free), and ``/-/ready`` turns 200 once
every instance has had a first poll. Prints the figures quoted in the README.
"""

from __future__ import annotations

import itertools
import re
import time
from collections.abc import Iterator
from typing import Any

import pytest

from exporter.simulator import Simulator
from tests.conftest import ExporterProcess, value, wait_until
from tests.test_client import Exchange, HostileServer

POLL_INTERVAL = 2.0
TIMEOUT = 1.0
CONCURRENCY = 8
WINDOW = 20.0  # seconds over which the healthy instances' polls are counted
JITTER = 1.03  # the poller spreads intervals by ±3 %
SLACK = 0.75  # for a busy two-core machine
HEALTHY = ("sim-9", "sim-10")

# What the fake sends first, then what it trickles forever (as far as a test can tell).
TRICKLES: dict[str, tuple[bytes, bytes]] = {
    "status line": (b"", b"HTTP/1.1 200 " + b"O" * 10_000),
    "headers": (b"HTTP/1.1 200 OK\r\nX-Padding: ", b"a" * 10_000),
    "body": (b"HTTP/1.1 200 OK\r\nContent-Length: 10000\r\n\r\n[", b" " * 10_000),
}


def never_finishing(ids: dict[str, str]) -> Any:
    """A script that answers each instance (by id) in the way ``ids`` names."""

    def script(exchange: Exchange) -> bool:
        match = re.search(rb"/waInstance(\d+)/", exchange.head)
        way = ids.get(match.group(1).decode() if match else "", "status line")
        if way == "interim answers":
            while not exchange.stopping.wait(0.2):
                exchange.send(b"HTTP/1.1 100 Continue\r\n\r\n")
        else:
            first, rest = TRICKLES[way]
            exchange.send(first)
            exchange.trickle(rest, interval=0.2)
        return False

    return script


@pytest.fixture(scope="module")
def slow_upstream(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Simulator, ExporterProcess, float]]:
    sim = Simulator(instances=10, seed=13, history=600, rate=1 / 30)
    sim.start()
    ways = [*TRICKLES, "interim answers"] * 2
    ids = {
        instance.id_instance: way
        for instance, way in zip(sim.instances[: len(ways)], ways, strict=True)
    }
    upstream = HostileServer(never_finishing(ids))
    config: dict[str, Any] = sim.exporter_config(poll_interval="2s", timeout="1s")
    config["concurrency"] = CONCURRENCY
    for instance in config["instances"]:
        if instance["id_instance"] in ids:
            instance["api_url"] = f"http://127.0.0.1:{upstream.port}"
    started = time.monotonic()
    exporter = ExporterProcess(tmp_path_factory.mktemp("slow-upstream"), config)
    try:
        exporter.wait_healthy()
        yield sim, exporter, started
    finally:
        exporter.stop()
        upstream.stop()
        sim.stop()


def test_the_exporter_becomes_ready_while_concurrency_instances_trickle(
    slow_upstream: tuple[Simulator, ExporterProcess, float],
) -> None:
    _, exporter, started = slow_upstream
    wait_until(lambda: exporter.get("/-/ready").status_code == 200, timeout=20)
    ready_after = time.monotonic() - started
    samples = exporter.scrape()
    trickling = [f"sim-{n}" for n in range(1, CONCURRENCY + 1)]
    for name in trickling:
        assert value(samples, "greenapi_up", name=name) == 0, name
        assert (value(samples, "greenapi_polls_total", name=name, result="timeout") or 0) >= 1
    print(f"\nslow upstream: ready after {ready_after:.1f} s")
    # Every instance's first poll is spread over min(poll_interval, 2 s) and a trickling
    # one ends within timeout: the first polls are all over within a few seconds.
    assert ready_after < 2.0 + TIMEOUT + 5.0


def test_healthy_instances_keep_their_schedule_while_concurrency_instances_trickle(
    slow_upstream: tuple[Simulator, ExporterProcess, float],
) -> None:
    sim, exporter, _ = slow_upstream

    def successes() -> dict[str, float]:
        samples = exporter.scrape()
        return {
            name: value(samples, "greenapi_polls_total", name=name, result="success") or 0.0
            for name in HEALTHY
        }

    wait_until(lambda: all(successes().values()), timeout=20)
    window_start, before = time.time(), successes()
    time.sleep(WINDOW)
    after, window_end = successes(), time.time()
    expected = WINDOW / POLL_INTERVAL
    for name in HEALTHY:
        achieved = after[name] - before[name]
        times = [float(e["time"]) for e in sim.requests_log(name)
                 if window_start - POLL_INTERVAL * 2 <= float(e["time"]) <= window_end]  # fmt: skip
        gaps = [b - a for a, b in itertools.pairwise(times)]
        print(
            f"\nslow upstream: {name} polled {achieved:.0f} times in {WINDOW:.0f} s "
            f"(poll_interval {POLL_INTERVAL:g} s implies {expected:.0f}); "
            f"gaps between requests {min(gaps):.2f} to {max(gaps):.2f} s"
        )
        # Each poll is late by at most one timeout: never fewer polls than that allows.
        assert achieved >= int(WINDOW / (POLL_INTERVAL * JITTER + TIMEOUT)), (name, achieved)
        assert max(gaps) <= POLL_INTERVAL * JITTER + TIMEOUT + SLACK, (name, gaps)
