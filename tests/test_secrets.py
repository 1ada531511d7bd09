"""The token is in every request URL; it must not reach logs, pages, metrics or replies."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from exporter.redaction import redact
from exporter.simulator import Simulator
from tests.conftest import free_port, wait_until
from tests.conftest import value as sample


def test_redact_removes_known_tokens_and_any_token_shaped_path_segment() -> None:
    text = "GET /waInstance1101/lastOutgoingMessages/abc123?minutes=5 and abc123 again"
    assert redact(text, ["abc123"]) == (
        "GET /waInstance1101/lastOutgoingMessages/<redacted>?minutes=5 and <redacted> again"
    )
    assert "zzz" not in redact("url: /waInstance42/getStateInstance/zzz", [])


@pytest.mark.process
def test_no_token_anywhere_with_refused_unauthorised_and_timing_out_instances(
    simulator: Simulator, run_exporter: Any
) -> None:
    config: dict[str, Any] = simulator.exporter_config(poll_interval="1s", timeout="1s")
    tokens = [instance["api_token"] for instance in config["instances"]]
    config["instances"][0]["api_url"] = f"http://127.0.0.1:{free_port()}"  # connection refused
    wrong = "f" * 50
    config["instances"][1]["api_token"] = wrong  # 401
    tokens.append(wrong)
    simulator.set_fault("sim-3", "delay", seconds=4)  # timeout
    exporter = run_exporter(config, "--log.level", "debug")
    exporter.wait_ready(timeout=30)
    wait_until(
        lambda: sample(exporter.scrape(), "greenapi_polls_total", name="sim-3", result="timeout")
    )
    wait_until(
        lambda: sample(
            exporter.scrape(), "greenapi_polls_total", name="sim-1", result="connection_error"
        )
    )

    seen: list[str] = [exporter.get("/").text, exporter.get("/metrics").text]
    seen.append(exporter.get("/probe?target=sim-2").text)
    seen.append(requests.post(exporter.url + "/-/reload", timeout=5).text)
    # A refused reload must not quote the token either, even when it is what is wrong.
    broken = dict(config)
    broken["instances"] = [dict(config["instances"][0], api_token=tokens[0], bogus=True)]
    exporter.write_config(broken)
    seen.append(requests.post(exporter.url + "/-/reload", timeout=5).text)
    exporter.stop()
    seen.append(exporter.log())

    assert "connection_error" in seen[0] or "Connection" in seen[0]
    for text in seen:
        for token in tokens:
            assert token not in text
    assert "<redacted>" in exporter.log() or "lastOutgoingMessages" not in exporter.log()
