"""The state file (README, "Restarts"): counters survive restarts; saves cost what changed; a
file that is not a state file, the configuration file or a path in use is refused at start;
an unusable state file is moved aside, never overwritten; no temporary file outlives a crash.

The crash loops (kill -9 while scraping) are in test_state_crash.py.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from exporter import state as state_module
from exporter.app import Exporter
from exporter.config import ConfigError, parse_config
from exporter.journal import journal_from_elements
from exporter.poller import InstancePoller
from exporter.simulator import Simulator
from exporter.state import FORMAT, StateFile, StateRefused
from exporter.tracker import MessageTracker
from tests.conftest import ROOT, ExporterProcess, value, wait_until

START = 1_800_000_000.0


def element(id_: str, ts: float, status: str) -> dict[str, object]:
    return {"idMessage": id_, "chatId": "1@c.us", "timestamp": int(ts), "statusMessage": status,
            "typeMessage": "textMessage", "sendByApi": True}  # fmt: skip


def journal(*elements: dict[str, object]) -> Any:
    return journal_from_elements(list(elements))


def tracker_with(*elements: dict[str, object]) -> MessageTracker:
    tracker = MessageTracker(window=86400, undelivered_after=300, baseline_before=None)
    tracker.observe(journal(*elements), START + 1, 5000)
    return tracker


def short_poll(tracker: MessageTracker, now: float, *elements: dict[str, object]) -> None:
    """A poll of the journal's recent past: changes only what it holds."""
    tracker.observe(journal(*elements), now, 5000, full=False, since=now - 60)


def entry(tracker: MessageTracker, complete: bool = False) -> dict[str, object]:
    return {"id_instance": "1", "tracker": tracker.export_changes(complete)}


def comparable(exported: dict[str, object]) -> dict[str, object]:
    """An export with its rows in key order (a restore sorts messages by time)."""
    rows: dict[str, Any] = {key: exported.get(key, []) for key in ("messages", "unjudged")}
    return {**exported, **{key: sorted(listed) for key, listed in rows.items()}}


@pytest.fixture
def opened(tmp_path: Path) -> Iterator[list[StateFile]]:
    """StateFiles a test opened, closed (lock released) at its end."""
    files: list[StateFile] = []
    yield files
    for state in files:
        state.close()


def open_state(files: list[StateFile], path: Path, config_file: Path | None = None) -> Any:
    state, saved = StateFile.open(str(path), None if config_file is None else str(config_file))
    files.append(state)
    return state, saved


def reopen(files: list[StateFile], path: Path) -> Any:
    files.pop().close()
    return open_state(files, path)


# --- the tracker's part: counts resume, changes are what changed ---------------------------------


def test_a_restored_tracker_continues_counts_and_lags() -> None:
    first = tracker_with(element("a", START, "sent"))
    second = MessageTracker(window=86400, undelivered_after=300, baseline_before=START + 10**6)
    second.restore(json.loads(json.dumps(first.export())))
    snap = second.observe(journal(element("a", START + 7, "delivered")), START + 60, 5000)
    assert dict(snap.messages_total) == {("textMessage", True): 1}
    assert dict(snap.status_reached) == {"sent": 1, "delivered": 1, "read": 0}
    assert (snap.delivery_lag.count, snap.delivery_lag.total) == (1, 7)


def test_a_restored_tracker_counts_what_came_while_it_was_down() -> None:
    first = MessageTracker(window=86400, undelivered_after=300, baseline_before=None)
    first.observe(journal(), START, 5000)
    second = MessageTracker(window=86400, undelivered_after=300, baseline_before=START + 3600)
    second.restore(first.export())
    snap = second.observe(journal(element("b", START + 100, "sent")), START + 3600, 5000)
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
    tracker = tracker_with(element("a", START, "sent"))
    before = tracker.export()
    with pytest.raises((ValueError, KeyError)):
        tracker.restore(broken)
    assert tracker.export() == before


