"""The state file: counters survive restarts; a bad file is reported and ignored."""

from __future__ import annotations

import json
import os
import signal
import stat
import time
from pathlib import Path
from typing import Any

import pytest

from exporter.config import parse_config
from exporter.journal import journal_from_elements
from exporter.poller import InstancePoller
from exporter.simulator import Simulator
from exporter.state import FORMAT, VERSION, StateError, load_state, save_state
from exporter.tracker import MessageTracker
from tests.conftest import ExporterProcess, value, wait_until

START = 1_800_000_000.0


def element(id_: str, ts: float, status: str) -> dict[str, object]:
    return {"idMessage": id_, "chatId": "1@c.us", "timestamp": int(ts), "statusMessage": status,
            "typeMessage": "textMessage", "sendByApi": True}  # fmt: skip


def test_a_restored_tracker_continues_counts_and_lags() -> None:
    first = MessageTracker(window=86400, undelivered_after=300, baseline_before=None)
    first.observe(journal_from_elements([element("a", START, "sent")]), START + 1, 5000)
    saved = json.loads(json.dumps(first.export()))

    second = MessageTracker(window=86400, undelivered_after=300, baseline_before=START + 10**6)
    second.restore(saved)
    snap = second.observe(
        journal_from_elements([element("a", START + 7, "delivered")]), START + 60, 5000
    )
    assert dict(snap.messages_total) == {("textMessage", True): 1}
    assert dict(snap.status_reached) == {"sent": 1, "delivered": 1, "read": 0}
    assert (snap.delivery_lag.count, snap.delivery_lag.total) == (1, 7)


def test_a_restored_tracker_counts_what_came_while_it_was_down() -> None:
    first = MessageTracker(window=86400, undelivered_after=300, baseline_before=None)
    first.observe(journal_from_elements([]), START, 5000)
    second = MessageTracker(window=86400, undelivered_after=300, baseline_before=START + 3600)
    second.restore(first.export())
    snap = second.observe(
        journal_from_elements([element("b", START + 100, "sent")]), START + 3600, 5000
    )
    assert dict(snap.messages_total) == {("textMessage", True): 1}


@pytest.mark.parametrize(
    "broken",
    [
        None,
        [],
        {"messages_total": "x"},
        {"messages_total": [], "status_reached": {}, "forwarded_total": -1},
    ],
)
def test_restoring_foreign_tracker_data_fails_without_changing_anything(broken: Any) -> None:
    tracker = MessageTracker(window=86400, undelivered_after=300, baseline_before=None)
    tracker.observe(journal_from_elements([element("a", START, "sent")]), START + 1, 5000)
    before = tracker.export()
    with pytest.raises((ValueError, KeyError)):
        tracker.restore(broken)
    assert tracker.export() == before


def test_an_instance_with_unusable_incoming_state_restores_nothing() -> None:
    config = parse_config({"instances": [{"name": "bot", "id_instance": "1", "api_token": "t",
                                          "collect": ["outgoing", "incoming"]}]}, "test", {})  # fmt: skip
    tracker = MessageTracker(window=86400, undelivered_after=300, baseline_before=None)
    tracker.observe(journal_from_elements([element("a", START, "sent")]), START + 1, 5000)
    data = InstancePoller(config.instances[0], baseline_before=None).export()
    data["tracker"] = tracker.export()  # usable: only the incoming part is not
    data["polls_total"] = {"outgoing": {"success": 5}}
    data["incoming"] = {"messages_total": {"textMessage": -1}, "window_types": [], "messages": []}
    poller = InstancePoller(config.instances[0], baseline_before=None)
    before = poller.export()
    with pytest.raises(ValueError):
        poller.restore(data)
    assert poller.export() == before


def test_state_is_written_atomically_with_owner_only_permissions(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    save_state(str(path), {"bot": {"id_instance": "1"}})
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_state(str(path)) == {"bot": {"id_instance": "1"}}
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]


def test_a_missing_state_file_is_a_first_start() -> None:
    assert load_state("/nonexistent/state.json") == {}


@pytest.mark.parametrize(
    "content",
    [
        "{not json",
        json.dumps({"format": "other"}),
        json.dumps({"format": FORMAT, "version": 99}),
        json.dumps({"format": FORMAT, "version": VERSION, "instances": []}),
    ],
    ids=["corrupt", "foreign", "version", "shape"],
)
def test_an_unusable_state_file_is_reported(tmp_path: Path, content: str) -> None:
    path = tmp_path / "state.json"
    path.write_text(content)
    with pytest.raises(StateError, match=r"state\.json"):
        load_state(str(path))


def scripted(sim: Simulator, now: float, statuses: dict[str, str]) -> None:
    sim.set_messages("sim-1", [element(id_, now, status) for id_, status in statuses.items()])


def test_counting_resumes_after_kill_9_without_a_spike_or_a_gap(tmp_path: Path) -> None:
    sim = Simulator(instances=1, seed=11)
    sim.start()
    config = sim.exporter_config(poll_interval="1s")
    config["state_file"] = str(tmp_path / "state.json")
    try:
        t0 = time.time()
        scripted(sim, t0 - 600, {"old": "read"})  # before start: baseline on the first run
        first = ExporterProcess(tmp_path, config)
        first.wait_ready()
        scripted(sim, time.time(), {"old": "read", "a": "sent", "b": "sent"})
        wait_until(
            lambda: value(first.scrape(), "greenapi_outgoing_messages_total", name="sim-1") == 2
        )
        wait_until(lambda: (tmp_path / "state.json").exists()
                   and "\\u001fb" in (tmp_path / "state.json").read_text())  # fmt: skip
        first.stop(signal.SIGKILL)

        # While it is down: a is delivered, c is sent.
        t1 = time.time()
        sim.set_messages("sim-1", [element("old", t0 - 600, "read"), element("a", t1, "delivered"),
                                   element("b", t1 - 5, "sent"), element("c", t1, "sent")])  # fmt: skip
        (tmp_path / "exporter.log").rename(tmp_path / "first.log")
        second = ExporterProcess(tmp_path, config)
        second.wait_ready()
        samples = wait_until(
            lambda: (
                (s := second.scrape())
                and value(
                    s, "greenapi_outgoing_status_reached_total", name="sim-1", status="delivered"
                )
                == 1
                and s
            )
        )
        assert (
            value(samples, "greenapi_outgoing_messages_total", name="sim-1") == 3
        )  # a, b, c: no replay of old
        assert (
            value(samples, "greenapi_outgoing_status_reached_total", name="sim-1", status="sent")
            == 3
        )
        assert value(samples, "greenapi_outgoing_delivery_lag_seconds_count", name="sim-1") == 1
        assert (value(samples, "greenapi_polls_total", name="sim-1", result="success") or 0) >= 2
        second.stop()
    finally:
        sim.stop()


def test_a_corrupt_state_file_is_logged_and_ignored(tmp_path: Path) -> None:
    sim = Simulator(instances=1, seed=12)
    sim.start()
    try:
        (tmp_path / "state.json").write_text("{garbage")
        config = sim.exporter_config(poll_interval="1s")
        config["state_file"] = str(tmp_path / "state.json")
        exporter = ExporterProcess(tmp_path, config)
        exporter.wait_ready()
        assert value(exporter.scrape(), "greenapi_up", name="sim-1") == 1
        wait_until(lambda: "state file ignored" in exporter.log())
        wait_until(
            lambda: json.loads((tmp_path / "state.json").read_text()).get("format") == FORMAT
        )
        exporter.stop()
    finally:
        sim.stop()
    assert os.path.exists(tmp_path / "state.json")
