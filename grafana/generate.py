"""Generate the Grafana dashboards in grafana/dashboards/ (stdlib only).

    python grafana/generate.py          # rewrite the JSON files
    python grafana/generate.py --check  # exit 1 if they are not up to date (the tests run this)

Generating keeps every panel's datasource, units and descriptions consistent; the JSON is
committed so that users import it without running anything.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

DASHBOARDS = Path(__file__).resolve().parent / "dashboards"
DS = {"type": "prometheus", "uid": "${datasource}"}
FLEET = 'job=~"$job", name=~"$name"'
ONE = 'job=~"$job", name="$name"'


def variables(name_multi: bool) -> list[dict[str, Any]]:
    name_query = 'label_values(greenapi_up{job=~"$job"}, name)'
    return [
        {"name": "datasource", "label": "Data source", "type": "datasource", "query": "prometheus",
         "current": {}, "hide": 0, "options": [], "refresh": 1, "regex": ""},
        {"name": "job", "label": "Job", "type": "query", "datasource": DS,
         "query": {"query": "label_values(greenapi_exporter_build_info, job)", "refId": "job"},
         "definition": "label_values(greenapi_exporter_build_info, job)",
         "current": {}, "multi": True, "includeAll": True, "allValue": ".*",
         "refresh": 2, "sort": 1, "hide": 0, "options": [], "regex": ""},
        {"name": "name", "label": "Instance", "type": "query", "datasource": DS,
         "query": {"query": name_query, "refId": "name"}, "definition": name_query,
         "current": {}, "multi": name_multi, "includeAll": name_multi,
         **({"allValue": ".*"} if name_multi else {}),
         "refresh": 2, "sort": 1, "hide": 0, "options": [], "regex": ""},
        {"name": "filters", "label": "Labels", "type": "adhoc", "datasource": DS, "hide": 0,
         "description": "Filter on the static labels configured per instance (e.g. team)"},
    ]  # fmt: skip


ANNOTATIONS = [
    {"builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"}, "enable": True,
     "hide": True, "iconColor": "rgba(0, 211, 255, 1)", "name": "Annotations & Alerts", "type": "dashboard"},
    {"name": "Exporter restarts", "datasource": DS, "enable": True, "iconColor": "orange",
     "expr": 'changes(process_start_time_seconds{job=~"$job"}[5m]) > 0', "step": "60s",
     "titleFormat": "exporter restarted", "textFormat": "{{instance}}"},
    {"name": "Configuration reloads", "datasource": DS, "enable": True, "iconColor": "blue",
     "expr": 'changes(greenapi_exporter_config_last_reload_success_timestamp_seconds{job=~"$job"}[5m]) > 0',
     "step": "60s", "titleFormat": "configuration reloaded", "textFormat": "{{instance}}"},
]  # fmt: skip


class Layout:
    """Places panels left to right on Grafana's 24-column grid."""

    def __init__(self) -> None:
        self.panels: list[dict[str, Any]] = []
        self.x = self.y = self.row_height = 0

    def row(self, title: str) -> None:
        self._newline()
        self.panels.append({"id": len(self.panels) + 1, "type": "row", "title": title, "collapsed": False,
                            "gridPos": {"h": 1, "w": 24, "x": 0, "y": self.y}, "panels": []})  # fmt: skip
        self.y += 1

    def _newline(self) -> None:
        self.y += self.row_height
        self.x = self.row_height = 0

    def add(self, panel: dict[str, Any], w: int, h: int) -> None:
        if self.x + w > 24:
            self._newline()
        panel["id"] = len(self.panels) + 1
        panel["gridPos"] = {"h": h, "w": w, "x": self.x, "y": self.y}
        self.x += w
        self.row_height = max(self.row_height, h)
        self.panels.append(panel)


def target(expr: str, legend: str = "", ref: str = "A", instant: bool = False, fmt: str = "time_series") -> dict[str, Any]:
    return {"refId": ref, "datasource": DS, "expr": expr, "legendFormat": legend or "__auto",
            "range": not instant, "instant": instant, "format": fmt}  # fmt: skip


def thresholds(*steps: tuple[float | None, str]) -> dict[str, Any]:
    return {"mode": "absolute", "steps": [{"value": v, "color": c} for v, c in steps]}


OK = thresholds((None, "green"))


