"""The status page (``GET /``) and the running configuration (``GET /config``), as HTML.

Both are built on the server from snapshots: no JavaScript, no external asset (the CSS is
inline, sparklines and bars are inline SVG), so they work air-gapped and in any browser. The
status page reloads itself every :data:`REFRESH_SECONDS` seconds.

**One row per instance, worst first** (:data:`RANKS`): the journal's poll failing, deliveries
stalled, the instance not authorized, the delivery SLI below :data:`OBJECTIVE`, another
problem (a failing collector, a truncated window), waiting for a first poll, then the healthy
ones; by name within each rank. Each row shows the delivery SLI over the recent span and its
sparkline, the window's messages by status as a stacked bar, the undelivered messages and the
oldest one's age, the delivery and read lags (p50 and p95), each optional collector's value,
the last poll as a relative time, and each failure as a short hint of what to do
(:func:`error_hint`), the redacted error itself in the hint's tooltip.

**The recent span.** The tracker's outcome counters cover the process's lifetime; what an
operator wants is the last minutes, as the alerts compute them with ``increase()``. The page
therefore keeps, in the server process, a small ring of the counters it has seen per instance
(:class:`DeliveryHistory`: at most :data:`HISTORY_SAMPLES` samples at least
:data:`HISTORY_SPACING` seconds apart, about 2 KiB an instance) and differences them: the SLI
over the last :data:`SLI_SPAN` seconds, "stalled" over the last :data:`STALL_SPAN` seconds with
the rule of the GreenApiDeliveryStalled alert. The ring is fed each time the page is rendered,
so it fills while the page is open (it reloads itself); until it holds two polls the page
shows the share since the start, labelled so, and judges no stall.

**Never a token.** Every error text goes through the server's ``scrub`` before it is shown,
and so does every configuration value on ``/config``; all text is HTML-escaped.

Everything but :class:`DeliveryHistory` is a pure function of its arguments (the time
included), so the tests render fixed snapshots.
"""

from __future__ import annotations

import html
import itertools
import math
import re
import threading
import time
from array import array
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from exporter.collector import ExporterSnapshot
from exporter.collectors import BY_NAME, OUTGOING, CollectorStatus, Reading
from exporter.config import LABELS, SETTINGS, TOP_LEVEL, Config, Setting, Settings
from exporter.poller import InstanceSnapshot
from exporter.tracker import (
    FAILURE_STATUSES,
    LAG_BUCKETS,
    Histogram,
    IncomingSnapshot,
    TrackerSnapshot,
    WindowStats,
)

Scrub = Callable[[str], str]
"""Replaces every known token in a text (the server's ``Secrets.scrub``)."""

