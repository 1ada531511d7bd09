"""Alert rules and dashboards, checked statically: promtool, names, and dashboard hygiene."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from exporter.collector import GreenApiCollector
from exporter.simulator import Simulator
from tests.conftest import ROOT

PROMETHEUS = ROOT / "prometheus"
DASHBOARDS = sorted((ROOT / "grafana" / "dashboards").glob("*.json"))
SPEC_ALERTS = {
    "GreenApiExporterDown", "GreenApiPollFailing", "GreenApiRateLimited", "GreenApiQuotaExceeded",
    "GreenApiUndeliveredMessages", "GreenApiDeliveryLagHigh", "GreenApiWindowTruncated",
    "GreenApiNoOutgoingMessages",
}  # fmt: skip


def promtool(*args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("promtool")
    if binary is None:
        pytest.skip("promtool is not installed (Debian package prometheus)")
    return subprocess.run(
        [binary, *args], capture_output=True, text=True, cwd=PROMETHEUS, input=input
    )


def exported_names() -> set[str]:
    """Every sample name the exporter can emit, from its own describe()."""
    names: set[str] = set()
    for family in GreenApiCollector(lambda: None).describe():  # type: ignore[arg-type, return-value]
        if family.type == "counter":
            names.add(family.name + "_total")
        elif family.type == "histogram":
            names.update(family.name + suffix for suffix in ("_bucket", "_sum", "_count"))
        else:
            names.add(family.name)
    return names


def rules() -> list[dict[str, Any]]:
    document = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def dashboard_queries(dashboard: dict[str, Any]) -> list[str]:
    queries = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    queries += [a["expr"] for a in dashboard["annotations"]["list"] if "expr" in a]
    return queries


def test_promtool_checks_the_rules() -> None:
    result = promtool("check", "rules", "alerts.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_unit_tests_of_the_rules_pass() -> None:
    result = promtool("test", "rules", "alerts.test.yml")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("config", ["prometheus.yml", "prometheus.compose.yml"])
def test_promtool_checks_the_example_scrape_configs(config: str) -> None:
    result = promtool("check", "config", config)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_of_the_spec_exists_with_severity_and_annotations_naming_the_instance() -> None:
    alerts = {rule["alert"]: rule for rule in rules() if "alert" in rule}
    assert set(alerts) >= SPEC_ALERTS
    for name, rule in alerts.items():
        assert rule["labels"]["severity"] in {"info", "warning", "critical"}, name
        annotations = rule["annotations"]
        assert annotations["runbook_url"].endswith("#" + name.lower())
        if name != "GreenApiExporterDown":  # about the exporter, not a GREEN-API instance
            assert "$labels.name" in annotations["summary"] + annotations["description"], name


def test_every_alert_has_a_unit_test_that_fires_it_and_one_that_does_not() -> None:
    tests = yaml.safe_load((PROMETHEUS / "alerts.test.yml").read_text())["tests"]
    cases = [case for test in tests for case in test.get("alert_rule_test", [])]
    for alert in SPEC_ALERTS:
        mine = [case for case in cases if case["alertname"] == alert]
        assert any(case["exp_alerts"] for case in mine), f"{alert} never fires in a test"
        assert any(not case["exp_alerts"] for case in mine), f"{alert} never shown quiet"


def test_every_alert_has_a_runbook_section() -> None:
    runbook = (ROOT / "docs" / "runbook.md").read_text()
    headings = {line.lstrip("#").strip() for line in runbook.splitlines() if line.startswith("## ")}
    assert headings >= SPEC_ALERTS


def used_metric_names(text: str) -> set[str]:
    return set(re.findall(r"\bgreenapi_[a-z_]+", text))


def test_rules_and_dashboards_use_only_metrics_the_exporter_emits() -> None:
    emitted = exported_names()
    texts = [(PROMETHEUS / "alerts.yml").read_text(), *(p.read_text() for p in DASHBOARDS)]
    used = set().union(*(used_metric_names(t) for t in texts))
    assert used, "no metric names found"
    assert used - emitted == set()


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboards_choose_their_datasource_through_a_variable(path: Path) -> None:
    text = path.read_text()
    dashboard = json.loads(text)
    assert "${DS_" not in text
    [variable] = [v for v in dashboard["templating"]["list"] if v["name"] == "datasource"]
    assert (variable["type"], variable["query"]) == ("datasource", "prometheus")
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}"


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboards_have_a_fixed_uid_tags_and_job_and_name_variables(path: Path) -> None:
    dashboard = json.loads(path.read_text())
    assert dashboard["uid"] == path.stem
    assert "greenapi" in dashboard["tags"]
    titles = [p["title"] for p in dashboard["panels"]]
    assert len(titles) == len(set(titles)), "panel titles must be unique"
    names = {v["name"] for v in dashboard["templating"]["list"]}
    assert {"job", "name", "filters"} <= names
    assert any(link.get("url", "").startswith("/d/") for link in dashboard["links"])


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_every_panel_has_a_description_a_unit_and_rate_interval(path: Path) -> None:
    dashboard = json.loads(path.read_text())
    for panel in dashboard["panels"]:
        if panel["type"] in {"row", "text"}:
            continue
        assert panel.get("description"), panel["title"]
        assert panel["fieldConfig"]["defaults"].get("unit"), panel["title"]
        assert panel["fieldConfig"]["defaults"].get("thresholds"), panel["title"]
    for query in dashboard_queries(dashboard):
        for window in re.findall(r"(?:rate|increase)\([^\[]*\[([^\]]+)\]", query):
            if "process_start_time" in query or "reload_success" in query:
                continue  # annotations look for changes within minutes, not a rate
            assert window == "$__rate_interval", query


def test_the_generated_dashboards_are_up_to_date() -> None:
    result = subprocess.run([sys.executable, str(ROOT / "grafana" / "generate.py"), "--check"],
                            capture_output=True, text=True)  # fmt: skip
    assert result.returncode == 0, result.stderr


def test_promtool_finds_no_problem_in_the_exposition(
    simulator: Simulator, run_exporter: Any
) -> None:
    exporter = run_exporter(simulator.exporter_config(poll_interval="1s"))
    exporter.wait_ready()
    text = exporter.get("/metrics").text
    assert "greenapi_outgoing_delivery_lag_seconds_bucket" in text
    result = promtool("check", "metrics", input=text)
    assert result.returncode == 0, result.stdout + result.stderr
    assert not (result.stdout + result.stderr).strip(), result.stdout + result.stderr
