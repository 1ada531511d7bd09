"""The exporter as a process against the simulator over loopback: exact values of a
scripted scenario, the endpoints, reload and readiness."""

from __future__ import annotations

import itertools
import signal
import time
from collections.abc import Callable
from typing import Any

import pytest
import requests

from exporter.simulator import Simulator
from tests.conftest import ExporterProcess, value, wait_until

RunExporter = Callable[..., ExporterProcess]


def msg(id_: str, ts: float, status: str, chat: str = "79001234567@c.us", type_: str = "textMessage",
        by_api: bool = True, forwarded: bool = False) -> dict[str, Any]:  # fmt: skip
    return {
        "type": "outgoing", "idMessage": id_, "timestamp": int(ts), "statusMessage": status,
        "typeMessage": type_, "chatId": chat, "sendByApi": by_api, "isForwarded": forwarded,
        "forwardingScore": 0, "textMessage": "hello",
    }  # fmt: skip


def config_for(sim: Simulator, **defaults: object) -> dict[str, Any]:
    settings: dict[str, Any] = {"poll_interval": "1s", "timeout": "2s", **defaults}
    return sim.exporter_config(**settings)


def successful_polls(exporter: ExporterProcess, name: str) -> float:
    return value(exporter.scrape(), "greenapi_polls_total", name=name, result="success") or 0.0


def wait_for_polls(exporter: ExporterProcess, name: str, count: int = 2) -> None:
    """Wait until ``count`` more successful polls of ``name`` have finished."""
    target = successful_polls(exporter, name) + count
    wait_until(lambda: successful_polls(exporter, name) >= target)