def test_an_instance_with_unusable_incoming_state_restores_nothing() -> None:
    config = parse_config({"instances": [{"name": "bot", "id_instance": "1", "api_token": "t",
                                          "collect": ["outgoing", "incoming"]}]}, "test", {})  # fmt: skip
    data = InstancePoller(config.instances[0], baseline_before=None).export()
    data["tracker"] = tracker_with(element("a", START, "sent")).export()  # usable
    data["polls_total"] = {"outgoing": {"success": 5}}
    data["incoming"] = {"messages_total": {"textMessage": -1}, "window_types": [], "messages": []}
    poller = InstancePoller(config.instances[0], baseline_before=None)
    before = poller.export()
    with pytest.raises(ValueError):
        poller.restore(data)
    assert poller.export() == before


def test_changes_list_only_the_messages_written_since_the_previous_call() -> None:
    tracker = tracker_with(element("a", START, "sent"), element("b", START, "sent"))
    first = tracker.export_changes()
    assert first["messages_complete"] is True and len(first["messages"]) == 2  # type: ignore[arg-type]
    short_poll(tracker, START + 20, element("a", START + 10, "delivered"))
    changed = tracker.export_changes()
    assert changed["messages_complete"] is False
    assert [row[0] for row in changed["messages"]] == ["1@c.us\x1fa"]  # type: ignore[attr-defined]
    assert changed["status_reached"] == {"sent": 2, "delivered": 1, "read": 0}
    short_poll(tracker, START + 30, element("a", START + 10, "delivered"))  # nothing new
    assert tracker.export_changes()["messages"] == []


def test_a_complete_export_of_changes_is_the_export() -> None:
    tracker = tracker_with(element("a", START, "sent"))
    short_poll(tracker, START + 20, element("b", START + 10, "sent"))
    assert tracker.export_changes(complete=True) == {**tracker.export(), "messages_complete": True}


def test_a_pollers_export_of_changes_is_its_export_when_complete() -> None:
    config = parse_config({"instances": [{"name": "bot", "id_instance": "1", "api_token": "t",
                                          "collect": ["outgoing", "incoming"]}]}, "test", {})  # fmt: skip
    poller = InstancePoller(config.instances[0], baseline_before=None)
    poller.restore(
        {**poller.export(), "tracker": tracker_with(element("a", START, "read")).export()}
    )
    exported = poller.export_changes(complete=True)
    assert exported == {**poller.export(), "tracker": {**poller.export()["tracker"],  # type: ignore[dict-item]
                                                       "messages_complete": True}}  # fmt: skip


# --- the file: records merge, saves cost what changed ----------------------------------------


def test_merged_records_restore_what_the_tracker_holds(
    tmp_path: Path, opened: list[StateFile]
) -> None:
    path = tmp_path / "state.json"
    state, _ = open_state(opened, path)
    tracker = tracker_with(element("a", START, "sent"), element("b", START, "sent"))
    state.append([("bot", entry(tracker))], keep={"bot"})
    for step, (key, status) in enumerate([("a", "delivered"), ("c", "sent"), ("a", "read")]):
        now = START + 100 * (step + 1)
        short_poll(tracker, now, element(key, now - 5, status))
        state.append([("bot", entry(tracker))], keep={"bot"})
    _, saved = reopen(opened, path)
    restored = MessageTracker(window=86400, undelivered_after=300, baseline_before=None)
    restored.restore(saved.instances["bot"]["tracker"])
    assert comparable(restored.export()) == comparable(tracker.export())


def test_a_save_after_a_short_poll_costs_what_changed_not_what_is_tracked(
    tmp_path: Path, opened: list[StateFile]
) -> None:
    path = tmp_path / "state.json"
    state, _ = open_state(opened, path)
    many = [element(f"m{i}", START, "sent") for i in range(20_000)]
    tracker = tracker_with(*many)
    state.append([("bot", entry(tracker))], keep={"bot"})
    complete = path.stat().st_size
    short_poll(tracker, START + 60, *(element(f"m{i}", START + 50, "delivered") for i in range(3)))
    state.append([("bot", entry(tracker))], keep={"bot"})
    appended = path.stat().st_size - complete
    assert complete > 1_000_000
    assert appended < 3_000, appended  # three rows and the counters


