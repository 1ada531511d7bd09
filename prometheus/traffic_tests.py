"""Write alerts.traffic.test.yml: promtool tests of the delivery alerts on realistic traffic.

    python prometheus/traffic_tests.py          # rewrite prometheus/alerts.traffic.test.yml
    python prometheus/traffic_tests.py --check  # exit 1 if it is out of date (the tests run this)

The hand-written tests (alerts.test.yml) feed the rules exact, constant rates: right for edge
cases, blind to noise. Here each instance is simulated message by message with a seeded
random generator, for hours: Poisson-distributed sends per minute; each message's fate drawn
at random (a recipient whose phone stays off, a number without WhatsApp, a delivery lag of
seconds, deliveries held while the instance stalls); the exporter's judgement at its first
poll (every 60 s) once undelivered_after (5 minutes) has passed since the send; Prometheus
scraping every minute. The series are written out as explicit value lists.

Each scenario states which alert must fire when, for which instance, and that every other
alert of severity warning or critical stays quiet: these are the requirements, not results
copied from a run. Between "quiet until" and "firing from" an alert is not checked (that is
where its windows and `for` decide). The annotations of an expected alert are rendered here
from alerts.yml's templates, with the shares and counts that the recording rules compute
from the simulated counters (the same arithmetic; Prometheus sums in no fixed order, so a
number that the last bit of a float could change is refused, see `robust`).

The lag histograms are left out: every delivered message of these scenarios is delivered in
time, so GreenApiDeliveryLagHigh has nothing to see (alerts.test.yml covers it).
"""

from __future__ import annotations

import json
import math
import random
import re
import sys
import textwrap
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
RULES = HERE / "alerts.yml"
TARGET = HERE / "alerts.traffic.test.yml"

STEP = 60  # seconds between scrapes, between rule evaluations, and of the value lists
UNDELIVERED_AFTER = 300.0  # seconds: the exporter's default undelivered_after
POLL_INTERVAL = 60.0  # seconds: the exporter's default poll_interval
# Minutes between checks: of the alerts built on the delivery outcomes, and of the others
# (fed steady healthy inputs here: poll health, window, state and queue).
CHECK_DELIVERY_EVERY = 15
CHECK_OTHERS_EVERY = 60
# Outcome label values, in the order in which they are written and summed here.
OUTCOMES = ("failed", "in_time", "late", "no_status")
JUDGED = ("failed", "in_time", "late")  # no_status is in neither part of the SLI
JOB = "greenapi"
EXPORTER = "exporter:9935"

Sends = Callable[[random.Random, int], list[float]]


# --- the traffic model ------------------------------------------------------------------------


@dataclass(frozen=True)
class Fates:
    """The odds for a message sent at some moment.

    A message fails (noAccount and the like), never reaches the recipient (the phone stays
    off), carries no status (a journal without statuses), or else is delivered after a lag of
    seconds, unless deliveries stall.
    """

    failed: float = 0.01
    undeliverable: float = 0.03
    no_status: float = 0.0


HEALTHY = Fates()


def healthy(_sent: float) -> Fates:
    return HEALTHY


@dataclass(frozen=True)
class Instance:
    name: str
    id_instance: str
    sends: Sends
    fates: Callable[[float], Fates] = healthy  # by send time, in seconds
    stalls: tuple[tuple[int, int], ...] = ()  # [start, end) in minutes: nothing is delivered
    labels: dict[str, str] = field(default_factory=dict)  # static labels of the configuration

    def series_labels(self) -> dict[str, str]:
        return {
            "job": JOB,
            "instance": EXPORTER,
            "name": self.name,
            "id_instance": self.id_instance,
            **self.labels,
        }


def poisson(rng: random.Random, mean: float) -> int:
    """Knuth's method: fine for the few messages a minute modelled here."""
    limit, count, product = math.exp(-mean), 0, rng.random()
    while product > limit:
        count += 1
        product *= rng.random()
    return count


def exponential(rng: random.Random, mean: float) -> float:
    return -mean * math.log(1.0 - rng.random())


def poisson_sends(per_minute: float) -> Sends:
    """A steady sender: a Poisson number of messages each minute, at random seconds."""

    def sends(rng: random.Random, minutes: int) -> list[float]:
        times = []
        for minute in range(minutes):
            times += [(minute + rng.random()) * STEP for _ in range(poisson(rng, per_minute))]
        return sorted(times)

    return sends


