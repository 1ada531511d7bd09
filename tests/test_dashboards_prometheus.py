"""Every dashboard query and every rule against a real Prometheus scraping the demo's story.

Starts the demo's simulator (``greenapi-simulator --demo``, in a process of its own: shop-bot
delivers normally, support-bot loses its authorization while its send queue grows,
stuck-bot's deliveries stall, max-channel's journal carries no statuses), the exporter with
the configuration the simulator prints (every collector), and Debian's ``prometheus``
(scrape and evaluation interval 1 s, prometheus/alerts.yml loaded). The story's events are
brought forward through the simulator's control API instead of being waited for: stuck-bot's
stall starts at once; stuck-bot and support-bot send a message a second instead of one in four
or five, so that the ten judged messages GreenApiDeliveryStalled needs come within seconds and
support-bot has messages delivered, read and judged within the 20 s before it loses its
authorization; then its bot queues a burst of messages, so that its queue is over the alert's
10 at once instead of after 40 s of its traffic. The exporter judges deliveries 10 s after the
send instead of the demo's 2 minutes; the ``for`` of the alerts in SHORT_FOR is shortened
likewise. Everything else (traffic of the other instances, rules, dashboards) is the demo's.

The test waits for data by polling Prometheus's API (never a blind sleep), then runs every
query of every panel, template variable and annotation of grafana/dashboards/ with the
variables substituted, through /api/v1/query. Every panel must have data unless listed in
MAY_BE_EMPTY; the rules must load and evaluate without errors; GreenApiDeliveryStalled must
fire for stuck-bot and no delivery alert for the healthy instances or max-channel.
"""

from __future__ import annotations

import functools
import json
import math
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import ROOT, ExporterProcess, free_port, stop_process, wait_until
from tests.test_rules import dashboard_queries, recording_names, rule_expressions, used_names

pytestmark = pytest.mark.slow

JOB = "greenapi"
DEMO_INSTANCES = {"shop-bot", "support-bot", "stuck-bot", "max-channel"}
# Grafana's built-in variables, as Grafana would expand them for a short time range.
RATE_INTERVAL = 20  # seconds: $__rate_interval (Grafana: at least 4 scrape intervals)
BUILTINS = {"__rate_interval": f"{RATE_INTERVAL}s", "__interval": "5s", "__range": "5m"}
# (dashboard uid, value of $name): the fleet with "All", the detail for one instance.
RUNS = [("greenapi-fleet", ".*"), ("greenapi-instance", "shop-bot")]
# Panels that may legitimately return nothing in the demo, with the reason. Empty at present:
# the panels of rare events (HTTP 429/466 answers, poll errors by result, truncated windows)
# query counters and gauges the exporter exports as zeros from the first poll on, so they
# show zeros, which is data. A panel added here must say why the demo cannot fill it.
MAY_BE_EMPTY: dict[str, str] = {}
DEADLINE = 120.0  # seconds for Prometheus to scrape the demo and see its traffic
# Alerts that the demo fires for real, with the `for` they get here instead of minutes. Their
# `for` itself is covered by the promtool unit tests (prometheus/alerts*.test.yml).
SHORT_FOR = {"GreenApiInstanceNotAuthorized": "5s", "GreenApiSendQueueGrowing": "5s",
             "GreenApiDeliveryStalled": "5s"}  # fmt: skip
UNDELIVERED_AFTER = "10s"  # the demo's is 2m: the same story, judged sooner
# The story brought forward (the demo: stuck-bot stalls after 60 s and sends 0.2 messages a
# second; support-bot sends 0.25, loses its authorization after 30 s, its queue over 10 some
# 40 s later).
BUSY_RATE = 1.0  # messages a second of stuck-bot and support-bot
OUTAGE_START_IN = 20  # seconds of healthy traffic for support-bot before its outage
OUTAGE_BURST = 15  # messages support-bot's bot queues once it is not authorized
# Instances whose journal carries statuses: max-channel's has none, so it has no lags and no
# judged outcomes.
WITH_STATUSES = DEMO_INSTANCES - {"max-channel"}


def dashboard(uid: str) -> dict[str, Any]:
    return dict(json.loads((ROOT / "grafana" / "dashboards" / f"{uid}.json").read_text()))