def test_an_instance_whose_changes_outweigh_its_complete_record_is_asked_for_one(
    tmp_path: Path, opened: list[StateFile], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(state_module, "COMPLETE_AT", 0)
    state, _ = open_state(opened, tmp_path / "state.json")
    assert state.wants_complete("bot")  # nothing of it in the file yet
    tracker = tracker_with(element("a", START, "sent"))
    state.append([("bot", entry(tracker))], keep={"bot"})
    assert not state.wants_complete("bot")
    for step in range(3):
        short_poll(tracker, START + 60 * (step + 1), element(f"n{step}", START + 60 * step, "sent"))
        state.append([("bot", entry(tracker))], keep={"bot"})
    assert state.wants_complete("bot")


def test_compaction_keeps_what_counts(
    tmp_path: Path, opened: list[StateFile], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(state_module, "COMPACT_AT", 0)
    path = tmp_path / "state.json"
    state, _ = open_state(opened, path)
    tracker = tracker_with(element("a", START, "sent"))
    for _step in range(5):
        state.append([("bot", entry(tracker, complete=True))], keep={"bot", "gone"})
        state.append([("gone", entry(tracker, complete=True))], keep={"bot", "gone"})
    short_poll(tracker, START + 60, element("b", START + 50, "sent"))
    state.append([("bot", entry(tracker))], keep={"bot"})  # and "gone" is removed
    before = path.stat().st_size
    assert state.compaction_due()
    assert state.compact(abort=lambda: False)
    assert path.stat().st_size < before / 3
    state.append([("bot", entry(tracker))], keep={"bot"})  # appends go on after it
    _, saved = reopen(opened, path)
    assert set(saved.instances) == {"bot"}
    restored = MessageTracker(window=86400, undelivered_after=300, baseline_before=None)
    restored.restore(saved.instances["bot"]["tracker"])
    assert comparable(restored.export()) == comparable(tracker.export())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json", "state.json.lock"]


def test_an_unfinished_last_record_is_dropped_and_cut_off(
    tmp_path: Path, opened: list[StateFile]
) -> None:
    path = tmp_path / "state.json"
    state, _ = open_state(opened, path)
    state.append([("bot", entry(tracker_with(element("a", START, "sent"))))], keep={"bot"})
    whole = path.read_bytes()
    with path.open("ab") as handle:  # what a kill -9 in the middle of an append leaves
        handle.write(b'{"instance":"bot","complete":true,"entry":{"id_ins')
    state, saved = reopen(opened, path)
    assert saved.instances["bot"]["id_instance"] == "1"
    assert path.read_bytes() == whole
    state.append([("other", entry(tracker_with()))], keep={"bot", "other"})
    _, saved = reopen(opened, path)
    assert set(saved.instances) == {"bot", "other"}


def test_a_record_of_one_instance_that_does_not_fit_is_ignored_for_it_only(
    tmp_path: Path, opened: list[StateFile]
) -> None:
    path = tmp_path / "state.json"
    state, _ = open_state(opened, path)
    good = entry(tracker_with(element("a", START, "sent")))
    state.append([("bot", good), ("odd", {"id_instance": "2", "tracker": {"messages": [1]}})],
                 keep={"bot", "odd"})  # fmt: skip
    _, saved = reopen(opened, path)
    assert set(saved.instances) == {"bot"} and set(saved.unusable) == {"odd"}


def test_state_is_created_with_owner_only_permissions(
    tmp_path: Path, opened: list[StateFile]
) -> None:
    path = tmp_path / "state.json"
    state, saved = open_state(opened, path)
    assert saved.instances == {}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    state.append([("bot", entry(tracker_with()))], keep={"bot"})
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text().splitlines()[0])["format"] == FORMAT


def test_an_empty_file_is_a_first_start(tmp_path: Path, opened: list[StateFile]) -> None:
    path = tmp_path / "state.json"
    path.write_bytes(b"")
    _, saved = open_state(opened, path)
    assert saved.instances == {}
    assert json.loads(path.read_text())["format"] == FORMAT


def test_a_state_file_of_version_1_restores_and_stays_until_rewritten(
    tmp_path: Path, opened: list[StateFile]
) -> None:
    path = tmp_path / "state.json"
    tracker = tracker_with(element("a", START, "read"))
    old = {"id_instance": "1", "polls_total": {"success": 3}, "tracker": tracker.export()}
    document = {"format": FORMAT, "version": 1, "saved_at": START, "instances": {"bot": old}}
    path.write_text(json.dumps(document, separators=(",", ":")))  # as version 1 wrote it
    state, saved = open_state(opened, path)
    assert saved.instances == {"bot": old}
    assert state.needs_rewrite()
    assert json.loads(path.read_text())["version"] == 1
    assert state.rewrite([("bot", entry(tracker, complete=True))], abort=lambda: False)
    _, saved = reopen(opened, path)
    assert comparable(saved.instances["bot"]["tracker"]) == comparable(tracker.export())


def test_a_rewrite_abandoned_at_stop_leaves_the_previous_file_and_no_temporary_one(
    tmp_path: Path, opened: list[StateFile]
) -> None:
    path = tmp_path / "state.json"
    state, _ = open_state(opened, path)
    state.append([("bot", entry(tracker_with(element("a", START, "sent"))))], keep={"bot"})
    before = path.read_bytes()
    asked: list[int] = []

    def abort() -> bool:
        asked.append(1)
        return len(asked) > 1  # a stop comes once the first record is written

    records = [(f"i{n}", entry(tracker_with(), complete=True)) for n in range(3)]
    assert not state.rewrite(records, abort)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json", "state.json.lock"]


def test_a_rewrite_that_fails_leaves_the_previous_file_and_no_temporary_one(
    tmp_path: Path, opened: list[StateFile]
) -> None:
    path = tmp_path / "state.json"
    state, _ = open_state(opened, path)
    state.append([("bot", entry(tracker_with(element("a", START, "sent"))))], keep={"bot"})
    before = path.read_bytes()

    def records() -> Iterator[tuple[str, dict[str, object]]]:
        yield "bot", entry(tracker_with(), complete=True)
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OSError):
        state.rewrite(records(), abort=lambda: False)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json", "state.json.lock"]


