"""/metrics as its real clients read it: Prometheus asks for OpenMetrics first, curl and
older clients for text. The running exporter (every collector, against the simulator) must
give each a valid exposition that the matching prometheus_client parser accepts."""

from __future__ import annotations

import gzip
from collections.abc import Iterable, Iterator

import pytest
import requests
from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as parse_openmetrics,
)
from prometheus_client.parser import text_string_to_metric_families as parse_text

from exporter.simulator import Simulator
from tests.conftest import ExporterProcess, wait_until
from tests.test_rules import promtool

# What Prometheus 2.x sends by default (scrape_protocols unset), byte for byte.
PROMETHEUS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
    "text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)
COLLECT = ["outgoing", "state", "queue", "incoming"]
Series = set[tuple[str, frozenset[tuple[str, str]]]]  # (name, labels) of greenapi_* samples


@pytest.fixture(scope="module")
def exporter(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ExporterProcess]:
    sim = Simulator(instances=3, seed=11, history=3600, rate=1 / 5)
    sim.start()
    config = sim.exporter_config(poll_interval="1s", collect=COLLECT)
    config["instances"][0]["labels"] = {"team": 'sa"les'}
    process = ExporterProcess(tmp_path_factory.mktemp("formats"), config)
    try:
        process.wait_ready(timeout=30)
        # Messages sent since the start are counted (those before are the baseline).
        wait_until(lambda: "\ngreenapi_outgoing_messages_total{" in process.get("/metrics").text)
        yield process
    finally:
        process.stop()
        sim.stop()


def scrape(exporter: ExporterProcess, accept: str, path: str = "/metrics") -> requests.Response:
    response = exporter.get(path, headers={"Accept": accept, "Accept-Encoding": "identity"})
    assert response.status_code == 200, response.text
    return response


def test_prometheus_default_accept_header_gets_openmetrics(exporter: ExporterProcess) -> None:
    response = scrape(exporter, PROMETHEUS_ACCEPT)
    assert response.headers["Content-Type"].startswith(
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    )
    assert response.text.endswith("# EOF\n")
    assert response.text.count("# EOF") == 1


def test_the_openmetrics_exposition_passes_the_strict_parser(exporter: ExporterProcess) -> None:
    text = scrape(exporter, PROMETHEUS_ACCEPT).text
    families = {family.name: family for family in parse_openmetrics(text)}
    assert families["greenapi_outgoing_window_messages"].type == "gauge"
    assert families["greenapi_outgoing_messages"].type == "counter"
    assert families["greenapi_outgoing_delivery_outcomes"].type == "counter"
    assert families["process_cpu_seconds"].type == "counter"  # the runtime's series too


def test_text_plain_gets_the_text_format(exporter: ExporterProcess) -> None:
    response = scrape(exporter, "text/plain")
    assert response.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    names = {s.name for family in parse_text(response.text) for s in family.samples}
    assert {"greenapi_outgoing_window_messages", "greenapi_outgoing_messages_total",
            "greenapi_outgoing_delivery_outcomes_total", "process_cpu_seconds_total"} <= names  # fmt: skip
    assert "# EOF" not in response.text


def test_no_accept_header_gets_the_text_format(exporter: ExporterProcess) -> None:
    response = requests.get(exporter.url + "/metrics", headers={"Accept": ""}, timeout=5)
    assert response.headers["Content-Type"].startswith("text/plain")


def test_both_formats_carry_the_same_series(exporter: ExporterProcess) -> None:
    def series(families: Iterable[Metric]) -> Series:
        return {
            (sample.name, frozenset(sample.labels.items()))
            for family in families
            for sample in family.samples
            if sample.name.startswith("greenapi_")
        }

    def compared() -> tuple[Series, Series] | None:
        """(text, OpenMetrics) of two scrapes with no new series between them: a text scrape
        before and after the OpenMetrics one shows the same series."""
        before = series(parse_text(scrape(exporter, "text/plain").text))
        openmetrics = series(parse_openmetrics(scrape(exporter, PROMETHEUS_ACCEPT).text))
        after = series(parse_text(scrape(exporter, "text/plain").text))
        return (before, openmetrics) if before == after else None

    text, openmetrics = wait_until(compared)  # the simulator's traffic adds series now and then
    assert text == openmetrics


def test_promtool_finds_no_problem_in_the_live_text_exposition(exporter: ExporterProcess) -> None:
    text = scrape(exporter, "text/plain").text
    result = promtool("check", "metrics", input=text)
    output = (result.stdout + result.stderr).strip()
    assert result.returncode == 0 and not output, output


def test_a_gzip_scrape_is_compressed_and_the_same_exposition(exporter: ExporterProcess) -> None:
    response = requests.get(
        exporter.url + "/metrics",
        headers={"Accept": PROMETHEUS_ACCEPT, "Accept-Encoding": "gzip"},
        timeout=5,
        stream=True,
    )
    raw = response.raw.read(decode_content=False)
    assert response.headers["Content-Encoding"] == "gzip"
    list(parse_openmetrics(gzip.decompress(raw).decode()))


def test_probe_answers_openmetrics_to_prometheus(exporter: ExporterProcess) -> None:
    response = scrape(exporter, PROMETHEUS_ACCEPT, "/probe?target=sim-1")
    assert response.headers["Content-Type"].startswith("application/openmetrics-text")
    names = {s.labels.get("name") for f in parse_openmetrics(response.text) for s in f.samples}
    assert names == {"sim-1"}
