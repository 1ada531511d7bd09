"""Every dashboard query against a real Prometheus scraping the exporter's demo.

Starts ``greenapi-exporter --demo`` and Debian's ``prometheus`` (scrape interval 1 s), waits
for data by polling the API, then runs each panel's and variable's query with the variables
substituted. Every panel must have data in the demo scenario; rules must load and evaluate.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from tests.conftest import ROOT, ExporterProcess, free_port, wait_until

pytestmark = pytest.mark.slow

RATE_INTERVAL = "20s"
DASHBOARDS = {"greenapi-fleet": ".*", "greenapi-instance": "stuck-bot"}
# Panels allowed to be empty in the demo, with the reason. (None at present: every series the
# panels use exists in the demo, with zeros where nothing happens.)
MAY_BE_EMPTY: dict[str, str] = {}


class PrometheusServer:
    def __init__(self, tmp_path: Path, target: str) -> None:
        binary = shutil.which("prometheus")
        if binary is None:
            pytest.skip("prometheus is not installed (Debian package prometheus)")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(ROOT / "prometheus" / "alerts.yml")],
            "scrape_configs": [{"job_name": "greenapi", "static_configs": [{"targets": [target]}]}],
        }
        (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.log = (tmp_path / "prometheus.log").open("wb")
        self.process = subprocess.Popen(
            [binary, f"--config.file={tmp_path / 'prometheus.yml'}",
             f"--storage.tsdb.path={tmp_path / 'data'}", f"--web.listen-address=127.0.0.1:{self.port}"],
            stdout=self.log, stderr=subprocess.STDOUT,
        )  # fmt: skip

    def query(self, expr: str) -> list[dict[str, Any]]:
        response = requests.get(self.url + "/api/v1/query", params={"query": expr}, timeout=10)
        body = response.json()
        assert body["status"] == "success", f"{expr}: {body}"
        return list(body["data"]["result"])

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    tmp = tmp_path_factory.mktemp("prometheus")
    exporter = ExporterProcess(tmp, None, "--demo")
    server: PrometheusServer | None = None
    try:
        exporter.wait_ready(timeout=30)
        server = PrometheusServer(tmp, f"127.0.0.1:{exporter.port}")
        prom = server

        def target_up() -> bool:
            return any(s["value"][1] == "1" for s in prom.query('up{job="greenapi"}'))

        wait_until(target_up, timeout=90, interval=0.5)
        # Enough history for rates over RATE_INTERVAL, and a few polls (every 5 s) with
        # deliveries, reads and lags in them.
        wait_until(lambda: prom.query(
            f'sum(rate(greenapi_outgoing_status_reached_total{{status="read"}}[{RATE_INTERVAL}])) > 0'
        ), timeout=90, interval=1)  # fmt: skip
        wait_until(lambda: prom.query(
            f"sum(rate(greenapi_outgoing_delivery_lag_seconds_count[{RATE_INTERVAL}])) > 0"
        ), timeout=90, interval=1)  # fmt: skip
        yield server
    finally:
        if server is not None:
            server.stop()
        exporter.stop()


def substitute(expr: str, name: str) -> str:
    expr = expr.replace("$__rate_interval", RATE_INTERVAL).replace("$__interval", "5s")
    expr = expr.replace("$__range", "5m").replace("${name:regex}", name)
    return expr.replace("$job", "greenapi").replace("$name", name)


def panels(uid: str) -> list[dict[str, Any]]:
    dashboard = json.loads((ROOT / "grafana" / "dashboards" / f"{uid}.json").read_text())
    return [p for p in dashboard["panels"] if p["type"] != "row"]


@pytest.mark.parametrize(
    ("uid", "title"),
    [(uid, p["title"]) for uid in DASHBOARDS for p in panels(uid)],
)
def test_every_panel_query_returns_data(prometheus: PrometheusServer, uid: str, title: str) -> None:
    [panel] = [p for p in panels(uid) if p["title"] == title]
    for target in panel["targets"]:
        expr = substitute(target["expr"], DASHBOARDS[uid])
        result = prometheus.query(expr)
        if title not in MAY_BE_EMPTY:
            assert result, f"{uid} / {title}: no data for {expr}"


@pytest.mark.parametrize("uid", list(DASHBOARDS))
def test_template_variables_find_values(prometheus: PrometheusServer, uid: str) -> None:
    dashboard = json.loads((ROOT / "grafana" / "dashboards" / f"{uid}.json").read_text())
    for variable in dashboard["templating"]["list"]:
        if variable["type"] != "query":
            continue
        match = re.fullmatch(r"label_values\((.+), (\w+)\)", variable["query"]["query"])
        assert match, variable["query"]
        selector, label = substitute(match.group(1), ".*"), match.group(2)
        response = requests.get(prometheus.url + f"/api/v1/label/{label}/values",
                                params={"match[]": selector}, timeout=10)  # fmt: skip
        values = response.json()["data"]
        assert values, f"{uid}: variable {variable['name']} finds nothing"
        if variable["name"] == "name":
            assert {"shop-bot", "support-bot", "stuck-bot", "max-channel"} <= set(values)


@pytest.mark.parametrize("uid", list(DASHBOARDS))
def test_annotation_queries_are_valid(prometheus: PrometheusServer, uid: str) -> None:
    dashboard = json.loads((ROOT / "grafana" / "dashboards" / f"{uid}.json").read_text())
    for annotation in dashboard["annotations"]["list"]:
        if "expr" in annotation:
            prometheus.query(substitute(annotation["expr"], ".*"))  # asserts success


def test_the_alert_rules_load_and_evaluate_without_errors(prometheus: PrometheusServer) -> None:
    def rules_evaluated() -> list[dict[str, Any]]:
        groups = requests.get(prometheus.url + "/api/v1/rules", timeout=10).json()["data"]["groups"]
        rules = [rule for group in groups for rule in group["rules"]]
        return (
            rules
            if rules and all(r.get("lastEvaluation", "").startswith("20") for r in rules)
            else []
        )

    rules = wait_until(rules_evaluated, timeout=30, interval=0.5)
    assert {r["name"] for r in rules if r["type"] == "alerting"} >= {
        "GreenApiUndeliveredMessages",
        "GreenApiPollFailing",
    }
    assert all(r["health"] == "ok" for r in rules), [r for r in rules if r["health"] != "ok"]


def test_the_demo_shows_undelivered_messages_for_stuck_bot(prometheus: PrometheusServer) -> None:
    result = prometheus.query('greenapi_outgoing_undelivered_messages{name="stuck-bot"} > 0')
    assert result
    expr = yaml.safe_load((ROOT / "prometheus" / "alerts.yml").read_text())
    [rule] = [
        r
        for g in expr["groups"]
        for r in g["rules"]
        if r.get("alert") == "GreenApiUndeliveredMessages"
    ]
    assert any(s["metric"]["name"] == "stuck-bot" for s in prometheus.query(rule["expr"]))