def hourly_sends(rng: random.Random, minutes: int) -> list[float]:
    """A quiet instance: one message an hour, at a random moment of the hour."""
    return [(hour + rng.random()) * 3600 for hour in range(minutes // 60)]


def delivery_lag(rng: random.Random) -> float:
    """Seconds from send to delivered: mostly a few seconds, a tenth on slow networks."""
    if rng.random() < 0.9:
        return 0.5 + exponential(rng, 3.0)
    return exponential(rng, 45.0)


@dataclass
class Simulated:
    """An instance's series, one value per scrape (index = minute)."""

    instance: Instance
    outcomes: dict[str, list[int]]  # cumulative, by outcome
    messages: list[int]  # greenapi_outgoing_messages_total
    polls: list[int]  # greenapi_polls_total{collector="outgoing",result="success"}
    last_message: list[int | None]  # greenapi_outgoing_last_message_timestamp_seconds
    send_queue: list[int]  # greenapi_send_queue_messages


def simulate(instance: Instance, minutes: int, rng: random.Random) -> Simulated:
    phase = rng.random() * POLL_INTERVAL  # the exporter polls at phase + k * POLL_INTERVAL

    def next_poll(moment: float) -> float:
        return phase + math.ceil((moment - phase) / POLL_INTERVAL) * POLL_INTERVAL

    def scrape_index(moment: float) -> int:  # the first scrape that sees what happened then
        return math.ceil(moment / STEP)

    def delivered_at(sent: float) -> float:
        delivered = sent + delivery_lag(rng)
        for start, end in instance.stalls:
            if start * STEP <= delivered < end * STEP:  # held until the stall ends
                delivered = end * STEP + delivery_lag(rng)
        return delivered

    judged = {outcome: [0] * (minutes + 1) for outcome in OUTCOMES}
    seen = [0] * (minutes + 1)
    newest: list[int | None] = [None] * (minutes + 1)
    for sent in instance.sends(rng, minutes):
        fates, draw = instance.fates(sent), rng.random()
        judged_at = next_poll(sent + UNDELIVERED_AFTER)
        if draw < fates.no_status:
            outcome = "no_status"
        elif draw < fates.no_status + fates.failed:
            outcome = "failed"
        elif draw < fates.no_status + fates.failed + fates.undeliverable:
            outcome = "late"
        else:
            outcome = "in_time" if delivered_at(sent) <= judged_at else "late"
        seen_at = scrape_index(next_poll(sent + 1.0 + rng.random() * 20.0))  # journal delay
        if seen_at <= minutes:
            seen[seen_at] += 1
            newest[seen_at] = int(sent)
        if scrape_index(judged_at) <= minutes:
            judged[outcome][scrape_index(judged_at)] += 1
    polls = [
        0 if t * STEP < phase else math.floor((t * STEP - phase) / POLL_INTERVAL) + 1
        for t in range(minutes + 1)
    ]
    return Simulated(
        instance=instance,
        outcomes={outcome: cumulative(counts) for outcome, counts in judged.items()},
        messages=cumulative(seen),
        polls=polls,
        last_message=carried_forward(newest),
        send_queue=[poisson(rng, 0.4) for _ in range(minutes + 1)],
    )


def cumulative(counts: Sequence[int]) -> list[int]:
    total, values = 0, []
    for count in counts:
        total += count
        values.append(total)
    return values


def carried_forward(values: Sequence[int | None]) -> list[int | None]:
    last: int | None = None
    result = []
    for value in values:
        last = value if value is not None else last
        result.append(last)
    return result


# --- what the recording rules compute -----------------------------------------------------------

RATIO = re.compile(r"greenapi:outgoing_delivery_(sli|late|failed):ratio_rate(\d+)([mh])")
INCREASE = re.compile(r"greenapi:outgoing_delivery_judged:increase(\d+)([mh])")
NUMERATOR = {"sli": "in_time", "late": "late", "failed": "failed"}
OBJECTIVE = "greenapi:outgoing_delivery_sli:objective"


def window_minutes(number: str, unit: str) -> int:
    return int(number) * (60 if unit == "h" else 1)


def increase(counter: Sequence[int], minute: int, window: int) -> float:
    """increase() over [minute - window, minute]: every counter starts at 0 at minute 0 and
    is sampled every minute, so Prometheus extrapolates nothing and this is exact."""
    return float(counter[minute] - counter[max(0, minute - window)])


def recorded(metric: str, sim: Simulated, minute: int, objective: float) -> float | None:
    """The value of a delivery recording rule for the instance; None where it is absent."""
    if metric == OBJECTIVE:
        return objective
    if match := INCREASE.fullmatch(metric):
        window = window_minutes(*match.groups())
        return sum_in_label_order(increase(sim.outcomes[o], minute, window) for o in JUDGED)
    if match := RATIO.fullmatch(metric):
        kind, number, unit = match.groups()
        window = window_minutes(number, unit)
        rates = {o: increase(sim.outcomes[o], minute, window) / (window * 60) for o in JUDGED}
        judged = sum_in_label_order(rates[o] for o in JUDGED)
        return rates[NUMERATOR[kind]] / judged if judged > 0 else None
    raise ValueError(f"{metric}: not a delivery recording rule this generator can compute")


def sum_in_label_order(values: Iterator[float]) -> float:
    total = next(values)  # sum() of PromQL: the first value, then the others added in turn
    for value in values:
        total += value
    return total


# --- the alerts' annotation templates ---------------------------------------------------------

# {{ with printf "METRIC{...}" ... | query }}{{ with first . }}BODY{{ end }}{{ end }}, or the
# same with query "METRIC": the forms alerts.yml's delivery alerts use.
QUERY = re.compile(
    r'\{\{ with (?:printf "(?P<printf>[\w:]+)\{[^"]*"[^|}]*\| query|query "(?P<plain>[\w:]+)") \}\}'
    r"\{\{ with first \. \}\}(?P<body>.*?)\{\{ end \}\}\{\{ end \}\}"
)
LABEL = re.compile(r"\{\{ \$labels\.(\w+) \}\}")


def robust(format_value: Callable[[float], str]) -> Callable[[float], str]:
    """Prometheus sums the outcomes in no fixed order, so the last bits of a ratio vary from
    run to run: refuse a value whose text they could change (pick another check time)."""

    def formatted(value: float) -> str:
        text = format_value(value)
        if {format_value(value * (1 - 1e-12)), format_value(value * (1 + 1e-12))} != {text}:
            raise ValueError(f"{value!r} is too close to a rounding boundary of {text!r}")
        return text

    return formatted


@robust
def humanize_percentage(value: float) -> str:
    return f"{value * 100:.4g}%"  # Prometheus: fmt.Sprintf("%.4g%%", v*100)


@robust
def whole_number(value: float) -> str:
    return f"{value:.0f}"  # printf "%.0f"


def fill(text: str, variable: str, value: float | None) -> str:
    """Fill in the formats the delivery alerts use for `variable` ($value or .Value)."""
    forms: dict[str, Callable[[float], str]] = {
        f"{{{{ {variable} | humanizePercentage }}}}": humanize_percentage,
        f'{{{{ printf "%.0f" {variable} }}}}': whole_number,
    }
    for form, format_value in forms.items():
        if form in text:
            if value is None:
                raise ValueError(f"{form}: no value to fill in")
            text = text.replace(form, format_value(value))
    return text


def render(
    template: str,
    labels: dict[str, str],
    value: Callable[[str], float | None],
    alert_value: float | None,
) -> str:
    """Render the subset of Go templates the delivery alerts use; fail on anything else."""

    def query(match: re.Match[str]) -> str:
        found = value(match["printf"] or match["plain"])
        return "" if found is None else fill(match["body"], ".Value", found)

    text = LABEL.sub(
        lambda m: labels[m[1]], fill(QUERY.sub(query, template), "$value", alert_value)
    )
    if "{{" in text:
        raise ValueError(f"template not understood by traffic_tests.py: {text}")
    return text


@dataclass(frozen=True)
class Rules:
    severities: dict[str, str]  # alert: severity, for the alerts of severity warning or critical
    delivery: frozenset[str]  # those built on the delivery outcomes
    annotations: dict[str, dict[str, str]]
    value_of: dict[str, str]  # alert: the recording rule its $value is, where it is one
    objective: float

    @classmethod
    def load(cls, path: Path) -> Rules:
        rules = [r for g in yaml.safe_load(path.read_text())["groups"] for r in g["rules"]]
        alerts = [
            r for r in rules if "alert" in r and r["labels"]["severity"] in {"warning", "critical"}
        ]
        [objective] = [r["expr"] for r in rules if r.get("record") == OBJECTIVE]
        value_of = {}
        for alert in alerts:
            if match := re.match(r"(greenapi:[\w:]+) >", alert["expr"]):
                value_of[alert["alert"]] = match[1]
        return cls(
            severities={a["alert"]: a["labels"]["severity"] for a in alerts},
            delivery=frozenset(a["alert"] for a in alerts if "outgoing_delivery_" in a["expr"]),
            annotations={a["alert"]: a["annotations"] for a in alerts},
            value_of=value_of,
            objective=objective_of(objective),
        )


def objective_of(expr: str) -> float:
    if match := re.fullmatch(r"vector\(([0-9.]+)\)", expr.strip()):
        return float(match[1])
    raise ValueError(f"{OBJECTIVE}: expected `vector(NUMBER)`, not {expr!r}")


# --- scenarios --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Firing:
    """`alert` fires for `instance` at every check from `start` to `end` (minutes), and is
    quiet at every check up to `quiet_until` and from `quiet_from` on."""

    alert: str
    instance: str
    quiet_until: int
    start: int
    end: int
    quiet_from: int

    def settled(self, minute: int) -> bool:
        return minute <= self.quiet_until or self.fires(minute) or minute >= self.quiet_from

    def fires(self, minute: int) -> bool:
        return self.start <= minute <= self.end


@dataclass(frozen=True)
class Scenario:
    title: str
    story: str  # a comment above the test
    minutes: int
    seed: int
    instances: tuple[Instance, ...]
    firing: tuple[Firing, ...] = ()
    no_sli_at: tuple[int, ...] = ()  # minutes at which no delivery ratio may exist at all

    def check_times(self, every: int) -> list[int]:
        """Every `every` minutes, and where the scenario's firing alerts change state."""
        times = set(range(every, self.minutes + 1, every))
        for f in self.firing:
            times |= {f.quiet_until, f.start, f.end, f.quiet_from}
        return sorted(t for t in times if 0 < t <= self.minutes)


def hours(h: float) -> int:
    return round(h * 60)


def phone_off_in_hour(hour: int) -> Callable[[float], Fates]:
    """Every message is delivered but the one sent in `hour`: its recipient's phone is off."""

    def fates(sent: float) -> Fates:
        off = hour * 3600 <= sent < (hour + 1) * 3600
        return Fates(failed=0.0, undeliverable=1.0 if off else 0.0)

    return fates


def bad_list(start: int, end: int) -> Callable[[float], Fates]:
    """A campaign to a bought list between `start` and `end` (minutes): 30 % noAccount."""

    def fates(sent: float) -> Fates:
        return Fates(failed=0.30) if start * STEP <= sent < end * STEP else HEALTHY

    return fates


def no_statuses(_sent: float) -> Fates:
    return Fates(failed=0.0, undeliverable=0.0, no_status=1.0)


STALL = (hours(3), hours(4.5))
BAD_LIST = (hours(2), hours(5))

SCENARIOS = (
    Scenario(
        title="healthy bulk senders fire nothing for 9 hours",
        story="10 and 3 messages a minute; 3 % of the recipients never get theirs (phone off), "
        "1 % are numbers without an account; the 6-hour windows are full from 6h on.",
        minutes=hours(9),
        seed=1,
        instances=(
            Instance(
                "shop-bot", "1101000001", poisson_sends(10), labels={"expect_traffic": "true"}
            ),
            Instance("crm-bot", "1101000002", poisson_sends(3), labels={"expect_traffic": ""}),
        ),
    ),
    Scenario(
        title="a journal without statuses fires nothing and has no SLI",
        story='10 messages a minute for 7 hours, every one with statusMessage "" (the MAX '
        "journal's own example): every outcome is no_status, nothing is judged.",
        minutes=hours(7),
        seed=2,
        instances=(Instance("max-channel", "3100000001", poisson_sends(10), fates=no_statuses),),
        no_sli_at=(hours(1), hours(3), hours(7)),
    ),
    Scenario(
        title="deliveries that stop page within 15 minutes and warn of the ratio; both resolve",
        story="12 and 3 messages a minute, healthy; from 3h to 4h30 nothing is delivered "
        "(the phone is offline), the held messages are delivered when it is back. Outcomes are "
        "judged 5-6 minutes after the send, so the stall shows from about 3h05.",
        minutes=hours(7),
        seed=3,
        instances=(
            Instance("stuck-bot", "1101000004", poisson_sends(12), stalls=(STALL,)),
            Instance("slow-bot", "1101000006", poisson_sends(3), stalls=(STALL,)),
        ),
        firing=tuple(
            f
            for name in ("stuck-bot", "slow-bot")
            for f in (
                # not before the stall, nor while its first late outcomes trickle in; within
                # 15 minutes of its start; resolved 20 minutes after deliveries resume
                Firing(
                    "GreenApiDeliveryStalled",
                    name,
                    quiet_until=STALL[0] + 5,
                    start=STALL[0] + 15,
                    end=STALL[1],
                    quiet_from=STALL[1] + 20,
                ),
                # the ratio warns too, within the hour, and resolves within the hour after
                Firing(
                    "GreenApiDeliveryRatioLow",
                    name,
                    quiet_until=STALL[0],
                    start=STALL[0] + 45,
                    end=STALL[1],
                    quiet_from=STALL[1] + 60,
                ),
            )
        ),
    ),
    Scenario(
        title="a quiet instance with one late message fires nothing",
        story="one message an hour for 8 hours; the recipient of the one sent in the fifth "
        "hour has the phone off: that message stays sent.",
        minutes=hours(8),
        seed=4,
        instances=(Instance("quiet-bot", "1101000010", hourly_sends, fates=phone_off_in_hour(4)),),
    ),
    Scenario(
        title="30 % noAccount warns of failed sends and does not page",
        story="10 messages a minute, healthy, but from 2h to 5h a campaign to a bought list: "
        "30 % of the numbers have no WhatsApp account. The in-time ratio (67 %) warns as well.",
        minutes=hours(6.5),
        seed=5,
        instances=(
            Instance(
                "promo-bot",
                "1101000011",
                poisson_sends(10),
                fates=bad_list(*BAD_LIST),
                labels={"team": "marketing"},
            ),
        ),
        firing=(
            Firing(
                "GreenApiFailedSendsHigh",
                "promo-bot",
                quiet_until=BAD_LIST[0],
                start=BAD_LIST[0] + 45,
                end=BAD_LIST[1],
                quiet_from=BAD_LIST[1] + 30,
            ),
            Firing(
                "GreenApiDeliveryRatioLow",
                "promo-bot",
                quiet_until=BAD_LIST[0],
                start=BAD_LIST[0] + 105,
                end=BAD_LIST[1],
                quiet_from=BAD_LIST[1] + 60,
            ),
        ),
    ),
)


# --- the promtool test file -------------------------------------------------------------------


def duration(minutes: int) -> str:
    h, m = divmod(minutes, 60)
    return (f"{h}h" if h else "") + (f"{m}m" if m or not h else "")


def compact(values: Sequence[int | None]) -> str:
    """promtool's value list: a run of 4 or more values at one step as 'a+bxn' (a, then n
    more values), a missing value ('_': no message seen yet) as itself."""
    tokens, i = [], 0
    while i < len(values):
        value = values[i]
        run, step = steady_run(values, i)
        if value is not None and run >= 3:
            tokens.append(f"{value}x{run}" if step == 0 else f"{value}{step:+d}x{run}")
            i += run + 1
        else:
            tokens.append("_" if value is None else str(value))
            i += 1
    return " ".join(tokens)


def steady_run(values: Sequence[int | None], start: int) -> tuple[int, int]:
    """(n, step): values[start + 1 : start + n + 1] continue from values[start] at `step`."""
    first = values[start]
    second = values[start + 1] if start + 1 < len(values) else None
    if first is None or second is None:
        return 0, 0
    step, run = second - first, 1
    while start + run + 1 < len(values) and values[start + run + 1] == first + (run + 1) * step:
        run += 1
    return run, step


def selector(metric: str, labels: dict[str, str]) -> str:
    return metric + "{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}"


def input_series(sims: Sequence[Simulated], minutes: int) -> Iterator[tuple[str, str]]:
    yield selector("up", {"job": JOB, "instance": EXPORTER}), f"1x{minutes}"
    for sim in sims:
        labels = sim.instance.series_labels()
        yield selector("greenapi_up", labels), f"1x{minutes}"
        yield (
            selector(
                "greenapi_polls_total", {**labels, "collector": "outgoing", "result": "success"}
            ),
            compact(sim.polls),
        )
        yield selector("greenapi_outgoing_window_truncated", labels), f"0x{minutes}"
        yield (
            selector(
                "greenapi_outgoing_messages_total",
                {**labels, "message_type": "textMessage", "send_by_api": "true"},
            ),
            compact(sim.messages),
        )
        yield (
            selector("greenapi_outgoing_last_message_timestamp_seconds", labels),
            compact(sim.last_message),
        )
        for outcome in OUTCOMES:
            yield (
                selector(
                    "greenapi_outgoing_delivery_outcomes_total", {**labels, "outcome": outcome}
                ),
                compact(sim.outcomes[outcome]),
            )
        yield (
            selector("greenapi_instance_state", {**labels, "state": "authorized"}),
            f"1x{minutes}",
        )
        yield selector("greenapi_send_queue_messages", labels), compact(sim.send_queue)


def expected_alert(rules: Rules, alert: str, sim: Simulated, minute: int) -> dict[str, Any]:
    labels = sim.instance.series_labels()

    def value(metric: str) -> float | None:
        return recorded(metric, sim, minute, rules.objective)

    metric = rules.value_of.get(alert)
    alert_value = value(metric) if metric else None
    return {
        "exp_labels": {"severity": rules.severities[alert], **labels},
        "exp_annotations": {
            key: render(text, labels, value, alert_value)
            for key, text in rules.annotations[alert].items()
        },
    }


def alert_checks(scenario: Scenario, sims: dict[str, Simulated], rules: Rules) -> Iterator[str]:
    delivery = set(scenario.check_times(CHECK_DELIVERY_EVERY))
    others = set(scenario.check_times(CHECK_OTHERS_EVERY))
    for minute in sorted(delivery | others):
        for alert in sorted(rules.severities):
            if minute not in (delivery if alert in rules.delivery else others):
                continue
            firings = [f for f in scenario.firing if f.alert == alert]
            if not all(f.settled(minute) for f in firings):
                continue
            expected = [
                expected_alert(rules, alert, sims[f.instance], minute)
                for f in firings
                if f.fires(minute)
            ]
            head = f"      - {{eval_time: {duration(minute)}, alertname: {alert}, exp_alerts: "
            if not expected:
                yield head + "[]}"
                continue
            yield f"      - eval_time: {duration(minute)}"
            yield f"        alertname: {alert}"
            yield "        exp_alerts:"
            for item in expected:
                yield f"          - exp_labels: {flow(item['exp_labels'])}"
                yield "            exp_annotations:"
                for key, text in item["exp_annotations"].items():
                    yield f"              {key}: {json.dumps(text, ensure_ascii=False)}"


def flow(mapping: dict[str, str]) -> str:
    """A YAML flow mapping; JSON strings are valid YAML scalars."""
    return "{" + ", ".join(f"{k}: {json.dumps(v)}" for k, v in mapping.items()) + "}"


def scenario_lines(scenario: Scenario, rules: Rules) -> Iterator[str]:
    rng = random.Random(scenario.seed)
    sims = {i.name: simulate(i, scenario.minutes, rng) for i in scenario.instances}
    yield from textwrap.wrap(scenario.story, 96, initial_indent="  # ", subsequent_indent="  # ")
    yield f"  - name: {json.dumps(scenario.title)}"
    yield "    interval: 1m"
    yield "    input_series:"
    for series, values in input_series(list(sims.values()), scenario.minutes):
        yield f"      - series: '{series}'"
        yield f"        values: '{values}'"
    yield "    alert_rule_test:"
    yield from alert_checks(scenario, sims, rules)
    if scenario.no_sli_at:
        yield "    promql_expr_test:"
        for minute in scenario.no_sli_at:
            yield """      - expr: '{__name__=~"greenapi:outgoing_delivery_(sli|late|failed):ratio_rate.+"}'"""
            yield f"        eval_time: {duration(minute)}"
            yield "        exp_samples: []"


HEADER = """\
# Generated by prometheus/traffic_tests.py from prometheus/alerts.yml: edit those, not this.
#
#   python prometheus/traffic_tests.py        # regenerate
#   promtool test rules prometheus/alerts.traffic.test.yml
#
# The delivery alerts on hours of simulated, noisy traffic (seeded: the same file every time).
# Every alert of severity warning or critical is checked, those built on the delivery outcomes
# every 15 minutes, the others every hour: quiet, or firing where the scenario says it must.
rule_files:
  - alerts.yml
evaluation_interval: 1m
# the recording rules first at each step (else promtool picks an order at random)
group_eval_order:
  - greenapi-recording
  - greenapi-delivery-sli
  - greenapi

tests:
"""


def render_file(rules: Rules) -> str:
    lines = [line for scenario in SCENARIOS for line in [*scenario_lines(scenario, rules), ""]]
    return HEADER + "\n".join(lines)


def main(argv: list[str]) -> int:
    text = render_file(Rules.load(RULES))
    if "--check" in argv:
        if not TARGET.exists() or TARGET.read_text() != text:
            print(
                "alerts.traffic.test.yml is out of date: python prometheus/traffic_tests.py",
                file=sys.stderr,
            )
            return 1
        return 0
    TARGET.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
