"""Answers are bounded by what they hold: valid but useless JSON cannot cost gigabytes or hold
up scrapes. The exporter runs as a process against a simulator whose instance answers
``[{},{},…]`` by the tens of megabytes."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from exporter.simulator import Simulator
from tests.conftest import ExporterProcess, value, wait_until

pytestmark = pytest.mark.process


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


@pytest.fixture(scope="module")
def flooded(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Simulator, ExporterProcess]]:
    sim = Simulator(instances=2, seed=9, history=600)
    sim.start()
    sim.set_fault("sim-1", "empty_objects", megabytes=40)  # about 14 million objects
    config = sim.exporter_config(poll_interval="2s", timeout="20s")
    exporter = ExporterProcess(tmp_path_factory.mktemp("bounds"), config)
    try:
        exporter.wait_ready(timeout=60)
        yield sim, exporter
    finally:
        exporter.stop()
        sim.stop()


def test_a_journal_of_millions_of_empty_objects_is_an_invalid_response(
    flooded: tuple[Simulator, ExporterProcess],
) -> None:
    _, exporter = flooded
    samples = wait_until(
        lambda: (
            (s := exporter.scrape())
            and (value(s, "greenapi_polls_total", name="sim-1", result="invalid_response") or 0)
            >= 2
            and s
        ),
        timeout=60,
    )
    assert value(samples, "greenapi_up", name="sim-1") == 0
    assert "far beyond a journal" in exporter.get("/").text


def test_it_costs_the_exporter_no_more_than_the_answer_itself(
    flooded: tuple[Simulator, ExporterProcess],
) -> None:
    """Decoded, those objects would take gigabytes; refused before decoding, the answer's
    own 40 MB (and its copy) is what is held, briefly."""
    _, exporter = flooded
    peak = 0.0
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        peak = max(peak, rss_mib(exporter.process.pid))
        time.sleep(0.05)
    assert peak < 400, f"peak RSS {peak:.0f} MiB"


def test_scrapes_are_answered_promptly_meanwhile(
    flooded: tuple[Simulator, ExporterProcess],
) -> None:
    _, exporter = flooded
    slowest = 0.0
    for _ in range(20):
        started = time.monotonic()
        assert exporter.get("/metrics").status_code == 200
        slowest = max(slowest, time.monotonic() - started)
        time.sleep(0.2)
    assert slowest < 2.0, f"slowest scrape {slowest:.2f}s"


def test_the_healthy_instance_stays_up(flooded: tuple[Simulator, ExporterProcess]) -> None:
    _, exporter = flooded
    assert value(exporter.scrape(), "greenapi_up", name="sim-2") == 1
