"""The state file under crashes (README, "Restarts"), against real processes: an exporter
killed with ``kill -9`` again and again while a scraper scrapes it continuously never shows
a counter lower than one it showed before; a crash during a long save leaves a temporary
file that the next start removes, and a stop during one leaves none.
"""

from __future__ import annotations

import json
import random
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from exporter.simulator import Simulator
from exporter.state import FORMAT
from tests.conftest import ExporterProcess, Samples, value, wait_until

pytestmark = pytest.mark.process

KILLS = 6
Series = tuple[str, frozenset[tuple[str, str]]]


class Scraper(threading.Thread):
    """Scrapes ``/metrics`` of whichever exporter runs now, back to back, and keeps every
    sample of every instance's counter and histogram series in the order it was scraped
    (the process's own, such as ``process_cpu_seconds_total``, start again with it)."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.url: str | None = None
        self.run_index = 0  # which exporter process the scrapes come from
        self.seen: dict[Series, list[tuple[float, int]]] = {}
        self.scrapes: dict[int, int] = {}  # process → successful scrapes
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.is_set():
            url, run_index = self.url, self.run_index
            try:
                text = requests.get(f"{url}/metrics", timeout=2).text if url else None
            except requests.RequestException:
                text = None  # down (killed, or not up yet)
            if text is None:
                time.sleep(0.01)
                continue
            for family in text_string_to_metric_families(text):
                if family.type not in ("counter", "histogram"):
                    continue
                for sample in family.samples:
                    if "name" in sample.labels:
                        key = (sample.name, frozenset(sample.labels.items()))
                        self.seen.setdefault(key, []).append((sample.value, run_index))
            self.scrapes[run_index] = self.scrapes.get(run_index, 0) + 1

    def stop(self) -> None:
        self._done.set()
        self.join(5)

    def decreases(self) -> list[str]:
        """Every place where a series went down: "name{labels}: 12 (process 3) after 15
        (process 2)"."""
        found = []
        for (name, labels), values in self.seen.items():
            highest, where = values[0]
            for current, run_index in values[1:]:
                if current < highest:
                    shown = ",".join(f"{k}={v}" for k, v in sorted(labels))
                    found.append(f"{name}{{{shown}}}: {current} (process {run_index}) after "
                                 f"{highest} (process {where})")  # fmt: skip
                    break
                highest, where = current, run_index
        return found


@pytest.fixture
def busy_simulator() -> Iterator[Simulator]:
    """Two instances sending ten messages a second each, with a short history."""
    sim = Simulator(instances=2, seed=41, rate=10, history=120, rate_limit=False)
    sim.start()
    yield sim
    sim.stop()


def test_no_counter_goes_down_across_kill_9_restarts(
    busy_simulator: Simulator, tmp_path: Path
) -> None:
    config = busy_simulator.exporter_config(
        poll_interval="1s", undelivered_after="3s", resync_interval="4s",
        collect=["outgoing", "state"],
    )  # fmt: skip
    config["state_file"] = str(tmp_path / "state.json")
    rng = random.Random(5)
    scraper = Scraper()
    scraper.start()
    try:
        for run_index in range(KILLS + 1):
            exporter = ExporterProcess(tmp_path, config)
            scraper.url, scraper.run_index = exporter.url, run_index
            exporter.wait_healthy()
            wait_until(lambda: scraper.scrapes.get(run_index, 0) >= 3)  # noqa: B023
            if run_index == KILLS:
                break
            time.sleep(rng.uniform(0.5, 2.5))  # polls and saves go on meanwhile
            exporter.stop(signal.SIGKILL)
            (tmp_path / "exporter.log").rename(tmp_path / f"exporter-{run_index}.log")
        samples = exporter.scrape()
        exporter.stop()
    finally:
        scraper.stop()
    assert len(scraper.seen) > 50  # every counter, bucket, sum and count of both instances
    assert scraper.decreases() == []
    # It counted across the restarts: messages, judged deliveries, polls of both collectors.
    for name in ("sim-1", "sim-2"):
        assert total(samples, "greenapi_outgoing_messages_total", name=name) > 50
        assert total(samples, "greenapi_outgoing_delivery_outcomes_total", name=name) > 0
        assert total(samples, "greenapi_polls_total", name=name, collector="state") >= 2
    assert all(scraper.scrapes.get(index, 0) >= 3 for index in range(KILLS + 1))
    saved = (tmp_path / "state.json").read_bytes()
    assert all(i.token.encode() not in saved for i in busy_simulator.instances)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("state.json")) == [
        "state.json", "state.json.lock",
    ]  # fmt: skip