def panel(kind: str, title: str, description: str, unit: str, targets: list[dict[str, Any]],
          steps: dict[str, Any] = OK, **extra: Any) -> dict[str, Any]:  # fmt: skip
    result: dict[str, Any] = {
        "type": kind, "title": title, "description": description, "datasource": DS,
        "targets": targets,
        "fieldConfig": {"defaults": {"unit": unit, "thresholds": steps, "color": {"mode": "palette-classic"}},
                        "overrides": []},
        "options": {},
    }  # fmt: skip
    if kind == "stat":
        result["fieldConfig"]["defaults"]["color"] = {"mode": "thresholds"}
        result["options"] = {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                             "colorMode": "background", "graphMode": "area", "textMode": "auto"}  # fmt: skip
    if kind == "timeseries":
        result["options"] = {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
                             "tooltip": {"mode": "multi", "sort": "desc"}}  # fmt: skip
        result["fieldConfig"]["defaults"]["custom"] = {"drawStyle": "line", "lineWidth": 1, "fillOpacity": 10,
                                                       "showPoints": "never", "spanNulls": True}  # fmt: skip
    result.update(extra)
    return result


def lag_quantiles(sel: str, metric: str, by: str) -> list[dict[str, Any]]:
    group = f"{by}, le" if by else "le"
    prefix = f"{{{{{by}}}}} " if by else ""
    return [
        target(f"histogram_quantile({q}, sum by ({group}) (rate({metric}_bucket{{{sel}}}[$__rate_interval])))",
               f"{prefix}p{int(q * 100)}", ref)
        for q, ref in ((0.5, "A"), (0.95, "B"), (0.99, "C"))
    ]  # fmt: skip


def heatmap(sel: str, title: str, metric: str, description: str) -> dict[str, Any]:
    return panel(
        "heatmap", title, description, "s",
        [target(f"sum by (le) (increase({metric}_bucket{{{sel}}}[$__rate_interval]))", "{{le}}", fmt="heatmap")],
        options={"calculate": False, "yAxis": {"unit": "s"}, "cellGap": 1,
                 "color": {"mode": "scheme", "scheme": "Oranges", "steps": 64}},
    )  # fmt: skip


def delivery_panels(layout: Layout, sel: str, by: str) -> None:
    layout.add(panel("timeseries", "Delivery lag p50 / p95 / p99",
                     "Time from sent to first seen delivered (or read), from GREEN-API's own timestamps.",
                     "s", lag_quantiles(sel, "greenapi_outgoing_delivery_lag_seconds", by),
                     thresholds((None, "green"), (300, "orange"), (1800, "red"))), 12, 8)  # fmt: skip
    layout.add(heatmap(sel, "Delivery lag distribution", "greenapi_outgoing_delivery_lag_seconds",
                       "How many messages were delivered within each lag bucket per interval."), 12, 8)  # fmt: skip
    layout.add(panel("timeseries", "Read lag p50 / p95 / p99",
                     "Time from sent to first seen read.", "s",
                     lag_quantiles(sel, "greenapi_outgoing_read_lag_seconds", by)), 12, 8)  # fmt: skip


