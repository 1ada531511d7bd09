"""Alert rules, scrape configs and dashboards, checked statically.

promtool checks and unit-tests the rules and checks the example configs; the alerts the README
documents exist with the labels and annotations users rely on; every metric name, and every
label value, that rules and dashboards select on is one the code declares, and the README's
metric tables list exactly the declared families; the dashboards follow the README's
conventions (datasource variable, no hard-coded datasource, fixed uid, units, descriptions,
$__rate_interval); the generated JSON is up to date.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from exporter.client import RESULTS
from exporter.collector import FAMILIES, GreenApiCollector, exporter_families
from exporter.collectors import NAMES
from exporter.collectors.state import INSTANCE_STATES
from exporter.journal import KNOWN_STATUSES, STATUS_OTHER, STATUS_UNKNOWN
from exporter.simulator import Simulator
from exporter.tracker import OUTCOMES
from tests.conftest import ROOT

PROMETHEUS = ROOT / "prometheus"
GRAFANA = ROOT / "grafana"
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
RUNBOOK = "https://github.com/greenapi-exporter/greenapi-exporter/blob/main/docs/runbook.md"
# promtool unit tests of the rules: hand-written, and generated from simulated traffic
# (prometheus/traffic_tests.py).
RULE_TESTS = ["alerts.test.yml", "alerts.traffic.test.yml"]
OBJECTIVE = "greenapi:outgoing_delivery_sli:objective"

# The alerts the README documents (alerts are rules, not code: this list is their contract).
EXPECTED_ALERTS = {
    "GreenApiExporterDown", "GreenApiPollFailing", "GreenApiRateLimited", "GreenApiQuotaExceeded",
    "GreenApiDeliveryStalled", "GreenApiDeliveryRatioLow", "GreenApiFailedSendsHigh",
    "GreenApiDeliveryLagHigh", "GreenApiWindowTruncated", "GreenApiNoOutgoingMessages",
    # for instances with the optional collectors
    "GreenApiInstanceNotAuthorized", "GreenApiSendQueueGrowing",
}  # fmt: skip

# Label values that rules and dashboards may select on, as the code declares them.
DECLARED_VALUES: dict[str, set[str]] = {
    "state": set(INSTANCE_STATES),
    "outcome": set(OUTCOMES),
    "result": set(RESULTS),
    "collector": set(NAMES),
    "status": {*KNOWN_STATUSES, STATUS_UNKNOWN, STATUS_OTHER},
}
# `label="value"` or `label=~"a|b"` inside PromQL (annotation templates use single quotes).
LABEL_MATCHER = re.compile(
    r"\b(state|outcome|result|collector|status)(=~?|!=|!~)[\"']([^\"']*)[\"']"
)

# A greenapi_* metric name or a greenapi:* recording-rule name inside PromQL.
METRIC_NAME = re.compile(r"(?<![\w:])greenapi(?:_[a-z_]+|:[A-Za-z0-9_:]+)")


def promtool(*args: str, input: str | None = None, cwd: Path = PROMETHEUS) -> subprocess.CompletedProcess[str]:  # fmt: skip
    binary = shutil.which("promtool")
    if binary is None:  # a skipped rules test proves nothing: CI must have it
        pytest.fail("promtool is not installed: install Debian's `prometheus` package (CI does)")
    return subprocess.run([binary, *args], capture_output=True, text=True, cwd=cwd, input=input)


def rules() -> list[dict[str, Any]]:
    document = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def alerts() -> dict[str, dict[str, Any]]:
    return {rule["alert"]: rule for rule in rules() if "alert" in rule}


def recording_names() -> set[str]:
    return {rule["record"] for rule in rules() if "record" in rule}


def load(path: Path) -> dict[str, Any]:
    return dict(json.loads(path.read_text()))


def all_panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])  # panels inside collapsed rows


def dashboard_queries(dashboard: dict[str, Any]) -> list[str]:
    """Every PromQL expression: panel targets, variable queries, annotations."""
    queries = [t["expr"] for p in all_panels(dashboard) for t in p.get("targets", [])]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]
            queries.append(query["query"] if isinstance(query, dict) else query)
    queries += [a["expr"] for a in dashboard["annotations"]["list"] if "expr" in a]
    return queries


def walk(node: Any, path: str = "") -> Iterator[tuple[str, str, Any]]:
    """(path, key, value) for every key of every object in a JSON document."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield path, key, value
            yield from walk(value, f"{path}.{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from walk(value, f"{path}[{index}]")


# --- promtool ---------------------------------------------------------------------------------


@pytest.mark.process
def test_promtool_checks_the_rules() -> None:
    result = promtool("check", "rules", "alerts.yml")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.process
@pytest.mark.parametrize("tests", RULE_TESTS)
def test_promtool_unit_tests_of_the_rules_pass(tests: str) -> None:
    result = promtool("test", "rules", tests)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.process
def test_the_generated_traffic_tests_are_up_to_date() -> None:
    result = subprocess.run(
        [sys.executable, str(PROMETHEUS / "traffic_tests.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.process
@pytest.mark.parametrize("config", sorted(p.name for p in PROMETHEUS.glob("prometheus*.yml")))
def test_promtool_checks_the_example_scrape_configs(config: str) -> None:
    result = promtool("check", "config", config)
    assert result.returncode == 0, result.stdout + result.stderr


def example_config() -> dict[str, Any]:
    return dict(yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text()))


def commented_out_jobs() -> list[dict[str, Any]]:
    """The jobs that prometheus.yml leaves commented out (the /probe setup), uncommented as its
    comment tells: from the first `# - job_name:` to the end of that comment block."""
    lines = (PROMETHEUS / "prometheus.yml").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if re.match(r"\s*# - job_name: ", line))
    block = []
    for line in lines[start:]:
        if not line.lstrip().startswith("#"):
            break
        block.append(re.sub(r"^(\s*)# ?", r"\1", line, count=1))
    jobs = yaml.safe_load("\n".join(block))
    assert isinstance(jobs, list) and all("job_name" in job for job in jobs), block
    return jobs


def probe_setup() -> tuple[dict[str, Any], dict[str, Any]]:
    """(the /probe job, the job for the exporter's own series) of the commented-out setup."""
    [probe] = [j for j in commented_out_jobs() if j.get("metrics_path") == "/probe"]
    [own] = [j for j in commented_out_jobs() if j.get("metrics_path", "/metrics") == "/metrics"]
    return probe, own


def test_the_example_scrape_config_enables_only_the_exporter_job() -> None:
    """Used as it is with the demo, nothing is scraped twice and no probe target is missing."""
    config = example_config()
    [job] = config["scrape_configs"]
    assert job["job_name"] == "greenapi"  # so that GreenApiExporterDown watches it
    assert job.get("metrics_path", "/metrics") == "/metrics"
    assert job["static_configs"] == [{"targets": ["localhost:9935"]}]
    assert "alerts.yml" in config["rule_files"]


def test_the_commented_out_probe_job_uses_the_multi_target_pattern() -> None:
    """/probe?target=NAME: the target is an instance name, the exporter is the address."""
    probe, _ = probe_setup()
    assert "greenapi" in probe["job_name"]  # so that GreenApiExporterDown watches it
    relabel = probe["relabel_configs"]
    assert {"source_labels": ["__address__"], "target_label": "__param_target"} in relabel
    assert {"source_labels": ["__param_target"], "target_label": "name"} in relabel
    assert relabel[-1] == {"target_label": "__address__", "replacement": "localhost:9935"}
    assert probe["honor_labels"] is True  # keep the exposed `name`, no exported_name


@pytest.mark.process
def test_promtool_checks_the_commented_out_probe_setup(tmp_path: Path) -> None:
    config = example_config()
    config["scrape_configs"] = commented_out_jobs()  # instead of the /metrics job, as it says
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    shutil.copy(PROMETHEUS / "alerts.yml", tmp_path)
    result = promtool("check", "config", "prometheus.yml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.process
def test_the_probe_setup_stores_every_series_of_metrics_once(simulator: Simulator, run_exporter: Any) -> None:  # fmt: skip
    """The /probe job for every instance and the other job's kept /metrics series: together
    every metric of /metrics, none of them from both jobs."""
    probe, own = probe_setup()
    assert "greenapi" in own["job_name"]  # so that GreenApiExporterDown watches it too
    [keep] = own["metric_relabel_configs"]
    assert keep["source_labels"] == ["__name__"] and keep["action"] == "keep"
    exporter = run_exporter(simulator.exporter_config(poll_interval="1s"))
    exporter.wait_ready()
    everything = {name for name, _ in exporter.scrape("/metrics")}
    kept = {name for name in everything if re.fullmatch(keep["regex"], name)}  # anchored
    probed: set[str] = set()
    for instance in simulator.exporter_config()["instances"]:
        path = f"{probe['metrics_path']}?target={instance['name']}"
        probed |= {name for name, _ in exporter.scrape(path)}
    assert kept and probed
    assert not kept & probed
    assert everything <= kept | probed


def test_the_compose_prometheus_scrapes_the_compose_exporter_once() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert "--config.file=/etc/prometheus/prometheus.compose.yml" in " ".join(
        compose["services"]["prometheus"]["command"]
    )
    config = yaml.safe_load((PROMETHEUS / "prometheus.compose.yml").read_text())
    [job] = config["scrape_configs"]
    assert "greenapi" in job["job_name"]
    assert job["static_configs"] == [{"targets": ["exporter:9935"]}]
    assert "exporter" in compose["services"]


# --- alerts -----------------------------------------------------------------------------------


def test_every_alert_the_readme_documents_exists_with_for_severity_and_annotations_naming_the_instance() -> None:  # fmt: skip
    found = alerts()
    assert set(found) >= EXPECTED_ALERTS, EXPECTED_ALERTS - set(found)
    for name, rule in found.items():
        assert rule.get("for"), f"{name}: no `for`"
        assert rule["labels"]["severity"] in {"info", "warning", "critical"}, name
        annotations = rule["annotations"]
        assert annotations["runbook_url"] == f"{RUNBOOK}#{name.lower()}", name
        for key in ("summary", "description"):
            text = annotations[key]
            assert "$labels.name" in text, (name, key)
            if name == "GreenApiExporterDown":  # the scrape target; `name` only with /probe
                assert "$labels.instance" in text, (name, key)
            else:
                assert "$labels.id_instance" in text, (name, key)


def test_the_silent_instance_alert_only_watches_instances_that_opt_in() -> None:
    expr = alerts()["GreenApiNoOutgoingMessages"]["expr"]
    assert 'expect_traffic="true"' in expr


def test_the_poll_alerts_select_the_poll_results_the_readme_documents() -> None:
    found = alerts()
    assert "greenapi_up == 0" in found["GreenApiPollFailing"]["expr"]
    assert 'result="http_429"' in found["GreenApiRateLimited"]["expr"]
    assert 'result="http_466"' in found["GreenApiQuotaExceeded"]["expr"]


def test_the_journal_alerts_select_the_outgoing_collector() -> None:
    """greenapi_polls_total has a `collector` label: results of the state,
    queue and incoming collectors must not silence or fire the journal's alerts."""
    found = alerts()
    failing = found["GreenApiPollFailing"]
    assert 'collector="outgoing"' in failing["expr"]
    assert "collector='outgoing'" in failing["annotations"]["description"]
    assert 'collector=~"outgoing|incoming"' in found["GreenApiQuotaExceeded"]["expr"]
    rate_limited = found["GreenApiRateLimited"]
    assert "collector" not in rate_limited["expr"]  # one alert per collector
    assert "$labels.collector" in rate_limited["annotations"]["summary"]


def test_the_collector_alerts_select_their_metrics() -> None:
    found = alerts()
    not_authorized = found["GreenApiInstanceNotAuthorized"]["expr"]
    assert 'greenapi_instance_state{state="authorized"}' in not_authorized
    assert "without (state)" in not_authorized  # a change between bad states keeps firing
    assert "greenapi_send_queue_messages" in found["GreenApiSendQueueGrowing"]["expr"]
    assert "deriv(greenapi_send_queue_messages" in found["GreenApiSendQueueGrowing"]["expr"]


def test_the_delivery_objective_is_set_in_one_place() -> None:
    """One recording rule holds the number; every rule that needs it reads that rule."""
    [objective] = [r for r in rules() if r.get("record") == OBJECTIVE]
    assert re.fullmatch(r"vector\(0\.\d+\)", objective["expr"]), objective["expr"]
    number = objective["expr"][len("vector(") : -1]
    for rule in rules():
        on_outcomes = re.search(
            r"greenapi(_|:)outgoing_delivery_(outcomes|sli|judged)", rule["expr"]
        )
        if rule is not objective and on_outcomes:
            assert number not in rule["expr"], rule.get("alert") or rule["record"]
    budget = "greenapi:outgoing_delivery_sli:error_budget"
    assert OBJECTIVE in next(r["expr"] for r in rules() if r.get("record") == budget)
    assert budget in alerts()["GreenApiDeliveryRatioLow"]["expr"]


DELIVERY_ALERTS = ("GreenApiDeliveryStalled", "GreenApiDeliveryRatioLow", "GreenApiFailedSendsHigh")


def test_the_delivery_alerts_need_a_minimum_of_judged_messages() -> None:
    """One late message on a quiet instance is no reason to warn, let alone page."""
    found = alerts()
    for name in DELIVERY_ALERTS:
        assert "greenapi:outgoing_delivery_judged:increase" in found[name]["expr"], name


def test_the_delivery_ratios_leave_no_status_out() -> None:
    """A journal without statuses has nothing to judge: no_status is in neither part."""
    for rule in rules():
        name = rule.get("record", "")
        if name.startswith("greenapi:outgoing_delivery_") and ":ratio_rate" in name:
            assert "greenapi_outgoing_delivery_outcomes_total" in rule["expr"], name
            assert 'outcome=~"in_time|late|failed"' in rule["expr"], name
            assert "> 0)" in rule["expr"], f"{name}: 0/0 must leave no ratio, not NaN"


def test_no_alert_pages_on_the_count_of_undelivered_messages() -> None:
    """Real recipients switch their phones off: stuck messages are dashboard information."""
    for name, rule in alerts().items():
        assert "undelivered" not in rule["expr"], name


def test_every_alert_is_unit_tested_firing_quiet_and_recovering() -> None:
    tests = [test for name in RULE_TESTS
             for test in yaml.safe_load((PROMETHEUS / name).read_text())["tests"]]  # fmt: skip
    for alert in sorted(alerts()):
        fires = quiet = recovers = False
        for test in tests:
            cases = sorted(
                (c for c in test.get("alert_rule_test", []) if c["alertname"] == alert),
                key=lambda c: duration(c["eval_time"]),
            )
            fired_at = [duration(c["eval_time"]) for c in cases if c["exp_alerts"]]
            quiet_at = [duration(c["eval_time"]) for c in cases if not c["exp_alerts"]]
            fires |= bool(fired_at)
            quiet |= bool(quiet_at)
            recovers |= bool(fired_at) and any(t > min(fired_at) for t in quiet_at)
            for case in cases:
                for expected in case["exp_alerts"]:
                    assert expected["exp_labels"].get("severity"), (alert, case)
                    assert set(expected["exp_annotations"]) >= {"summary", "description",
                                                                "runbook_url"}, (alert, case)  # fmt: skip
        assert fires, f"{alert} never fires in {RULE_TESTS}"
        assert quiet, f"{alert} is never shown quiet in {RULE_TESTS}"
        assert recovers, f"{alert} is never shown resolving after it fired"


def duration(text: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
    parts = re.findall(r"(\d+)(ms|s|m|h|d)", str(text))
    assert parts, text
    return sum(int(n) * units[u] for n, u in parts)


def test_every_alert_has_a_runbook_section() -> None:
    runbook = (ROOT / "docs" / "runbook.md").read_text()
    anchors = {
        re.sub(r"[^a-z0-9 -]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
        for line in runbook.splitlines()
        if line.startswith("## ")
    }
    assert anchors >= {a.lower() for a in alerts()}


def test_recording_rules_follow_the_naming_convention() -> None:
    names = recording_names()
    assert names
    for name in names:
        assert re.fullmatch(r"greenapi:[a-z0-9_]+:[a-z0-9_]+", name), name


# --- metric names -----------------------------------------------------------------------------


def used_names(expressions: list[str]) -> set[str]:
    return {name for expr in expressions for name in METRIC_NAME.findall(expr)}


def rule_expressions() -> list[str]:
    texts = []
    for rule in rules():
        texts.append(rule["expr"])
        texts += rule.get("annotations", {}).values()  # query templates name metrics too
    return texts


def exporter_sample_names() -> set[str]:
    """The sample names the real exporter describes (counters: _total; histograms: the series)."""
    described: set[str] = set()
    for family in GreenApiCollector(lambda: None).describe():  # type: ignore[arg-type, return-value]
        if family.type == "counter":
            described.add(family.name + "_total")
        elif family.type == "histogram":
            described.update(family.name + s for s in ("_bucket", "_sum", "_count"))
        else:
            described.add(family.name)
    return described


@pytest.mark.parametrize("source", ["alerts.yml", *(p.name for p in DASHBOARDS)])
def test_rules_and_dashboards_use_only_metric_names_the_code_declares(source: str) -> None:
    if source == "alerts.yml":
        expressions = rule_expressions()
    else:
        expressions = dashboard_queries(load(GRAFANA / "dashboards" / source))
    used = used_names(expressions)
    assert used, "no greenapi metric found"
    unknown = used - exporter_sample_names() - recording_names()
    assert not unknown, f"{source}: not declared by the exporter: {sorted(unknown)}"


@pytest.mark.parametrize("source", ["alerts.yml", *(p.name for p in DASHBOARDS)])
def test_rules_and_dashboards_select_only_label_values_the_code_declares(source: str) -> None:
    if source == "alerts.yml":
        expressions = rule_expressions()
    else:
        expressions = dashboard_queries(load(GRAFANA / "dashboards" / source))
    for expression in expressions:
        for label, _, pattern in LABEL_MATCHER.findall(expression):
            values = set(pattern.split("|")) - {""}
            if any(c in pattern for c in ".*+?()[]\\$"):
                continue  # a real regular expression, not a list of values
            unknown = values - DECLARED_VALUES[label]
            assert not unknown, f"{source}: {label} values not in the code: {sorted(unknown)}"


def test_every_family_the_readme_lists_is_declared_and_every_declared_one_is_listed() -> None:
    readme = (ROOT / "README.md").read_text()
    listed = set(re.findall(r"^\| `(greenapi_[a-z_]+)` \|", readme, re.MULTILINE))
    declared = {spec.name for spec in FAMILIES} | {f.name for f in exporter_families(None)}
    assert listed == declared, (sorted(listed - declared), sorted(declared - listed))


def test_the_dashboards_do_not_need_the_recording_rules() -> None:
    """Imported into any Grafana on any Prometheus, they must work without our rules."""
    for path in DASHBOARDS:
        assert not {n for n in used_names(dashboard_queries(load(path))) if ":" in n}, path.name


# --- dashboards -------------------------------------------------------------------------------


def test_there_are_the_two_dashboards() -> None:
    assert {p.stem for p in DASHBOARDS} >= {"greenapi-fleet", "greenapi-instance"}


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboards_choose_their_datasource_through_a_variable_only(path: Path) -> None:
    text = path.read_text()
    dashboard = json.loads(text)
    assert "${DS_" not in text, "__inputs placeholders are not resolved by file provisioning"
    [variable] = [v for v in dashboard["templating"]["list"] if v["name"] == "datasource"]
    assert (variable["type"], variable["query"]) == ("datasource", "prometheus")
    assert not variable.get("current", {}).get("value"), "no datasource pinned as current"
    references = [(where, value) for where, key, value in walk(dashboard) if key == "datasource"]
    assert references
    for where, value in references:
        assert value == DATASOURCE, f"{where}: {value!r} (hard-coded datasource?)"
    for panel in all_panels(dashboard):
        if panel["type"] in {"row", "text"}:
            continue
        assert panel.get("datasource") == DATASOURCE, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target.get("datasource") == DATASOURCE, panel["title"]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] in {"query", "adhoc"}:
            assert variable["datasource"] == DATASOURCE, variable["name"]
    for annotation in dashboard["annotations"]["list"]:
        if "expr" in annotation:
            assert annotation["datasource"] == DATASOURCE, annotation["name"]


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboards_have_uid_tags_variables_and_links(path: Path) -> None:
    dashboard = load(path)
    assert dashboard["uid"] == path.stem
    assert dashboard["title"].startswith("GREEN-API / ")
    assert "greenapi" in dashboard["tags"]
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert {"datasource", "job", "name"} <= set(variables)
    job = variables["job"]
    assert job["type"] == "query"
    assert job["query"] == "label_values(greenapi_polls_total, job)"
    name = variables["name"]
    assert name["type"] == "query"
    assert name["query"] == 'label_values(greenapi_polls_total{job=~"$job"}, name)'
    if path.stem == "greenapi-fleet":  # every instance, or a few
        assert name["multi"] and name["includeAll"] and name["allValue"] == ".*"
    else:  # the detail of one instance
        assert not name["multi"] and not name["includeAll"]
    assert [v for v in variables.values() if v["type"] == "adhoc"], "no ad-hoc label filter"
    others = {p.stem for p in DASHBOARDS} - {path.stem}
    urls = " ".join(link.get("url", "") for link in dashboard["links"])
    for other in others:
        assert f"/d/{other}" in urls, f"no link to {other}"
    assert any(link["type"] == "dashboards" and "greenapi" in link["tags"]
               for link in dashboard["links"])  # fmt: skip


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_every_panel_has_a_description_unit_and_thresholds(path: Path) -> None:
    dashboard = load(path)
    titles = [p["title"] for p in all_panels(dashboard)]
    assert len(titles) == len(set(titles)), "panel titles must be unique"
    ids = [p["id"] for p in all_panels(dashboard)]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in all_panels(dashboard):
        pos = panel["gridPos"]
        assert pos["x"] + pos["w"] <= 24, panel["title"]
        if panel["type"] in {"row", "text"}:
            continue
        defaults = panel["fieldConfig"]["defaults"]
        assert panel.get("description"), f"{panel['title']}: no description"
        assert defaults.get("unit"), f"{panel['title']}: no unit"
        assert defaults.get("thresholds", {}).get("steps"), f"{panel['title']}: no thresholds"


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_every_rate_and_increase_uses_rate_interval(path: Path) -> None:
    for query in dashboard_queries(load(path)):
        for match in re.finditer(r"\b(?:rate|irate|increase)\s*\(", query):
            window = re.search(r"\[([^\]]+)\]", query[match.end() :])
            assert window, query
            assert window.group(1) == "$__rate_interval", query


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_per_instance_queries_follow_the_job_and_name_variables(path: Path) -> None:
    for panel in all_panels(load(path)):
        for target in panel.get("targets", []):
            expr = target["expr"]
            for selector in re.findall(r"greenapi_[a-z_]+(\{[^}]*\})?", expr):
                assert 'job=~"$job"' in selector, (panel["title"], expr)
            if re.search(r"greenapi_(?!exporter_)", expr):
                assert 'name=~"$name"' in expr, (panel["title"], expr)


@pytest.mark.process
def test_the_generated_dashboards_are_up_to_date() -> None:
    result = subprocess.run(
        [sys.executable, str(GRAFANA / "generate.py"), "--check"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_grafana_provisioning_points_at_the_dashboards() -> None:
    providers = yaml.safe_load((GRAFANA / "provisioning/dashboards/greenapi.yml").read_text())
    [provider] = providers["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"
    sources = yaml.safe_load((GRAFANA / "provisioning/datasources/prometheus.yml").read_text())
    assert [d["type"] for d in sources["datasources"]] == ["prometheus"]
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    volumes = " ".join(compose["services"]["grafana"]["volumes"])
    assert "./grafana/dashboards:/var/lib/grafana/dashboards" in volumes
    assert "./grafana/provisioning:/etc/grafana/provisioning" in volumes


# --- the exposition ---------------------------------------------------------------------------


@pytest.mark.process
def test_promtool_finds_no_problem_in_the_exposition(simulator: Simulator, run_exporter: Any) -> None:  # fmt: skip
    exporter = run_exporter(simulator.exporter_config(poll_interval="1s"))
    exporter.wait_ready()
    text = exporter.get("/metrics").text
    assert "greenapi_outgoing_delivery_lag_seconds_bucket" in text
    result = promtool("check", "metrics", input=text)
    assert result.returncode == 0, result.stdout + result.stderr
    assert not (result.stdout + result.stderr).strip(), result.stdout + result.stderr


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_the_variables_work_for_the_probe_job_too(path: Path) -> None:
    """/probe serves only an instance's own families: a variable built on the exporter's own
    series (greenapi_exporter_*) would find nothing in a probe-only setup."""
    per_instance = {spec.name for spec in FAMILIES}
    for variable in load(path)["templating"]["list"]:
        if variable["type"] != "query":
            continue
        query = variable["query"]
        query = query["query"] if isinstance(query, dict) else query
        [metric] = used_names([query])
        assert metric in per_instance, f"{variable['name']}: {metric} is not served by /probe"
        if variable.get("includeAll"):
            assert variable.get("allValue") == ".*", f"{variable['name']}: All without allValue"
