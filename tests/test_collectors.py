"""The optional collectors (state, queue, incoming) against the simulator over loopback."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests

from exporter.collectors.state import INSTANCE_STATES
from exporter.simulator import Simulator
from tests.conftest import ExporterProcess, Samples, value, wait_until

ALL = ["outgoing", "state", "queue", "incoming"]
RunExporter = Callable[..., ExporterProcess]


def config_for(simulator: Simulator, *names: str, collect: list[str], **defaults: Any) -> dict[str, Any]:  # fmt: skip
    """The simulator's instances ``names`` only, each collecting ``collect``."""
    document = simulator.exporter_config(poll_interval="1s", collect=collect, **defaults)
    document["instances"] = [i for i in document["instances"] if i["name"] in names]
    return document


def states(samples: Samples, name: str) -> dict[str, float]:
    return {
        dict(labels)["state"]: v
        for (metric, labels), v in samples.items()
        if metric == "greenapi_instance_state" and dict(labels)["name"] == name
    }


def polls(samples: Samples, name: str, collector: str, result: str = "success") -> float:
    found = value(samples, "greenapi_polls_total", name=name, collector=collector, result=result)
    return found or 0.0


def wait_for_polls(exporter: ExporterProcess, name: str, collector: str, count: int) -> None:
    """Wait until ``count`` more successful polls of ``collector`` have finished."""
    target = polls(exporter.scrape(), name, collector) + count
    wait_until(lambda: polls(exporter.scrape(), name, collector) >= target)


def written_since(state_file: Path, moment: float) -> bool:
    """Whether the exporter wrote its state file after ``moment`` (a time.time())."""
    return state_file.exists() and state_file.stat().st_mtime > moment


def incoming(name: str, id_message: str, timestamp: float, kind: str = "textMessage") -> dict[str, Any]:  # fmt: skip
    return {"type": "incoming", "idMessage": id_message, "timestamp": int(timestamp),
            "typeMessage": kind, "chatId": "79001234567@c.us", "senderId": "79001234567@c.us",
            "senderName": name, "textMessage": "thanks"}  # fmt: skip


# --- state ------------------------------------------------------------------------------------


def test_the_state_gauge_is_one_for_the_current_state_and_zero_for_every_other(
    simulator: Simulator, run_exporter: RunExporter
) -> None:
    simulator.set_state("sim-1", "notAuthorized")
    exporter = run_exporter(config_for(simulator, "sim-1", collect=["state"]))
    exporter.wait_ready()
    shown = states(exporter.scrape(), "sim-1")
    assert shown == {state: 1.0 if state == "notAuthorized" else 0.0 for state in INSTANCE_STATES}


def test_the_state_follows_the_instance_back_to_authorized(
    simulator: Simulator, run_exporter: RunExporter
) -> None:
    simulator.set_state("sim-1", "notAuthorized")
    exporter = run_exporter(config_for(simulator, "sim-1", collect=["state"]))
    exporter.wait_ready()
    simulator.set_state("sim-1", "authorized")
    wait_until(lambda: states(exporter.scrape(), "sim-1").get("authorized") == 1.0)
    assert sum(states(exporter.scrape(), "sim-1").values()) == 1.0


def test_losing_the_authorization_is_logged_once_as_a_warning(
    simulator: Simulator, run_exporter: RunExporter
) -> None:
    exporter = run_exporter(config_for(simulator, "sim-1", collect=["state"]))
    exporter.wait_ready()
    simulator.set_state("sim-1", "notAuthorized")
    wait_until(lambda: states(exporter.scrape(), "sim-1").get("notAuthorized") == 1.0)
    wait_for_polls(exporter, "sim-1", "state", 2)  # more polls in the same state add no line
    lines = [line for line in exporter.log().splitlines() if "instance state changed" in line]
    assert len(lines) == 1, lines
    assert "level=warning" in lines[0]
    assert "state=notAuthorized previous=authorized" in lines[0]


def test_a_null_state_body_of_an_instance_being_created_is_unknown(
    simulator: Simulator, run_exporter: RunExporter
) -> None:
    simulator.set_state("sim-1", None)
    exporter = run_exporter(config_for(simulator, "sim-1", collect=["state"]))
    exporter.wait_ready()
    samples = exporter.scrape()
    assert states(samples, "sim-1")["unknown"] == 1.0
    assert sum(states(samples, "sim-1").values()) == 1.0
    assert polls(samples, "sim-1", "state") >= 1