def test_a_failed_append_leaves_the_file_as_it_was(
    tmp_path: Path, opened: list[StateFile], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "state.json"
    state, _ = open_state(opened, path)
    state.append([("bot", entry(tracker_with(element("a", START, "sent"))))], keep={"bot"})
    before = path.read_bytes()

    def half_then_full(fd: int, data: bytes, offset: int) -> None:
        os.pwrite(fd, data[: len(data) // 2], offset)  # a full disk, half way
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(state_module, "_write_at", half_then_full)
    with pytest.raises(OSError):
        state.append([("bot", entry(tracker_with(element("b", START, "sent")), True))], {"bot"})
    assert path.read_bytes() == before


# --- refused at start, moved aside, cleaned up --------------------------------------------------


@pytest.mark.parametrize(
    "content",
    [
        json.dumps({"format": "other", "instances": {}}),
        "instances:\n  - name: bot\n",
        "{garbage",
        "\x00\x01binary",
    ],
    ids=["other-json", "yaml", "garbage", "binary"],
)
def test_a_file_that_is_not_a_state_file_is_refused_and_left_alone(
    tmp_path: Path, content: str
) -> None:
    path = tmp_path / "state.json"
    path.write_text(content)
    with pytest.raises(StateRefused, match=r"state\.json is not a greenapi-exporter state file"):
        StateFile.open(str(path))
    assert path.read_text() == content
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]  # nothing made beside it


def test_the_configuration_file_is_refused_even_through_a_hard_link(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("instances: []\n")
    link = tmp_path / "state.json"
    os.link(config, link)
    for path in (config, link):
        with pytest.raises(StateRefused, match="is the configuration file"):
            StateFile.open(str(path), config_file=str(config))
    assert config.read_text() == "instances: []\n"


def test_a_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(StateRefused, match="is a directory"):
        StateFile.open(str(tmp_path))


def test_a_fifo_is_refused(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "state.json")
    with pytest.raises(StateRefused, match="is not a regular file"):
        StateFile.open(str(tmp_path / "state.json"))


def test_a_second_user_of_the_same_path_is_refused_naming_the_holder(
    tmp_path: Path, opened: list[StateFile]
) -> None:
    open_state(opened, tmp_path / "state.json")
    with pytest.raises(
        StateRefused, match=rf"in use by another greenapi-exporter \(pid {os.getpid()}"
    ):
        StateFile.open(str(tmp_path / "state.json"))
    opened.pop().close()  # released: usable again
    open_state(opened, tmp_path / "state.json")


@pytest.mark.parametrize(
    "content",
    [
        '{"format":"greenapi-exporter-state","version":1,"instances":{"bot":',
        json.dumps({"format": FORMAT, "version": 99}),
        json.dumps({"format": FORMAT, "version": 1, "instances": []}),
        '{"format":"greenapi-exporter-state","version":2}\n{"instance":"bot",,}\n{}\n',
    ],
    ids=["damaged", "newer-version", "shape", "damaged-record"],
)
def test_an_unusable_state_file_is_moved_aside_never_overwritten(
    tmp_path: Path, opened: list[StateFile], content: str, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "state.json"
    path.write_text(content)
    with caplog.at_level(logging.WARNING, logger="exporter.state"):
        _, saved = open_state(opened, path)
    assert saved.instances == {}
    moved = [p for p in tmp_path.iterdir() if p.name.startswith("state.json.unusable-")]
    assert len(moved) == 1 and moved[0].read_text() == content
    warning = next(r for r in caplog.records if "moved aside" in r.getMessage())
    assert (warning.__dict__["path"], warning.__dict__["moved_to"]) == (str(path), str(moved[0]))
    assert json.loads(path.read_text())["format"] == FORMAT  # a fresh one in its place


def test_a_second_unusable_file_does_not_replace_the_first_one_moved_aside(
    tmp_path: Path, opened: list[StateFile]
) -> None:
    path = tmp_path / "state.json"
    for content in (
        '{"format":"greenapi-exporter-state",1',
        '{"format":"greenapi-exporter-state",2',
    ):
        path.write_text(content)
        open_state(opened, path)
        opened.pop().close()
    moved = sorted(p.read_text() for p in tmp_path.iterdir() if ".unusable-" in p.name)
    assert moved == [
        '{"format":"greenapi-exporter-state",1',
        '{"format":"greenapi-exporter-state",2',
    ]


def test_temporary_files_of_interrupted_saves_are_removed_at_start_and_only_those(
    tmp_path: Path, opened: list[StateFile]
) -> None:
    leftovers = ["state.json.tmp-0123456789ab", "state.json.tmp-ba9876543210"]
    kept = ["other.json.tmp-0123456789ab", "state.json.tmp-mine", "state.json.unusable-x",
            ".greenapi-state-abcd1234", "notes.txt"]  # fmt: skip
    for name in leftovers + kept:
        (tmp_path / name).write_text("x")
    open_state(opened, tmp_path / "state.json")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [*kept, "state.json", "state.json.lock"]
    )


def test_a_state_file_removed_while_running_is_written_anew(
    tmp_path: Path, opened: list[StateFile]
) -> None:
    path = tmp_path / "state.json"
    state, _ = open_state(opened, path)
    path.unlink()
    assert state.needs_rewrite()
    assert state.rewrite([("bot", entry(tracker_with(), complete=True))], abort=lambda: False)
    assert not state.needs_rewrite()
    _, saved = reopen(opened, path)
    assert set(saved.instances) == {"bot"}


def test_a_file_put_in_the_state_files_place_while_running_is_moved_aside_not_overwritten(
    tmp_path: Path, opened: list[StateFile]
) -> None:
    path = tmp_path / "state.json"
    state, _ = open_state(opened, path)
    path.unlink()
    path.write_text("someone else's\n")
    assert state.needs_rewrite()
    state.discard()  # as after a failed save: what is not ours stays
    moved = [p for p in tmp_path.iterdir() if ".unusable-" in p.name]
    assert len(moved) == 1 and moved[0].read_text() == "someone else's\n"
    assert state.rewrite([("bot", entry(tracker_with(), complete=True))], abort=lambda: False)
    _, saved = reopen(opened, path)
    assert set(saved.instances) == {"bot"}


# --- the exporter: refusals at start, write-ahead, failed saves --------------------------------


def bot_config(state_file: Path, url: str = "http://127.0.0.1:9") -> dict[str, Any]:
    return {"state_file": str(state_file),
            "instances": [{"name": "bot", "id_instance": "1101000001", "api_token": "t" * 40,
                           "api_url": url}]}  # fmt: skip


def test_the_exporter_refuses_a_state_file_in_use_naming_the_key(tmp_path: Path) -> None:
    document = bot_config(tmp_path / "state.json")
    first = Exporter(lambda: parse_config(document, "config.yaml", {}))
    try:
        with pytest.raises(ConfigError) as refused:
            Exporter(lambda: parse_config(document, "config.yaml", {}))
        assert str(refused.value).startswith("config.yaml: state_file: ")
        assert f"pid {os.getpid()}" in str(refused.value)
    finally:
        first.stop()


def saved_messages_total(path: Path, name: str) -> int:
    """messages_total of the latest whole record of ``name`` in the file (every record
    holds the counters)."""
    lines = path.read_text().split("\n")[:-1]  # not an append still under way
    latest = [json.loads(line) for line in lines if f'"instance":"{name}"' in line][-1]
    return sum(n for _, _, n in latest["entry"]["tracker"]["messages_total"])


def test_scrapes_see_no_count_that_is_not_in_the_state_file_yet(tmp_path: Path) -> None:
    sim = Simulator(instances=1, seed=21, rate=5, history=600)
    sim.start()
    document = sim.exporter_config(poll_interval="1s")
    document["state_file"] = str(tmp_path / "state.json")
    exporter = Exporter(lambda: parse_config(document, "config.yaml", {}))
    try:
        exporter.start()
        wait_until(exporter.ready)
        shown: list[int] = []
        deadline = time.monotonic() + 4
        while time.monotonic() < deadline:
            tracker = exporter.snapshot().instances[0].reading("outgoing").value
            shown.append(sum(tracker.messages_total.values()))
            assert shown[-1] <= saved_messages_total(tmp_path / "state.json", "sim-1")
            time.sleep(0.05)
        assert shown[-1] > shown[0]  # it did count meanwhile
    finally:
        exporter.stop()
        sim.stop()


def test_a_failed_save_removes_the_file_shows_polls_and_writes_it_whole_later(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sim = Simulator(instances=1, seed=22, rate=5, history=600)
    sim.start()
    document = sim.exporter_config(poll_interval="1s")
    path = tmp_path / "state.json"
    document["state_file"] = str(path)
    monkeypatch.setattr("exporter.app.RETRY_FAILED_SAVE", (0.5, 0.5))
    real_write = state_module._write_at
    full = [True]

    def write_unless_full(fd: int, data: bytes, offset: int) -> None:
        if full[0] and b'"instance"' in data:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_write(fd, data, offset)

    monkeypatch.setattr(state_module, "_write_at", write_unless_full)
    exporter = Exporter(lambda: parse_config(document, "config.yaml", {}))
    try:
        exporter.start()
        wait_until(lambda: not path.exists())  # removed: a restart would count afresh

        def polls() -> int:
            return exporter.snapshot().instances[0].polls_total["outgoing"]["success"]

        seen = wait_until(polls)
        wait_until(lambda: polls() > seen)  # shown as polled meanwhile
        full[0] = False
        wait_until(lambda: path.exists() and '"instance":"sim-1"' in path.read_text(), timeout=10)
    finally:
        exporter.stop()
        sim.stop()


# --- processes ----------------------------------------------------------------------------------


def scripted(sim: Simulator, now: float, statuses: dict[str, str]) -> None:
    sim.set_messages("sim-1", [element(id_, now, status) for id_, status in statuses.items()])


@pytest.mark.process
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
        # Shown only once saved: a kill -9 right after it loses nothing.
        wait_until(
            lambda: value(first.scrape(), "greenapi_outgoing_messages_total", name="sim-1") == 2
        )
        first.stop(signal.SIGKILL)

        # While it is down: a is delivered, c is sent.
        t1 = time.time()
        sim.set_messages("sim-1", [element("old", t0 - 600, "read"), element("a", t1, "delivered"),
                                   element("b", t1 - 5, "sent"), element("c", t1, "sent")])  # fmt: skip
        (tmp_path / "exporter.log").rename(tmp_path / "first.log")
        second = ExporterProcess(tmp_path, config)
        second.wait_healthy()
        # Restored counts are shown at once, before the first poll.
        assert value(second.scrape(), "greenapi_outgoing_messages_total", name="sim-1") >= 2  # type: ignore[operator]
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


def run_to_exit(tmp_path: Path, config: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    config_path = tmp_path / "config.yaml"
    if not config_path.exists():
        config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    return subprocess.run(
        [sys.executable, "-m", "exporter", "--config.file", str(config_path),
         "--web.listen-address", "127.0.0.1:0"],
        cwd=ROOT, capture_output=True, text=True, timeout=30,
    )  # fmt: skip


@pytest.mark.process
def test_a_state_file_that_is_the_configuration_file_is_refused_at_start(tmp_path: Path) -> None:
    config_path = tmp_path / "config.yaml"
    document = bot_config(config_path)
    config_path.write_text(yaml.safe_dump(document, sort_keys=False))
    before = config_path.read_bytes()
    done = run_to_exit(tmp_path, document)
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        f"{config_path}: state_file: {config_path} is the configuration file"
    ]
    assert config_path.read_bytes() == before


@pytest.mark.process
def test_a_second_exporter_on_the_same_state_file_exits_1_naming_the_holder(
    tmp_path: Path,
) -> None:
    sim = Simulator(instances=1, seed=13)
    sim.start()
    config = sim.exporter_config(poll_interval="1s")
    config["state_file"] = str(tmp_path / "state.json")
    try:
        first = ExporterProcess(tmp_path, config)
        first.wait_healthy()
        done = run_to_exit(tmp_path, config)
        assert done.returncode == 1
        [line] = done.stderr.splitlines()
        assert "state_file: " in line and f"(pid {first.process.pid}," in line
        assert first.process.poll() is None  # the first one runs on
        first.stop()
    finally:
        sim.stop()


@pytest.mark.process
def test_an_unusable_state_file_is_moved_aside_by_the_exporter(tmp_path: Path) -> None:
    sim = Simulator(instances=1, seed=12)
    sim.start()
    try:
        damaged = '{"format":"greenapi-exporter-state","version":2}\n{"instance":'
        (tmp_path / "state.json").write_text(damaged[:-15] + "7}\n{{{\n")
        content = (tmp_path / "state.json").read_text()
        config = sim.exporter_config(poll_interval="1s")
        config["state_file"] = str(tmp_path / "state.json")
        exporter = ExporterProcess(tmp_path, config)
        exporter.wait_ready()
        assert value(exporter.scrape(), "greenapi_up", name="sim-1") == 1
        moved = [p for p in tmp_path.iterdir() if ".unusable-" in p.name]
        assert len(moved) == 1 and moved[0].read_text() == content
        log_text = exporter.log()
        assert "moved aside" in log_text and str(moved[0]) in log_text
        wait_until(lambda: '"instance":"sim-1"' in (tmp_path / "state.json").read_text())
        exporter.stop()
    finally:
        sim.stop()