class TestScriptedScenario:
    """One instance with a scripted journal, checked value by value."""

    @pytest.fixture(scope="class")
    @classmethod
    def scenario(cls, tmp_path_factory: pytest.TempPathFactory) -> Any:
        sim = Simulator(instances=2, seed=3)
        sim.start()
        now = time.time()
        baseline = [
            msg("base-read", now - 3600, "read"),
            msg("base-stuck", now - 1800, "sent"),
        ]
        sim.set_messages("sim-1", baseline)
        exporter = ExporterProcess(
            tmp_path_factory.mktemp("scenario"), config_for(sim, window="2h")
        )
        try:
            exporter.wait_ready()
            wait_for_polls(exporter, "sim-1", 1)
            t = time.time()
            first = [
                msg("X", t, "sent", chat="1@c.us"),
                msg("X", t, "sent", chat="2@c.us", type_="imageMessage", by_api=False),
                msg("F", t, "read", type_="extendedTextMessage", forwarded=True),
            ]
            sim.set_messages("sim-1", baseline + first)
            wait_for_polls(exporter, "sim-1")
            later = [
                msg("X", t + 10, "delivered", chat="1@c.us"),
                msg("X", t + 30, "read", chat="2@c.us", type_="imageMessage", by_api=False),
                msg("F", t, "read", type_="extendedTextMessage", forwarded=True),
            ]
            sim.set_messages("sim-1", baseline + later)
            wait_for_polls(exporter, "sim-1")
            yield sim, exporter, exporter.scrape()
        finally:
            exporter.stop()
            sim.stop()

    def test_baseline_messages_are_not_counted_and_new_ones_are(self, scenario: Any) -> None:
        _, _, samples = scenario
        m = "greenapi_outgoing_messages_total"
        assert value(samples, m, name="sim-1", message_type="textMessage", send_by_api="true") == 1
        assert (
            value(samples, m, name="sim-1", message_type="imageMessage", send_by_api="false") == 1
        )
        assert (
            value(samples, m, name="sim-1", message_type="extendedTextMessage", send_by_api="true")
            == 1
        )

    def test_statuses_reached_follow_sent_delivered_read(self, scenario: Any) -> None:
        _, _, samples = scenario
        m = "greenapi_outgoing_status_reached_total"
        assert value(samples, m, name="sim-1", status="sent") == 3
        assert value(samples, m, name="sim-1", status="delivered") == 3
        assert value(samples, m, name="sim-1", status="read") == 2

    def test_forwarded_messages_are_counted_once(self, scenario: Any) -> None:
        _, _, samples = scenario
        assert value(samples, "greenapi_outgoing_forwarded_messages_total", name="sim-1") == 1
        assert value(samples, "greenapi_outgoing_window_forwarded_messages", name="sim-1") == 1

    def test_delivery_and_read_lags_come_from_the_api_timestamps(self, scenario: Any) -> None:
        _, _, samples = scenario
        lag = "greenapi_outgoing_delivery_lag_seconds"
        assert value(samples, lag + "_count", name="sim-1") == 2
        assert value(samples, lag + "_sum", name="sim-1") == 40
        assert value(samples, lag + "_bucket", name="sim-1", le="5.0") == 0
        assert value(samples, lag + "_bucket", name="sim-1", le="10.0") == 1
        assert value(samples, lag + "_bucket", name="sim-1", le="30.0") == 2
        read = "greenapi_outgoing_read_lag_seconds"
        assert value(samples, read + "_count", name="sim-1") == 1
        assert value(samples, read + "_sum", name="sim-1") == 30

    def test_a_message_id_repeated_in_two_chats_is_two_messages(self, scenario: Any) -> None:
        _, _, samples = scenario
        window = "greenapi_outgoing_window_messages"
        assert (
            value(samples, window, name="sim-1", status="delivered", message_type="textMessage")
            == 1
        )
        assert value(samples, window, name="sim-1", status="read", message_type="imageMessage") == 1

    def test_window_gauges_describe_the_latest_journal(self, scenario: Any) -> None:
        _, _, samples = scenario
        assert (
            value(
                samples,
                "greenapi_outgoing_window_messages",
                name="sim-1",
                status="read",
                message_type="textMessage",
            )
            == 1
        )
        assert (
            value(
                samples,
                "greenapi_outgoing_window_messages",
                name="sim-1",
                status="sent",
                message_type="textMessage",
            )
            == 1
        )
        assert value(samples, "greenapi_outgoing_window_send_by_api_messages", name="sim-1") == 4
        assert value(samples, "greenapi_outgoing_window_send_by_api_ratio", name="sim-1") == 0.8
        assert value(samples, "greenapi_outgoing_window_truncated", name="sim-1") == 0
        assert value(samples, "greenapi_outgoing_window_seconds", name="sim-1") == 7200
        assert value(samples, "greenapi_outgoing_invalid_messages", name="sim-1") == 0

    def test_a_message_stuck_in_sent_is_undelivered_with_its_send_time(self, scenario: Any) -> None:
        _, _, samples = scenario
        assert value(samples, "greenapi_outgoing_undelivered_messages", name="sim-1") == 1
        sent = value(
            samples, "greenapi_outgoing_oldest_undelivered_timestamp_seconds", name="sim-1"
        )
        assert sent is not None and 1800 <= time.time() - sent < 1900

    def test_the_window_is_sent_as_minutes_then_short_polls_ask_for_the_recent_past(
        self, scenario: Any
    ) -> None:
        sim, _, _ = scenario
        minutes = [int(entry["minutes"]) for entry in sim.requests_log("sim-1")]
        assert minutes[0] == 120  # the first poll reads the whole window (2h)
        # Then: the second since the last success + undelivered_after (5m) + 3m, rounded up.
        assert set(minutes[1:]) <= {9}, minutes

    def test_requests_to_one_instance_are_at_least_a_second_apart(self, scenario: Any) -> None:
        sim, _, _ = scenario
        times = sorted(float(entry["time"]) for entry in sim.requests_log("sim-1"))
        assert all(b - a >= 0.95 for a, b in itertools.pairwise(times))
        assert all(entry["status"] == 200 for entry in sim.requests_log("sim-1"))

    def test_every_instance_series_carries_name_and_id_instance(self, scenario: Any) -> None:
        _, _, samples = scenario
        ids = {dict(labels).get("id_instance") for (n, labels) in samples if n == "greenapi_up"}
        assert ids == {"1101000001", "1101000002"}

    def test_exporter_metrics_describe_the_exporter(self, scenario: Any) -> None:
        _, _, samples = scenario
        from exporter import __version__

        assert value(samples, "greenapi_exporter_build_info", version=__version__) == 1
        assert value(samples, "greenapi_exporter_instances") == 2
        tracked = value(samples, "greenapi_exporter_tracked_messages")
        assert tracked is not None and tracked >= 5
        assert value(samples, "greenapi_exporter_config_last_reload_successful") == 1