def test_a_state_this_version_does_not_know_is_unknown(
    simulator: Simulator, run_exporter: RunExporter
) -> None:
    simulator.set_state("sim-1", "someFutureState")
    exporter = run_exporter(config_for(simulator, "sim-1", collect=["state"]))
    exporter.wait_ready()
    shown = states(exporter.scrape(), "sim-1")
    assert shown["unknown"] == 1.0
    assert "someFutureState" not in shown


def test_an_instance_without_the_journal_has_no_outgoing_series_and_no_up(
    simulator: Simulator, run_exporter: RunExporter
) -> None:
    exporter = run_exporter(config_for(simulator, "sim-1", collect=["state"]))
    exporter.wait_ready()
    samples = exporter.scrape()
    mine = {metric for (metric, labels), _ in samples.items() if ("name", "sim-1") in labels}
    assert mine == {
        "greenapi_instance_state",
        "greenapi_polls_total",
        "greenapi_fetched_bytes_total",
    }
    assert {dict(labels)["collector"] for (metric, labels) in samples
            if metric == "greenapi_polls_total"} == {"state"}  # fmt: skip


# --- queue ------------------------------------------------------------------------------------


def test_the_send_queue_is_the_count_of_get_messages_count(
    simulator: Simulator, run_exporter: RunExporter
) -> None:
    simulator.set_queue("sim-1", 7)
    exporter = run_exporter(config_for(simulator, "sim-1", collect=["queue"]))
    exporter.wait_ready()
    assert value(exporter.scrape(), "greenapi_send_queue_messages", name="sim-1") == 7.0


def test_the_send_queue_count_spelled_with_a_cyrillic_letter_is_read(
    simulator: Simulator, run_exporter: RunExporter
) -> None:
    simulator.set_queue("sim-1", 9, cyrillic=True)
    exporter = run_exporter(config_for(simulator, "sim-1", collect=["queue"]))
    exporter.wait_ready()
    samples = exporter.scrape()
    assert value(samples, "greenapi_send_queue_messages", name="sim-1") == 9.0
    assert polls(samples, "sim-1", "queue", "invalid_response") == 0


def test_a_queue_answer_without_a_count_is_an_invalid_response(
    simulator: Simulator, run_exporter: RunExporter
) -> None:
    simulator.set_fault("sim-1", "not_array", method="getMessagesCount")  # {"message": ...}
    exporter = run_exporter(config_for(simulator, "sim-1", collect=["outgoing", "queue"]))
    exporter.wait_ready()
    samples = exporter.scrape()
    assert polls(samples, "sim-1", "queue", "invalid_response") >= 1
    assert value(samples, "greenapi_send_queue_messages", name="sim-1") is None
    assert value(samples, "greenapi_up", name="sim-1") == 1.0


# --- incoming ---------------------------------------------------------------------------------


def test_incoming_messages_are_counted_by_type_after_a_baseline(
    simulator: Simulator, run_exporter: RunExporter
) -> None:
    now = time.time()
    old = [incoming("a", "OLD1", now - 600), incoming("b", "OLD2", now - 300, "imageMessage")]
    simulator.set_incoming("sim-1", old)
    exporter = run_exporter(config_for(simulator, "sim-1", collect=["incoming"]))
    exporter.wait_ready()
    samples = exporter.scrape()
    # Already in the journal at start-up: shown in the window, not counted as new.
    assert (
        value(
            samples, "greenapi_incoming_window_messages", name="sim-1", message_type="textMessage"
        )
        == 1
    )
    assert (
        value(
            samples, "greenapi_incoming_window_messages", name="sim-1", message_type="imageMessage"
        )
        == 1
    )
    assert value(samples, "greenapi_incoming_messages_total", name="sim-1") is None
    assert value(samples, "greenapi_incoming_last_message_timestamp_seconds",
                 name="sim-1") == int(now - 300)  # fmt: skip

    later = time.time() + 1
    fresh = [incoming("c", "NEW1", later), incoming("c", "NEW1", later),
             incoming("d", "NEW2", later, "reactionMessage")]  # fmt: skip
    simulator.set_incoming("sim-1", old + fresh)

    def counted() -> Samples | None:
        s = exporter.scrape()
        return s if value(s, "greenapi_incoming_messages_total", name="sim-1",
                          message_type="reactionMessage") else None  # fmt: skip

    samples = wait_until(counted)
    # Two more polls of the same journal must not count anything again.
    wait_for_polls(exporter, "sim-1", "incoming", 2)
    samples = exporter.scrape()
    total = {dict(labels)["message_type"]: v for (metric, labels), v in samples.items()
             if metric == "greenapi_incoming_messages_total"}  # fmt: skip
    assert total == {"textMessage": 1.0, "reactionMessage": 1.0}
    window = {dict(labels)["message_type"]: v for (metric, labels), v in samples.items()
              if metric == "greenapi_incoming_window_messages"}  # fmt: skip
    assert window == {"textMessage": 2.0, "imageMessage": 1.0, "reactionMessage": 1.0}
    assert value(samples, "greenapi_incoming_last_message_timestamp_seconds",
                 name="sim-1") == int(later)  # fmt: skip


