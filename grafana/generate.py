#!/usr/bin/env python3
"""Generate the Grafana dashboards of greenapi-exporter.

    python grafana/generate.py           # write grafana/dashboards/*.json
    python grafana/generate.py --check   # exit 1 if the committed JSON is out of date

The JSON files are committed (Grafana reads them, not this script) and the test suite checks
that they match this script. Besides the standard library it reads the exporter's own
declarations (the instance states), so that the two cannot drift.

Conventions (README, "Dashboards and alerts"): every panel, target, variable and annotation uses the
`datasource` template variable ({"type": "prometheus", "uid": "${datasource}"}), never a
hard-coded datasource uid nor `${DS_...}` inputs, so the dashboards work both imported and
provisioned. Every panel has a description, a unit and thresholds; every rate()/increase()
uses $__rate_interval. Variables: datasource, job, name (multi, All) and an ad-hoc filter
(`Labels`) for the static labels users set in the exporter's configuration (team, ...):
Grafana adds ad-hoc filters to every query of the datasource by itself.

The delivery panels are built on greenapi_outgoing_delivery_outcomes_total alone, never on the
recording rules of prometheus/alerts.yml: the dashboards must work on any Prometheus.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from anywhere
from exporter.collectors.state import INSTANCE_STATES as EXPORTER_STATES

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
# The colours of greenapi_instance_state's states: authorized is the only good one; red for the
# states that need a person, orange for those that may pass. The states themselves, and their
# order, are the exporter's (a state added there without a colour here fails the generation).
STATE_COLORS = {
    "authorized": "green", "notAuthorized": "red", "blocked": "red", "sleepMode": "orange",
    "starting": "orange", "yellowCard": "orange", "suspended": "red", "pendingCode": "orange",
    "pendingPassword": "orange", "unknown": "orange",
}  # fmt: skip
INSTANCE_STATES = tuple((state, STATE_COLORS[state]) for state in EXPORTER_STATES)
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
          maximum: float | None = None, no_value: str | None = None,
          decimals: int | None = None, extra: Json | None = None) -> Json:  # fmt: skip
    defaults: Json = {
        "unit": unit,
        "thresholds": thresholds or GREEN,
        "mappings": mappings or [],
    }
    if no_value is not None:  # what Grafana shows instead of "No data"
        defaults["noValue"] = no_value
    if decimals is not None:
        defaults["decimals"] = decimals
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
          first_columns: list[str], hidden: list[str], sort_by: str, descending: bool = True,
          **kwargs: Any) -> Json:  # fmt: skip
    """One instant query per column, merged on their labels into one row per series."""
    targets = [target(expr, "", instant=True, fmt="table") for _, expr, _ in columns]
    with_refs(targets)
    rename = {
        f"Value #{t['refId']}": title_ for t, (title_, _, _) in zip(targets, columns, strict=True)
    }
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
        "sortBy": [{"displayName": sort_by, "desc": descending}],
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
            # greenapi_polls_total, not the exporter's own series: /probe serves only an
            # instance's series, and a probe-only setup must find its job too.
            "description": "Prometheus jobs that scrape greenapi-exporter (/metrics or /probe)",
            "type": "query",
            "datasource": DS,
            "definition": "label_values(greenapi_polls_total, job)",
            "query": "label_values(greenapi_polls_total, job)",
            "current": {},
            "hide": 0,
            "includeAll": True,
            "allValue": ".*",
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
            "definition": 'label_values(greenapi_polls_total{job=~"$job"}, name)',
            "query": 'label_values(greenapi_polls_total{job=~"$job"}, name)',
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


def dashboard_annotations() -> Json:
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
        "annotations": dashboard_annotations(),
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
WINDOW_MESSAGES = "greenapi_outgoing_window_messages"
LAG_STEPS = steps(("green", None), ("orange", 60), ("red", 300))
POLL_AGE_STEPS = steps(("green", None), ("orange", 300), ("red", 900))
ERROR_STEPS = steps(("green", None), ("red", 1))
# Undelivered messages are information, not a fault: recipients with their phones off keep a
# few per cent of a healthy sender's messages `sent` for hours. No red for them.
INFO = steps(("blue", None))
FAILED = sel('result!="success"')
DELIVERED = sel('status=~"delivered|read"')
READ = sel('status="read"')
HTTP_429 = sel('result="http_429"')
HTTP_466 = sel('result="http_466"')
HTTP_429_466 = sel('result=~"http_429|http_466"')
AUTHORIZED = sel('state="authorized"')
QUEUE_STEPS = steps(("green", None), ("orange", 10))
NOT_AUTHORIZED_STEPS = steps(("green", None), ("red", 2))
TRUNCATED_STEPS = steps(("green", None), ("orange", 1))

# The delivery SLI: of the messages judged undelivered_after after they were sent, the share
# that had been delivered by then. no_status (the journal says nothing) is in neither part.
OUTCOMES = "greenapi_outgoing_delivery_outcomes_total"
JUDGED = "in_time|late|failed"
ALL_OUTCOMES = "in_time|late|failed|no_status"
# The in-time objective. prometheus/alerts.yml sets the alerts' own; keep the two equal.
OBJECTIVE = 0.95
OBJECTIVE_STEPS = steps(("red", None), ("green", OBJECTIVE))
# Late: orange past the error budget, red when most are late (deliveries stall).
LATE_STEPS = steps(("green", None), ("orange", round(1 - OBJECTIVE, 4)), ("red", 0.5))
# Failed (noAccount, notInGroup, yellowCard): bad contact lists, a precursor of a ban.
FAILED_STEPS = steps(("green", None), ("orange", round(1 - OBJECTIVE, 4)), ("red", 0.3))
OUTCOME_COLORS = {"in_time": "green", "late": "orange", "failed": "red"}
NOTHING_JUDGED = "No judged messages"
NONE_UNDELIVERED = "None undelivered"


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
        "states (where the timestamp did not move with the status, the time of the poll that "
        "first saw it). Messages that reach the status between two polls are not measured, so "
        "with long poll intervals the fast ones are under-represented. Empty (NaN) while "
        "nothing was measured in the interval."
    )


def summed(group: str, expr: str) -> str:
    return f"sum {group} ({expr})" if group else f"sum ({expr})"


def outcome_rate(outcomes: str, group: str, window: str = "") -> str:
    """Per-second rate of the delivery outcomes matching ``outcomes``, summed ``group``.

    With a ``window`` (15m, 1h, $__range), the average rate over that window: a subquery of
    rate() over $__rate_interval at steps of $__rate_interval. Like increase() over the window
    it survives exporter restarts (counter resets), and it also works on series younger than
    the window.
    """
    expr = f"rate({OUTCOMES}{sel(f'outcome=~{json.dumps(outcomes)}')}[{RI}])"
    if window:
        expr = f"avg_over_time({expr}[{window}:{RI}])"
    return summed(group, expr)


def outcome_share(outcomes: str, group: str, window: str = "", of: str = JUDGED) -> str:
    """The share of the ``of`` outcomes that were ``outcomes``; absent where there were none
    (a quiet instance, or one whose journal gives no status), rather than NaN."""
    return f"{outcome_rate(outcomes, group, window)} / ({outcome_rate(of, group, window)} > 0)"


def in_time_ratio(group: str, window: str = "") -> str:
    return outcome_share("in_time", group, window)


def outcome_overrides() -> list[Json]:
    """Fixed colours for the series named after an outcome (legend ``{{outcome}}``)."""
    return [
        {"matcher": {"id": "byName", "options": outcome},
         "properties": [{"id": "color", "value": {"mode": "fixed", "fixedColor": color}}]}
        for outcome, color in OUTCOME_COLORS.items()
    ]  # fmt: skip


SLI_DESCRIPTION = (
    "Every message the exporter counts is judged once, undelivered_after (default 5m) after it "
    "was sent: in time (delivered or read by then), late (still sent or pending), failed "
    "(noAccount, notInGroup, yellowCard) or no status (the journal says nothing usable). The "
    "in-time ratio is in_time / (in_time + late + failed); messages without a status are in "
    "neither part. Objective: 95 %."
)


# --- panels used by both dashboards ----------------------------------------------------------
# The two dashboards show the same things per instance; the fleet also aggregates. Each builder
# takes the panel's size (w, h) and, where the two differ, title or grouping.


def up_timeline(title: str, description: str, **size: Any) -> Json:
    return state_timeline(title, description, [target(f"greenapi_up{sel()}", "{{name}}")],
                          mappings=UP_MAP, thresholds=steps(("red", None), ("green", 1)),
                          **size)  # fmt: skip


def since_last_poll_timeseries(description: str, **size: Any) -> Json:
    return timeseries("Time since last successful poll", description,
                      [target(f"time() - greenapi_last_poll_success_timestamp_seconds{sel()}",
                              "{{name}}")],
                      unit="s", thresholds=POLL_AGE_STEPS, threshold_line=True,
                      **size)  # fmt: skip


def poll_duration_timeseries(description: str, **size: Any) -> Json:
    return timeseries("Poll duration", description,
                      [target(f"greenapi_poll_duration_seconds{sel()}", "{{name}}")],
                      unit="s", thresholds=steps(("green", None), ("orange", 5)),
                      **size)  # fmt: skip


def instance_state_timeline(description: str, **size: Any) -> Json:
    return state_timeline("Instance state", description + " See GreenApiInstanceNotAuthorized.",
                          [target(state_number(), "{{name}}")], mappings=STATE_MAP,
                          thresholds=NOT_AUTHORIZED_STEPS, w=24, **size)  # fmt: skip


def send_queue_timeseries(title: str, description: str, **size: Any) -> Json:
    return timeseries(title, description + " (getMessagesCount, the optional `queue` "
                      "collector). GreenApiSendQueueGrowing fires when more than 10 wait and "
                      "the queue keeps growing.",
                      [target(f"greenapi_send_queue_messages{sel()}", "{{name}}")],
                      unit="short", thresholds=QUEUE_STEPS, threshold_line=True,
                      **size)  # fmt: skip


def per_minute(metric: str, group: str, legend: str, extra: str = "") -> Json:
    """One target: messages per minute of the counter ``metric``, summed ``group``."""
    selector = sel(extra) if extra else sel()
    return target(f"60 * sum {group} (rate({metric}{selector}[{RI}]))", legend)


def incoming_by_type_timeseries(description: str, group: str, legend: str, **size: Any) -> Json:
    return timeseries("Incoming messages by type", "Incoming messages per minute seen for the "
                      f"first time, by typeMessage{description}.",
                      [per_minute("greenapi_incoming_messages_total", group, legend)],
                      unit="mpm", stack=True, **size)  # fmt: skip


def sent_by_type_timeseries(description: str, group: str, legend: str, **size: Any) -> Json:
    return timeseries("Messages sent by type", "Messages per minute seen for the first time, "
                      f"by typeMessage{description}.",
                      [per_minute("greenapi_outgoing_messages_total", group, legend)],
                      unit="mpm", stack=True, **size)  # fmt: skip


def statuses_reached_timeseries(group: str, legend: str, **size: Any) -> Json:
    return timeseries("Statuses reached", "Messages per minute reaching a status for the first "
                      "time: the sent, delivered and read rates (and noAccount, yellowCard, ...).",
                      [per_minute("greenapi_outgoing_status_reached_total", group, legend)],
                      unit="mpm", **size)  # fmt: skip


def window_by_status_timeseries(title: str, description: str, group: str, legend: str,
                                **size: Any) -> Json:  # fmt: skip
    return timeseries(title, description,
                      [target(f"sum {group} ({WINDOW_MESSAGES}{sel()})", legend)],
                      unit="short", stack=True, **size)  # fmt: skip


def delivered_share_timeseries(description: str, **size: Any) -> Json:
    def share(subset: str) -> str:
        return (f"sum by (name) ({WINDOW_MESSAGES}{subset})"
                f" / sum by (name) ({WINDOW_MESSAGES}{sel()})")  # fmt: skip

    return timeseries("Delivered and read share of the window", description,
                      [target(share(DELIVERED), "{{name}} delivered"),
                       target(share(READ), "{{name}} read")],
                      unit="percentunit", minimum=0, maximum=1,
                      thresholds=steps(("red", None), ("orange", 0.8), ("green", 0.9)),
                      **size)  # fmt: skip


def send_by_api_ratio_timeseries(description: str, **size: Any) -> Json:
    return timeseries("sendByApi ratio", description,
                      [target(f"greenapi_outgoing_window_send_by_api_ratio{sel()}", "{{name}}")],
                      unit="percentunit", minimum=0, maximum=1, **size)  # fmt: skip


def forwarded_window_timeseries(title: str, **size: Any) -> Json:
    return timeseries(title, "Messages in the journal window that are forwarded (isForwarded "
                      "at the top level or inside the content object).",
                      [target(f"greenapi_outgoing_window_forwarded_messages{sel()}", "{{name}}")],
                      unit="short", **size)  # fmt: skip


def forwarded_sent_timeseries(**size: Any) -> Json:
    return timeseries("Forwarded messages sent", "Distinct forwarded messages seen per minute.",
                      [per_minute("greenapi_outgoing_forwarded_messages_total", "by (name)",
                                  "{{name}}")],
                      unit="mpm", **size)  # fmt: skip


def window_truncated_timeline(description: str, **size: Any) -> Json:
    return state_timeline("Window truncated", description,
                          [target(f"greenapi_outgoing_window_truncated{sel()}", "{{name}}")],
                          mappings=TRUNCATED_MAP, thresholds=TRUNCATED_STEPS,
                          **size)  # fmt: skip


def lag_heatmap(title: str, what: str, bucket: str, **size: Any) -> Json:
    return heatmap(title, f"How many messages were {what} after how long, per interval "
                   f"({bucket.removesuffix('_bucket')} buckets).",
                   f"sum by (le) (increase({bucket}{sel()}[{RI}]))", y_unit="s",
                   **size)  # fmt: skip


# Delivery: the SLI first, what is stuck as information.


def in_time_ratio_timeseries(description: str, **size: Any) -> Json:
    return timeseries("In-time ratio", f"{description} {SLI_DESCRIPTION} Over "
                      "$__rate_interval, so it follows the judgements closely; the dashed line is "
                      "the objective. Empty while nothing was judged, as on an instance whose "
                      "journal gives no status (see Journal gives no status).",
                      [target(in_time_ratio("by (name)"), "{{name}}")],
                      unit="percentunit", minimum=0, maximum=1, thresholds=OBJECTIVE_STEPS,
                      threshold_line=True, no_value=NOTHING_JUDGED,
                      legend_calcs=("lastNotNull", "min", "mean"), **size)  # fmt: skip


def outcomes_timeseries(description: str, **size: Any) -> Json:
    return timeseries("Delivery outcomes", f"Messages judged per minute{description}, stacked "
                      "by outcome: in_time (green), late (orange: still sent or pending "
                      "undelivered_after after the send; a few per cent is normal, recipients "
                      "switch their phones off), failed (red: noAccount, notInGroup, yellowCard). "
                      "Messages are judged undelivered_after after they were sent, so this "
                      "curve trails the sending by that much. Messages without a status are "
                      "in Journal gives no status.",
                      [per_minute(OUTCOMES, "by (outcome)", "{{outcome}}",
                                  f"outcome=~{json.dumps(JUDGED)}")],
                      unit="mpm", stack=True, overrides=outcome_overrides(),
                      **size)  # fmt: skip


def no_status_timeseries(**size: Any) -> Json:
    return timeseries("Journal gives no status", "Messages judged per minute whose journal "
                      "entry gave no usable status (statusMessage empty, missing or unknown): "
                      "neither in time nor late, so they are left out of the in-time ratio. An "
                      "instance whose journal never carries statuses (GREEN-API's MAX journal "
                      "example has statusMessage \"\" on every message) shows all its messages "
                      "here: that is a journal without statuses, not failed deliveries.",
                      [per_minute(OUTCOMES, "by (name)", "{{name}}", 'outcome="no_status"')],
                      unit="mpm", thresholds=INFO, **size)  # fmt: skip


def undelivered_timeseries(description: str, **size: Any) -> Json:
    return timeseries("Undelivered messages", "Messages still sent or pending more than "
                      "undelivered_after after they were sent" + description + ". Messages "
                      "without a status are not counted: there is nothing to judge. "
                      "Information, not an alert: a few per cent of a healthy sender's "
                      "recipients have their phones off for hours. The in-time ratio is what "
                      "pages (GreenApiDeliveryStalled, GreenApiDeliveryRatioLow).",
                      [target(f"greenapi_outgoing_undelivered_messages{sel()}", "{{name}}")],
                      unit="short", thresholds=INFO, **size)  # fmt: skip


def oldest_undelivered_timeseries(description: str, **size: Any) -> Json:
    return timeseries("Oldest undelivered message age", "How long ago the oldest undelivered "
                      f"message was sent{description}: time() minus "
                      "greenapi_outgoing_oldest_undelivered_timestamp_seconds, so it keeps "
                      "growing while polls fail. No line while nothing is undelivered. "
                      "Information: one recipient's phone off for a day shows here.",
                      [target(f"time() - greenapi_outgoing_oldest_undelivered_timestamp_seconds"
                              f"{sel()}", "{{name}}")],
                      unit="s", thresholds=INFO, no_value=NONE_UNDELIVERED,
                      **size)  # fmt: skip


def in_time_stat(title: str, window: str, description: str, group: str = "",
                 **size: Any) -> Json:  # fmt: skip
    return stat(title, f"{description} {SLI_DESCRIPTION}",
                [target(in_time_ratio(group, window), "in time", instant=True)],
                unit="percentunit", thresholds=OBJECTIVE_STEPS, graph=False, decimals=1,
                no_value=NOTHING_JUDGED, **size)  # fmt: skip


# --- Fleet overview -------------------------------------------------------------------------


def share_column(title: str, outcomes: str, window: str, props: Json,
                 of: str = JUDGED) -> tuple[str, str, Json]:  # fmt: skip
    return (title, outcome_share(outcomes, "without (outcome)", window, of),
            {"unit": "percentunit", "decimals": 1, **props})  # fmt: skip


def delivery_by_instance_table() -> Json:
    """The headline: the instances whose deliveries stall, worst first."""
    objective = {"custom.cellOptions": {"type": "color-background"},
                 "thresholds": OBJECTIVE_STEPS, "noValue": NOTHING_JUDGED}  # fmt: skip
    colored = {"custom.cellOptions": {"type": "color-text"}}
    return table(
        "Deliveries by instance, worst first",
        "Per instance, of the messages judged in the last 15 minutes and the last hour: the "
        "share delivered in time (sorted worst first), late and failed; how many were judged "
        "per minute (one late message on a quiet instance gives 0 %: look at this column); and "
        "the share whose journal gives no status (not failures: they are left out of the "
        f"ratios, and an instance without statuses shows {NOTHING_JUDGED}). "
        f"{SLI_DESCRIPTION} Click a name for its detail dashboard.",
        [
            share_column("In time (15m)", "in_time", "15m", objective),
            share_column("Late (15m)", "late", "15m", {**colored, "thresholds": LATE_STEPS}),
            share_column("In time (1h)", "in_time", "1h", objective),
            share_column("Late (1h)", "late", "1h", {**colored, "thresholds": LATE_STEPS}),
            share_column("Failed (1h)", "failed", "1h", {**colored, "thresholds": FAILED_STEPS}),
            (
                "Judged / min (1h)",
                f"60 * {outcome_rate(JUDGED, 'without (outcome)', '1h')}",
                {"unit": "mpm"},
            ),
            share_column(
                "Journal gives no status (1h)",
                "no_status",
                "1h",
                {"thresholds": INFO},
                of=ALL_OUTCOMES,
            ),
        ],
        first_columns=["name", "id_instance", "job", "instance"],
        hidden=["id_instance", "job", "instance"],
        sort_by="In time (15m)",
        descending=False,
        unit="short",
        w=16,
        h=8,
    )


def fleet() -> Json:
    panels: list[Json] = [
        row("Delivery"),
        stat(
            "Instances below the objective",
            "Instances whose in-time ratio over the last "
            f"15 minutes is below the objective ({OBJECTIVE:.0%}). Instances that judged "
            f"nothing (quiet, or a journal without statuses) are not counted. {SLI_DESCRIPTION}",
            [
                target(
                    f"count({in_time_ratio('by (name)', '15m')} < {OBJECTIVE}) or vector(0)",
                    "below",
                    instant=True,
                )
            ],
            unit="none",
            thresholds=ERROR_STEPS,
            graph=False,
            h=8,
        ),
        in_time_stat(
            "In time, last hour",
            "1h",
            "Of the messages of the selected instances "
            "judged in the last hour, the share delivered in time.",
            h=8,
        ),
        delivery_by_instance_table(),
        in_time_ratio_timeseries("Per instance.", w=8),
        outcomes_timeseries(", all selected instances together", w=8),
        no_status_timeseries(w=8),
        row("Fleet at a glance"),
        stat(
            "Instances up",
            "GREEN-API instances whose last poll of lastOutgoingMessages "
            "succeeded (greenapi_up), out of those selected.",
            [target(f"sum(greenapi_up{sel()})", "up")],
            unit="none",
            thresholds=steps(("blue", None)),
            graph=False,
        ),
        stat(
            "Instances down",
            "Instances whose last poll failed (greenapi_up == 0): their "
            "message metrics are stale. See the Poll health row and GreenApiPollFailing.",
            [target(f"count(greenapi_up{sel()} == 0) or vector(0)", "down")],
            unit="none",
            thresholds=ERROR_STEPS,
            graph=False,
        ),
        stat(
            "Instances not authorized",
            "Instances whose state (getStateInstance, the "
            "optional `state` collector) is other than authorized: they cannot send or "
            "receive. See the Instance state row and GreenApiInstanceNotAuthorized. "
            "Instances without the state collector are not counted.",
            [
                target(
                    f"count(greenapi_instance_state{AUTHORIZED} == 0) or vector(0)",
                    "not authorized",
                )
            ],
            unit="none",
            thresholds=ERROR_STEPS,
            graph=False,
        ),
        stat(
            "Exporter targets down",
            "Scrape targets of the selected jobs that Prometheus "
            "cannot scrape (up == 0): nothing behind them is monitored. "
            "See GreenApiExporterDown.",
            [target(f"count(up{{{JOB}}} == 0) or vector(0)", "down")],
            unit="none",
            thresholds=ERROR_STEPS,
            graph=False,
        ),
        stat(
            "Messages sent",
            "Messages per minute seen for the first time in the journals of "
            "the selected instances (greenapi_outgoing_messages_total).",
            [target(f"60 * sum(rate(greenapi_outgoing_messages_total{sel()}[{RI}]))", "sent")],
            unit="mpm",
            thresholds=steps(("blue", None)),
        ),
        stat(
            "Send queue",
            "Messages waiting in the send queues of the selected instances "
            "(getMessagesCount, the optional `queue` collector). See GreenApiSendQueueGrowing.",
            [target(f"sum(greenapi_send_queue_messages{sel()})", "queued")],
            unit="short",
            thresholds=QUEUE_STEPS,
        ),
        row("Per instance"),
        table(
            "Instances",
            "One row per GREEN-API instance: poll state, traffic, undelivered messages and, "
            "with the optional collectors, the instance's state and send queue, as of the last "
            "poll. Instances whose last poll failed come first. Click a name for its detail "
            "dashboard.",
            [
                (
                    "Up",
                    f"max without () (greenapi_up{sel()})",
                    {
                        "unit": "none",
                        "mappings": UP_MAP,
                        "custom.cellOptions": {"type": "color-background"},
                        "thresholds": steps(("red", None), ("green", 1)),
                    },
                ),
                (
                    "Since last success",
                    f"time() - greenapi_last_poll_success_timestamp_seconds{sel()}",
                    {
                        "unit": "s",
                        "thresholds": POLL_AGE_STEPS,
                        "custom.cellOptions": {"type": "color-text"},
                    },
                ),
                (
                    "Sent / min",
                    "60 * sum without (message_type, send_by_api) "
                    f"(rate(greenapi_outgoing_messages_total{sel()}[{RI}]))",
                    {"unit": "mpm"},
                ),
                (
                    "In window",
                    f"sum without (status, message_type) ({WINDOW_MESSAGES}{sel()})",
                    {"unit": "short"},
                ),
                (
                    "sendByApi",
                    f"max without () (greenapi_outgoing_window_send_by_api_ratio{sel()})",
                    {"unit": "percentunit"},
                ),
                (
                    "Undelivered",
                    f"max without () (greenapi_outgoing_undelivered_messages{sel()})",
                    {"unit": "short"},
                ),
                (
                    "Oldest undelivered",
                    f"time() - greenapi_outgoing_oldest_undelivered_timestamp_seconds{sel()}",
                    {"unit": "s", "noValue": NONE_UNDELIVERED},
                ),
                (
                    "Truncated",
                    f"max without () (greenapi_outgoing_window_truncated{sel()})",
                    {
                        "unit": "none",
                        "mappings": TRUNCATED_MAP,
                        "custom.cellOptions": {"type": "color-text"},
                    },
                ),
                (
                    "State",
                    state_number("without (state)"),
                    {
                        "unit": "none",
                        "mappings": STATE_MAP,
                        "custom.cellOptions": {"type": "color-background"},
                    },
                ),
                (
                    "Send queue",
                    f"max without () (greenapi_send_queue_messages{sel()})",
                    {
                        "unit": "short",
                        "custom.cellOptions": {"type": "color-text"},
                        "thresholds": QUEUE_STEPS,
                    },
                ),
            ],
            first_columns=["name", "id_instance", "job", "instance"],
            hidden=["instance"],
            sort_by="Up",
            descending=False,
            unit="short",
            w=24,
            h=9,
        ),
        row("Poll health"),
        up_timeline(
            "Instance up",
            "greenapi_up per instance: whether the last poll of lastOutgoingMessages succeeded.",
        ),
        timeseries(
            "Failed polls by result",
            "Polls per minute that did not succeed, by "
            "collector (outgoing journal, state, queue, incoming) and result: http_401 "
            "wrong token, http_403 wrong id or suspended account, http_429 rate limit, "
            "http_466 quota, timeout/connection_error network.",
            [
                target(
                    f"60 * sum by (collector, result) (rate(greenapi_polls_total{FAILED}[{RI}]))",
                    "{{collector}} {{result}}",
                )
            ],
            unit="reqpm",
            stack=True,
            thresholds=ERROR_STEPS,
        ),
        since_last_poll_timeseries(
            "Seconds since each instance's last successful poll. It "
            "grows while polls fail (and, between polls, up to "
            "poll_interval)."
        ),
        poll_duration_timeseries(
            "How long the last poll of each instance took (request and parsing)."
        ),
        row("Instance state, queue and incoming"),
        instance_state_timeline(
            "Each instance's state (getStateInstance, the optional `state` "
            "collector) over time: authorized is green, states that need a "
            "person (notAuthorized, blocked, suspended) red, the others "
            "orange."
        ),
        send_queue_timeseries(
            "Send queue by instance", "Messages waiting in each instance's send queue", w=8
        ),
        timeseries(
            "Incoming messages by instance",
            "Incoming messages per minute seen for "
            "the first time, per instance (lastIncomingMessages, the optional `incoming` "
            "collector).",
            [per_minute("greenapi_incoming_messages_total", "by (name)", "{{name}}")],
            unit="mpm",
            stack=True,
            w=8,
        ),
        incoming_by_type_timeseries(
            ", all selected instances together", "by (message_type)", "{{message_type}}", w=8
        ),
        row("Traffic"),
        sent_by_type_timeseries(
            " (greenapi_outgoing_messages_total)", "by (message_type)", "{{message_type}}"
        ),
        timeseries(
            "Messages sent by instance",
            "Messages per minute seen for the first time, per instance.",
            [per_minute("greenapi_outgoing_messages_total", "by (name)", "{{name}}")],
            unit="mpm",
            stack=True,
        ),
        statuses_reached_timeseries("by (status)", "{{status}}"),
        delivered_share_timeseries(
            "Of the messages in each instance's journal window, the "
            "share delivered or read, and the share read."
        ),
        window_by_status_timeseries(
            "Messages in the window by status",
            "Messages in the "
            "journal window (window per instance, 24h by default) by "
            "statusMessage, all selected instances together.",
            "by (status)",
            "{{status}}",
        ),
        send_by_api_ratio_timeseries(
            "Share of the window's messages sent through the API "
            "(sendByApi true) rather than from the phone or web "
            "client."
        ),
        forwarded_window_timeseries("Forwarded messages in the window"),
        forwarded_sent_timeseries(),
        row("Undelivered messages and lag"),
        undelivered_timeseries(", per instance", w=8),
        oldest_undelivered_timeseries(", per instance", w=8),
        bargauge(
            "Top instances by undelivered",
            "The 10 instances with the most undelivered "
            "messages now (information: see Undelivered messages). Click a bar for the "
            "instance's detail dashboard.",
            [
                target(
                    f"topk(10, sum by (name) (greenapi_outgoing_undelivered_messages{sel()}))",
                    "{{name}}",
                    instant=True,
                )
            ],
            unit="short",
            thresholds=INFO,
            links=instance_link("__field.labels.name"),
            w=8,
        ),
        timeseries(
            "Delivery lag",
            lag_description("delivered"),
            quantiles(LAG_BUCKET, "", (0.5, 0.95, 0.99)),
            unit="s",
            thresholds=LAG_STEPS,
            threshold_line=True,
            w=8,
        ),
        lag_heatmap("Delivery lag distribution", "delivered", LAG_BUCKET, w=8),
        timeseries(
            "Delivery lag p95 by instance",
            lag_description("delivered"),
            quantiles(LAG_BUCKET, "name", (0.95,), "{{name}} "),
            unit="s",
            thresholds=LAG_STEPS,
            threshold_line=True,
            w=8,
        ),
        timeseries(
            "Read lag",
            lag_description("read"),
            quantiles(READ_BUCKET, "", (0.5, 0.95, 0.99)),
            unit="s",
            w=24,
        ),
        row("Quota and rate limits"),
        timeseries(
            "Rate-limited polls (HTTP 429)",
            "Polls answered 429 in each interval. "
            "The 1 request/second limit is shared with every other client of the "
            "instance; see GreenApiRateLimited.",
            [
                target(
                    f"sum by (name, collector) (increase(greenapi_polls_total{HTTP_429}[{RI}]))",
                    "{{name}} {{collector}}",
                )
            ],
            unit="short",
            bars=True,
            thresholds=ERROR_STEPS,
            w=8,
        ),
        timeseries(
            "Quota exceeded (HTTP 466)",
            "Polls answered 466 in each interval: the "
            "plan's monthly quota of journal calls is spent (free plan: ~1,000 a month); "
            "the exporter then retries hourly. See GreenApiQuotaExceeded.",
            [
                target(
                    f"sum by (name, collector) (increase(greenapi_polls_total{HTTP_466}[{RI}]))",
                    "{{name}} {{collector}}",
                )
            ],
            unit="short",
            bars=True,
            thresholds=ERROR_STEPS,
            w=8,
        ),
        window_truncated_timeline(
            "Whether the last answer reached max_messages (the journal's "
            "depth cap): the oldest messages of the window are missing. "
            "Shorten `window` if it stays truncated.",
            w=8,
        ),
        row("Exporter"),
        stat(
            "Version",
            "greenapi-exporter version per scrape target (greenapi_exporter_build_info).",
            [target(f"greenapi_exporter_build_info{{{JOB}}}", "{{instance}}: {{version}}")],
            unit="none",
            text_mode="name",
            color_mode="none",
            graph=False,
            thresholds=NEUTRAL,
        ),
        stat(
            "Configured instances",
            "GREEN-API instances in the exporters' configuration.",
            [target(f"sum(greenapi_exporter_instances{{{JOB}}})", "instances")],
            unit="none",
            graph=False,
            thresholds=steps(("blue", None)),
        ),
        stat(
            "Tracked messages",
            "Messages the exporters hold in memory to follow their status changes.",
            [target(f"sum(greenapi_exporter_tracked_messages{{{JOB}}})", "tracked")],
            unit="short",
            thresholds=steps(("blue", None)),
        ),
        stat(
            "Last reload",
            "Whether the last configuration (re)load succeeded. A refused "
            "reload keeps the previous configuration running.",
            [target(f"min(greenapi_exporter_config_last_reload_successful{{{JOB}}})", "reload")],
            unit="none",
            mappings=BOOL_OK_MAP,
            graph=False,
            thresholds=steps(("red", None), ("green", 1)),
        ),
        stat(
            "Configuration age",
            "Time since the configuration in force was loaded.",
            [
                target(
                    "time() - max(greenapi_exporter_config_last_reload_success_timestamp_"
                    f"seconds{{{JOB}}})",
                    "age",
                )
            ],
            unit="s",
            graph=False,
            thresholds=steps(("blue", None)),
        ),
        stat(
            "Scrape duration",
            "How long Prometheus's scrapes of the exporter take; they never wait on GREEN-API.",
            [target(f"max(scrape_duration_seconds{{{JOB}}})", "scrape")],
            unit="s",
            thresholds=steps(("green", None), ("orange", 1), ("red", 5)),
        ),
    ]
    return dashboard(
        FLEET_UID,
        "GREEN-API / Fleet overview",
        "All GREEN-API instances watched by greenapi-exporter: the delivery SLI (which "
        "instances' deliveries stall), poll health, outgoing traffic, undelivered messages, "
        "quota and rate limits.",
        panels,
        (INSTANCE_UID, "Instance detail"),
    )


# --- Instance detail ------------------------------------------------------------------------


def instance() -> Json:
    panels: list[Json] = [
        row("Status"),
        stat(
            "Up",
            "Whether the last poll of lastOutgoingMessages succeeded (greenapi_up).",
            [target(f"greenapi_up{sel()}", "{{name}}")],
            unit="none",
            mappings=UP_MAP,
            thresholds=steps(("red", None), ("green", 1)),
            graph=False,
        ),
        stat(
            "Since last success",
            "Time since the last successful poll.",
            [target(f"time() - greenapi_last_poll_success_timestamp_seconds{sel()}", "{{name}}")],
            unit="s",
            thresholds=POLL_AGE_STEPS,
            graph=False,
        ),
        stat(
            "Last poll duration",
            "How long the last poll took (request and parsing).",
            [target(f"greenapi_poll_duration_seconds{sel()}", "{{name}}")],
            unit="s",
            thresholds=steps(("green", None), ("orange", 5)),
        ),
        in_time_stat(
            "In time, last hour",
            "1h",
            "Of the messages judged in the last hour, the share delivered in time.",
            "by (name)",
        ),
        in_time_stat(
            "In time, dashboard range",
            "$__range",
            "Of the messages judged in the dashboard's time range, the share delivered in time.",
            "by (name)",
        ),
        stat(
            "Sent per minute",
            "Messages per minute seen for the first time.",
            [per_minute("greenapi_outgoing_messages_total", "by (name)", "{{name}}")],
            unit="mpm",
            thresholds=steps(("blue", None)),
        ),
        stat(
            "Messages in window",
            "Messages in the journal window (the configured `window`).",
            [target(f"sum by (name) ({WINDOW_MESSAGES}{sel()})", "{{name}}")],
            unit="short",
            thresholds=steps(("blue", None)),
        ),
        stat(
            "sendByApi",
            "Share of the window's messages sent through the API.",
            [target(f"greenapi_outgoing_window_send_by_api_ratio{sel()}", "{{name}}")],
            unit="percentunit",
            thresholds=steps(("blue", None)),
        ),
        stat(
            "Newest message",
            "Time since the newest `timestamp` in the window (the last "
            "action on any message: sent, delivered or read).",
            [
                target(
                    f"time() - greenapi_outgoing_last_message_timestamp_seconds{sel()}", "{{name}}"
                )
            ],
            unit="s",
            thresholds=steps(("green", None), ("orange", 3600)),
            graph=False,
        ),
        stat(
            "Window",
            "Whether the last answer reached max_messages (the journal's depth "
            "cap): then the oldest messages of the window are missing.",
            [target(f"greenapi_outgoing_window_truncated{sel()}", "{{name}}")],
            unit="none",
            mappings=TRUNCATED_MAP,
            graph=False,
            thresholds=TRUNCATED_STEPS,
        ),
        stat(
            "Window length",
            "The configured journal window (`window`), sent as ?minutes=.",
            [target(f"greenapi_outgoing_window_seconds{sel()}", "{{name}}")],
            unit="s",
            thresholds=steps(("blue", None)),
            graph=False,
        ),
        stat(
            "Invalid elements",
            "Elements of the last answer that could not be used (not an "
            "object, no idMessage, no usable timestamp, ...).",
            [target(f"greenapi_outgoing_invalid_messages{sel()}", "{{name}}")],
            unit="short",
            thresholds=steps(("green", None), ("orange", 1)),
            graph=False,
        ),
        row("Delivery"),
        in_time_ratio_timeseries(
            "The instance's share of judged messages delivered in time.", w=12
        ),
        outcomes_timeseries("", w=12),
        no_status_timeseries(w=8),
        undelivered_timeseries("", w=8),
        oldest_undelivered_timeseries("", w=8),
        row("Poll history"),
        up_timeline("Up history", "greenapi_up over time: whether each poll succeeded.", w=24, h=4),
        timeseries(
            "Polls by result",
            "Requests per minute by collector (outgoing journal, "
            "state, queue, incoming) and result (success, http_401, http_429, "
            "http_466, timeout, ...).",
            [
                per_minute(
                    "greenapi_polls_total",
                    "by (name, collector, result)",
                    "{{name}} {{collector}} {{result}}",
                )
            ],
            unit="reqpm",
            stack=True,
            w=8,
        ),
        poll_duration_timeseries("Duration of the last poll.", w=8),
        since_last_poll_timeseries("Grows while polls fail.", w=8),
        row("Instance state, queue and incoming"),
        instance_state_timeline(
            "The instance's state (getStateInstance, the optional `state` "
            "collector) over time: authorized is green, states that need a "
            "person (notAuthorized, blocked, suspended) red, the others "
            "(sleepMode, starting, yellowCard, pending..., unknown) "
            "orange.",
            h=4,
        ),
        send_queue_timeseries("Send queue", "Messages waiting in the instance's send queue", w=8),
        incoming_by_type_timeseries(
            " (lastIncomingMessages, the optional `incoming` collector)",
            "by (name, message_type)",
            "{{name}} {{message_type}}",
            w=8,
        ),
        timeseries(
            "Time since last incoming message",
            "Time since the newest `timestamp` among the incoming messages of the window.",
            [
                target(
                    f"time() - greenapi_incoming_last_message_timestamp_seconds{sel()}", "{{name}}"
                )
            ],
            unit="s",
            thresholds=steps(("green", None), ("orange", 3600)),
            w=8,
        ),
        row("Traffic"),
        sent_by_type_timeseries("", "by (name, message_type)", "{{name}} {{message_type}}", w=8),
        timeseries(
            "Messages sent by API or not",
            "Messages per minute seen for the first "
            "time, by sendByApi (false: sent from the phone or web client).",
            [
                per_minute(
                    "greenapi_outgoing_messages_total",
                    "by (name, send_by_api)",
                    "{{name}} sendByApi={{send_by_api}}",
                )
            ],
            unit="mpm",
            stack=True,
            w=8,
        ),
        statuses_reached_timeseries("by (name, status)", "{{name}} {{status}}", w=8),
        window_by_status_timeseries(
            "Window by status",
            "Messages in the journal window by statusMessage.",
            "by (name, status)",
            "{{name}} {{status}}",
            w=8,
        ),
        bargauge(
            "Window by type",
            "Messages in the journal window by typeMessage.",
            [
                target(
                    f"sum by (message_type) ({WINDOW_MESSAGES}{sel()})",
                    "{{message_type}}",
                    instant=True,
                )
            ],
            unit="short",
            thresholds=steps(("blue", None)),
            w=8,
        ),
        delivered_share_timeseries(
            "Of the messages in the window, the share delivered or read, and the share read.", w=8
        ),
        send_by_api_ratio_timeseries("Share of the window's messages sent through the API.", w=8),
        forwarded_window_timeseries("Forwarded in the window", w=8),
        forwarded_sent_timeseries(w=8),
        row("Delivery and read lag"),
        timeseries(
            "Delivery lag",
            lag_description("delivered"),
            quantiles(LAG_BUCKET, "name", (0.5, 0.95, 0.99), "{{name}} "),
            unit="s",
            thresholds=LAG_STEPS,
            threshold_line=True,
        ),
        lag_heatmap("Delivery lag distribution", "delivered", LAG_BUCKET),
        timeseries(
            "Read lag",
            lag_description("read"),
            quantiles(READ_BUCKET, "name", (0.5, 0.95, 0.99), "{{name}} "),
            unit="s",
        ),
        lag_heatmap("Read lag distribution", "read", READ_BUCKET),
        row("Quota, limits and journal"),
        timeseries(
            "Rate-limited and quota-exceeded polls",
            "Polls answered 429 (rate limit, "
            "shared with other clients of the instance) or 466 (monthly quota spent) "
            "in each interval.",
            [
                target(
                    f"sum by (name, collector, result) (increase(greenapi_polls_total"
                    f"{HTTP_429_466}[{RI}]))",
                    "{{name}} {{collector}} {{result}}",
                )
            ],
            unit="short",
            bars=True,
            thresholds=ERROR_STEPS,
            w=8,
        ),
        timeseries(
            "Invalid journal elements",
            "Elements of the last answer that could not be "
            "used (not an object, no idMessage, no usable timestamp, ...).",
            [target(f"greenapi_outgoing_invalid_messages{sel()}", "{{name}}")],
            unit="short",
            thresholds=steps(("green", None), ("orange", 1)),
            w=8,
        ),
        window_truncated_timeline(
            "Whether the last answer reached max_messages: the oldest "
            "messages of the window are missing.",
            w=8,
        ),
    ]
    return dashboard(
        INSTANCE_UID,
        "GREEN-API / Instance detail",
        "One GREEN-API instance: the delivery SLI and outcomes, poll history, traffic, "
        "undelivered messages, delivery and read lag, journal window.",
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