def test_an_instance_failing_its_poll_shows_up_zero_and_keeps_its_window(
    simulator: Simulator, run_exporter: RunExporter
) -> None:
    exporter = run_exporter(config_for(simulator))
    exporter.wait_ready()
    before = exporter.scrape()
    assert value(before, "greenapi_up", name="sim-1") == 1
    window = value(before, "greenapi_outgoing_window_seconds", name="sim-1")
    simulator.set_fault("sim-1", "status", code=500)
    wait_until(lambda: value(exporter.scrape(), "greenapi_up", name="sim-1") == 0)
    after = exporter.scrape()
    assert value(after, "greenapi_outgoing_window_seconds", name="sim-1") == window
    assert value(after, "greenapi_outgoing_undelivered_messages", name="sim-1") is not None
    assert value(after, "greenapi_up", name="sim-2") == 1
    simulator.clear_fault("sim-1")
    wait_until(lambda: value(exporter.scrape(), "greenapi_up", name="sim-1") == 1)


def test_ready_only_after_every_instance_finished_its_first_poll(
    simulator: Simulator, run_exporter: RunExporter
) -> None:
    simulator.set_fault("sim-3", "delay", seconds=4)
    exporter = run_exporter(config_for(simulator, timeout="10s"))
    exporter.wait_healthy()
    assert exporter.get("/-/ready").status_code == 503
    wait_until(lambda: exporter.get("/-/ready").status_code == 200, timeout=15)


def test_probe_returns_only_the_named_instance(
    simulator: Simulator, run_exporter: RunExporter
) -> None:
    exporter = run_exporter(config_for(simulator))
    exporter.wait_ready()
    samples = exporter.scrape("/probe?target=sim-2")
    names = {dict(labels).get("name") for (_, labels) in samples}
    assert names == {"sim-2"}
    assert value(samples, "greenapi_up", name="sim-2") == 1
    assert not any(n.startswith("greenapi_exporter_") for (n, _) in samples)


@pytest.mark.parametrize("query", ["?target=nope", "", "?target=", "?target=sim-1&target=sim-2"])
def test_probe_refuses_anything_but_one_configured_name(
    simulator: Simulator, run_exporter: RunExporter, query: str
) -> None:
    exporter = run_exporter(config_for(simulator))
    exporter.wait_healthy()
    assert exporter.get("/probe" + query).status_code == 400


def test_landing_page_lists_instances_and_links(
    simulator: Simulator, run_exporter: RunExporter
) -> None:
    exporter = run_exporter(config_for(simulator))
    exporter.wait_ready()
    page = exporter.get("/")
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    for name in ("sim-1", "sim-2", "sim-3", "1101000001", 'href="/metrics"', 'href="/config"',
                 "/probe?target=sim-1"):  # fmt: skip
        assert name in page.text


def test_unknown_paths_are_404_and_reload_needs_post(
    simulator: Simulator, run_exporter: RunExporter
) -> None:
    exporter = run_exporter(config_for(simulator))
    exporter.wait_healthy()
    assert exporter.get("/nope").status_code == 404
    assert exporter.get("/-/reload").status_code == 405


def test_reload_adds_an_instance_and_keeps_the_counters_of_unchanged_ones(
    simulator: Simulator, run_exporter: RunExporter
) -> None:
    full = config_for(simulator)
    first = {**full, "instances": full["instances"][:2]}
    exporter = run_exporter(first)
    exporter.wait_ready()
    wait_for_polls(exporter, "sim-1", 2)
    polls_before = successful_polls(exporter, "sim-1")
    exporter.write_config(full)
    reply = requests.post(exporter.url + "/-/reload", timeout=5)
    assert reply.status_code == 200, reply.text
    samples = exporter.scrape()
    assert value(samples, "greenapi_exporter_instances") == 3
    assert (
        value(samples, "greenapi_polls_total", name="sim-1", result="success") or 0
    ) >= polls_before
    wait_until(lambda: value(exporter.scrape(), "greenapi_up", name="sim-3") == 1)