def test_an_incoming_type_that_a_full_answer_no_longer_holds_drops_to_zero(
    simulator: Simulator, run_exporter: RunExporter
) -> None:
    now = time.time()
    simulator.set_incoming("sim-1", [incoming("a", "IMG1", now - 60, "imageMessage")])
    exporter = run_exporter(
        config_for(simulator, "sim-1", collect=["incoming"], resync_interval=0)  # full polls
    )
    exporter.wait_ready()
    simulator.set_incoming("sim-1", [incoming("a", "TXT1", now - 30)])
    samples = wait_until(
        lambda: (
            (s := exporter.scrape())
            and value(
                s, "greenapi_incoming_window_messages", name="sim-1", message_type="textMessage"
            )
            and s
        )
    )
    assert (
        value(
            samples, "greenapi_incoming_window_messages", name="sim-1", message_type="imageMessage"
        )
        == 0
    )


def test_generated_replies_of_the_simulator_are_counted(run_exporter: RunExporter) -> None:
    simulator = Simulator(instances=1, seed=3, history=3600, rate=1.0)
    simulator.start()
    try:
        exporter = run_exporter(config_for(simulator, "sim-1", collect=["incoming"]))
        exporter.wait_ready()
        wait_until(lambda: value(exporter.scrape(), "greenapi_incoming_window_messages",
                                 name="sim-1", message_type="textMessage"), timeout=30)  # fmt: skip
    finally:
        simulator.stop()


def test_incoming_counters_survive_a_restart_with_a_state_file(
    simulator: Simulator, run_exporter: RunExporter, tmp_path: Any
) -> None:
    simulator.set_incoming("sim-1", [])
    config = config_for(simulator, "sim-1", collect=["incoming"])
    config["state_file"] = str(tmp_path / "state.json")
    first = run_exporter(config)
    first.wait_ready()
    simulator.set_incoming("sim-1", [incoming("a", "NEW1", time.time() + 1)])
    wait_until(lambda: value(first.scrape(), "greenapi_incoming_messages_total", name="sim-1") == 1)
    counted_at = time.time()
    wait_until(lambda: written_since(tmp_path / "state.json", counted_at))  # so it holds NEW1
    first.stop()
    second = run_exporter(config)
    second.wait_ready()
    wait_for_polls(second, "sim-1", "incoming", 1)  # which must not count NEW1 again
    assert value(second.scrape(), "greenapi_incoming_messages_total", name="sim-1") == 1


# --- all collectors together ------------------------------------------------------------------


def test_requests_of_one_instance_are_spaced_and_never_rate_limited(
    simulator: Simulator, run_exporter: RunExporter
) -> None:
    exporter = run_exporter(config_for(simulator, "sim-1", collect=ALL))
    exporter.wait_ready()
    wait_until(lambda: len(simulator.requests_log("sim-1")) >= 9, timeout=30)
    log = simulator.requests_log("sim-1")
    assert {entry["method"] for entry in log} == {
        "lastOutgoingMessages", "getStateInstance", "getMessagesCount", "lastIncomingMessages"
    }  # fmt: skip
    assert all(entry["status"] == 200 for entry in log), log
    times = sorted(entry["time"] for entry in log)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    # The exporter starts requests 1.1 s apart; arrival can jitter a little on a busy machine.
    assert min(gaps) >= 1.0, gaps