def total(samples: Samples, metric: str, /, **labels: str) -> float:
    """The sum of the samples of ``metric`` whose labels include ``labels``."""
    wanted = set(labels.items())
    return sum(v for (n, found), v in samples.items() if n == metric and wanted <= found)


def version_1_state(sim: Simulator, messages: int) -> dict[str, Any]:
    """A state file as earlier versions wrote it, with one instance tracking many messages:
    its first save here rewrites it whole, which takes a while."""
    instance = sim.instances[0]
    now = int(time.time())
    rows = [[f"7900{i:07d}@c.us\x1fBAE5{i:012X}", ["sent"], now - 3000 + i // 100,
             now - 3000 + i // 100, False] for i in range(messages)]  # fmt: skip
    histogram = {"counts": [0] * 13, "count": 0, "total": 0.0}
    tracker = {"messages_total": [["textMessage", True, messages]],
               "status_reached": {"sent": messages, "delivered": 0, "read": 0},
               "forwarded_total": 0, "delivery_lag": histogram, "read_lag": histogram,
               "window_keys": [], "messages": rows}  # fmt: skip
    entry = {"id_instance": instance.id_instance, "polls_total": {"success": 7},
             "tracker": tracker}  # fmt: skip
    return {"format": FORMAT, "version": 1, "saved_at": now, "instances": {instance.name: entry}}


def start_long_rewrite(tmp_path: Path, sim: Simulator) -> tuple[ExporterProcess, Path]:
    """An exporter whose first save is a long rewrite; returned once its temporary file
    exists."""
    path = tmp_path / "state.json"
    path.write_text(json.dumps(version_1_state(sim, 200_000), separators=(",", ":")))
    config = sim.exporter_config(poll_interval="1s")
    config["state_file"] = str(path)
    exporter = ExporterProcess(tmp_path, config)
    temporary = wait_until(
        lambda: next(iter(tmp_path.glob("state.json.tmp-*")), None), timeout=30, interval=0.005
    )
    return exporter, temporary


def test_a_kill_9_during_a_long_save_leaves_a_temporary_file_the_next_start_removes(
    tmp_path: Path,
) -> None:
    sim = Simulator(instances=1, seed=42, rate=1, history=60)
    sim.start()
    try:
        exporter, temporary = start_long_rewrite(tmp_path, sim)
        exporter.stop(signal.SIGKILL)
        assert temporary.exists()
        (tmp_path / "exporter.log").rename(tmp_path / "killed.log")
        config = sim.exporter_config(poll_interval="1s")
        config["state_file"] = str(tmp_path / "state.json")
        again = ExporterProcess(tmp_path, config)
        again.wait_healthy(timeout=30)
        assert not temporary.exists()
        assert "temporary file of an interrupted save removed" in again.log()
        # The file it was replacing is whole: the counts resume from it.
        assert value(again.scrape(), "greenapi_outgoing_messages_total", name="sim-1") == 200_000
        again.stop()
    finally:
        sim.stop()


def test_a_stop_during_a_long_save_leaves_no_temporary_file(tmp_path: Path) -> None:
    sim = Simulator(instances=1, seed=43, rate=1, history=60)
    sim.start()
    try:
        exporter, temporary = start_long_rewrite(tmp_path, sim)
        before = (tmp_path / "state.json").read_bytes()
        assert exporter.stop(signal.SIGTERM) == 0
        assert not temporary.exists()
        assert list(tmp_path.glob("state.json.tmp-*")) == []
        assert (tmp_path / "state.json").read_bytes() == before  # abandoned, not half done
    finally:
        sim.stop()