def panels(uid: str) -> list[dict[str, Any]]:
    found = []
    for panel in dashboard(uid)["panels"]:
        found += [panel, *panel.get("panels", [])]
    return [p for p in found if p["type"] not in {"row", "text"}]


def substitute(expr: str, name: str) -> str:
    """Expand $var, ${var} and ${var:format} like Grafana does for this test's selection.

    Ad-hoc filters are not in the query text (Grafana adds them to the selectors itself) and
    $datasource is not used in PromQL, so neither appears here.
    """
    values = {**BUILTINS, "job": JOB, "name": name}

    def expand(match: re.Match[str]) -> str:
        variable = match.group(1) or match.group(2)
        if variable not in values:
            raise AssertionError(f"unknown variable ${variable} in {expr}")
        return values[variable]

    return re.sub(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)", expand, expr)


class Process:
    """A child process with its output in a log file."""

    def __init__(self, args: list[str], log_path: Path) -> None:
        self.program = Path(args[0]).name
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.process = subprocess.Popen(args, stdout=self._log, stderr=subprocess.STDOUT, cwd=ROOT)

    def check(self) -> None:
        if self.process.poll() is not None:
            raise AssertionError(f"{self.program} exited {self.process.returncode}:\n{self.log()}")

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")[-5000:]

    def stop(self) -> None:
        stop_process(self.process)
        self._log.close()


class DemoSimulator(Process):
    """``greenapi-simulator --demo`` on a free loopback port; ``config`` is what it prints."""

    def __init__(self, tmp_path: Path) -> None:
        self.url = f"http://127.0.0.1:{free_port()}"
        args = [sys.executable, "-m", "exporter.simulator", "--demo",
                "--listen", self.url.removeprefix("http://")]  # fmt: skip
        printed = subprocess.run([*args, "--print-config"], capture_output=True, text=True,
                                 check=True, cwd=ROOT)  # fmt: skip
        self.config: dict[str, Any] = yaml.safe_load(printed.stdout)
        super().__init__(args, tmp_path / "simulator.log")

    def control(self, instance: str, action: str, body: dict[str, Any]) -> None:
        response = requests.put(f"{self.url}/_sim/instances/{instance}/{action}", json=body,
                                timeout=5)  # fmt: skip
        assert response.status_code == 200, response.text

    def state(self, instance: str) -> str:
        """What getStateInstance answers for ``instance`` now."""
        summary = requests.get(f"{self.url}/_sim/instances/{instance}", timeout=5).json()
        return str(summary["state"])