def fleet() -> dict[str, Any]:
    s = FLEET
    layout = Layout()
    layout.row("Health")
    layout.add(panel("stat", "Instances up", "Instances whose last poll of the journal succeeded.", "none",
                     [target(f"sum(greenapi_up{{{s}}})")]), 4, 4)  # fmt: skip
    layout.add(panel("stat", "Instances down", "Instances whose last poll failed (see Polls by result).", "none",
                     [target(f"count(greenapi_up{{{s}}} == 0) or vector(0)")],
                     thresholds((None, "green"), (1, "red"))), 4, 4)  # fmt: skip
    layout.add(panel("stat", "Undelivered now", "Messages still sent or pending longer than undelivered_after, all instances.",
                     "none", [target(f"sum(greenapi_outgoing_undelivered_messages{{{s}}})")],
                     thresholds((None, "green"), (1, "orange"), (50, "red"))), 4, 4)  # fmt: skip
    layout.add(panel("stat", "Messages per minute", "Distinct new messages per minute, all instances.", "none",
                     [target(f"sum(rate(greenapi_outgoing_messages_total{{{s}}}[$__rate_interval])) * 60")]), 4, 4)  # fmt: skip
    layout.add(panel("stat", "Delivered share", "Deliveries divided by sends over the interval, all instances.",
                     "percentunit",
                     [target(f'sum(rate(greenapi_outgoing_status_reached_total{{{s}, status="delivered"}}[$__rate_interval]))'
                             f' / sum(rate(greenapi_outgoing_status_reached_total{{{s}, status="sent"}}[$__rate_interval]))')],
                     thresholds((None, "red"), (0.8, "orange"), (0.95, "green"))), 4, 4)  # fmt: skip
    layout.add(panel("stat", "Tracked messages", "Messages the exporters hold in memory.", "none",
                     [target('sum(greenapi_exporter_tracked_messages{job=~"$job"})')]), 4, 4)  # fmt: skip
    layout.add(panel("state-timeline", "Instance up", "1 while the instance's last poll succeeded.", "bool_yes_no",
                     [target(f"greenapi_up{{{s}}}", "{{name}}")],
                     thresholds((None, "red"), (1, "green"))), 12, 8)  # fmt: skip
    layout.add(panel("timeseries", "Polls by result", "Polls per second by result; anything but success is an error class.",
                     "reqps", [target(f"sum by (result) (rate(greenapi_polls_total{{{s}}}[$__rate_interval]))", "{{result}}")]), 12, 8)  # fmt: skip
    layout.row("Traffic")
    layout.add(panel("timeseries", "Messages sent per minute by type", "New distinct messages per minute, by typeMessage.",
                     "none", [target(f"sum by (message_type) (rate(greenapi_outgoing_messages_total{{{s}}}[$__rate_interval])) * 60",
                                     "{{message_type}}")]), 12, 8)  # fmt: skip
    layout.add(panel("timeseries", "Statuses reached per minute", "Messages reaching each status per minute (read implies delivered and sent).",
                     "none", [target(f"sum by (status) (rate(greenapi_outgoing_status_reached_total{{{s}}}[$__rate_interval])) * 60",
                                     "{{status}}")]), 12, 8)  # fmt: skip
    layout.add(panel("timeseries", "Messages in the window by status", "What the latest journal holds, by status.", "none",
                     [target(f"sum by (status) (greenapi_outgoing_messages{{{s}}})", "{{status}}")]), 12, 8)  # fmt: skip
    layout.add(panel("timeseries", "Delivered and read share",
                     "Deliveries and reads divided by sends over the interval.", "percentunit",
                     [target(f'sum(rate(greenapi_outgoing_status_reached_total{{{s}, status="delivered"}}[$__rate_interval]))'
                             f' / sum(rate(greenapi_outgoing_status_reached_total{{{s}, status="sent"}}[$__rate_interval]))', "delivered", "A"),
                      target(f'sum(rate(greenapi_outgoing_status_reached_total{{{s}, status="read"}}[$__rate_interval]))'
                             f' / sum(rate(greenapi_outgoing_status_reached_total{{{s}, status="sent"}}[$__rate_interval]))', "read", "B")]), 12, 8)  # fmt: skip
    layout.add(panel("timeseries", "Sent through the API", "Share of the window's messages with sendByApi true, per instance.",
                     "percentunit", [target(f"greenapi_outgoing_send_by_api_ratio{{{s}}}", "{{name}}")]), 12, 8)  # fmt: skip
    layout.add(panel("timeseries", "Forwarded messages", "Forwarded messages in the window, per instance.", "none",
                     [target(f"greenapi_outgoing_forwarded_messages{{{s}}}", "{{name}}")]), 12, 8)  # fmt: skip
    layout.row("Delivery")
    layout.add(panel("timeseries", "Undelivered messages", "Messages still sent/pending/unknown after undelivered_after, per instance.",
                     "none", [target(f"greenapi_outgoing_undelivered_messages{{{s}}}", "{{name}}")],
                     thresholds((None, "green"), (1, "orange"))), 12, 8)  # fmt: skip
    layout.add(panel("timeseries", "Oldest undelivered message", "Age of the oldest undelivered message, per instance.", "s",
                     [target(f"greenapi_outgoing_oldest_undelivered_age_seconds{{{s}}}", "{{name}}")],
                     thresholds((None, "green"), (900, "orange"), (3600, "red"))), 12, 8)  # fmt: skip
    layout.add(panel("bargauge", "Top instances by undelivered", "The ten instances with the most undelivered messages now.",
                     "none", [target(f"topk(10, greenapi_outgoing_undelivered_messages{{{s}}})", "{{name}}", instant=True)],
                     thresholds((None, "green"), (1, "orange"), (50, "red")),
                     options={"orientation": "horizontal", "displayMode": "gradient",
                              "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False}}), 24, 6)  # fmt: skip
    delivery_panels(layout, s, "")
    layout.row("API limits")
    layout.add(panel("timeseries", "Rate-limit and quota answers", "HTTP 429 (rate limited) and 466 (plan quota spent) answers per interval.",
                     "none", [target(f'sum by (name, result) (increase(greenapi_polls_total{{{s}, result=~"http_429|http_466"}}[$__rate_interval]))',
                                     "{{name}} {{result}}")],
                     thresholds((None, "green"), (1, "red"))), 12, 8)  # fmt: skip
    layout.add(panel("timeseries", "Window truncated", "1 when an instance's answer reached max_messages (older messages missing).",
                     "bool_yes_no", [target(f"greenapi_outgoing_window_truncated{{{s}}}", "{{name}}")],
                     thresholds((None, "green"), (1, "orange"))), 12, 8)  # fmt: skip
    layout.add(panel("timeseries", "Poll duration", "How long the last poll of each instance took.", "s",
                     [target(f"greenapi_poll_duration_seconds{{{s}}}", "{{name}}")],
                     thresholds((None, "green"), (5, "orange"))), 24, 8)  # fmt: skip
    return dashboard("greenapi-fleet", "GREEN-API / Fleet overview",
                     "Every GREEN-API instance watched by greenapi-exporter: polls, traffic, delivery and limits.",
                     variables(name_multi=True), layout.panels, "Instance detail", "greenapi-instance")  # fmt: skip


def instance() -> dict[str, Any]:
    s = ONE
    layout = Layout()
    layout.row("Now")
    stats = [
        ("Up", "1 if the last poll of the journal succeeded.", "bool_yes_no", f"greenapi_up{{{s}}}",
         thresholds((None, "red"), (1, "green"))),
        ("Undelivered", "Messages still sent/pending/unknown after undelivered_after.", "none",
         f"greenapi_outgoing_undelivered_messages{{{s}}}", thresholds((None, "green"), (1, "orange"))),
        ("Oldest undelivered", "Age of the oldest undelivered message.", "s",
         f"greenapi_outgoing_oldest_undelivered_age_seconds{{{s}}}", thresholds((None, "green"), (900, "orange"), (3600, "red"))),
        ("Sent through the API", "Share of the window's messages with sendByApi true.", "percentunit",
         f"greenapi_outgoing_send_by_api_ratio{{{s}}}", OK),
        ("Last message", "Time since the newest message in the journal.", "s",
         f"time() - greenapi_outgoing_last_message_timestamp_seconds{{{s}}}", OK),
        ("Last successful poll", "Time since the last successful poll ended.", "s",
         f"time() - greenapi_last_poll_success_timestamp_seconds{{{s}}}", thresholds((None, "green"), (600, "red"))),
    ]  # fmt: skip
    for title, description, unit, expr, steps in stats:
        layout.add(panel("stat", title, description, unit, [target(expr)], steps), 4, 4)
    window = [
        ("Window", "The configured journal window.", "s", f"greenapi_outgoing_window_seconds{{{s}}}", OK),
        ("Messages in window", "Distinct messages in the latest journal.", "none",
         f"sum(greenapi_outgoing_messages{{{s}}})", OK),
        ("Forwarded in window", "Forwarded messages in the latest journal.", "none",
         f"greenapi_outgoing_forwarded_messages{{{s}}}", OK),
        ("Invalid elements", "Elements of the last answer that could not be used.", "none",
         f"greenapi_outgoing_invalid_messages{{{s}}}", thresholds((None, "green"), (1, "orange"))),
        ("Window truncated", "1 when the answer reached max_messages.", "bool_yes_no",
         f"greenapi_outgoing_window_truncated{{{s}}}", thresholds((None, "green"), (1, "orange"))),
        ("Poll duration", "How long the last poll took.", "s", f"greenapi_poll_duration_seconds{{{s}}}",
         thresholds((None, "green"), (5, "orange"))),
    ]  # fmt: skip
    for title, description, unit, expr, steps in window:
        layout.add(panel("stat", title, description, unit, [target(expr)], steps), 4, 4)
    layout.row("Polls")
    layout.add(panel("timeseries", "Polls by result", "Polls per second by result; anything but success is an error class.",
                     "reqps", [target(f"sum by (result) (rate(greenapi_polls_total{{{s}}}[$__rate_interval]))", "{{result}}")]), 12, 8)  # fmt: skip
    layout.add(panel("timeseries", "Poll history", "Whether each poll succeeded, and how long it took.", "s",
                     [target(f"greenapi_poll_duration_seconds{{{s}}}", "duration", "A"),
                      target(f"greenapi_up{{{s}}}", "up", "B")]), 12, 8)  # fmt: skip
    layout.row("Traffic")
    layout.add(panel("timeseries", "Messages sent per minute by type", "New distinct messages per minute, by typeMessage.", "none",
                     [target(f"sum by (message_type) (rate(greenapi_outgoing_messages_total{{{s}}}[$__rate_interval])) * 60",
                             "{{message_type}}")]), 12, 8)  # fmt: skip
    layout.add(panel("timeseries", "Statuses reached per minute", "Messages reaching each status per minute.", "none",
                     [target(f"sum by (status) (rate(greenapi_outgoing_status_reached_total{{{s}}}[$__rate_interval])) * 60",
                             "{{status}}")]), 12, 8)  # fmt: skip
    layout.add(panel("timeseries", "Window by status", "Messages in the latest journal by status.", "none",
                     [target(f"sum by (status) (greenapi_outgoing_messages{{{s}}})", "{{status}}")]), 12, 8)  # fmt: skip
    layout.add(panel("timeseries", "Window by type", "Messages in the latest journal by type.", "none",
                     [target(f"sum by (message_type) (greenapi_outgoing_messages{{{s}}})", "{{message_type}}")]), 12, 8)  # fmt: skip
    layout.add(panel("timeseries", "Sent through the API and by hand", "New messages per minute by sendByApi.", "none",
                     [target(f"sum by (send_by_api) (rate(greenapi_outgoing_messages_total{{{s}}}[$__rate_interval])) * 60",
                             "send_by_api={{send_by_api}}")]), 12, 8)  # fmt: skip
    layout.add(panel("timeseries", "Undelivered over time", "Undelivered messages at each poll.", "none",
                     [target(f"greenapi_outgoing_undelivered_messages{{{s}}}", "undelivered")],
                     thresholds((None, "green"), (1, "orange"))), 12, 8)  # fmt: skip
    layout.row("Delivery")
    delivery_panels(layout, s, "")
    layout.add(panel("timeseries", "Rate-limit and quota answers", "HTTP 429 and 466 answers per interval.", "none",
                     [target(f'sum by (result) (increase(greenapi_polls_total{{{s}, result=~"http_429|http_466"}}[$__rate_interval]))',
                             "{{result}}")], thresholds((None, "green"), (1, "red"))), 12, 8)  # fmt: skip
    return dashboard("greenapi-instance", "GREEN-API / Instance detail",
                     "One GREEN-API instance in detail: the journal window, polls, traffic and delivery.",
                     variables(name_multi=False), layout.panels, "Fleet overview", "greenapi-fleet")  # fmt: skip


def dashboard(uid: str, title: str, description: str, templating: list[dict[str, Any]],
              panels: list[dict[str, Any]], link_title: str, link_uid: str) -> dict[str, Any]:  # fmt: skip
    return {
        "__requires": [{"type": "datasource", "id": "prometheus", "name": "Prometheus", "version": "1.0.0"}],
        "uid": uid, "title": title, "description": description, "tags": ["greenapi"],
        "editable": True, "graphTooltip": 1, "refresh": "30s", "schemaVersion": 39, "version": 1,
        "time": {"from": "now-6h", "to": "now"}, "timezone": "",
        "annotations": {"list": ANNOTATIONS},
        "links": [
            {"title": link_title, "type": "link", "url": f"/d/{link_uid}", "icon": "dashboard",
             "includeVars": True, "keepTime": True, "targetBlank": False, "tooltip": "", "asDropdown": False, "tags": []},
            {"title": "GREEN-API dashboards", "type": "dashboards", "tags": ["greenapi"], "asDropdown": True,
             "includeVars": True, "keepTime": True, "icon": "external link", "targetBlank": False, "tooltip": "", "url": ""},
        ],
        "templating": {"list": templating},
        "panels": panels,
    }  # fmt: skip


def render() -> dict[str, str]:
    return {
        "greenapi-fleet.json": json.dumps(fleet(), indent=2, ensure_ascii=False) + "\n",
        "greenapi-instance.json": json.dumps(instance(), indent=2, ensure_ascii=False) + "\n",
    }


def main(argv: list[str]) -> int:
    stale = [name for name, text in render().items()
             if not (DASHBOARDS / name).exists() or (DASHBOARDS / name).read_text() != text]  # fmt: skip
    if "--check" in argv:
        if stale:
            print(f"out of date: {', '.join(stale)}; run python grafana/generate.py", file=sys.stderr)
            return 1
        return 0
    DASHBOARDS.mkdir(parents=True, exist_ok=True)
    for name, text in render().items():
        (DASHBOARDS / name).write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