REFRESH_SECONDS = 15
# The delivery objective of the alert rules' default (greenapi:outgoing_delivery_sli:objective).
OBJECTIVE = 0.95
SLI_SPAN = 15 * 60.0  # seconds of history behind the SLI column
STALL_SPAN = 10 * 60.0  # GreenApiDeliveryStalled's window
MIN_JUDGED = 10  # fewer judged messages say nothing about a ratio (the alert's minimum too)
STALLED_LATE_SHARE = 0.5  # more than this share of the judged messages late: stalled
SPARK_FLOOR = 0.5  # the sparkline's bottom: every share at or below it looks the same
HISTORY_SPACING = 15.0  # seconds between two kept samples (the newest excepted)
HISTORY_SAMPLES = int(SLI_SPAN // HISTORY_SPACING) + 1  # enough to cover SLI_SPAN
_ERROR_HINT_LENGTH = 80
_DASH = "\u2013"  # an en dash: no value
_OBJECTIVE = f"{OBJECTIVE * 100:g} %"

# The ranks of an instance, worst first: the page's order and its counts.
RANKS = (
    "down",
    "stalled",
    "not authorized",
    "below objective",
    "degraded",
    "waiting",
    "healthy",
)
_RANK = {name: index for index, name in enumerate(RANKS)}


# --- the recent span -------------------------------------------------------------------------


@dataclass(frozen=True)
class OutcomeSample:
    """An instance's delivery outcome counters as of one successful poll of its journal."""

    at: float  # UNIX time when that poll ended
    in_time: int
    late: int
    failed: int

    @property
    def judged(self) -> int:
        """The SLI's denominator: ``no_status`` is in neither part."""
        return self.in_time + self.late + self.failed


@dataclass(frozen=True)
class RecentOutcomes:
    """Outcomes judged between two samples: ``span`` seconds before the newest one."""

    span: float
    in_time: int
    late: int
    failed: int

    @property
    def judged(self) -> int:
        return self.in_time + self.late + self.failed

    @property
    def in_time_share(self) -> float | None:
        return self.in_time / self.judged if self.judged else None

    @property
    def late_share(self) -> float | None:
        return self.late / self.judged if self.judged else None


class DeliveryHistory:
    """The outcome counters of each instance's last polls, as the status page saw them.

    Bounded: per instance at most ``capacity`` samples, kept at least ``spacing`` seconds
    apart (a newer sample replaces the newest one until it is ``spacing`` after the one
    before), packed in one array of floats. Instances no longer configured are dropped at
    the next :meth:`record`. Counters that went down (a poller replaced by a reload) start
    the instance's ring afresh. Thread-safe: pages are rendered by concurrent requests.
    """

    _WIDTH = 4  # at, in_time, late, failed

    def __init__(self, spacing: float = HISTORY_SPACING, capacity: int = HISTORY_SAMPLES) -> None:
        self._spacing = spacing
        self._capacity = max(capacity, 2)
        self._lock = threading.Lock()
        self._rings: dict[tuple[str, str], array[float]] = {}

    def record(self, snapshot: ExporterSnapshot) -> None:
        """Add every instance's counters as of its latest successful journal poll."""
        with self._lock:
            keys = {(i.name, i.id_instance) for i in snapshot.instances}
            for key in set(self._rings) - keys:
                del self._rings[key]
            for instance in snapshot.instances:
                sample = latest_outcomes(instance)
                if sample is not None:
                    ring = self._rings.setdefault((instance.name, instance.id_instance), array("d"))
                    self._add(ring, sample)

    def record_instance(self, instance: InstanceSnapshot) -> None:
        """Add one instance's counters, right after its poll (so the page has a history
        from its first view on)."""
        sample = latest_outcomes(instance)
        if sample is None:
            return
        with self._lock:
            ring = self._rings.setdefault((instance.name, instance.id_instance), array("d"))
            self._add(ring, sample)

    def samples(self, instance: InstanceSnapshot) -> tuple[OutcomeSample, ...]:
        """The kept samples of ``instance``, oldest first."""
        with self._lock:
            ring = self._rings.get((instance.name, instance.id_instance))
            values = tuple(ring) if ring is not None else ()
        width = self._WIDTH
        return tuple(
            OutcomeSample(values[i], int(values[i + 1]), int(values[i + 2]), int(values[i + 3]))
            for i in range(0, len(values), width)
        )

    def _add(self, ring: array[float], sample: OutcomeSample) -> None:
        width = self._WIDTH
        count = len(ring) // width
        if count:
            newest = ring[-width:]
            if sample.at <= newest[0]:
                return  # the same poll as last time
            counters = (sample.in_time, sample.late, sample.failed)
            if any(now < then for now, then in zip(counters, newest[1:], strict=True)):
                del ring[:]  # counters reset: what was kept is of another tracker
                count = 0
        values = (sample.at, float(sample.in_time), float(sample.late), float(sample.failed))
        if count >= 2 and ring[-width] - ring[-2 * width] < self._spacing:
            ring[-width:] = array("d", values)
            return
        ring.extend(values)
        if count + 1 > self._capacity:
            del ring[:width]


def latest_outcomes(instance: InstanceSnapshot) -> OutcomeSample | None:
    """The instance's outcome counters as of its latest successful journal poll."""
    reading = instance.reading(OUTGOING.name)
    tracker = reading.value
    status = reading.status
    if not isinstance(tracker, TrackerSnapshot) or status is None:
        return None
    if status.last_success_timestamp is None:
        return None
    outcomes = tracker.outcomes
    return OutcomeSample(
        status.last_success_timestamp,
        outcomes.get("in_time", 0),
        outcomes.get("late", 0),
        outcomes.get("failed", 0),
    )


def recent_outcomes(samples: Sequence[OutcomeSample], span: float) -> RecentOutcomes | None:
    """What was judged over (at most) the last ``span`` seconds before the newest sample.

    The baseline is the oldest sample within ``span`` of the newest, or the one just before
    the newest when none is: like ``increase()``, without its extrapolation. None with fewer
    than two samples.
    """
    if len(samples) < 2:
        return None
    newest = samples[-1]
    earlier = samples[:-1]
    within = [s for s in earlier if s.at >= newest.at - span]
    base = within[0] if within else earlier[-1]
    return RecentOutcomes(
        span=newest.at - base.at,
        in_time=newest.in_time - base.in_time,
        late=newest.late - base.late,
        failed=newest.failed - base.failed,
    )


def share_points(samples: Sequence[OutcomeSample]) -> list[tuple[float, float | None]]:
    """The in-time share judged between each two consecutive samples, at the later one's
    time (None where nothing was judged): the sparkline."""
    points: list[tuple[float, float | None]] = []
    for before, after in itertools.pairwise(samples):
        judged = after.judged - before.judged
        in_time = after.in_time - before.in_time
        points.append((after.at, in_time / judged if judged > 0 else None))
    return points


# --- lags ------------------------------------------------------------------------------------


def lag_quantile(histogram: Histogram, q: float) -> float | None:
    """The ``q`` quantile of a lag histogram, estimated as PromQL's histogram_quantile does.

    The rank ``q * count`` is located in the cumulative buckets and interpolated linearly
    within its bucket (the first bucket starts at 0). A rank beyond the last finite bound
    gives that bound (the caller shows it as "more than"). None when nothing was observed.
    """
    count = histogram.count
    if count <= 0:
        return None
    rank = q * count
    lower_bound, lower_count = 0.0, 0
    for bound, cumulative in zip(LAG_BUCKETS, histogram.buckets, strict=True):
        if cumulative >= rank:
            if cumulative == lower_count:
                return float(bound)
            fraction = (rank - lower_count) / (cumulative - lower_count)
            return lower_bound + (bound - lower_bound) * fraction
        lower_bound, lower_count = float(bound), cumulative
    return float(LAG_BUCKETS[-1])


def _lag_text(histogram: Histogram, q: float) -> str:
    value = lag_quantile(histogram, q)
    if value is None:
        return _DASH
    if histogram.buckets[-1] < q * histogram.count:
        return f"> {duration_text(LAG_BUCKETS[-1])}"
    return duration_text(value)


# --- errors as hints -------------------------------------------------------------------------

_HOST_PORT = re.compile(r"host='([^']+)', port=(\d+)")
_WITHIN = re.compile(r"within (\d+(?:\.\d+)?)s")
_STATUS_CODE = re.compile(r"\b([1-5]\d\d)\b")
_FIXED_HINTS = {
    "http_400": "400: instance starting or not authorized, or a bad request",
    "http_401": "401: wrong apiTokenInstance",
    "http_403": "403: wrong idInstance or suspended",
    "http_429": "429: rate limited",
    "http_466": "466: monthly quota spent — poll less often",
}


def error_hint(status: CollectorStatus) -> str:
    """A failed request in a few words that say what to look at, e.g. ``401: wrong
    apiTokenInstance`` or ``connection refused to 127.0.0.1:8080``. ``status.error`` must
    already be redacted."""
    result, error = status.result, status.error
    if result in _FIXED_HINTS:
        return _FIXED_HINTS[result]
    if result == "timeout":
        within = _WITHIN.search(error)
        return f"timeout after {within.group(1)}s" if within else "timeout"
    if result == "connection_error":
        return _connection_hint(error)
    if result in ("http_4xx", "http_5xx"):
        code = _STATUS_CODE.search(error)
        number = code.group(1) if code else result[-3:]
        if result == "http_5xx":
            return f"{number}: GREEN-API server error — retried at the next poll"
        if number == "404":
            return "404: not found — check api_url"
        return f"{number}: refused by GREEN-API"
    if result == "invalid_response":
        return _shorten(f"invalid answer: {error or 'not a usable answer'}")
    return _shorten(f"{result}: {error}" if error else result)


def _hint(status: CollectorStatus, scrub: Scrub) -> str:
    return error_hint(replace(status, error=scrub(status.error)))


def _connection_hint(error: str) -> str:
    match = _HOST_PORT.search(error)
    where = f"{match.group(1)}:{match.group(2)}" if match else ""
    to = f" to {where}" if where else ""
    lowered = error.lower()
    if "refused" in lowered:
        return f"connection refused{to}"
    if "resolve" in lowered or "name or service not known" in lowered:
        host = match.group(1) if match else "the host"
        return f"cannot resolve {host} — check api_url"
    if "reset" in lowered:
        return f"connection reset{' by ' + where if where else ''}"
    if "ssl" in lowered or "certificate" in lowered:
        return f"TLS failed{' with ' + where if where else ''}"
    if "unreachable" in lowered:
        return f"network unreachable{to}"
    if "remotedisconnected" in lowered or "closed" in lowered or "aborted" in lowered:
        return f"connection closed{' by ' + where if where else ''}"
    return f"connection failed{to}"


def _shorten(text: str, limit: int = _ERROR_HINT_LENGTH) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- words for numbers and times -------------------------------------------------------------


def duration_text(seconds: float) -> str:
    """A duration as precise as a glance needs: ``0.4 s``, ``12 s``, ``4 min 10 s``,
    ``56 min``, ``3 h 5 min``, ``2 d 3 h``."""
    if not math.isfinite(seconds):
        return _DASH
    seconds = max(seconds, 0.0)
    if seconds < 10:
        return f"{seconds:.1f} s".replace(".0 s", " s")
    whole = round(seconds)
    if whole < 60:
        return f"{whole} s"
    if whole < 600:
        minutes, rest = divmod(whole, 60)
        return f"{minutes} min" + (f" {rest} s" if rest else "")
    if whole < 3600:
        return f"{whole // 60} min"
    big, small, unit, small_unit = (
        (whole // 3600, whole % 3600 // 60, "h", "min")
        if whole < 86400
        else (whole // 86400, whole % 86400 // 3600, "d", "h")
    )
    return f"{big} {unit}" + (f" {small} {small_unit}" if small else "")


def ago_text(timestamp: float, now: float) -> str:
    """``12 s ago``, ``4 min ago``, ``3 h ago``; ``just now`` for a time at or after now."""
    age = now - timestamp
    if age < 1:
        return "just now"
    if age < 60:
        return f"{age:.0f} s ago"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if age >= size:
            return f"{int(age // size)} {unit} ago"
    return "just now"  # pragma: no cover - unreachable


def utc_text(timestamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(timestamp))


def _percent(share: float) -> str:
    if share >= 1:
        return "100 %"
    return f"{math.floor(share * 1000) / 10:.1f} %"  # never rounds a miss up to 100 %


# --- what the page says about an instance ----------------------------------------------------


@dataclass(frozen=True)
class Badge:
    text: str
    kind: str  # its CSS class: down, stalled, unauthorized, warn, info, ok
    title: str


@dataclass(frozen=True)
class Verdict:
    """What the page concludes about one instance."""

    rank: str  # one of RANKS
    badges: tuple[Badge, ...]
    recent: RecentOutcomes | None  # over SLI_SPAN; None until two polls were recorded
    stall: RecentOutcomes | None  # over STALL_SPAN

    @property
    def order(self) -> int:
        return _RANK[self.rank]


Finding = tuple[str | None, Badge]
"""A rank an instance has (None: a note that ranks nothing) and the badge that says why."""


def assess(instance: InstanceSnapshot, samples: Sequence[OutcomeSample], scrub: Scrub) -> Verdict:
    """The instance's rank and badges, from its snapshot and its recorded samples."""
    recent = recent_outcomes(samples, SLI_SPAN)
    stall = recent_outcomes(samples, STALL_SPAN)
    readings = {name: instance.reading(name) for name in instance.collect}
    findings = [
        *_polls(readings, scrub),
        *_deliveries(recent, stall),
        *_authorization(readings.get("state")),
        *_journal(_window(instance)),
    ]
    ranks = [rank for rank, _ in findings if rank is not None]
    badges = [badge for _, badge in findings]
    if not ranks:
        ranks.append("healthy")
        badges.insert(0, Badge("ok", "ok", "every collector answered; deliveries on time"))
    return Verdict(min(ranks, key=_RANK.__getitem__), tuple(badges), recent, stall)


def _polls(readings: Mapping[str, Reading], scrub: Scrub) -> list[Finding]:
    """Down when the journal's last poll failed (or every collector's, without a journal);
    degraded when another collector's did; waiting for a first request."""
    statuses = [r.status for r in readings.values()]
    journal = readings.get(OUTGOING.name)
    all_failed = bool(statuses) and all(s is not None and not s.up for s in statuses)
    failing = journal.status if journal is not None else (statuses[0] if all_failed else None)
    findings: list[Finding] = []
    if failing is not None and not failing.up:
        hint = _hint(failing, scrub)
        findings.append(("down", Badge("down", "down", f"the last poll failed: {hint}")))
    for name, reading in readings.items():
        status = reading.status
        if status is not None and not status.up and name != OUTGOING.name and not all_failed:
            findings.append(("degraded", Badge(f"{name} failing", "warn", _hint(status, scrub))))
    if any(s is None for s in statuses):
        findings.append(("waiting", Badge("waiting", "info", "a first request is still to finish")))
    return findings


def _deliveries(recent: RecentOutcomes | None, stall: RecentOutcomes | None) -> list[Finding]:
    """Stalled, as GreenApiDeliveryStalled; else below the objective, on enough messages."""
    if stall is not None and _stalled(stall):
        why = (
            f"{stall.late} of {stall.judged} messages judged in the last "
            f"{duration_text(stall.span)} were late"
        )
        return [("stalled", Badge("stalled", "stalled", why))]
    if recent is not None and surely_below(recent.in_time, recent.judged, OBJECTIVE):
        why = (
            f"{recent.in_time} of {recent.judged} judged in the last "
            f"{duration_text(recent.span)} in time: under the objective of {_OBJECTIVE} "
            "by more than chance"
        )
        return [("below objective", Badge(f"below {_OBJECTIVE}", "warn", why))]
    return []


def surely_below(in_time: int, judged: int, objective: float) -> bool:
    """True when ``in_time`` of ``judged`` is under ``objective`` by more than chance: even
    the top of the share's 95 % confidence interval (Wilson's score interval) is below it.

    A handful of messages with one late (a recipient's phone off) is not an instance below
    its objective, and must not move it up the page at every reload; a hundred at 80 % is.
    """
    if judged < MIN_JUDGED:
        return False
    z = 1.96
    share = in_time / judged
    centre = share + z * z / (2 * judged)
    margin = z * math.sqrt(share * (1 - share) / judged + z * z / (4 * judged * judged))
    return (centre + margin) / (1 + z * z / judged) < objective


def _authorization(state: Reading | None) -> list[Finding]:
    """Any known state but ``authorized`` keeps the instance from sending."""
    if state is None or not isinstance(state.value, str) or state.value == "authorized":
        return []
    why = f"getStateInstance says {state.value}: the instance cannot send"
    return [("not authorized", Badge(state.value, "unauthorized", why))]


def _journal(window: WindowStats | None) -> list[Finding]:
    """A truncated window (messages may be missing); a journal with no statuses (a note)."""
    findings: list[Finding] = []
    if window is not None and window.truncated:
        why = "the answer reached max_messages: older messages of the window may be missing"
        findings.append(("degraded", Badge("truncated", "warn", why)))
    if window is not None and window.messages and not _has_statuses(window.by_status_type):
        why = "the journal carries no status: there is nothing to judge, no SLI"
        findings.append((None, Badge("no statuses", "info", why)))
    return findings


def _stalled(stall: RecentOutcomes) -> bool:
    """GreenApiDeliveryStalled's rule: over half of at least MIN_JUDGED judged were late."""
    return stall.judged >= MIN_JUDGED and (stall.late_share or 0.0) > STALLED_LATE_SHARE


def _has_statuses(by_status_type: Mapping[tuple[str, str], int]) -> bool:
    return any(count and status not in ("unknown", "other") for (status, _), count in
               by_status_type.items())  # fmt: skip


def _tracker(instance: InstanceSnapshot) -> TrackerSnapshot | None:
    value = instance.reading(OUTGOING.name).value
    return value if isinstance(value, TrackerSnapshot) else None


def _window(instance: InstanceSnapshot) -> WindowStats | None:
    tracker = _tracker(instance)
    return tracker.window if tracker is not None else None


# --- the status page -------------------------------------------------------------------------

# The window's statuses in the bar, in this order: (CSS class, label, statuses).
_STATUS_GROUPS: tuple[tuple[str, str, frozenset[str]], ...] = (
    ("s-read", "read", frozenset({"read"})),
    ("s-delivered", "delivered", frozenset({"delivered"})),
    ("s-sent", "sent", frozenset({"sent"})),
    ("s-pending", "pending", frozenset({"pending"})),
    ("s-failed", "failed", FAILURE_STATUSES),
    ("s-unknown", "no status", frozenset({"unknown", "other"})),
)


_OPTIONAL_TITLES = {
    "state": "getStateInstance: authorized, or what keeps the instance from sending",
    "queue": "getMessagesCount: messages waiting in the send queue",
    "incoming": "lastIncomingMessages: messages received in the window",
}


def status_page(
    snapshot: ExporterSnapshot,
    history: Callable[[InstanceSnapshot], Sequence[OutcomeSample]],
    *,
    now: float,
    telemetry_path: str,
    scrub: Scrub,
) -> str:
    """The HTML of ``GET /``: every instance of ``snapshot``, worst first.

    ``history`` gives an instance's recorded outcome samples (:meth:`DeliveryHistory.samples`),
    ``now`` is the UNIX time the relative times are measured from, ``scrub`` redacts tokens.
    """
    rows = []
    for instance in snapshot.instances:
        samples = history(instance)
        rows.append((assess(instance, samples, scrub), instance, samples))
    rows.sort(key=lambda row: (row[0].order, row[1].name))
    optional = [
        name
        for name in BY_NAME
        if name != OUTGOING.name and any(name in i.collect for i in snapshot.instances)
    ]
    headers = [
        ("Instance", "name and idInstance (a link to its series)"),
        ("Status", "worst first: down, stalled, not authorized, below objective, other problems"),
        ("Problems", "the last failure of each collector, as a hint; the error in its tooltip"),
        ("Last poll", "the latest request of any collector"),
        ("In time", f"delivery SLI: share of the messages judged in the last "
                    f"{duration_text(SLI_SPAN)} that were delivered within undelivered_after"),
        ("Window", "messages in the journal window by status, as last polled"),
        ("Undelivered", "sent or pending for longer than undelivered_after; the oldest one's age"),
        ("Delivery lag", "p50 / p95 since start, from the lag histogram"),
        ("Read lag", "p50 / p95 since start, from the lag histogram"),
        *((name.capitalize(), _OPTIONAL_TITLES.get(name, f"the {name} collector"))
          for name in optional),
    ]  # fmt: skip
    head = "".join(f'<th title="{_attr(title)}">{_text(label)}</th>' for label, title in headers)
    body = "\n".join(
        _row(verdict, instance, samples, optional, now, scrub)
        for verdict, instance, samples in rows
    )
    counts = _counts(verdict for verdict, _, _ in rows)
    problems = [f"{n} {rank}" for rank, n in counts.items() if n and rank not in ("healthy",)]
    title = "GREEN-API Exporter" + (": " + ", ".join(problems) if problems else "")
    reload_banner = (
        ""
        if snapshot.reload_successful
        else '<p class="banner">The last configuration reload was refused: the running '
        "configuration stays (see the log, or POST /-/reload for the reason).</p>\n"
    )
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="refresh" content="{REFRESH_SECONDS}">
<title>{_text(title)}</title>
<link rel="icon" href="data:,">
<style>{_CSS}</style>
</head>
<body>
<header>
<h1>GREEN-API Exporter <span class="muted">{_text(snapshot.version)}</span></h1>
{_nav(telemetry_path)}
</header>
<main>
{_summary_line(counts, snapshot.instances)}
{reload_banner}<p class="help"><b>How to read this.</b> Worst first. <b>In time</b>: the share
of the messages judged in the last {duration_text(SLI_SPAN)} that were delivered within
undelivered_after (objective {_OBJECTIVE}); until this page has seen two polls (it reloads
every {REFRESH_SECONDS} s), since start; <b>below {_OBJECTIVE}</b> when under it by more than
chance. <b>Stalled</b>: over half of at least {MIN_JUDGED} judged in the last
{duration_text(STALL_SPAN)} late, as GreenApiDeliveryStalled.
<b>Window</b>: {_legend()}. <b>Lags</b>: p50 / p95 since start. Hover for details.</p>
<div class="scroll">
<table class="status">
<thead><tr>{head}</tr></thead>
<tbody>
{body}
</tbody>
</table>
</div>
</main>
<footer class="muted">Rendered {_text(utc_text(now))}; reloads every {REFRESH_SECONDS} s.</footer>
</body>
</html>
"""


def _nav(telemetry_path: str) -> str:
    links = [
        (telemetry_path, "Metrics"),
        ("/config", "Configuration"),
        ("/-/healthy", "Health"),
        ("/-/ready", "Readiness"),
    ]
    anchors = (f'<a href="{_attr(href)}">{_text(text)}</a>' for href, text in links)
    return "<nav>" + " · ".join(anchors) + "</nav>"


def _counts(verdicts: Iterable[Verdict]) -> dict[str, int]:
    """Instances down and healthy (by rank), stalled and not authorized (by badge: a stalled
    instance may be down as well)."""
    counts = dict.fromkeys(RANKS, 0)
    for verdict in verdicts:
        for badge in verdict.badges:
            if badge.kind == "stalled":
                counts["stalled"] += 1
            if badge.kind == "unauthorized":
                counts["not authorized"] += 1
        if verdict.rank in ("down", "healthy"):
            counts[verdict.rank] += 1
    return counts


def _summary_line(counts: Mapping[str, int], instances: Sequence[InstanceSnapshot]) -> str:
    up = sum(1 for i in instances if (s := i.reading(OUTGOING.name).status) is not None and s.up)
    parts = [f"{len(instances)} instance{'s' if len(instances) != 1 else ''}", f"{up} up"]
    kinds = {"down": "down", "stalled": "stalled", "not authorized": "unauthorized"}
    for rank, kind in kinds.items():
        if counts[rank]:
            parts.append(f'<span class="badge {kind}">{counts[rank]} {_text(rank)}</span>')
        else:
            parts.append(f"0 {_text(rank)}")
    return '<p class="counts">' + " · ".join(parts) + "</p>"


def _legend() -> str:
    return ", ".join(
        f'<span class="swatch {css}"></span>{_text(label)}' for css, label, _ in _STATUS_GROUPS
    )


def _row(
    verdict: Verdict,
    instance: InstanceSnapshot,
    samples: Sequence[OutcomeSample],
    optional: Sequence[str],
    now: float,
    scrub: Scrub,
) -> str:
    tracker = _tracker(instance)
    journal = instance.reading(OUTGOING.name)
    collected = OUTGOING.name in instance.collect
    stale = ' class="stale"' if journal.status is not None and not journal.status.up else ""
    cells = [
        f'<td class="name"><b>{_text(instance.name)}</b> '
        f'<a class="muted" href="{_attr("/probe?target=" + instance.name)}" '
        f'title="this instance\'s series (/probe)">{_text(instance.id_instance)}</a></td>',
        '<td class="badges">' + " ".join(_badge(b) for b in verdict.badges) + "</td>",
        _problems_cell(instance, scrub),
        _last_poll_cell(instance, now),
        _sli_cell(verdict, journal, samples) if collected else _not_collected(),
        f"<td{stale}>{_window_cell(tracker)}</td>" if collected else _not_collected(),
        f"<td{stale}>{_undelivered_cell(tracker, now)}</td>" if collected else _not_collected(),
        _lag_cell(tracker, "delivery_lag") if collected else _not_collected(),
        _lag_cell(tracker, "read_lag") if collected else _not_collected(),
        *(_optional_cell(instance, name) for name in optional),
    ]
    return (
        f'<tr id="{_attr("instance-" + instance.name)}" class="rank-{verdict.order}" '
        f'data-name="{_attr(instance.name)}" data-rank="{_attr(verdict.rank)}">'
        + "".join(cells)
        + "</tr>"
    )


def _badge(badge: Badge) -> str:
    return (
        f'<span class="badge {badge.kind}" title="{_attr(badge.title)}">{_text(badge.text)}</span>'
    )


def _not_collected() -> str:
    return '<td class="muted" title="not collected">&ndash;</td>'


def _sli_cell(verdict: Verdict, journal: Reading, samples: Sequence[OutcomeSample]) -> str:
    recent = verdict.recent
    tracker = journal.value if isinstance(journal.value, TrackerSnapshot) else None
    status = journal.status
    if status is None or status.last_success_timestamp is None:
        return '<td class="muted" title="no successful poll yet">&ndash;</td>'
    if recent is not None:
        in_time, late, failed, span = recent.in_time, recent.late, recent.failed, recent.span
        where = f"in the last {duration_text(span)}"
        label = ""
    elif tracker is not None:
        outcomes = tracker.outcomes
        in_time, late, failed = (outcomes.get(k, 0) for k in ("in_time", "late", "failed"))
        where, label = "since start", ' <span class="muted">since start</span>'
    else:
        return '<td class="muted" title="no successful poll yet">&ndash;</td>'
    judged = in_time + late + failed
    title = (
        f"{judged} messages judged {where}: {in_time} in time, {late} late, {failed} failed "
        f"(objective {_OBJECTIVE})"
    )
    if not judged:
        return f'<td class="muted" title="{_attr(title)}">none judged</td>'
    share = in_time / judged
    if share >= OBJECTIVE:
        kind = "good"
    else:  # below: by more than chance, or perhaps only by chance
        kind = "bad" if surely_below(in_time, judged, OBJECTIVE) else "warn"
    spark = _sparkline(samples) if recent is not None else ""
    return (
        f'<td title="{_attr(title)}"><span class="{kind}">{_percent(share)}</span> '
        f'<span class="muted">of {judged:,}</span>{label}{spark}</td>'
    )


def _sparkline(samples: Sequence[OutcomeSample], width: int = 60, height: int = 16) -> str:
    """The in-time share judged between consecutive samples over the last SLI_SPAN (right:
    the newest poll), from SPARK_FLOOR (or less) at the bottom to 100 % at the top, so that
    the objective, dashed, is not lost against the top; a gap where nothing was judged, a
    dot for a lone value."""

    def y(share: float) -> float:
        return (1 - max(share, SPARK_FLOOR)) / (1 - SPARK_FLOOR) * (height - 2) + 1

    newest = samples[-1].at if samples else 0.0
    segments: list[list[tuple[float, float]]] = [[]]
    for at, share in share_points(samples):
        if newest - at > SLI_SPAN:
            continue
        if share is None:
            if segments[-1]:
                segments.append([])
            continue
        x = width - (newest - at) / SLI_SPAN * width
        segments[-1].append((x, y(share)))
    drawn = []
    for segment in segments:
        if len(segment) == 1:
            ((cx, cy),) = segment
            drawn.append(f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="1.5"/>')
        elif segment:
            points = " ".join(f"{px:.1f},{py:.1f}" for px, py in segment)
            drawn.append(f'<polyline points="{points}"/>')
    if not drawn:
        return ""
    objective_y = y(OBJECTIVE)
    return (
        f' <svg class="spark" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'role="img" aria-label="in-time share over the last {duration_text(SLI_SPAN)}">'
        f'<line class="objective" x1="0" y1="{objective_y:.1f}" x2="{width}" '
        f'y2="{objective_y:.1f}"/>{"".join(drawn)}</svg>'
    )


def _window_cell(tracker: TrackerSnapshot | None) -> str:
    window = tracker.window if tracker is not None else None
    if window is None:
        return '<span class="muted">&ndash;</span>'
    by_status: dict[str, int] = {}
    for (status, _type), count in window.by_status_type.items():
        by_status[status] = by_status.get(status, 0) + count
    groups = [
        (css, label, sum(by_status.get(s, 0) for s in statuses))
        for css, label, statuses in _STATUS_GROUPS
    ]
    total = sum(n for _, _, n in groups)
    details = ", ".join(f"{n:,} {label}" for _, label, n in groups if n) or "empty"
    width, height, x = 64, 10, 0.0
    rects = []
    for css, _label, n in groups:
        if not n or not total:
            continue
        w = n / total * width
        rects.append(f'<rect class="{css}" x="{x:.2f}" y="0" width="{w:.2f}" height="{height}"/>')
        x += w
    bar = (
        f'<svg class="bar" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'role="img" aria-label="{_attr(details)}"><rect class="empty" x="0" y="0" '
        f'width="{width}" height="{height}"/>{"".join(rects)}</svg>'
    )
    truncated = " (truncated)" if window.truncated else ""
    return f'<span title="{_attr(details + truncated)}">{bar} {window.messages:,}</span>'


def _undelivered_cell(tracker: TrackerSnapshot | None, now: float) -> str:
    window = tracker.window if tracker is not None else None
    if window is None:
        return '<span class="muted">&ndash;</span>'
    if not window.undelivered:
        return '<span class="muted">none</span>'
    oldest = window.oldest_undelivered_timestamp
    age = ""
    if oldest is not None:
        age = (
            f' <span class="muted" title="sent {_attr(utc_text(oldest))}">· oldest '
            f"{_text(duration_text(now - oldest))}</span>"
        )
    return f"{window.undelivered:,}{age}"


def _lag_cell(tracker: TrackerSnapshot | None, which: str) -> str:
    """p50 / p95 of the ``delivery_lag`` or ``read_lag`` histogram, since start."""
    if tracker is None:
        return '<td class="muted">&ndash;</td>'
    histogram: Histogram = getattr(tracker, which)
    if not histogram.count:
        return '<td class="muted" title="no lag measured yet">&ndash;</td>'
    mean = duration_text(histogram.total / histogram.count)
    title = f"{histogram.count:,} measured since start; mean {mean}"
    quantiles = f"{_lag_text(histogram, 0.5)} / {_lag_text(histogram, 0.95)}"
    return f'<td title="{_attr(title)}">{_text(quantiles)}</td>'


def _optional_cell(instance: InstanceSnapshot, name: str) -> str:
    if name not in instance.collect:
        return _not_collected()
    reading = instance.reading(name)
    if reading.value is None:
        why = "not polled yet" if reading.status is None else "no successful request yet"
        return f'<td class="muted" title="{_attr(why)}">&ndash;</td>'
    stale = reading.status is not None and not reading.status.up
    text = _value_text(name, reading)
    css = []
    if name == "state":
        css.append("good" if reading.value == "authorized" else "bad")
    if stale:
        css.append("stale")
    klass = f' class="{" ".join(css)}"' if css else ""
    title = "as of the last successful request" if stale else BY_NAME[name].describe(reading)
    return f'<td{klass} title="{_attr(title)}">{_text(text)}</td>'


def _value_text(name: str, reading: Reading) -> str:
    """A collector's value in a word: the state, the queue's length, the incoming window's
    size; for any other collector its ``describe`` without the leading name."""
    value = reading.value
    if isinstance(value, IncomingSnapshot):
        return _DASH if value.window is None else f"{sum(value.window.values()):,}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    described = BY_NAME[name].describe(reading)
    prefix = name + " "
    return described[len(prefix) :] if described.startswith(prefix) else described


def _last_poll_cell(instance: InstanceSnapshot, now: float) -> str:
    statuses = [(name, instance.reading(name).status) for name in instance.collect]
    done = [(name, s) for name, s in statuses if s is not None]
    if not done:
        return '<td class="muted">not yet</td>'
    latest = max(s.timestamp for _, s in done)
    lines = []
    for name, s in done:
        success = (
            f"last success {utc_text(s.last_success_timestamp)}"
            if s.last_success_timestamp is not None
            else "no success yet"
        )
        lines.append(f"{name}: {utc_text(s.timestamp)} ({s.result}); {success}")
    title = utc_text(latest) + "\n" + "\n".join(lines)
    return f'<td title="{_attr(title)}">{_text(ago_text(latest, now))}</td>'


def _problems_cell(instance: InstanceSnapshot, scrub: Scrub) -> str:
    """Each failing collector's hint, the collectors with the same hint together; the hint
    alone when every collector of the instance fails alike (a wrong token)."""
    by_hint: dict[str, list[str]] = {}
    errors: list[str] = []
    for name in instance.collect:
        status = instance.reading(name).status
        if status is None or status.up:
            continue
        by_hint.setdefault(_hint(status, scrub), []).append(name)
        errors.append(f"{name}: {scrub(status.error) or status.result}")
    if not by_hint:
        return '<td class="problems"></td>'
    if len(by_hint) == 1 and len(next(iter(by_hint.values()))) == len(instance.collect):
        text = next(iter(by_hint))  # every collector fails alike: naming them adds nothing
    else:
        text = "; ".join(f"{', '.join(names)}: {hint}" for hint, names in by_hint.items())
    return f'<td class="problems" title="{_attr(chr(10).join(errors))}">{_text(text)}</td>'


def _text(value: str) -> str:
    return html.escape(value, quote=False)


def _attr(value: str) -> str:
    return html.escape(value, quote=True).replace("\n", "&#10;")


# --- the configuration page ------------------------------------------------------------------


def config_page(config: Config, *, version: str, scrub: Scrub) -> str:
    """The HTML of ``GET /config``: the running configuration as in effect (``defaults``
    applied), tokens shown only by where they are read from.

    A setting every instance has at the same value is shown once; the instances' table has a
    column only for the settings that differ between them. Values that differ from the
    built-in default are in bold.
    """
    instances = config.instances
    shown = {s.key: [_setting_html(s, i.settings, scrub) for i in instances] for s in SETTINGS}
    shared = [s for s in SETTINGS if len(set(shown[s.key])) == 1]
    varying = [s for s in SETTINGS if len(set(shown[s.key])) > 1]
    top = "".join(
        f'<tr><th title="{_attr(s.doc)}">{_text(s.key)}</th>'
        f"<td>{_text(scrub(s.kind.show(getattr(config, s.key))))}</td></tr>"
        for s in TOP_LEVEL
    )
    common = "".join(
        f'<tr><th title="{_attr(s.doc)}">{_text(s.key)}</th><td>{shown[s.key][0]}</td></tr>'
        for s in shared
    )
    heads = "".join(f'<th title="{_attr(s.doc)}">{_text(s.key)}</th>' for s in varying)
    rows = "\n".join(
        "<tr>"
        f"<td><b>{_text(instance.name)}</b></td><td>{_text(instance.id_instance)}</td>"
        f"<td>{_text(scrub(instance.token_source))}</td>"
        f"<td>{_text(scrub(LABELS.show(instance.labels)))}</td>"
        + "".join(f"<td>{shown[s.key][index]}</td>" for s in varying)
        + "</tr>"
        for index, instance in enumerate(instances)
    )
    warnings = "".join(f"<li>{_text(scrub(w))}</li>" for w in config.warnings)
    warning_list = f"<h2>Warnings</h2>\n<ul>{warnings}</ul>\n" if warnings else ""
    common_table = (
        "<h2>Settings of every instance</h2>\n"
        f'<table class="keys"><tbody>{common}</tbody></table>\n'
        if common
        else ""
    )
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>GREEN-API Exporter: configuration</title>
<link rel="icon" href="data:,">
<style>{_CSS}</style>
</head>
<body>
<header>
<h1>Running configuration <span class="muted">{_text(version)}</span></h1>
<nav><a href="/">Status</a></nav>
</header>
<main>
<p class="help">From <code>{_text(scrub(config.source))}</code>, as loaded at start or by the
last successful reload (SIGHUP or POST /-/reload). Tokens are never shown: "token from" says
where each one is read. Values in bold differ from the built-in default; hover over a key for
its meaning. <code>--check-config</code> prints the same as text.</p>
<table class="keys"><tbody>{top}<tr><th>instances</th><td>{len(instances)}</td></tr></tbody></table>
{warning_list}{common_table}<h2>Instances</h2>
<div class="scroll">
<table>
<thead><tr><th>name</th><th>id_instance</th><th>token from</th><th>labels</th>{heads}</tr></thead>
<tbody>
{rows}
</tbody>
</table>
</div>
</main>
</body>
</html>
"""


def _setting_html(setting: Setting, settings: Settings, scrub: Scrub) -> str:
    """One setting's value as HTML: bold when not the built-in default, with its note."""
    value = getattr(settings, setting.key)
    shown = _text(scrub(setting.kind.show(value)))
    if value != getattr(_DEFAULTS, setting.key):
        shown = f"<b>{shown}</b>"
    note = setting.note(settings) if setting.note is not None else ""
    return shown + (f' <span class="muted">({_text(scrub(note))})</span>' if note else "")


_DEFAULTS = Settings()

_CSS = """
:root{color-scheme:light;--bad:#b71c1c;--stall:#d84315;--unauth:#6a1b9a;--warn:#8d6e00;
--muted:#6b7280;--line:#e5e7eb}
body{font:13px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:1em 1.2em;
color:#111827;background:#fff}
header{display:flex;align-items:baseline;gap:1.5em;flex-wrap:wrap}
h1{font-size:1.35em;margin:0}
h2{font-size:1.1em;margin:1.2em 0 .4em}
nav a{margin-right:.2em}
a{color:#1d4ed8}
.muted{color:var(--muted);font-weight:normal}
.help{max-width:80em;color:#374151}
.counts{font-size:1.05em}
.banner{background:#fff4e5;border-left:4px solid var(--stall);padding:.4em .8em}
.scroll{overflow-x:auto}
table{border-collapse:collapse}
th,td{padding:.25em .4em;text-align:left;white-space:nowrap;border-bottom:1px solid var(--line);
vertical-align:middle}
th{background:#f3f4f6;position:sticky;top:0;font-weight:600}
table.status td{max-width:22em;overflow:hidden;text-overflow:ellipsis}
table.status td.problems{max-width:24em;color:var(--bad)}
table.status td.name{max-width:16em}
.name a{text-decoration:none}
.name a:hover{text-decoration:underline}
tr.rank-0 td:first-child{box-shadow:inset 4px 0 var(--bad)}
tr.rank-1 td:first-child{box-shadow:inset 4px 0 var(--stall)}
tr.rank-2 td:first-child{box-shadow:inset 4px 0 var(--unauth)}
tr.rank-0{background:#fdecec}
tr.rank-1{background:#fff1e8}
tr.rank-2{background:#f6effa}
tr.rank-3 td:first-child,tr.rank-4 td:first-child{box-shadow:inset 4px 0 #e0b000}
.badge{display:inline-block;padding:0 .5em;border-radius:.8em;font-size:.92em;font-weight:600;
color:#fff;background:var(--muted)}
.badge.down{background:var(--bad)}
.badge.stalled{background:var(--stall)}
.badge.unauthorized{background:var(--unauth)}
.badge.warn{background:#fde68a;color:#5b4300}
.badge.info{background:#e5e7eb;color:#374151}
.badge.ok{background:#15803d}
.good{color:#15803d;font-weight:600}
.bad{color:var(--bad);font-weight:600}
.warn{color:var(--warn);font-weight:600}
.stale{opacity:.55}
svg{vertical-align:middle}
.spark polyline{fill:none;stroke:#2563eb;stroke-width:1.5}
.spark circle{fill:#2563eb}
.spark .objective{stroke:#9ca3af;stroke-dasharray:2 2;stroke-width:1}
.bar .empty{fill:#f3f4f6}
.s-read{fill:#166534;background:#166534}
.s-delivered{fill:#4ade80;background:#4ade80}
.s-sent{fill:#60a5fa;background:#60a5fa}
.s-pending{fill:#fbbf24;background:#fbbf24}
.s-failed{fill:#dc2626;background:#dc2626}
.s-unknown{fill:#d1d5db;background:#d1d5db}
.swatch{display:inline-block;width:.8em;height:.8em;margin:0 .2em 0 .1em;vertical-align:-.05em}
table.keys th{background:none;position:static}
footer{margin-top:1em;font-size:.9em}
code{font-size:.95em}
"""