class Prometheus(Process):
    """Debian's prometheus on a free loopback port, with its data and log in ``tmp_path``."""

    def __init__(self, tmp_path: Path, target: str) -> None:
        binary = shutil.which("prometheus")
        if binary is None:  # a skip would prove nothing: CI installs it
            pytest.fail("prometheus is not installed: apt-get install prometheus (Debian)")
        self.url = f"http://127.0.0.1:{free_port()}"
        rules = yaml.safe_load((ROOT / "prometheus" / "alerts.yml").read_text())
        for group in rules["groups"]:
            for rule in group["rules"]:
                if rule.get("alert") in SHORT_FOR:
                    rule["for"] = SHORT_FOR[rule["alert"]]
        rules_path = tmp_path / "alerts.yml"
        rules_path.write_text(yaml.safe_dump(rules))
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(rules_path)],
            "scrape_configs": [{"job_name": JOB, "static_configs": [{"targets": [target]}]}],
        }
        config_path = tmp_path / "prometheus.yml"
        config_path.write_text(yaml.safe_dump(config))
        super().__init__(
            [binary, f"--config.file={config_path}", f"--storage.tsdb.path={tmp_path / 'data'}",
             f"--web.listen-address={self.url.removeprefix('http://')}"],
            tmp_path / "prometheus.log",
        )  # fmt: skip

    def api(self, path: str, **params: Any) -> Any:
        self.check()
        body = requests.get(self.url + path, params=params, timeout=10).json()
        assert body["status"] == "success", f"{path} {params}: {body}"
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query at the current time: ``/api/v1/query``."""
        return list(self.api("/api/v1/query", query=expr)["result"])


def has_values(result: list[dict[str, Any]]) -> bool:
    """At least one sample that is a number (histogram_quantile gives NaN without data)."""
    return any(not math.isnan(float(series["value"][1])) for series in result)


def query_has_values(prom: Prometheus, expr: str) -> bool:
    return has_values(prom.query(expr))


class Demo:
    def __init__(self, simulator: DemoSimulator, exporter: ExporterProcess, prometheus: Prometheus) -> None:  # fmt: skip
        self.simulator = simulator
        self.exporter = exporter
        self.prometheus = prometheus


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    tmp = tmp_path_factory.mktemp("dashboards")
    simulator = DemoSimulator(tmp)
    exporter: ExporterProcess | None = None
    prometheus: Prometheus | None = None
    try:
        wait_until(lambda: requests.get(simulator.url + "/_sim/instances", timeout=2).ok,
                   timeout=30, interval=0.2)  # fmt: skip
        # The story's events sooner than the demo's (see the module's docstring), each for as
        # long as in the demo.
        simulator.control("support-bot", "outages",
                          {"start_in": OUTAGE_START_IN, "duration": 600})  # fmt: skip
        simulator.control("stuck-bot", "stalls", {"start_in": 0, "duration": 1800})
        for busy in ("stuck-bot", "support-bot"):
            simulator.control(busy, "rate", {"per_second": BUSY_RATE})
        config = simulator.config
        config["defaults"] = {**config.get("defaults", {}), "poll_interval": "5s",
                              "collect": ["outgoing", "state", "queue", "incoming"],
                              "undelivered_after": UNDELIVERED_AFTER}  # fmt: skip
        # The exporter polls the demo simulator like --demo does (every collector, every 5 s);
        # Prometheus starts once it listens, while its first polls run.
        exporter = ExporterProcess(tmp, config)
        exporter.wait_healthy(timeout=30)
        prometheus = Prometheus(tmp, exporter.url.removeprefix("http://"))
        prom = prometheus
        exporter.wait_ready(timeout=30)
        deadline = time.monotonic() + DEADLINE

        def left() -> float:
            return max(1.0, deadline - time.monotonic())

        def per_instance(expr: str, instances: set[str] = DEMO_INSTANCES) -> bool:
            return {s["metric"].get("name") for s in prom.query(expr)} >= instances

        # Prometheus 2.x picks the target up after a few seconds; then the demo's polls
        # (every 5 s) bring new messages, status changes, and messages seen both sent and
        # later delivered or read.
        wait_until(lambda: any(s["value"][1] == "1" for s in prom.query(f'up{{job="{JOB}"}}')),
                   timeout=left(), interval=0.5)  # fmt: skip
        # support-bot's outage begins: what its bot queues now waits.
        wait_until(lambda: simulator.state("support-bot") == "notAuthorized", timeout=left(),
                   interval=0.2)  # fmt: skip
        simulator.control("support-bot", "burst", {"count": OUTAGE_BURST})
        judged = 'sum by (name) (greenapi_outgoing_delivery_outcomes_total{outcome=~"in_time|late|failed"}) > 0'
        for expr, instances in (
            ("sum by (name) (greenapi_outgoing_messages_total) > 0", DEMO_INSTANCES),
            ("greenapi_outgoing_delivery_lag_seconds_count > 0", WITH_STATUSES - {"stuck-bot"}),
            ("greenapi_outgoing_read_lag_seconds_count > 0", WITH_STATUSES - {"stuck-bot"}),
            (judged, WITH_STATUSES),
            ("greenapi_outgoing_oldest_undelivered_timestamp_seconds", {"stuck-bot"}),
        ):
            wait_until(functools.partial(per_instance, expr, instances), timeout=left(), interval=1)
        # rate()/increase() over $__rate_interval need a few scrapes beyond that window.
        history = f'count_over_time(up{{job="{JOB}"}}[{RATE_INTERVAL + 5}s]) >= {RATE_INTERVAL + 3}'
        wait_until(lambda: prom.query(history), timeout=left(), interval=1)
        yield Demo(simulator, exporter, prometheus)
    finally:
        if prometheus is not None:
            prometheus.stop()
        if exporter is not None:
            exporter.stop()
        simulator.stop()


# --- dashboards -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("uid", "name", "title"),
    [(uid, name, p["title"]) for uid, name in RUNS for p in panels(uid)],
)
def test_every_panel_query_runs_and_returns_data(demo: Demo, uid: str, name: str, title: str) -> None:  # fmt: skip
    [panel] = [p for p in panels(uid) if p["title"] == title]
    assert panel["targets"]
    prom = demo.prometheus
    for target in panel["targets"]:
        expr = substitute(target["expr"], name)
        prom.query(expr)  # no error
        if title in MAY_BE_EMPTY:
            continue
        # A quantile over a 20 s window is NaN while nothing was delivered in it: give the
        # demo's next polls a chance.
        wait_until(functools.partial(query_has_values, prom, expr), timeout=30, interval=1)


def test_the_list_of_panels_allowed_to_be_empty_is_current() -> None:
    titles = {p["title"] for uid, _ in RUNS for p in panels(uid)}
    assert set(MAY_BE_EMPTY) <= titles


@pytest.mark.parametrize(("uid", "name"), RUNS)
def test_template_variables_find_the_demo(demo: Demo, uid: str, name: str) -> None:
    for variable in dashboard(uid)["templating"]["list"]:
        if variable["type"] != "query":
            continue
        query = variable["query"]
        query = query["query"] if isinstance(query, dict) else query
        match = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", query)
        assert match, f"{variable['name']}: not label_values(selector, label): {query}"
        selector, label = substitute(match.group(1), name), match.group(2)
        # What Grafana runs for label_values(): the series API, here as an instant query.
        result = demo.prometheus.query(selector)
        values = {s["metric"].get(label) for s in result} - {None}
        assert values, f"{uid}: variable {variable['name']} finds nothing"
        if variable["name"] == "job":
            assert JOB in values
        if variable["name"] == "name":
            assert values >= DEMO_INSTANCES


@pytest.mark.parametrize(("uid", "name"), RUNS)
def test_annotation_queries_run(demo: Demo, uid: str, name: str) -> None:
    for annotation in dashboard(uid)["annotations"]["list"]:
        if "expr" in annotation:
            demo.prometheus.query(substitute(annotation["expr"], name))


def test_a_configuration_reload_shows_as_an_annotation(demo: Demo) -> None:
    [reloads] = [a for a in dashboard("greenapi-fleet")["annotations"]["list"]
                 if a["name"] == "Configuration reloads"]  # fmt: skip
    expr = substitute(reloads["expr"], ".*")
    response = requests.post(demo.exporter.url + "/-/reload", timeout=10)
    assert response.status_code == 200, response.text
    wait_until(lambda: demo.prometheus.query(expr), timeout=20, interval=0.5)


def test_every_metric_the_dashboards_and_rules_use_is_in_the_exporters_output(demo: Demo) -> None:
    text = demo.exporter.get("/metrics").text
    exported = {
        sample.name for family in text_string_to_metric_families(text) for sample in family.samples
    }
    used = used_names(rule_expressions())
    for uid, _ in RUNS:
        used |= used_names(dashboard_queries(dashboard(uid)))
    missing = used - recording_names() - exported
    assert not missing, f"used but not exported by the demo: {sorted(missing)}"


# --- rules ------------------------------------------------------------------------------------


def test_the_rules_load_and_evaluate_without_errors(demo: Demo) -> None:
    expected = yaml.safe_load((ROOT / "prometheus" / "alerts.yml").read_text())
    names = {r.get("alert") or r["record"] for g in expected["groups"] for r in g["rules"]}

    def evaluated() -> list[dict[str, Any]]:
        groups = demo.prometheus.api("/api/v1/rules")["groups"]
        rules = [rule for group in groups for rule in group["rules"]]
        never = [r for r in rules if r.get("lastEvaluation", "").startswith("0001")]
        return rules if rules and not never else []

    rules = wait_until(evaluated, timeout=30, interval=0.5)
    assert {r["name"] for r in rules} == names
    broken = [(r["name"], r.get("lastError")) for r in rules if r["health"] != "ok"]
    assert not broken


def test_every_recording_rule_records_series(demo: Demo) -> None:
    for name in sorted(recording_names()):
        wait_until(functools.partial(demo.prometheus.query, name), timeout=30, interval=1)


def test_stuck_bot_deliveries_stall_and_the_alert_fires(demo: Demo) -> None:
    prom = demo.prometheus
    [alert] = wait_until(
        lambda: [a for a in alerts_named(prom, "GreenApiDeliveryStalled", "stuck-bot")
                 if a["state"] == "firing"], timeout=90, interval=0.5)  # fmt: skip
    assert alert["labels"]["severity"] == "critical"
    assert alert["labels"]["id_instance"]
    assert "stuck-bot" in alert["annotations"]["summary"]
    assert prom.query('greenapi_outgoing_undelivered_messages{name="stuck-bot"} > 0')


def test_no_delivery_alert_fires_for_the_healthy_instances_or_the_journal_without_statuses(
    demo: Demo,
) -> None:
    prom = demo.prometheus
    # Until stuck-bot's stall has shown, the others have had as long to misbehave.
    wait_until(lambda: alerts_named(prom, "GreenApiDeliveryStalled", "stuck-bot"), timeout=90,
               interval=0.5)  # fmt: skip
    delivery = {"GreenApiDeliveryStalled", "GreenApiDeliveryRatioLow", "GreenApiFailedSendsHigh"}
    noisy = {(a["labels"]["alertname"], a["labels"].get("name"))
             for a in prom.api("/api/v1/alerts")["alerts"]
             if a["labels"]["alertname"] in delivery and a["labels"].get("name") != "stuck-bot"}  # fmt: skip
    assert not noisy
    assert prom.query(
        'greenapi_outgoing_delivery_outcomes_total{name="max-channel",outcome="no_status"} > 0'
    )
    assert not prom.query('greenapi:outgoing_delivery_sli:ratio_rate5m{name="max-channel"}')


def test_healthy_demo_polls_raise_no_poll_alerts(demo: Demo) -> None:
    quiet = {"GreenApiExporterDown", "GreenApiPollFailing", "GreenApiRateLimited",
             "GreenApiQuotaExceeded", "GreenApiWindowTruncated", "GreenApiNoOutgoingMessages"}  # fmt: skip
    active = {a["labels"]["alertname"] for a in demo.prometheus.api("/api/v1/alerts")["alerts"]}
    assert not active & quiet, active


def alerts_named(prom: Prometheus, alertname: str, name: str) -> list[dict[str, Any]]:
    return [a for a in prom.api("/api/v1/alerts")["alerts"]
            if a["labels"]["alertname"] == alertname and a["labels"].get("name") == name]  # fmt: skip


def test_support_bot_loses_authorization_and_the_alert_fires(demo: Demo) -> None:
    prom = demo.prometheus
    wait_until(lambda: prom.query('greenapi_instance_state{name="support-bot",state="notAuthorized"} == 1'),
               timeout=90, interval=1)  # fmt: skip
    [alert] = wait_until(
        lambda: [a for a in alerts_named(prom, "GreenApiInstanceNotAuthorized", "support-bot")
                 if a["state"] == "firing"], timeout=30, interval=0.5)  # fmt: skip
    assert alert["labels"]["severity"] == "critical"
    assert "support-bot" in alert["annotations"]["summary"]
    assert "notAuthorized" in alert["annotations"]["description"]
    others = {a["labels"].get("name") for a in prom.api("/api/v1/alerts")["alerts"]
              if a["labels"]["alertname"] == "GreenApiInstanceNotAuthorized"}  # fmt: skip
    assert others == {"support-bot"}


def test_support_bot_queue_grows_while_it_is_not_authorized_and_the_alert_fires(demo: Demo) -> None:
    prom = demo.prometheus
    wait_until(lambda: prom.query('greenapi_send_queue_messages{name="support-bot"} > 10'),
               timeout=120, interval=1)  # fmt: skip
    growth = prom.query('delta(greenapi_send_queue_messages{name="support-bot"}[30s])')
    assert float(growth[0]["value"][1]) > 0
    wait_until(
        lambda: [a for a in alerts_named(prom, "GreenApiSendQueueGrowing", "support-bot")
                 if a["state"] == "firing"], timeout=60, interval=0.5)  # fmt: skip
    healthy = prom.query(
        'greenapi_send_queue_messages{name=~"shop-bot|stuck-bot|max-channel"} > 10'
    )
    assert not healthy


def test_replies_of_customers_arrive_as_incoming_messages(demo: Demo) -> None:
    prom = demo.prometheus
    wait_until(lambda: prom.query("sum by (name) (greenapi_incoming_window_messages) > 0"),
               timeout=30, interval=1)  # fmt: skip
