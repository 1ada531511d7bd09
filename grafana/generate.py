#!/usr/bin/env python3
"""Generate the Grafana dashboards of greenapi-exporter.

    python grafana/generate.py           # write grafana/dashboards/*.json
    python grafana/generate.py --check   # exit 1 if the committed JSON is out of date

The JSON files are committed (Grafana reads them, not this script) and the test suite checks
that they match this script. Only the standard library is used.

Conventions (SPEC section 9): every panel, target, variable and annotation uses the
`datasource` template variable ({"type": "prometheus", "uid": "${datasource}"}), never a
hard-coded datasource uid nor `${DS_...}` inputs, so the dashboards work both imported and
provisioned. Every panel has a description, a unit and thresholds; every rate()/increase()
uses $__rate_interval. Variables: datasource, job, name (multi, All) and an ad-hoc filter
(`Labels`) for the static labels users set in the exporter's configuration (team, ...):
Grafana adds ad-hoc filters to every query of the datasource by itself.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent / "dashboards"
DS = {"type": "prometheus", "uid": "${datasource}"}
TAGS = ["greenapi"]
FLEET_UID = "greenapi-fleet"
INSTANCE_UID = "greenapi-instance"
RUNBOOK = "https://github.com/greenapi-exporter/greenapi-exporter/blob/main/docs/runbook.md"

# The selector of every per-instance query.
SEL = 'job=~"$job", name=~"$name"'
JOB = 'job=~"$job"'

Json = dict[str, Any]


def sel(*extra: str) -> str:
    return "{" + ", ".join([SEL, *extra]) + "}"


# --- field config helpers -------------------------------------------------------------------


def steps(*pairs: tuple[str, float | None]) -> Json:
    return {"mode": "absolute", "steps": [{"color": c, "value": v} for c, v in pairs]}


GREEN = steps(("green", None))
NEUTRAL = steps(("text", None))


def value_map(*entries: tuple[str, str, str]) -> list[Json]:
    """Value mappings: (value, text, color)."""
    options = {
        value: {"text": text, "color": color, "index": index}
        for index, (value, text, color) in enumerate(entries)
    }
    return [{"type": "value", "options": options}]


UP_MAP = value_map(("0", "Down", "red"), ("1", "Up", "green"))
# greenapi_instance_state's states (SPEC section 8) with their colours: authorized is the only
# good one; red for the states that need a person, orange for those that may pass.
INSTANCE_STATES = (
    ("authorized", "green"), ("notAuthorized", "red"), ("blocked", "red"),
    ("sleepMode", "orange"), ("starting", "orange"), ("yellowCard", "orange"),
    ("suspended", "red"), ("pendingCode", "orange"), ("pendingPassword", "orange"),
    ("unknown", "orange"),
)  # fmt: skip
# The state as a number (1 = authorized, 2 = notAuthorized, ...), mapped back to its name.
STATE_MAP = value_map(*((str(number), state, color)
                        for number, (state, color) in enumerate(INSTANCE_STATES, start=1)))  # fmt: skip
BOOL_OK_MAP = value_map(("0", "Failed", "red"), ("1", "OK", "green"))
TRUNCATED_MAP = value_map(("0", "Complete", "green"), ("1", "Truncated", "orange"))


def target(expr: str, legend: str = "", *, instant: bool = False, fmt: str = "time_series",
           ref: str = "A") -> Json:  # fmt: skip
    return {
        "datasource": DS,
        "editorMode": "code",
        "expr": expr,
        "format": fmt,
        "instant": instant,
        "legendFormat": legend or "__auto",
        "range": not instant,
        "refId": ref,
    }


def with_refs(targets: list[Json]) -> list[Json]:
    for index, t in enumerate(targets):
        t["refId"] = chr(ord("A") + index)
    return targets


def instance_link(field_ref: str) -> list[Json]:
    """A data link to the instance dashboard for the instance named by ``field_ref``."""
    return [
        {
            "title": f"Instance detail for ${{{field_ref}}}",
            "url": f"/d/{INSTANCE_UID}/greenapi-instance-detail?${{datasource:queryparam}}"
            f"&${{job:queryparam}}&var-name=${{{field_ref}}}&${{__url_time_range}}",
        }
    ]


def panel(kind: str, title: str, description: str, targets: list[Json], *, unit: str,
          thresholds: Json | None = None, w: int = 12, h: int = 8, mappings: list[Json] | None = None,
          custom: Json | None = None, options: Json | None = None, overrides: list[Json] | None = None,
          links: list[Json] | None = None, color: Json | None = None, minimum: float | None = None,
          maximum: float | None = None, extra: Json | None = None) -> Json:  # fmt: skip
    defaults: Json = {
        "unit": unit,
        "thresholds": thresholds or GREEN,
        "mappings": mappings or [],
    }
    if color is not None:
        defaults["color"] = color
    if custom is not None:
        defaults["custom"] = custom
    if minimum is not None:
        defaults["min"] = minimum
    if maximum is not None:
        defaults["max"] = maximum
    if links:
        defaults["links"] = links
    result: Json = {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DS,
        "gridPos": {"h": h, "w": w, "x": 0, "y": 0},
        "fieldConfig": {"defaults": defaults, "overrides": overrides or []},
        "options": options or {},
        "targets": with_refs(targets),
    }
    if extra:
        result.update(extra)
    return result


def timeseries(title: str, description: str, targets: list[Json], *, unit: str,
               stack: bool = False, bars: bool = False, threshold_line: bool = False,
               legend_calcs: tuple[str, ...] = ("lastNotNull", "max"), log: bool = False,
               **kwargs: Any) -> Json:  # fmt: skip
    custom = {
        "drawStyle": "bars" if bars else "line",
        "lineWidth": 1,
        "fillOpacity": 80 if bars else (25 if stack else 10),
        "gradientMode": "none",
        "showPoints": "never",
        "spanNulls": False,
        "lineInterpolation": "linear",
        "axisSoftMin": 0,
        "scaleDistribution": {"type": "log", "log": 10} if log else {"type": "linear"},
        "stacking": {"mode": "normal" if stack else "none", "group": "A"},
        "thresholdsStyle": {"mode": "dashed" if threshold_line else "off"},
    }
    options = {
        "legend": {
            "showLegend": True,
            "displayMode": "table",
            "placement": "bottom",
            "calcs": list(legend_calcs),
        },
        "tooltip": {"mode": "multi", "sort": "desc"},
    }
    if not legend_calcs:
        options["legend"] = {"showLegend": True, "displayMode": "list", "placement": "bottom",
                             "calcs": []}  # fmt: skip
    kwargs.setdefault("color", {"mode": "palette-classic"})
    return panel("timeseries", title, description, targets, unit=unit, custom=custom,
                 options=options, **kwargs)  # fmt: skip


def stat(title: str, description: str, targets: list[Json], *, unit: str, w: int = 4,
         h: int = 4, color_mode: str = "background", graph: bool = True, text_mode: str = "auto",
         calc: str = "lastNotNull", **kwargs: Any) -> Json:  # fmt: skip
    options = {
        "reduceOptions": {"calcs": [calc], "fields": "", "values": False},
        "colorMode": color_mode,
        "graphMode": "area" if graph else "none",
        "justifyMode": "auto",
        "orientation": "auto",
        "textMode": text_mode,
        "wideLayout": True,
        "showPercentChange": False,
    }
    kwargs.setdefault("color", {"mode": "thresholds"})
    return panel("stat", title, description, targets, unit=unit, w=w, h=h, options=options,
                 **kwargs)  # fmt: skip


def bargauge(title: str, description: str, targets: list[Json], *, unit: str,
             **kwargs: Any) -> Json:  # fmt: skip
    options = {
        "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
        "displayMode": "gradient",
        "orientation": "horizontal",
        "showUnfilled": True,
        "valueMode": "color",
        "namePlacement": "auto",
        "sizing": "auto",
        "minVizHeight": 16,
        "minVizWidth": 8,
        "maxVizHeight": 300,
    }
    kwargs.setdefault("color", {"mode": "thresholds"})
    kwargs.setdefault("minimum", 0)
    return panel("bargauge", title, description, targets, unit=unit, options=options, **kwargs)


def state_timeline(title: str, description: str, targets: list[Json], *, mappings: list[Json],
                   thresholds: Json, **kwargs: Any) -> Json:  # fmt: skip
    options = {
        "mergeValues": True,
        "showValue": "never",
        "alignValue": "left",
        "rowHeight": 0.8,
        "legend": {"showLegend": True, "displayMode": "list", "placement": "bottom"},
        "tooltip": {"mode": "single", "sort": "none"},
    }
    custom = {"fillOpacity": 80, "lineWidth": 0}
    return panel("state-timeline", title, description, targets, unit="none", mappings=mappings,
                 thresholds=thresholds, custom=custom, options=options,
                 color={"mode": "thresholds"}, **kwargs)  # fmt: skip


def heatmap(title: str, description: str, expr: str, *, y_unit: str, **kwargs: Any) -> Json:
    options = {
        "calculate": False,
        "cellGap": 1,
        "color": {
            "mode": "scheme",
            "scheme": "Oranges",
            "fill": "dark-orange",
            "scale": "exponential",
            "exponent": 0.5,
            "steps": 64,
            "reverse": False,
        },
        "exemplars": {"color": "rgba(255,0,255,0.7)"},
        "filterValues": {"le": 1e-09},
        "legend": {"show": True},
        "rowsFrame": {"layout": "auto"},
        "tooltip": {"mode": "single", "yHistogram": False, "showColorScale": False},
        "yAxis": {"axisPlacement": "left", "reverse": False, "unit": y_unit},
        "cellValues": {"unit": "short"},
    }
    custom = {"scaleDistribution": {"type": "linear"},
              "hideFrom": {"legend": False, "tooltip": False, "viz": False}}  # fmt: skip
    return panel("heatmap", title, description,
                 [target(expr, "{{le}}", fmt="heatmap")], unit="short", custom=custom,
                 options=options, **kwargs)  # fmt: skip


def table(title: str, description: str, columns: list[tuple[str, str, Json]], *,
          first_columns: list[str], hidden: list[str], sort_by: str, **kwargs: Any) -> Json:  # fmt: skip
    """One instant query per column, merged on their labels into one row per series."""
    targets = [target(expr, "", instant=True, fmt="table") for _, expr, _ in columns]
    with_refs(targets)
    rename = {f"Value #{t['refId']}": title_ for t, (title_, _, _) in zip(targets, columns, strict=True)}
    overrides = []
    for title_, _, props in columns:
        properties = [{"id": key, "value": val} for key, val in props.items()]
        overrides.append({"matcher": {"id": "byName", "options": title_},
                          "properties": properties})  # fmt: skip
    overrides.append({"matcher": {"id": "byName", "options": "name"},
                      "properties": [{"id": "links", "value": instance_link("__value.raw")}]})  # fmt: skip
    index = {name: i for i, name in enumerate(first_columns + [c[0] for c in columns])}
    options = {
        "showHeader": True,
        "cellHeight": "sm",
        "footer": {"show": False, "reducer": ["sum"], "countRows": False, "fields": ""},
        "sortBy": [{"displayName": sort_by, "desc": True}],
    }
    result = panel("table", title, description, targets, options=options, overrides=overrides,
                   custom={"align": "auto", "cellOptions": {"type": "auto"}, "inspect": False},
                   **kwargs)  # fmt: skip
    result["transformations"] = [
        {"id": "merge", "options": {}},
        {"id": "organize", "options": {
            "excludeByName": {name: True for name in ["Time", "__name__", *hidden]},
            "indexByName": index,
            "renameByName": rename,
        }},
    ]  # fmt: skip
    return result


def row(title: str) -> Json:
    return {"type": "row", "title": title, "collapsed": False, "panels": [],
            "gridPos": {"h": 1, "w": 24, "x": 0, "y": 0}}  # fmt: skip


def layout(panels: list[Json]) -> list[Json]:
    """Place panels left to right, wrapping at 24 columns; rows take a line of their own."""
    x = y = line_height = 0
    for number, p in enumerate(panels, start=1):
        p["id"] = number
        pos = p["gridPos"]
        if p["type"] == "row":
            y += line_height
            x, line_height = 0, 0
            pos.update(x=0, y=y)
            y += 1
            continue
        if x + pos["w"] > 24:
            y += line_height
            x, line_height = 0, 0
        pos.update(x=x, y=y)
        x += pos["w"]
        line_height = max(line_height, pos["h"])
    return panels


# --- shared pieces --------------------------------------------------------------------------


def variables(name_multi: bool = True) -> list[Json]:
    return [
        {
            "name": "datasource",
            "label": "Data source",
            "type": "datasource",
            "query": "prometheus",
            "current": {},
            "hide": 0,
            "includeAll": False,
            "multi": False,
            "options": [],
            "refresh": 1,
            "regex": "",
            "skipUrlSync": False,
        },
        {
            "name": "job",
            "label": "Job",
            "description": "Prometheus jobs that scrape greenapi-exporter",
            "type": "query",
            "datasource": DS,
            "definition": "label_values(greenapi_exporter_build_info, job)",
            "query": "label_values(greenapi_exporter_build_info, job)",
            "current": {},
            "hide": 0,
            "includeAll": True,
            "multi": True,
            "options": [],
            "refresh": 2,
            "regex": "",
            "skipUrlSync": False,
            "sort": 1,
        },
        {
            "name": "name",
            "label": "Instance",
            "description": "GREEN-API instances (the `name` of the exporter's configuration)",
            "type": "query",
            "datasource": DS,
            "definition": 'label_values(greenapi_up{job=~"$job"}, name)',
            "query": 'label_values(greenapi_up{job=~"$job"}, name)',
            "current": {},
            "hide": 0,
            "includeAll": name_multi,
            "allValue": ".*",
            "multi": name_multi,
            "options": [],
            "refresh": 2,
            "regex": "",
            "skipUrlSync": False,
            "sort": 1,
        },
        {
            "name": "filters",
            "label": "Labels",
            "description": "Filter on the static labels of the exporter's configuration "
            "(instances[].labels, e.g. team)",
            "type": "adhoc",
            "datasource": DS,
            "filters": [],
            "hide": 0,
            "skipUrlSync": False,
        },
    ]


def annotations() -> Json:
    restarts = f"changes(process_start_time_seconds{{{JOB}}}[5m]) > 0"
    return {
        "list": [
            {
                "name": "Exporter restarts",
                "datasource": DS,
                "enable": True,
                "hide": False,
                "iconColor": "orange",
                "expr": restarts,
                "step": "1m",
                "titleFormat": "greenapi-exporter restarted",
                "textFormat": "{{instance}}",
                "tagKeys": "job,instance",
                "useValueForTime": False,
            },
            {
                "name": "Configuration reloads",
                "datasource": DS,
                "enable": True,
                "hide": False,
                "iconColor": "blue",
                "expr": "changes(greenapi_exporter_config_last_reload_success_timestamp_seconds"
                f"{{{JOB}}}[5m]) > 0 unless on (job, instance) {restarts}",
                "step": "1m",
                "titleFormat": "greenapi-exporter configuration reloaded",
                "textFormat": "{{instance}}",
                "tagKeys": "job,instance",
                "useValueForTime": False,
            },
            {
                "name": "Failed reloads",
                "datasource": DS,
                "enable": True,
                "hide": False,
                "iconColor": "red",
                "expr": f"greenapi_exporter_config_last_reload_successful{{{JOB}}} == 0",
                "step": "1m",
                "titleFormat": "greenapi-exporter configuration reload refused",
                "textFormat": "{{instance}}: the previous configuration stays in force",
                "tagKeys": "job,instance",
                "useValueForTime": False,
            },
        ]
    }


def links(other_uid: str, other_title: str) -> list[Json]:
    return [
        {
            "title": other_title,
            "type": "link",
            "url": f"/d/{other_uid}",
            "icon": "dashboard",
            "includeVars": True,
            "keepTime": True,
            "targetBlank": False,
            "tooltip": "",
            "asDropdown": False,
            "tags": [],
        },
        {
            "title": "GREEN-API dashboards",
            "type": "dashboards",
            "tags": ["greenapi"],
            "asDropdown": True,
            "includeVars": True,
            "keepTime": True,
            "icon": "external link",
            "targetBlank": False,
            "tooltip": "",
            "url": "",
        },
        {
            "title": "Runbook",
            "type": "link",
            "url": RUNBOOK,
            "icon": "doc",
            "includeVars": False,
            "keepTime": False,
            "targetBlank": True,
            "tooltip": "What to do for each GreenApi alert",
            "asDropdown": False,
            "tags": [],
        },
    ]


def dashboard(uid: str, title: str, description: str, panels: list[Json],
              other: tuple[str, str], *, name_multi: bool = True) -> Json:  # fmt: skip
    return {
        "annotations": annotations(),
        "description": description,
        "editable": True,
        "fiscalYearStartMonth": 0,
        "graphTooltip": 1,
        "id": None,
        "links": links(*other),
        "panels": layout(panels),
        "refresh": "1m",
        "schemaVersion": 39,
        "tags": TAGS,
        "templating": {"list": variables(name_multi)},
        "time": {"from": "now-6h", "to": "now"},
        "timepicker": {},
        "timezone": "",
        "title": title,
        "uid": uid,
        "version": 1,
        "weekStart": "",
    }


# --- queries used by both dashboards --------------------------------------------------------

RI = "$__rate_interval"
LAG_BUCKET = "greenapi_outgoing_delivery_lag_seconds_bucket"
READ_BUCKET = "greenapi_outgoing_read_lag_seconds_bucket"
AGE_STEPS = steps(("green", None), ("orange", 900), ("red", 3600))
LAG_STEPS = steps(("green", None), ("orange", 60), ("red", 300))
POLL_AGE_STEPS = steps(("green", None), ("orange", 300), ("red", 900))
ERROR_STEPS = steps(("green", None), ("red", 1))
FAILED = sel('result!="success"')
DELIVERED = sel('status=~"delivered|read"')
READ = sel('status="read"')
HTTP_429 = sel('result="http_429"')
HTTP_466 = sel('result="http_466"')
HTTP_429_466 = sel('result=~"http_429|http_466"')
AUTHORIZED = sel('state="authorized"')
QUEUE_STEPS = steps(("green", None), ("orange", 10))
NOT_AUTHORIZED_STEPS = steps(("green", None), ("red", 2))


def state_number(by: str = "by (name)") -> str:
    """The current greenapi_instance_state as a number (see STATE_MAP), grouped ``by``.

    Each state's gauge is 1 for the current state and 0 otherwise: multiplied by the state's
    number, the maximum is the number of the current state.
    """
    terms = " or ".join(f'greenapi_instance_state{sel(f"state={json.dumps(state)}")} * {number}'
                        for number, (state, _) in enumerate(INSTANCE_STATES, start=1))  # fmt: skip
    return f"max {by} ({terms})"


def quantiles(bucket: str, by: str, qs: tuple[float, ...], legend_prefix: str = "") -> list[Json]:
    group = f"{by}, le" if by else "le"
    return [
        target(
            f"histogram_quantile({q}, sum by ({group}) (rate({bucket}{sel()}[{RI}])))",
            f"{legend_prefix}p{round(q * 100)}",
        )
        for q in qs
    ]


def lag_description(what: str) -> str:
    return (
        f"Quantiles of the {what} lag: the journal's `timestamp` at the first {what} status "
        "minus its `timestamp` while sent/pending, for messages the exporter saw in both "
        "states. Messages that reach the status between two polls are not measured, so with "
        "long poll intervals the fast ones are under-represented. Empty (NaN) while nothing "
        "was measured in the interval."
    )


# --- Fleet overview -------------------------------------------------------------------------


def fleet() -> Json:
    panels: list[Json] = [
        row("Fleet at a glance"),
        stat("Instances up", "GREEN-API instances whose last poll of lastOutgoingMessages "
             "succeeded (greenapi_up), out of those selected.",
             [target(f"sum(greenapi_up{sel()})", "up")], unit="none",
             thresholds=steps(("blue", None)), graph=False, w=3),
        stat("Instances down", "Instances whose last poll failed (greenapi_up == 0): their "
             "message metrics are stale. See the Poll health row and GreenApiPollFailing.",
             [target(f"count(greenapi_up{sel()} == 0) or vector(0)", "down")], unit="none",
             thresholds=ERROR_STEPS, graph=False, w=3),
        stat("Instances not authorized", "Instances whose state (getStateInstance, the "
             "optional `state` collector) is other than authorized: they cannot send or "
             "receive. See the Instance state row and GreenApiInstanceNotAuthorized. "
             "Instances without the state collector are not counted.",
             [target(f"count(greenapi_instance_state{AUTHORIZED} == 0) "
                     "or vector(0)", "not authorized")], unit="none",
             thresholds=ERROR_STEPS, graph=False, w=3),
        stat("Exporter targets down", "Scrape targets of the selected jobs that Prometheus "
             "cannot scrape (up == 0): nothing behind them is monitored. "
             "See GreenApiExporterDown.",
             [target(f"count(up{{{JOB}}} == 0) or vector(0)", "down")], unit="none",
             thresholds=ERROR_STEPS, graph=False, w=3),
        stat("Messages sent", "Messages per minute seen for the first time in the journals of "
             "the selected instances (greenapi_outgoing_messages_total).",
             [target(f"60 * sum(rate(greenapi_outgoing_messages_total{sel()}[{RI}]))", "sent")],
             unit="mpm", thresholds=steps(("blue", None)), w=3),
        stat("Send queue", "Messages waiting in the send queues of the selected instances "
             "(getMessagesCount, the optional `queue` collector). See GreenApiSendQueueGrowing.",
             [target(f"sum(greenapi_send_queue_messages{sel()})", "queued")],
             unit="short", thresholds=QUEUE_STEPS, w=3),
        stat("Undelivered now", "Messages still sent, pending or without status after "
             "undelivered_after, across the selected instances. Failed sends are not written to "
             "the journal: stuck messages are how they show.",
             [target(f"sum(greenapi_outgoing_undelivered_messages{sel()})", "undelivered")],
             unit="short", thresholds=steps(("green", None), ("orange", 5), ("red", 50)), w=3),
        stat("Oldest undelivered", "Age of the oldest undelivered message across the selected "
             "instances (0 when none).",
             [target(f"max(greenapi_outgoing_oldest_undelivered_age_seconds{sel()})", "age")],
             unit="s", thresholds=AGE_STEPS, w=3),
        row("Per instance"),
        table(
            "Instances",
            "One row per GREEN-API instance: poll state, traffic, undelivered messages and, "
            "with the optional collectors, the instance's state and send queue, as of the last "
            "poll. Click a name for its detail dashboard.",
            [
                ("Up", f"max without () (greenapi_up{sel()})",
                 {"unit": "none", "mappings": UP_MAP,
                  "custom.cellOptions": {"type": "color-background"},
                  "thresholds": steps(("red", None), ("green", 1))}),
                ("Since last success",
                 f"time() - greenapi_last_poll_success_timestamp_seconds{sel()}",
                 {"unit": "s", "thresholds": POLL_AGE_STEPS,
                  "custom.cellOptions": {"type": "color-text"}}),
                ("Sent / min", "60 * sum without (message_type, send_by_api) "
                 f"(rate(greenapi_outgoing_messages_total{sel()}[{RI}]))", {"unit": "mpm"}),
                ("In window", "sum without (status, message_type) "
                 f"(greenapi_outgoing_messages{sel()})", {"unit": "short"}),
                ("sendByApi", f"max without () (greenapi_outgoing_send_by_api_ratio{sel()})",
                 {"unit": "percentunit"}),
                ("Undelivered", f"max without () (greenapi_outgoing_undelivered_messages{sel()})",
                 {"unit": "short", "custom.cellOptions": {"type": "color-text"},
                  "thresholds": steps(("green", None), ("orange", 5), ("red", 50))}),
                ("Oldest undelivered",
                 f"max without () (greenapi_outgoing_oldest_undelivered_age_seconds{sel()})",
                 {"unit": "s", "custom.cellOptions": {"type": "color-text"},
                  "thresholds": AGE_STEPS}),
                ("Truncated", f"max without () (greenapi_outgoing_window_truncated{sel()})",
                 {"unit": "none", "mappings": TRUNCATED_MAP,
                  "custom.cellOptions": {"type": "color-text"}}),
                ("State", state_number("without (state)"),
                 {"unit": "none", "mappings": STATE_MAP,
                  "custom.cellOptions": {"type": "color-background"}}),
                ("Send queue", f"max without () (greenapi_send_queue_messages{sel()})",
                 {"unit": "short", "custom.cellOptions": {"type": "color-text"},
                  "thresholds": QUEUE_STEPS}),
            ],
            first_columns=["name", "id_instance", "job", "instance"],
            hidden=["instance"],
            sort_by="Undelivered",
            unit="short",
            w=24,
            h=9,
        ),
        row("Poll health"),
        state_timeline("Instance up", "greenapi_up per instance: whether the last poll of "
                       "lastOutgoingMessages succeeded.",
                       [target(f"greenapi_up{sel()}", "{{name}}")], mappings=UP_MAP,
                       thresholds=steps(("red", None), ("green", 1))),
        timeseries("Failed polls by result", "Polls per minute that did not succeed, by "
                   "collector (outgoing journal, state, queue, incoming) and result: http_401 "
                   "wrong token, http_403 wrong id or suspended account, http_429 rate limit, "
                   "http_466 quota, timeout/connection_error network.",
                   [target(f"60 * sum by (collector, result) (rate(greenapi_polls_total"
                           f"{FAILED}[{RI}]))", "{{collector}} {{result}}")],
                   unit="reqpm", stack=True, thresholds=ERROR_STEPS),
        timeseries("Time since last successful poll", "Seconds since each instance's last "
                   "successful poll. It grows while polls fail (and, between polls, up to "
                   "poll_interval).",
                   [target(f"time() - greenapi_last_poll_success_timestamp_seconds{sel()}",
                           "{{name}}")],
                   unit="s", thresholds=POLL_AGE_STEPS, threshold_line=True),
        timeseries("Poll duration", "How long the last poll of each instance took "
                   "(request and parsing).",
                   [target(f"greenapi_poll_duration_seconds{sel()}", "{{name}}")],
                   unit="s", thresholds=steps(("green", None), ("orange", 5))),
        row("Instance state, queue and incoming"),
        state_timeline("Instance state", "Each instance's state (getStateInstance, the "
                       "optional `state` collector) over time: authorized is green, states "
                       "that need a person (notAuthorized, blocked, suspended) red, the others "
                       "orange. See GreenApiInstanceNotAuthorized.",
                       [target(state_number(), "{{name}}")], mappings=STATE_MAP,
                       thresholds=NOT_AUTHORIZED_STEPS, w=24),
        timeseries("Send queue by instance", "Messages waiting in each instance's send queue "
                   "(getMessagesCount, the optional `queue` collector). GreenApiSendQueueGrowing "
                   "fires when more than 10 wait and the queue keeps growing.",
                   [target(f"greenapi_send_queue_messages{sel()}", "{{name}}")],
                   unit="short", thresholds=QUEUE_STEPS, threshold_line=True, w=8),
        timeseries("Incoming messages by instance", "Incoming messages per minute seen for "
                   "the first time, per instance (lastIncomingMessages, the optional `incoming` "
                   "collector).",
                   [target(f"60 * sum by (name) (rate(greenapi_incoming_messages_total"
                           f"{sel()}[{RI}]))", "{{name}}")],
                   unit="mpm", stack=True, w=8),
        timeseries("Incoming messages by type", "Incoming messages per minute seen for the "
                   "first time, by typeMessage, all selected instances together.",
                   [target(f"60 * sum by (message_type) (rate(greenapi_incoming_messages_total"
                           f"{sel()}[{RI}]))", "{{message_type}}")],
                   unit="mpm", stack=True, w=8),
        row("Traffic"),
        timeseries("Messages sent by type", "Messages per minute seen for the first time, by "
                   "typeMessage (greenapi_outgoing_messages_total).",
                   [target(f"60 * sum by (message_type) (rate(greenapi_outgoing_messages_total"
                           f"{sel()}[{RI}]))", "{{message_type}}")],
                   unit="mpm", stack=True),
        timeseries("Messages sent by instance", "Messages per minute seen for the first time, "
                   "per instance.",
                   [target(f"60 * sum by (name) (rate(greenapi_outgoing_messages_total"
                           f"{sel()}[{RI}]))", "{{name}}")],
                   unit="mpm", stack=True),
        timeseries("Statuses reached", "Messages per minute reaching a status for the first "
                   "time: the sent, delivered and read rates (and noAccount, yellowCard, ...).",
                   [target(f"60 * sum by (status) (rate(greenapi_outgoing_status_reached_total"
                           f"{sel()}[{RI}]))", "{{status}}")],
                   unit="mpm"),
        timeseries("Delivered and read share of the window", "Of the messages in each "
                   "instance's journal window, the share delivered or read, and the share read.",
                   [target(f'sum by (name) (greenapi_outgoing_messages{DELIVERED})'
                           f" / sum by (name) (greenapi_outgoing_messages{sel()})",
                           "{{name}} delivered"),
                    target(f'sum by (name) (greenapi_outgoing_messages{READ})'
                           f" / sum by (name) (greenapi_outgoing_messages{sel()})",
                           "{{name}} read")],
                   unit="percentunit", minimum=0, maximum=1,
                   thresholds=steps(("red", None), ("orange", 0.8), ("green", 0.9))),
        timeseries("Messages in the window by status", "Messages in the journal window "
                   "(window per instance, 24h by default) by statusMessage, all selected "
                   "instances together.",
                   [target(f"sum by (status) (greenapi_outgoing_messages{sel()})",
                           "{{status}}")],
                   unit="short", stack=True),
        timeseries("sendByApi ratio", "Share of the window's messages sent through the API "
                   "(sendByApi true) rather than from the phone or web client.",
                   [target(f"greenapi_outgoing_send_by_api_ratio{sel()}", "{{name}}")],
                   unit="percentunit", minimum=0, maximum=1),
        timeseries("Forwarded messages in the window", "Messages in the journal window with "
                   "isForwarded true.",
                   [target(f"greenapi_outgoing_forwarded_messages{sel()}", "{{name}}")],
                   unit="short"),
        timeseries("Forwarded messages sent", "Distinct forwarded messages seen per minute.",
                   [target(f"60 * sum by (name) (rate(greenapi_outgoing_forwarded_messages_total"
                           f"{sel()}[{RI}]))", "{{name}}")],
                   unit="mpm"),
        row("Delivery"),
        timeseries("Undelivered messages", "Messages still sent, pending or without status "
                   "after undelivered_after, per instance. GreenApiUndeliveredMessages fires when "
                   "there are some and the oldest has waited for over 15 minutes.",
                   [target(f"greenapi_outgoing_undelivered_messages{sel()}", "{{name}}")],
                   unit="short", thresholds=steps(("green", None), ("orange", 5), ("red", 50))),
        timeseries("Oldest undelivered message age", "Age of each instance's oldest "
                   "undelivered message (0 when none).",
                   [target(f"greenapi_outgoing_oldest_undelivered_age_seconds{sel()}",
                           "{{name}}")],
                   unit="s", thresholds=AGE_STEPS, threshold_line=True),
        bargauge("Top instances by undelivered", "The 10 instances with the most undelivered "
                 "messages now. Click a bar for the instance's detail dashboard.",
                 [target(f"topk(10, sum by (name) "
                         f"(greenapi_outgoing_undelivered_messages{sel()}))", "{{name}}",
                         instant=True)],
                 unit="short", thresholds=steps(("green", None), ("orange", 5), ("red", 50)),
                 links=instance_link("__field.labels.name"), w=8),
        timeseries("Delivery lag", lag_description("delivered"),
                   quantiles(LAG_BUCKET, "", (0.5, 0.95, 0.99)),
                   unit="s", thresholds=LAG_STEPS, threshold_line=True, w=8),
        heatmap("Delivery lag distribution", "How many messages were delivered after how "
                "long, per interval (greenapi_outgoing_delivery_lag_seconds buckets).",
                f"sum by (le) (increase({LAG_BUCKET}{sel()}[{RI}]))", y_unit="s", w=8),
        timeseries("Delivery lag p95 by instance", lag_description("delivered"),
                   quantiles(LAG_BUCKET, "name", (0.95,), "{{name}} "),
                   unit="s", thresholds=LAG_STEPS, threshold_line=True),
        timeseries("Read lag", lag_description("read"),
                   quantiles(READ_BUCKET, "", (0.5, 0.95, 0.99)),
                   unit="s"),
        row("Quota and rate limits"),
        timeseries("Rate-limited polls (HTTP 429)", "Polls answered 429 in each interval. "
                   "The 1 request/second limit is shared with every other client of the "
                   "instance; see GreenApiRateLimited.",
                   [target(f"sum by (name, collector) (increase(greenapi_polls_total"
                           f"{HTTP_429}[{RI}]))", "{{name}} {{collector}}")],
                   unit="short", bars=True, thresholds=ERROR_STEPS, w=8),
        timeseries("Quota exceeded (HTTP 466)", "Polls answered 466 in each interval: the "
                   "plan's monthly quota of journal calls is spent (free plan: ~1,000 a month); "
                   "the exporter then retries hourly. See GreenApiQuotaExceeded.",
                   [target(f"sum by (name, collector) (increase(greenapi_polls_total"
                           f"{HTTP_466}[{RI}]))", "{{name}} {{collector}}")],
                   unit="short", bars=True, thresholds=ERROR_STEPS, w=8),
        state_timeline("Window truncated", "Whether the last answer reached max_messages "
                       "(the journal's depth cap): the oldest messages of the window are "
                       "missing. Shorten `window` if it stays truncated.",
                       [target(f"greenapi_outgoing_window_truncated{sel()}", "{{name}}")],
                       mappings=TRUNCATED_MAP,
                       thresholds=steps(("green", None), ("orange", 1)), w=8),
        row("Exporter"),
        stat("Version", "greenapi-exporter version per scrape target "
             "(greenapi_exporter_build_info).",
             [target(f"greenapi_exporter_build_info{{{JOB}}}", "{{instance}}: {{version}}")],
             unit="none", text_mode="name", color_mode="none", graph=False,
             thresholds=NEUTRAL),
        stat("Configured instances", "GREEN-API instances in the exporters' configuration.",
             [target(f"sum(greenapi_exporter_instances{{{JOB}}})", "instances")],
             unit="none", graph=False, thresholds=steps(("blue", None))),
        stat("Tracked messages", "Messages the exporters hold in memory to follow their "
             "status changes.",
             [target(f"sum(greenapi_exporter_tracked_messages{{{JOB}}})", "tracked")],
             unit="short", thresholds=steps(("blue", None))),
        stat("Last reload", "Whether the last configuration (re)load succeeded. A refused "
             "reload keeps the previous configuration running.",
             [target(f"min(greenapi_exporter_config_last_reload_successful{{{JOB}}})",
                     "reload")],
             unit="none", mappings=BOOL_OK_MAP, graph=False,
             thresholds=steps(("red", None), ("green", 1))),
        stat("Configuration age", "Time since the configuration in force was loaded.",
             [target("time() - max(greenapi_exporter_config_last_reload_success_timestamp_"
                     f"seconds{{{JOB}}})", "age")],
             unit="s", graph=False, thresholds=steps(("blue", None))),
        stat("Scrape duration", "How long Prometheus's scrapes of the exporter take; they "
             "never wait on GREEN-API.",
             [target(f"max(scrape_duration_seconds{{{JOB}}})", "scrape")],
             unit="s", thresholds=steps(("green", None), ("orange", 1), ("red", 5))),
    ]
    return dashboard(
        FLEET_UID,
        "GREEN-API / Fleet overview",
        "All GREEN-API instances watched by greenapi-exporter: poll health, outgoing traffic, "
        "delivery, quota and rate limits.",
        panels,
        (INSTANCE_UID, "Instance detail"),
    )


# --- Instance detail ------------------------------------------------------------------------


def instance() -> Json:
    panels: list[Json] = [
        row("Status"),
        stat("Up", "Whether the last poll of lastOutgoingMessages succeeded (greenapi_up).",
             [target(f"greenapi_up{sel()}", "{{name}}")], unit="none", mappings=UP_MAP,
             thresholds=steps(("red", None), ("green", 1)), graph=False),
        stat("Since last success", "Time since the last successful poll.",
             [target(f"time() - greenapi_last_poll_success_timestamp_seconds{sel()}",
                     "{{name}}")],
             unit="s", thresholds=POLL_AGE_STEPS, graph=False),
        stat("Last poll duration", "How long the last poll took (request and parsing).",
             [target(f"greenapi_poll_duration_seconds{sel()}", "{{name}}")],
             unit="s", thresholds=steps(("green", None), ("orange", 5))),
        stat("Messages in window", "Messages in the journal window (the configured `window`).",
             [target(f"sum by (name) (greenapi_outgoing_messages{sel()})", "{{name}}")],
             unit="short", thresholds=steps(("blue", None))),
        stat("Undelivered", "Messages still sent, pending or without status after "
             "undelivered_after.",
             [target(f"greenapi_outgoing_undelivered_messages{sel()}", "{{name}}")],
             unit="short", thresholds=steps(("green", None), ("orange", 5), ("red", 50))),
        stat("Oldest undelivered", "Age of the oldest undelivered message (0 when none).",
             [target(f"greenapi_outgoing_oldest_undelivered_age_seconds{sel()}", "{{name}}")],
             unit="s", thresholds=AGE_STEPS),
        stat("Sent per minute", "Messages per minute seen for the first time.",
             [target(f"60 * sum by (name) (rate(greenapi_outgoing_messages_total{sel()}"
                     f"[{RI}]))", "{{name}}")],
             unit="mpm", thresholds=steps(("blue", None))),
        stat("sendByApi", "Share of the window's messages sent through the API.",
             [target(f"greenapi_outgoing_send_by_api_ratio{sel()}", "{{name}}")],
             unit="percentunit", thresholds=steps(("blue", None))),
        stat("Newest message", "Time since the newest `timestamp` in the window (the last "
             "action on any message: sent, delivered or read).",
             [target(f"time() - greenapi_outgoing_last_message_timestamp_seconds{sel()}",
                     "{{name}}")],
             unit="s", thresholds=steps(("green", None), ("orange", 3600)), graph=False),
        stat("Window", "Whether the last answer reached max_messages (the journal's depth "
             "cap): then the oldest messages of the window are missing.",
             [target(f"greenapi_outgoing_window_truncated{sel()}", "{{name}}")],
             unit="none", mappings=TRUNCATED_MAP, graph=False,
             thresholds=steps(("green", None), ("orange", 1))),
        stat("Window length", "The configured journal window (`window`), sent as ?minutes=.",
             [target(f"greenapi_outgoing_window_seconds{sel()}", "{{name}}")],
             unit="s", thresholds=steps(("blue", None)), graph=False),
        stat("Invalid elements", "Elements of the last answer that could not be used (not an "
             "object, no idMessage, no usable timestamp, ...).",
             [target(f"greenapi_outgoing_invalid_messages{sel()}", "{{name}}")],
             unit="short", thresholds=steps(("green", None), ("orange", 1)), graph=False),
        row("Poll history"),
        state_timeline("Up history", "greenapi_up over time: whether each poll succeeded.",
                       [target(f"greenapi_up{sel()}", "{{name}}")], mappings=UP_MAP,
                       thresholds=steps(("red", None), ("green", 1)), w=24, h=4),
        timeseries("Polls by result", "Requests per minute by collector (outgoing journal, "
                   "state, queue, incoming) and result (success, http_401, http_429, "
                   "http_466, timeout, ...).",
                   [target(f"60 * sum by (name, collector, result) (rate(greenapi_polls_total"
                           f"{sel()}[{RI}]))", "{{name}} {{collector}} {{result}}")],
                   unit="reqpm", stack=True, w=8),
        timeseries("Poll duration", "Duration of the last poll.",
                   [target(f"greenapi_poll_duration_seconds{sel()}", "{{name}}")],
                   unit="s", thresholds=steps(("green", None), ("orange", 5)), w=8),
        timeseries("Time since last successful poll", "Grows while polls fail.",
                   [target(f"time() - greenapi_last_poll_success_timestamp_seconds{sel()}",
                           "{{name}}")],
                   unit="s", thresholds=POLL_AGE_STEPS, threshold_line=True, w=8),
        row("Instance state, queue and incoming"),
        state_timeline("Instance state", "The instance's state (getStateInstance, the "
                       "optional `state` collector) over time: authorized is green, states "
                       "that need a person (notAuthorized, blocked, suspended) red, the others "
                       "(sleepMode, starting, yellowCard, pending..., unknown) orange. "
                       "See GreenApiInstanceNotAuthorized.",
                       [target(state_number(), "{{name}}")], mappings=STATE_MAP,
                       thresholds=NOT_AUTHORIZED_STEPS, w=24, h=4),
        timeseries("Send queue", "Messages waiting in the instance's send queue "
                   "(getMessagesCount, the optional `queue` collector). GreenApiSendQueueGrowing "
                   "fires when more than 10 wait and the queue keeps growing.",
                   [target(f"greenapi_send_queue_messages{sel()}", "{{name}}")],
                   unit="short", thresholds=QUEUE_STEPS, threshold_line=True, w=8),
        timeseries("Incoming messages by type", "Incoming messages per minute seen for the "
                   "first time, by typeMessage (lastIncomingMessages, the optional `incoming` "
                   "collector).",
                   [target(f"60 * sum by (name, message_type) (rate("
                           f"greenapi_incoming_messages_total{sel()}[{RI}]))",
                           "{{name}} {{message_type}}")],
                   unit="mpm", stack=True, w=8),
        timeseries("Time since last incoming message", "Time since the newest `timestamp` "
                   "among the incoming messages of the window.",
                   [target(f"time() - greenapi_incoming_last_message_timestamp_seconds{sel()}",
                           "{{name}}")],
                   unit="s", thresholds=steps(("green", None), ("orange", 3600)), w=8),
        row("Traffic"),
        timeseries("Messages sent by type", "Messages per minute seen for the first time, by "
                   "typeMessage.",
                   [target(f"60 * sum by (name, message_type) (rate("
                           f"greenapi_outgoing_messages_total{sel()}[{RI}]))",
                           "{{name}} {{message_type}}")],
                   unit="mpm", stack=True, w=8),
        timeseries("Messages sent by API or not", "Messages per minute seen for the first "
                   "time, by sendByApi (false: sent from the phone or web client).",
                   [target(f"60 * sum by (name, send_by_api) (rate("
                           f"greenapi_outgoing_messages_total{sel()}[{RI}]))",
                           "{{name}} sendByApi={{send_by_api}}")],
                   unit="mpm", stack=True, w=8),
        timeseries("Statuses reached", "Messages per minute reaching a status for the first "
                   "time: sent, delivered and read rates.",
                   [target(f"60 * sum by (name, status) (rate("
                           f"greenapi_outgoing_status_reached_total{sel()}[{RI}]))",
                           "{{name}} {{status}}")],
                   unit="mpm", w=8),
        timeseries("Window by status", "Messages in the journal window by statusMessage.",
                   [target(f"sum by (name, status) (greenapi_outgoing_messages{sel()})",
                           "{{name}} {{status}}")],
                   unit="short", stack=True, w=8),
        bargauge("Window by type", "Messages in the journal window by typeMessage.",
                 [target(f"sum by (message_type) (greenapi_outgoing_messages{sel()})",
                         "{{message_type}}", instant=True)],
                 unit="short", thresholds=steps(("blue", None)), w=8),
        timeseries("Delivered and read share of the window", "Of the messages in the window, "
                   "the share delivered or read, and the share read.",
                   [target(f'sum by (name) (greenapi_outgoing_messages{DELIVERED})'
                           f" / sum by (name) (greenapi_outgoing_messages{sel()})",
                           "{{name}} delivered"),
                    target(f'sum by (name) (greenapi_outgoing_messages{READ})'
                           f" / sum by (name) (greenapi_outgoing_messages{sel()})",
                           "{{name}} read")],
                   unit="percentunit", minimum=0, maximum=1,
                   thresholds=steps(("red", None), ("orange", 0.8), ("green", 0.9)), w=8),
        timeseries("sendByApi ratio", "Share of the window's messages sent through the API.",
                   [target(f"greenapi_outgoing_send_by_api_ratio{sel()}", "{{name}}")],
                   unit="percentunit", minimum=0, maximum=1, w=8),
        timeseries("Forwarded in the window", "Messages in the window with isForwarded true.",
                   [target(f"greenapi_outgoing_forwarded_messages{sel()}", "{{name}}")],
                   unit="short", w=8),
        timeseries("Forwarded messages sent", "Distinct forwarded messages seen per minute.",
                   [target(f"60 * sum by (name) (rate(greenapi_outgoing_forwarded_messages_total"
                           f"{sel()}[{RI}]))", "{{name}}")],
                   unit="mpm", w=8),
        row("Delivery"),
        timeseries("Undelivered messages", "Messages still sent, pending or without status "
                   "after undelivered_after. Failed sends are not written to the journal, so "
                   "this is how they show.",
                   [target(f"greenapi_outgoing_undelivered_messages{sel()}", "{{name}}")],
                   unit="short", thresholds=steps(("green", None), ("orange", 5), ("red", 50)),
                   threshold_line=True),
        timeseries("Oldest undelivered message age", "Age of the oldest undelivered message "
                   "(0 when none).",
                   [target(f"greenapi_outgoing_oldest_undelivered_age_seconds{sel()}",
                           "{{name}}")],
                   unit="s", thresholds=AGE_STEPS, threshold_line=True),
        timeseries("Delivery lag", lag_description("delivered"),
                   quantiles(LAG_BUCKET, "name", (0.5, 0.95, 0.99), "{{name}} "),
                   unit="s", thresholds=LAG_STEPS, threshold_line=True),
        heatmap("Delivery lag distribution", "How many messages were delivered after how "
                "long, per interval.",
                f"sum by (le) (increase({LAG_BUCKET}{sel()}[{RI}]))", y_unit="s"),
        timeseries("Read lag", lag_description("read"),
                   quantiles(READ_BUCKET, "name", (0.5, 0.95, 0.99), "{{name}} "),
                   unit="s"),
        heatmap("Read lag distribution", "How many messages were read after how long, per "
                "interval.",
                f"sum by (le) (increase({READ_BUCKET}{sel()}[{RI}]))", y_unit="s"),
        row("Quota, limits and journal"),
        timeseries("Rate-limited and quota-exceeded polls", "Polls answered 429 (rate limit, "
                   "shared with other clients of the instance) or 466 (monthly quota spent) "
                   "in each interval.",
                   [target(f"sum by (name, collector, result) (increase(greenapi_polls_total"
                           f"{HTTP_429_466}[{RI}]))",
                           "{{name}} {{collector}} {{result}}")],
                   unit="short", bars=True, thresholds=ERROR_STEPS, w=8),
        timeseries("Invalid journal elements", "Elements of the last answer that could not be "
                   "used (not an object, no idMessage, no usable timestamp, ...).",
                   [target(f"greenapi_outgoing_invalid_messages{sel()}", "{{name}}")],
                   unit="short", thresholds=steps(("green", None), ("orange", 1)), w=8),
        state_timeline("Window truncated", "Whether the last answer reached max_messages: "
                       "the oldest messages of the window are missing.",
                       [target(f"greenapi_outgoing_window_truncated{sel()}", "{{name}}")],
                       mappings=TRUNCATED_MAP,
                       thresholds=steps(("green", None), ("orange", 1)), w=8),
    ]
    return dashboard(
        INSTANCE_UID,
        "GREEN-API / Instance detail",
        "One GREEN-API instance: poll history, traffic, delivery and read lag, undelivered "
        "messages, journal window.",
        panels,
        (FLEET_UID, "Fleet overview"),
        name_multi=False,
    )


DASHBOARDS = {"greenapi-fleet.json": fleet, "greenapi-instance.json": instance}


def render(build: Any) -> str:
    return json.dumps(build(), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="only check the committed JSON")
    args = parser.parse_args(argv)
    stale = []
    for filename, build in DASHBOARDS.items():
        path = OUT / filename
        text = render(build)
        current = path.read_text() if path.exists() else None
        if current == text:
            continue
        if args.check:
            stale.append(str(path))
        else:
            OUT.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            print(f"wrote {path}")
    if stale:
        print("out of date (run python grafana/generate.py): " + ", ".join(stale),
              file=sys.stderr)  # fmt: skip
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
