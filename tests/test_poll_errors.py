"""Every class of greenapi_polls_total{result}, provoked for real through the simulator."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from exporter.simulator import Simulator
from tests.conftest import ExporterProcess, free_port, value, wait_until

# instance name → (how the fault is made, the result it must be counted as)
FAULTS: dict[str, str] = {
    "sim-1": "http_400",
    "sim-2": "http_401",
    "sim-3": "http_403",
    "sim-4": "http_429",
    "sim-5": "http_466",
    "sim-6": "http_4xx",
    "sim-7": "http_5xx",
    "sim-8": "invalid_response",
    "sim-9": "timeout",
    "sim-10": "connection_error",
    "sim-11": "success",
    "sim-12": "http_401",  # HTTP 200 carrying {"code": 401, ...}, as GREEN-API has answered
    "sim-13": "http_5xx",  # the same shape with a 5xx code
}


@pytest.fixture(scope="module")
def faulty(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Simulator, ExporterProcess]]:
    sim = Simulator(instances=13, seed=5, history=600)
    sim.start()
    sim.set_fault("sim-1", "status", code=400)
    sim.set_fault("sim-4", "status", code=429)
    sim.set_fault("sim-5", "status", code=466)
    sim.set_fault("sim-6", "status", code=404)
    sim.set_fault("sim-7", "status", code=502)
    sim.set_fault("sim-8", "broken_json")
    sim.set_fault("sim-9", "delay", seconds=5)
    sim.set_fault("sim-12", "status", code=200, body='{"code":401,"description":"Unauthorized"}')
    sim.set_fault("sim-13", "status", code=200, body='{"code": 502, "description": "Bad Gateway"}')
    # Polls 2 s apart, not the 1.1 s the exporter allows: the simulator answers 429 to requests
    # that arrive less than 1 s apart, and on a machine busy with the tests beside these an
    # arrival can be late by a tenth of a second; a healthy request can take over 1 s too.
    config: dict[str, Any] = sim.exporter_config(poll_interval="2s", timeout="2s")
    by_name = {i["name"]: i for i in config["instances"]}
    by_name["sim-2"]["api_token"] = "0" * 50  # a wrong token: the simulator answers 401
    by_name["sim-3"]["id_instance"] = "1199999999"  # an unknown id: 403
    by_name["sim-10"]["api_url"] = f"http://127.0.0.1:{free_port()}"  # nothing listens: refused
    exporter = ExporterProcess(tmp_path_factory.mktemp("faults"), config, "--log.level", "debug")
    try:
        exporter.wait_ready(timeout=30)
        yield sim, exporter
    finally:
        exporter.stop()
        sim.stop()


@pytest.mark.parametrize(("name", "result"), sorted(FAULTS.items()))
def test_each_failure_is_counted_under_its_result(
    faulty: tuple[Simulator, ExporterProcess], name: str, result: str
) -> None:
    _, exporter = faulty
    samples = wait_until(
        lambda: (
            (s := exporter.scrape())
            and (value(s, "greenapi_polls_total", name=name, result=result) or 0) >= 1
            and s
        )
    )
    assert value(samples, "greenapi_up", name=name) == (1 if result == "success" else 0)
    others = [
        r for (n, labels), v in samples.items()
        if n == "greenapi_polls_total" and dict(labels)["name"] == name and v > 0
        for r in [dict(labels)["result"]]
    ]  # fmt: skip
    assert others == [result]


def test_a_failing_instance_is_logged_once_not_at_every_poll(
    faulty: tuple[Simulator, ExporterProcess],
) -> None:
    _, exporter = faulty
    wait_until(
        lambda: (
            (value(exporter.scrape(), "greenapi_polls_total", name="sim-2", result="http_401") or 0)
            >= 3
        )
    )
    warnings = [
        line for line in exporter.log().splitlines()
        if "level=warning" in line and "instance=sim-2 " in line + " "
    ]  # fmt: skip
    assert len(warnings) == 1, warnings


def test_quota_exceeded_backs_off_for_long(faulty: tuple[Simulator, ExporterProcess]) -> None:
    sim, _ = faulty
    wait_until(lambda: len(sim.requests_log("sim-4")) >= 2)  # time for several 2 s polls
    wait_until(lambda: len(sim.requests_log("sim-11")) >= 4)
    assert len(sim.requests_log("sim-5")) == 1


def test_rate_limited_instance_backs_off(faulty: tuple[Simulator, ExporterProcess]) -> None:
    sim, _ = faulty
    wait_until(lambda: len(sim.requests_log("sim-11")) >= 6, timeout=30)
    # Healthy: a request every 2 s. Rate limited: 4 s, 8 s, 16 s … after each 429.
    assert len(sim.requests_log("sim-4")) <= 3


def test_retry_after_is_honoured(tmp_path_factory: pytest.TempPathFactory) -> None:
    sim = Simulator(instances=2, seed=9, history=600)
    sim.start()
    sim.set_fault("sim-1", "status", code=429, retry_after="3")
    exporter = ExporterProcess(
        tmp_path_factory.mktemp("retry"), sim.exporter_config(poll_interval="1s")
    )
    try:
        exporter.wait_ready()
        wait_until(lambda: len(sim.requests_log("sim-1")) >= 2, timeout=15)
        times = [float(e["time"]) for e in sim.requests_log("sim-1")]
        assert times[1] - times[0] >= 2.9
        sim.clear_fault("sim-1")
        wait_until(lambda: value(exporter.scrape(), "greenapi_up", name="sim-1") == 1, timeout=15)
    finally:
        exporter.stop()
        sim.stop()


def test_a_failing_instance_does_not_slow_scrapes(
    faulty: tuple[Simulator, ExporterProcess],
) -> None:
    _, exporter = faulty
    for _ in range(20):
        response = requests.get(exporter.url + "/metrics", timeout=1)
        assert response.status_code == 200
        assert response.elapsed.total_seconds() < 0.5