def test_a_bad_reload_is_refused_and_the_running_config_stays(
    simulator: Simulator, run_exporter: RunExporter
) -> None:
    exporter = run_exporter(config_for(simulator))
    exporter.wait_ready()
    exporter.config_path.write_text("instances:\n  - name: x\n    id_instance: abc\n    bogus: 1\n")
    reply = requests.post(exporter.url + "/-/reload", timeout=5)
    assert reply.status_code == 400
    assert "instances[0].id_instance" in reply.text and "instances[0].bogus" in reply.text
    samples = exporter.scrape()
    assert value(samples, "greenapi_exporter_config_last_reload_successful") == 0
    assert value(samples, "greenapi_exporter_instances") == 3
    assert value(samples, "greenapi_up", name="sim-1") == 1


def test_sighup_reloads_the_configuration(simulator: Simulator, run_exporter: RunExporter) -> None:
    full = config_for(simulator)
    exporter = run_exporter({**full, "instances": full["instances"][:1]})
    exporter.wait_ready()
    exporter.write_config(full)
    exporter.process.send_signal(signal.SIGHUP)
    wait_until(lambda: value(exporter.scrape(), "greenapi_exporter_instances") == 3)


def test_sigterm_stops_the_exporter_within_seconds(
    simulator: Simulator, run_exporter: RunExporter
) -> None:
    simulator.set_fault("sim-1", "hang")
    exporter = run_exporter(config_for(simulator, timeout="30s"))
    exporter.wait_healthy()
    started = time.monotonic()
    assert exporter.stop() == 0
    assert time.monotonic() - started < 5


def test_static_labels_are_the_union_across_instances(
    simulator: Simulator, run_exporter: RunExporter
) -> None:
    config = config_for(simulator)
    config["instances"][0]["labels"] = {"team": "sales"}
    config["instances"][1]["labels"] = {"region": "eu"}
    exporter = run_exporter(config)
    exporter.wait_ready()
    samples = exporter.scrape()
    assert value(samples, "greenapi_up", name="sim-1", team="sales", region="") == 1
    assert value(samples, "greenapi_up", name="sim-2", team="", region="eu") == 1
    assert value(samples, "greenapi_up", name="sim-3", team="", region="") == 1


def test_reload_over_http_can_be_disabled(simulator: Simulator, run_exporter: RunExporter) -> None:
    exporter = run_exporter(config_for(simulator), "--web.disable-reload")
    exporter.wait_healthy()
    assert requests.post(exporter.url + "/-/reload", timeout=5).status_code == 403


def test_delivery_outcomes_are_judged_undelivered_after_the_send(
    simulator: Simulator, run_exporter: RunExporter
) -> None:
    exporter = run_exporter(config_for(simulator, undelivered_after="4s"))
    exporter.wait_ready()
    outcomes = {o: value(exporter.scrape(), "greenapi_outgoing_delivery_outcomes_total",
                         name="sim-1", outcome=o) for o in ("in_time", "late", "failed", "no_status")}  # fmt: skip
    assert outcomes == {"in_time": 0, "late": 0, "failed": 0, "no_status": 0}  # from the start
    t = time.time()
    sent = [msg("A", t, "sent"), msg("B", t, "sent"), msg("C", t, "noAccount"), msg("D", t, "")]
    simulator.set_messages("sim-1", sent)
    wait_for_polls(exporter, "sim-1")
    simulator.set_messages("sim-1", [msg("A", t + 1, "delivered"), *sent[1:]])

    def judged() -> dict[str, float | None] | None:
        samples = exporter.scrape()
        found = {o: value(samples, "greenapi_outgoing_delivery_outcomes_total", name="sim-1",
                          outcome=o) for o in ("in_time", "late", "failed", "no_status")}  # fmt: skip
        return found if sum(v or 0 for v in found.values()) == 4 else None

    assert wait_until(judged) == {"in_time": 1, "late": 1, "failed": 1, "no_status": 1}


def test_with_resync_interval_0_every_poll_reads_the_whole_window(
    simulator: Simulator, run_exporter: RunExporter
) -> None:
    exporter = run_exporter(config_for(simulator, window="2h", resync_interval=0))
    exporter.wait_ready()
    wait_for_polls(exporter, "sim-1", 2)
    minutes = {entry["minutes"] for entry in simulator.requests_log("sim-1")}
    assert minutes == {"120"}