def test_every_collector_counts_its_polls_under_its_own_collector_label(
    simulator: Simulator, run_exporter: RunExporter
) -> None:
    exporter = run_exporter(config_for(simulator, "sim-1", collect=ALL))
    exporter.wait_ready()
    samples = exporter.scrape()
    for collector in ALL:
        assert polls(samples, "sim-1", collector) >= 1, collector
    journal = value(samples, "greenapi_polls_total", name="sim-1", collector="outgoing",
                    result="success")  # fmt: skip
    methods = [e["method"] for e in simulator.requests_log("sim-1")]
    assert journal is not None and journal <= methods.count("lastOutgoingMessages")


def test_a_failing_collector_does_not_mark_the_others_down(
    simulator: Simulator, run_exporter: RunExporter
) -> None:
    simulator.set_fault("sim-1", "status", code=500, method="getStateInstance")
    exporter = run_exporter(config_for(simulator, "sim-1", collect=ALL))
    exporter.wait_ready()

    def settled() -> Samples | None:
        s = exporter.scrape()
        return s if polls(s, "sim-1", "state", "http_5xx") >= 2 else None

    samples = wait_until(settled, timeout=30)
    assert value(samples, "greenapi_up", name="sim-1") == 1.0
    for collector in ("outgoing", "queue", "incoming"):
        assert polls(samples, "sim-1", collector) >= 1, collector
        assert polls(samples, "sim-1", collector, "http_5xx") == 0, collector
    assert states(samples, "sim-1") == {}  # never known
    assert value(samples, "greenapi_send_queue_messages", name="sim-1") == 0.0
    page = exporter.get("/").text
    assert 'title="no successful request yet">&ndash;</td>' in page  # the state: never known
    assert "state: 500: GREEN-API server error" in page and 'class="badge down"' not in page


def test_a_failing_journal_does_not_stop_the_other_collectors(
    simulator: Simulator, run_exporter: RunExporter
) -> None:
    simulator.set_fault("sim-1", "status", code=502, method="lastOutgoingMessages")
    simulator.set_state("sim-1", "authorized")
    exporter = run_exporter(config_for(simulator, "sim-1", collect=ALL))
    exporter.wait_ready()
    samples = exporter.scrape()
    assert value(samples, "greenapi_up", name="sim-1") == 0.0
    assert states(samples, "sim-1")["authorized"] == 1.0
    assert polls(samples, "sim-1", "incoming") >= 1


def test_readiness_waits_for_the_first_request_of_every_collector(
    simulator: Simulator, run_exporter: RunExporter
) -> None:
    simulator.set_fault("sim-1", "delay", seconds=4, method="getMessagesCount")
    exporter = run_exporter(config_for(simulator, "sim-1", collect=["outgoing", "queue"],
                                       timeout="3s"))  # fmt: skip
    exporter.wait_healthy()
    wait_until(lambda: value(exporter.scrape(), "greenapi_up", name="sim-1") == 1.0)
    assert exporter.get("/-/ready").status_code == 503
    exporter.wait_ready(timeout=10)
    assert polls(exporter.scrape(), "sim-1", "queue", "timeout") == 1


@pytest.mark.parametrize("collector", ["state", "queue", "incoming"])
def test_a_reload_adding_a_collector_starts_it_and_keeps_the_journal_counters(
    simulator: Simulator, run_exporter: RunExporter, collector: str
) -> None:
    exporter = run_exporter(config_for(simulator, "sim-1", collect=["outgoing"]))
    exporter.wait_ready()
    before = polls(exporter.scrape(), "sim-1", "outgoing")
    exporter.write_config(config_for(simulator, "sim-1", collect=["outgoing", collector]))
    response = requests.post(exporter.url + "/-/reload", timeout=10)
    assert response.status_code == 200, response.text
    samples = wait_until(lambda: (s := exporter.scrape()) and polls(s, "sim-1", collector) and s,
                         timeout=15)  # fmt: skip
    assert polls(samples, "sim-1", "outgoing") >= before
