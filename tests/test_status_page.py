"""The status page and /config: rendered from fixed snapshots, then served by the exporter as a
process against the simulator and loaded in a real headless Chromium.

The HTML is checked by :class:`HtmlChecker` (every tag closed and properly nested, one h1, a
lang attribute, no duplicate ids, no script); the browser test checks that Chromium renders
the rows worst first with their badges, and that the rows of the instances in trouble are
painted in their colours (read back from the screenshot's pixels).
"""

from __future__ import annotations

import itertools
import re
import shutil
import socket
import struct
import subprocess
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from html.parser import HTMLParser
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest

from exporter.client import GreenApiClient
from exporter.collector import ExporterSnapshot
from exporter.collectors import CollectorStatus, Reading
from exporter.config import Config, InstanceConfig, Settings
from exporter.logs import Secrets
from exporter.pages import (
    RANKS,
    DeliveryHistory,
    OutcomeSample,
    ago_text,
    assess,
    config_page,
    duration_text,
    error_hint,
    lag_quantile,
    recent_outcomes,
    status_page,
    surely_below,
    utc_text,
)
from exporter.poller import InstanceSnapshot
from exporter.simulator import Simulator
from exporter.tracker import LAG_BUCKETS, Histogram, TrackerSnapshot, WindowStats
from tests.conftest import ExporterProcess, free_port, wait_until

NOW = 1_780_000_000.0
TOKEN = "0123456789abcdef0123456789abcdef0123456789abcdef01"
INSTALL_CHROMIUM = (
    "chromium is not installed; install it with: DEBIAN_FRONTEND=noninteractive apt-get "
    "install -y --no-install-recommends chromium chromium-driver"
)
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
)  # fmt: skip


# --- an HTML checker -------------------------------------------------------------------------

_VOID = frozenset(
    {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
     "track", "wbr"}
)  # fmt: skip


class HtmlChecker(HTMLParser):
    """Collects what makes a page invalid or unfit: unclosed or misnested tags, end tags
    without a start, not exactly one h1, no lang on html, duplicate ids, scripts."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.problems: list[str] = []
        self.open: list[str] = []
        self.ids: set[str] = set()
        self.h1 = 0
        self.doctype = False
        self.lang = False

    def handle_decl(self, decl: str) -> None:
        self.doctype = self.doctype or decl.lower() == "doctype html"

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._attributes(tag, attrs)
        if tag not in _VOID:
            self.open.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._attributes(tag, attrs)  # <rect/> in SVG: opened and closed at once

    def handle_endtag(self, tag: str) -> None:
        if tag in _VOID:
            self.problems.append(f"end tag of the void element {tag}")
        elif tag not in self.open:
            self.problems.append(f"</{tag}> without a start tag")
        elif self.open[-1] != tag:
            self.problems.append(f"</{tag}> closes <{self.open[-1]}> (open: {self.open})")
            del self.open[len(self.open) - 1 - self.open[::-1].index(tag) :]
        else:
            self.open.pop()

    def _attributes(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "script":
            self.problems.append("a script: the page must read without JavaScript")
        if tag == "h1":
            self.h1 += 1
        if tag == "html" and values.get("lang"):
            self.lang = True
        ident = values.get("id")
        if ident is not None:
            if ident in self.ids:
                self.problems.append(f"duplicate id {ident!r}")
            self.ids.add(ident)
        for name in ("src", "href"):
            link = values.get(name) or ""
            if re.match(r"(https?:)?//", link):
                self.problems.append(f"an external asset or link: {link}")


def html_problems(page: str) -> list[str]:
    checker = HtmlChecker()
    checker.feed(page)
    checker.close()
    problems = list(checker.problems)
    if checker.open:
        problems.append(f"not closed: {checker.open}")
    if checker.h1 != 1:
        problems.append(f"{checker.h1} h1 elements, not one")
    if not checker.doctype:
        problems.append("no <!DOCTYPE html>")
    if not checker.lang:
        problems.append("no lang attribute on html")
    return problems


def test_the_checker_finds_what_makes_a_page_invalid() -> None:
    broken = (
        '<html><body><h1>a</h1><h1>b</h1><p id="x"><b>bold</p><span id="x"></span>'
        '</div><script>alert(1)</script><img src="https://cdn.example/x.png"></body>'
    )
    problems = " | ".join(html_problems(broken))
    for expected in ("</p> closes <b>", "duplicate id 'x'", "</div> without a start tag",
                     "a script", "external asset", "2 h1 elements", "no <!DOCTYPE html>",
                     "no lang attribute"):  # fmt: skip
        assert expected in problems
    assert "not closed: ['html', 'body', 'p']" in " | ".join(html_problems("<html><body><p>"))


# --- snapshots to render ---------------------------------------------------------------------


def ok(at: float = NOW - 5, last_success: float | None = None) -> CollectorStatus:
    return CollectorStatus("success", "", at, 0.2, at if last_success is None else last_success)


def failed(result: str, error: str, at: float = NOW - 5,
           last_success: float | None = NOW - 600) -> CollectorStatus:  # fmt: skip
    return CollectorStatus(result, error, at, 0.2, last_success)


def window(statuses: dict[str, int] | None = None, undelivered: int = 0,
           oldest: int | None = None, truncated: bool = False) -> WindowStats:  # fmt: skip
    statuses = {"read": 8, "delivered": 2} if statuses is None else statuses
    return WindowStats(
        by_status_type=MappingProxyType({(s, "textMessage"): n for s, n in statuses.items()}),
        send_by_api=0, forwarded=0, messages=sum(statuses.values()), undelivered=undelivered,
        oldest_undelivered_timestamp=oldest, last_message_timestamp=int(NOW - 30),
        truncated=truncated, invalid=0,
    )  # fmt: skip


def tracker(outcomes: tuple[int, int, int] = (0, 0, 0), win: WindowStats | None = None,
            delivery_lag: Histogram | None = None) -> TrackerSnapshot:  # fmt: skip
    in_time, late, failed_ = outcomes
    return TrackerSnapshot(
        outcomes=MappingProxyType(
            {"in_time": in_time, "late": late, "failed": failed_, "no_status": 0}
        ),
        window=window() if win is None else win,
        delivery_lag=delivery_lag or Histogram(),
    )


def instance(name: str, readings: dict[str, Reading] | None = None,
             id_instance: str = "1101000001") -> InstanceSnapshot:  # fmt: skip
    readings = {"outgoing": Reading(ok(), tracker())} if readings is None else readings
    return InstanceSnapshot(
        name=name, id_instance=id_instance, labels=(), window_seconds=86400.0,
        collect=tuple(readings), polls_total=MappingProxyType({}),
        readings=MappingProxyType(readings),
    )  # fmt: skip


def snapshot(*instances: InstanceSnapshot, reload_successful: bool = True) -> ExporterSnapshot:
    return ExporterSnapshot(version="9.8.7", instances=tuple(instances), label_names=(),
                            reload_successful=reload_successful,
                            reload_success_timestamp=NOW - 3600)  # fmt: skip


def samples(*counts: tuple[float, int, int, int]) -> tuple[OutcomeSample, ...]:
    """(seconds before NOW, in_time, late, failed) → outcome samples, oldest first."""
    return tuple(OutcomeSample(NOW - ago, i, late, f) for ago, i, late, f in counts)


Histories = dict[str, Sequence[OutcomeSample]]


def render(snap: ExporterSnapshot, histories: Histories | None = None,
           telemetry_path: str = "/metrics", scrub: Callable[[str], str] = str) -> str:  # fmt: skip
    found = histories or {}
    return status_page(snap, lambda i: found.get(i.name, ()), now=NOW,
                       telemetry_path=telemetry_path, scrub=scrub)  # fmt: skip


def rows(page: str) -> list[tuple[str, str]]:
    """(name, rank) of each instance row, in page order."""
    return re.findall(r'<tr id="[^"]*" class="[^"]*" data-name="([^"]*)" data-rank="([^"]*)"',
                      page)  # fmt: skip


def row_of(page: str, name: str) -> str:
    match = re.search(rf'<tr [^>]*data-name="{re.escape(name)}".*?</tr>', page, re.S)
    assert match is not None, f"no row for {name}"
    return match.group(0)


STALLING = samples((300, 100, 0, 0), (0, 102, 20, 0))  # 20 of 22 late
BELOW = samples((600, 100, 0, 0), (0, 180, 20, 0))  # 80 % of 100 in time


def every_rank() -> tuple[ExporterSnapshot, Histories]:
    """One instance of every rank, named so that the alphabet alone would sort them wrong."""
    snap = snapshot(
        instance("b-healthy"),
        instance("a-healthy"),
        instance("c-waiting", {"outgoing": Reading(None, TrackerSnapshot())}),
        instance("d-degraded", {"outgoing": Reading(ok(), tracker()),
                                "state": Reading(failed("http_5xx", "HTTP 500"), None)}),
        instance("e-below", {"outgoing": Reading(ok(), tracker((180, 20, 0)))}),
        instance("f-unauthorized", {"outgoing": Reading(ok(), tracker()),
                                    "state": Reading(ok(), "notAuthorized")}),
        instance("g-stalled", {"outgoing": Reading(ok(), tracker((102, 20, 0)))}),
        instance("h-down", {"outgoing": Reading(failed("http_401", "HTTP 401"), tracker())}),
    )  # fmt: skip
    return snap, {"g-stalled": STALLING, "e-below": BELOW}


# --- order and badges ------------------------------------------------------------------------


def test_instances_are_listed_worst_first_then_by_name() -> None:
    page = render(*every_rank())
    assert rows(page) == [
        ("h-down", "down"),
        ("g-stalled", "stalled"),
        ("f-unauthorized", "not authorized"),
        ("e-below", "below objective"),
        ("d-degraded", "degraded"),
        ("c-waiting", "waiting"),
        ("a-healthy", "healthy"),
        ("b-healthy", "healthy"),
    ]
    assert [rank for _, rank in rows(page)][:-1] == list(RANKS)


@pytest.mark.parametrize(
    ("late", "in_time", "stalled"),
    [(6, 4, True), (5, 5, False), (9, 0, False), (11, 0, True)],
    ids=["6-of-10-late", "half-late", "9-judged-only", "11-of-11-late"],
)
def test_stalled_means_more_than_half_of_at_least_ten_judged_were_late(
    late: int, in_time: int, stalled: bool
) -> None:
    recorded = samples((120, 50, 0, 0), (0, 50 + in_time, late, 0))
    verdict = assess(instance("x", {"outgoing": Reading(ok(), tracker())}), recorded, str)
    assert (verdict.rank == "stalled") is stalled
    assert any(b.text == "stalled" for b in verdict.badges) is stalled


def test_stalled_looks_at_the_last_ten_minutes_only() -> None:
    # All late 20 minutes ago; everything judged in the last ten minutes in time.
    recorded = samples((1200, 0, 0, 0), (900, 0, 50, 0), (540, 0, 50, 0), (0, 40, 50, 0))
    verdict = assess(instance("x"), recorded, str)
    assert verdict.stall is not None and verdict.stall.late == 0
    assert verdict.rank == "healthy"


def test_the_share_since_start_never_makes_an_instance_stalled() -> None:
    everything_late = {"outgoing": Reading(ok(), tracker((0, 500, 0)))}
    assert assess(instance("x", everything_late), (), str).rank == "healthy"


def test_below_objective_needs_ten_judged_messages() -> None:
    few = samples((600, 0, 0, 0), (0, 5, 4, 0))  # 56 % in time of 9
    assert assess(instance("x"), few, str).rank == "healthy"
    assert assess(instance("x"), BELOW, str).rank == "below objective"


@pytest.mark.parametrize("state", ["notAuthorized", "blocked", "sleepMode", "yellowCard",
                                   "starting", "unknown"])  # fmt: skip
def test_any_state_but_authorized_is_a_not_authorized_badge(state: str) -> None:
    subject = instance("x", {"outgoing": Reading(ok(), tracker()), "state": Reading(ok(), state)})
    page = render(snapshot(subject))
    row = row_of(page, "x")
    assert 'data-rank="not authorized"' in row
    assert f'<span class="badge unauthorized" title="getStateInstance says {state}' in row


def test_a_failing_journal_is_down_and_its_window_is_shown_as_stale() -> None:
    down = instance("x", {"outgoing": Reading(failed("timeout", "no complete answer within 5s: "
                                                     "connecting"), tracker())})  # fmt: skip
    row = row_of(render(snapshot(down)), "x")
    assert '<span class="badge down" title="the last poll failed: timeout after 5s">down' in row
    assert '<td class="stale">' in row


def test_a_journal_without_statuses_has_an_info_badge_and_no_sli() -> None:
    silent = tracker(win=window({"unknown": 40}))
    row = row_of(render(snapshot(instance("x", {"outgoing": Reading(ok(), silent)}))), "x")
    assert 'data-rank="healthy"' in row
    assert ">no statuses</span>" in row and ">none judged</td>" in row


def test_a_truncated_window_is_a_warning() -> None:
    full = tracker(win=window({"read": 5000}, truncated=True))
    verdict = assess(instance("x", {"outgoing": Reading(ok(), full)}), (), str)
    assert verdict.rank == "degraded" and [b.text for b in verdict.badges] == ["truncated"]


# --- errors ----------------------------------------------------------------------------------

REFUSED = (
    "ConnectionError: _DeadlineHTTPPool(host='127.0.0.1', port=45081): Max retries exceeded "
    "with url: /waInstance1/lastOutgoingMessages/<redacted> (Caused by NewConnectionError("
    "\"_DeadlineConnection(host='127.0.0.1', port=45081): Failed to establish a new connection: "
    '[Errno 111] Connection refused"))'
)
UNRESOLVED = (
    "ConnectionError: _DeadlineHTTPPool(host='no-such-host.invalid', port=80): Max retries "
    'exceeded with url: /waInstance1/x/<redacted> (Caused by NameResolutionError("Failed to '
    "resolve 'no-such-host.invalid' ([Errno -2] Name or service not known)\"))"
)


@pytest.mark.parametrize(
    ("result", "error", "hint"),
    [
        ("http_401", "HTTP 401", "401: wrong apiTokenInstance"),
        ("http_401", "HTTP 200 with error 401 in the body", "401: wrong apiTokenInstance"),
        ("http_403", "HTTP 403", "403: wrong idInstance or suspended"),
        ("http_466", "HTTP 466", "466: monthly quota spent — poll less often"),
        ("http_429", "HTTP 429", "429: rate limited"),
        ("http_400", "HTTP 400", "400: instance starting or not authorized, or a bad request"),
        ("http_5xx", "HTTP 502", "502: GREEN-API server error — retried at the next poll"),
        ("http_4xx", "HTTP 404", "404: not found — check api_url"),
        ("http_4xx", "HTTP 418", "418: refused by GREEN-API"),
        ("timeout", "no complete answer within 5s: reading the body", "timeout after 5s"),
        ("timeout", "answer not complete within 2.5s", "timeout after 2.5s"),
        ("connection_error", REFUSED, "connection refused to 127.0.0.1:45081"),
        ("connection_error", UNRESOLVED, "cannot resolve no-such-host.invalid — check api_url"),
        ("invalid_response", "expected a JSON array, got a JSON object",
         "invalid answer: expected a JSON array, got a JSON object"),
    ],
)  # fmt: skip
def test_errors_read_as_short_hints(result: str, error: str, hint: str) -> None:
    assert error_hint(failed(result, error)) == hint


def test_a_long_invalid_answer_is_shortened() -> None:
    hint = error_hint(failed("invalid_response", "broken JSON: " + "x" * 300))
    assert hint.startswith("invalid answer: broken JSON: xxx") and hint.endswith("…")
    assert len(hint) <= 80


@pytest.fixture
def client() -> Iterator[GreenApiClient]:
    made = GreenApiClient()
    yield made
    made.close()


def test_a_refused_connection_of_the_real_client_names_host_and_port(
    client: GreenApiClient,
) -> None:
    port = free_port()  # nothing listens there
    fetch = client.get(f"http://127.0.0.1:{port}/waInstance1/lastOutgoingMessages/{TOKEN}",
                       {}, 2.0, TOKEN)  # fmt: skip
    hint = error_hint(failed(fetch.result, fetch.error))
    assert hint == f"connection refused to 127.0.0.1:{port}"


def test_a_timeout_of_the_real_client_says_after_how_long(client: GreenApiClient) -> None:
    with socket.socket() as silent:  # accepts connections (the backlog), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        fetch = client.get(f"http://127.0.0.1:{port}/waInstance1/lastOutgoingMessages/{TOKEN}",
                           {}, 0.5, TOKEN)  # fmt: skip
    assert error_hint(failed(fetch.result, fetch.error)) == "timeout after 0.5s"


def test_errors_are_shown_redacted_with_the_raw_error_in_the_tooltip() -> None:
    secrets = Secrets()
    secrets.add([TOKEN])
    leaked = f"ConnectionError: bad url /waInstance1/x/{TOKEN}?x=1 and again {TOKEN}"
    subject = instance("x", {"outgoing": Reading(failed("connection_error", leaked), tracker())})
    page = render(snapshot(subject), scrub=secrets.scrub)
    assert TOKEN not in page
    row = row_of(page, "x")
    assert 'title="outgoing: ConnectionError: bad url /waInstance1/x/&lt;redacted&gt;' in row
    assert ">connection failed</td>" in row  # the only collector: no name needed


def test_a_hint_quoting_the_answer_is_redacted_in_the_badge_too() -> None:
    secrets = Secrets()
    secrets.add([TOKEN])
    quoting = failed("invalid_response", f"a proxy page about {TOKEN}")
    page = render(snapshot(instance("x", {"outgoing": Reading(quoting, tracker())})),
                  scrub=secrets.scrub)  # fmt: skip
    assert TOKEN not in page
    assert (
        'title="the last poll failed: invalid answer: a proxy page about &lt;redacted&gt;"' in page
    )


def test_each_failing_collector_is_named_and_a_shared_hint_is_shown_once() -> None:
    subject = instance("x", {
        "outgoing": Reading(failed("http_401", "HTTP 401"), tracker()),
        "state": Reading(failed("http_401", "HTTP 401"), None),
        "queue": Reading(failed("http_429", "HTTP 429"), 3),
    })  # fmt: skip
    row = row_of(render(snapshot(subject)), "x")
    assert ">outgoing, state: 401: wrong apiTokenInstance; queue: 429: rate limited</td>" in row


def test_a_failing_optional_collector_does_not_mark_the_instance_down() -> None:
    subject = instance("x", {"outgoing": Reading(ok(), tracker()),
                             "state": Reading(failed("http_5xx", "HTTP 500"), None)})  # fmt: skip
    row = row_of(render(snapshot(subject)), "x")
    assert 'data-rank="degraded"' in row and "badge down" not in row
    assert ">state: 500: GREEN-API server error — retried at the next poll</td>" in row


# --- numbers ---------------------------------------------------------------------------------


def cumulative(per_bucket: dict[float, int], beyond: int = 0) -> Histogram:
    """A histogram from observations per bucket (keyed by upper bound) and beyond the last."""
    running, buckets = 0, []
    for bound in LAG_BUCKETS:
        running += per_bucket.get(bound, 0)
        buckets.append(running)
    return Histogram(tuple(buckets), running + beyond, 0.0)


def test_lag_quantiles_interpolate_within_the_bucket_like_histogram_quantile() -> None:
    lags = cumulative({1: 4, 2: 6})  # 4 within a second, 6 between one and two
    assert lag_quantile(lags, 0.5) == pytest.approx(1 + (5 - 4) / 6)
    assert lag_quantile(lags, 0.95) == pytest.approx(1 + (9.5 - 4) / 6)
    assert lag_quantile(cumulative({1: 10}), 0.5) == pytest.approx(0.5)  # the first starts at 0
    assert lag_quantile(Histogram(), 0.5) is None


def test_a_lag_beyond_the_last_bucket_is_shown_as_more_than_it() -> None:
    slow = tracker(delivery_lag=cumulative({}, beyond=10))
    assert lag_quantile(slow.delivery_lag, 0.5) == LAG_BUCKETS[-1]
    row = row_of(render(snapshot(instance("x", {"outgoing": Reading(ok(), slow)}))), "x")
    assert ">&gt; 1 d / &gt; 1 d</td>" in row


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.42, "0.4 s"), (3, "3 s"), (12.4, "12 s"), (250, "4 min 10 s"), (3000, "50 min"),
     (3 * 3600 + 300, "3 h 5 min"), (2 * 86400 + 3 * 3600, "2 d 3 h"), (7200, "2 h")],
)  # fmt: skip
def test_durations_are_shown_as_precisely_as_a_glance_needs(seconds: float, text: str) -> None:
    assert duration_text(seconds) == text


@pytest.mark.parametrize(
    ("age", "text"),
    [(12, "12 s ago"), (300, "5 min ago"), (7300, "2 h ago"), (90000, "1 d ago"),
     (0.2, "just now"), (-30, "just now")],
)  # fmt: skip
def test_times_are_relative(age: float, text: str) -> None:
    assert ago_text(NOW - age, NOW) == text


def test_the_last_poll_is_relative_with_the_utc_time_in_its_tooltip() -> None:
    row = row_of(render(snapshot(instance("x", {"outgoing": Reading(ok(NOW - 42), tracker())}))),
                 "x")  # fmt: skip
    assert f'<td title="{utc_text(NOW - 42)}&#10;outgoing: ' in row
    assert ">42 s ago</td>" in row


def test_the_window_is_a_stacked_bar_by_status_with_its_size() -> None:
    win = window({"read": 6, "delivered": 2, "sent": 1, "noAccount": 1})
    row = row_of(render(snapshot(instance("x", {"outgoing": Reading(ok(), tracker(win=win))}))),
                 "x")  # fmt: skip
    assert 'title="6 read, 2 delivered, 1 sent, 1 failed"' in row
    widths = dict(re.findall(r'<rect class="(s-[a-z]+)" x="[^"]*" y="0" width="([^"]*)"', row))
    assert {k: float(v) for k, v in widths.items()} == pytest.approx(
        {"s-read": 38.4, "s-delivered": 12.8, "s-sent": 6.4, "s-failed": 6.4}
    )
    assert "</svg> 10</span>" in row


def test_undelivered_messages_show_the_oldest_ones_age() -> None:
    win = window({"read": 5, "sent": 3}, undelivered=3, oldest=int(NOW - 250))
    row = row_of(render(snapshot(instance("x", {"outgoing": Reading(ok(), tracker(win=win))}))),
                 "x")  # fmt: skip
    assert re.search(r"<td>3 <span [^>]*>· oldest 4 min 10 s</span></td>", row)


# --- the delivery SLI over the recent span ---------------------------------------------------


def test_recent_outcomes_difference_the_counters_over_the_span() -> None:
    recorded = samples((1500, 0, 0, 0), (840, 100, 0, 0), (420, 150, 5, 1), (0, 190, 10, 0 + 1))
    recent = recent_outcomes(recorded, 900)
    assert recent is not None
    assert (recent.span, recent.in_time, recent.late, recent.failed) == (840, 90, 10, 1)
    assert recent_outcomes(recorded[:1], 900) is None


def test_with_no_sample_within_the_span_the_one_before_the_newest_is_the_baseline() -> None:
    recent = recent_outcomes(samples((3600, 10, 0, 0), (0, 30, 0, 0)), 900)
    assert recent is not None and (recent.span, recent.in_time) == (3600, 20)


def test_the_sli_column_shows_the_recent_share_and_a_sparkline() -> None:
    recorded = samples((600, 100, 0, 0), (300, 140, 10, 0), (0, 180, 20, 0))
    subject = instance("x", {"outgoing": Reading(ok(), tracker((180, 20, 0)))})
    row = row_of(render(snapshot(subject), {"x": recorded}), "x")
    assert 'title="100 messages judged in the last 10 min: 80 in time, 20 late, 0 failed' in row
    assert '<span class="bad">80.0 %</span> <span class="muted">of 100</span>' in row
    assert '<svg class="spark"' in row and row.count("<polyline") == 1


def test_the_sparkline_spans_the_last_fifteen_minutes_ending_at_the_newest_poll() -> None:
    # Shares between samples: 100 % (ended 20 min ago: left out), 50 %, then 100 %.
    recorded = samples((1800, 0, 0, 0), (1200, 10, 0, 0), (450, 15, 5, 0), (0, 25, 5, 0))
    subject = instance("x", {"outgoing": Reading(ok(), tracker((25, 5, 0)))})
    row = row_of(render(snapshot(subject), {"x": recorded}), "x")
    # 60 px for 15 min, right is now; 50 % or less at the bottom (y 15), 100 % at the top (1).
    assert '<polyline points="30.0,15.0 60.0,1.0"/>' in row
    assert '<line class="objective" x1="0" y1="2.4" x2="60" y2="2.4"/>' in row


@pytest.mark.parametrize(
    ("in_time", "judged", "below"),
    [(11, 12, False), (80, 100, True), (97, 100, False), (900, 1000, True), (9, 9, False),
     (0, 9, False)],
)  # fmt: skip
def test_below_the_objective_means_by_more_than_chance(
    in_time: int, judged: int, below: bool
) -> None:
    assert surely_below(in_time, judged, 0.95) is below


def test_a_share_under_the_objective_by_chance_only_is_amber_and_ranks_nothing() -> None:
    one_late = samples((600, 100, 0, 0), (0, 111, 1, 0))  # 11 of 12
    subject = instance("x", {"outgoing": Reading(ok(), tracker((111, 1, 0)))})
    row = row_of(render(snapshot(subject), {"x": one_late}), "x")
    assert 'data-rank="healthy"' in row and '<span class="warn">91.6 %</span>' in row


def test_until_two_polls_are_recorded_the_share_is_since_start() -> None:
    subject = instance("x", {"outgoing": Reading(ok(), tracker((97, 3, 0)))})
    row = row_of(render(snapshot(subject)), "x")
    assert '<span class="good">97.0 %</span> <span class="muted">of 100</span>' in row
    assert '<span class="muted">since start</span>' in row and "spark" not in row


def test_a_share_just_below_one_is_never_rounded_up_to_a_hundred_percent() -> None:
    subject = instance("x", {"outgoing": Reading(ok(), tracker((9999, 1, 0)))})
    assert ">99.9 %</span>" in row_of(render(snapshot(subject)), "x")


def record(history: DeliveryHistory, at: float, counts: tuple[int, int, int],
           *names: str) -> None:  # fmt: skip
    readings = {"outgoing": Reading(ok(at), tracker(counts))}
    history.record(snapshot(*(instance(n, readings) for n in names or ("x",))))


def test_the_history_keeps_samples_spaced_and_bounded() -> None:
    history = DeliveryHistory(spacing=15, capacity=5)
    for second in range(0, 200):
        record(history, NOW + second, (second, 0, 0))
    kept = history.samples(instance("x"))
    assert len(kept) == 5 and kept[-1].at == NOW + 199
    gaps = [b.at - a.at for a, b in itertools.pairwise(kept[:-1])]
    assert all(gap >= 15 for gap in gaps), gaps


def test_the_history_records_a_poll_once() -> None:
    history = DeliveryHistory()
    for _ in range(3):
        record(history, NOW, (5, 0, 0))
    assert len(history.samples(instance("x"))) == 1


def test_the_history_starts_afresh_when_the_counters_go_down() -> None:
    history = DeliveryHistory(spacing=1)
    record(history, NOW, (50, 5, 0))
    record(history, NOW + 60, (60, 5, 0))
    record(history, NOW + 120, (3, 0, 0))  # a new tracker: a reload replaced the poller
    assert [s.in_time for s in history.samples(instance("x"))] == [3]


def test_the_history_forgets_instances_no_longer_configured() -> None:
    history = DeliveryHistory()
    record(history, NOW, (1, 0, 0), "x", "y")
    record(history, NOW + 60, (2, 0, 0), "y")
    assert history.samples(instance("x")) == ()
    assert len(history.samples(instance("y"))) == 2


# --- the page as a whole ---------------------------------------------------------------------


def test_the_header_has_the_version_counts_and_links() -> None:
    page = render(*every_rank(), telemetry_path="/custom")
    assert "<title>GREEN-API Exporter: 1 down, 1 stalled, 1 not authorized</title>" in page
    assert '<span class="muted">9.8.7</span></h1>' in page
    assert '8 instances · 6 up · <span class="badge down">1 down</span> · ' in page
    for link in ("/custom", "/config", "/-/healthy", "/-/ready"):
        assert f'<a href="{link}">' in page
    assert "How to read this." in page and 'http-equiv="refresh"' in page


def test_optional_collectors_have_columns_only_when_some_instance_collects_them() -> None:
    journal_only = render(snapshot(instance("x")))
    assert ">State</th>" not in journal_only and ">Queue</th>" not in journal_only
    mixed = render(snapshot(
        instance("x"),
        instance("y", {"outgoing": Reading(ok(), tracker()), "queue": Reading(ok(), 1234)}),
    ))  # fmt: skip
    assert ">Queue</th>" in mixed and ">State</th>" not in mixed
    assert ">1,234</td>" in row_of(mixed, "y")
    assert '<td class="muted" title="not collected">&ndash;</td>' in row_of(mixed, "x")


def test_a_refused_reload_shows_a_banner() -> None:
    assert "reload was refused" in render(snapshot(instance("x"), reload_successful=False))
    assert "reload was refused" not in render(snapshot(instance("x")))


@pytest.mark.parametrize(
    "snap",
    [snapshot(), every_rank()[0], snapshot(instance("x", {"outgoing": Reading(None, None)}))],
    ids=["no-instances", "every-rank", "never-polled"],
)
def test_the_status_page_is_valid_html(snap: ExporterSnapshot) -> None:
    assert html_problems(render(snap, every_rank()[1])) == []


# --- /config ---------------------------------------------------------------------------------


def test_the_configuration_page_shows_where_tokens_come_from_never_the_tokens() -> None:
    other = "f" * 50
    config = Config(source="/etc/greenapi-exporter/config.yaml", instances=(
        InstanceConfig("sales", "1101000001", TOKEN, labels=(("team", "sales"),)),
        InstanceConfig("support", "1101000002", other, "api_token_file /run/secrets/support",
                       settings=Settings(poll_interval=30.0)),
    ), warnings=("config.yaml: readable by all users",))  # fmt: skip
    secrets = Secrets()
    secrets.add(config.secrets())
    page = config_page(config, version="9.8.7", scrub=secrets.scrub)
    assert TOKEN not in page and other not in page
    assert html_problems(page) == []
    assert "<td>api_token_file /run/secrets/support</td>" in page
    assert "<td>team=sales</td>" in page
    # Shared settings once; poll_interval differs, so it is a column, in bold where not 1m.
    assert '<th title="How often each collector makes its request.">poll_interval</th>' in page
    assert "<td>1m</td>" in page and "<td><b>30s</b></td>" in page
    assert page.count(">undelivered_after</th>") == 1
    assert "<li>config.yaml: readable by all users</li>" in page


# --- served by the exporter, seen by a browser -----------------------------------------------


@pytest.mark.process
def test_config_is_served_as_html_without_tokens(simulator: Simulator, run_exporter: Any) -> None:
    config = simulator.exporter_config(poll_interval="1s")
    exporter: ExporterProcess = run_exporter(config)
    exporter.wait_healthy()
    reply = exporter.get("/config")
    assert reply.status_code == 200 and reply.headers["Content-Type"].startswith("text/html")
    assert html_problems(reply.text) == []
    for entry in config["instances"]:
        assert entry["api_token"] not in reply.text
        assert f"<td><b>{entry['name']}</b></td>" in reply.text
    assert reply.text.count("<td>api_token</td>") == len(config["instances"])


def chromium() -> str:
    path = shutil.which("chromium")
    if path is None:
        pytest.fail(INSTALL_CHROMIUM)
    return path


def browse(tmp_path: Path, url: str, *args: str) -> subprocess.CompletedProcess[str]:
    profile = tmp_path / "chromium-profile"
    return subprocess.run(
        [chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args, url],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip


def png_colours(path: Path, colours: Sequence[str]) -> tuple[tuple[int, int], dict[str, int]]:
    """((width, height), pixels of each colour, ``rrggbb``) of an 8-bit non-interlaced RGB or
    RGBA PNG, what Chromium writes: enough to read colours back from a screenshot."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    offset, idat, header = 8, bytearray(), b""
    while offset < len(data):
        length, kind = struct.unpack(">I4s", data[offset : offset + 8])
        chunk = data[offset + 8 : offset + 8 + length]
        header = chunk if kind == b"IHDR" else header
        idat += chunk if kind == b"IDAT" else b""
        offset += 12 + length
    width, height, depth, colour_type, _, _, interlace = struct.unpack(">IIBBBBB", header)
    assert depth == 8 and colour_type in (2, 6) and interlace == 0, header
    size = 3 if colour_type == 2 else 4
    stride = width * size
    raw = zlib.decompress(bytes(idat))
    wanted = {bytes.fromhex(c): c for c in colours}
    counts = dict.fromkeys(colours, 0)
    previous = bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        line = _unfilter(raw[start], bytearray(raw[start + 1 : start + 1 + stride]), previous,
                         size)  # fmt: skip
        for x in range(0, stride, size):
            name = wanted.get(bytes(line[x : x + 3]))
            if name is not None:
                counts[name] += 1
        previous = line
    return (width, height), counts


def _unfilter(kind: int, line: bytearray, above: bytearray, size: int) -> bytearray:
    """Undo one PNG scanline filter (none, sub, up, average, Paeth)."""
    if kind == 2:
        return bytearray((a + b) & 0xFF for a, b in zip(line, above, strict=True))
    for x in range(len(line) if kind else 0):
        left = line[x - size] if x >= size else 0
        up = above[x]
        if kind == 1:
            line[x] = (line[x] + left) & 0xFF
        elif kind == 3:
            line[x] = (line[x] + (left + up) // 2) & 0xFF
        else:
            corner = above[x - size] if x >= size else 0
            guess = left + up - corner
            pa, pb, pc = abs(guess - left), abs(guess - up), abs(guess - corner)
            near = left if pa <= pb and pa <= pc else up if pb <= pc else corner
            line[x] = (line[x] + near) & 0xFF
    return line


@pytest.mark.process
def test_the_status_page_in_a_real_browser_puts_the_instances_in_trouble_first(
    tmp_path: Path, run_exporter: Any
) -> None:
    chromium()  # fail at once, with the way to install it, when there is no browser
    # No rate limit: on a loaded machine two polls a little over a second apart can arrive
    # within one, and a 429 would put the healthy instance in trouble.
    sim = Simulator(instances=4, seed=11, history=600, offline_ratio=0.0, stuck_ratio=0.0,
                    rate_limit=False)  # fmt: skip
    sim.start()
    try:
        config = sim.exporter_config(poll_interval="1s", timeout="5s", undelivered_after="3s")
        healthy, unauthorized, stalled, wrong_token = config["instances"]
        healthy["undelivered_after"] = "1m"  # nothing it sends now is judged during the test
        unauthorized["collect"] = ["outgoing", "state"]
        wrong_token["api_token"] = "e" * 50
        sim.set_state(unauthorized["name"], "notAuthorized")
        sim.set_stalls(stalled["name"], time.time(), 600)
        sim.set_rate(stalled["name"], 5)  # all of it late three seconds after it is sent
        exporter: ExporterProcess = run_exporter(config)
        exporter.wait_ready(timeout=60)
        # The page judges a stall from what it recorded at its earlier views: view it as an
        # operator who keeps it open would, until the stall shows.
        wait_until(lambda: 'data-rank="stalled"' in exporter.get("/").text, timeout=40,
                   interval=0.5)  # fmt: skip
        served = exporter.get("/").text
        dom = browse(tmp_path, exporter.url + "/", "--dump-dom").stdout
        shot = tmp_path / "status-page.png"
        browse(tmp_path, exporter.url + "/", f"--screenshot={shot}", "--window-size=1280,900")
    finally:
        sim.stop()

    assert html_problems(served) == []
    assert rows(dom) == [
        (wrong_token["name"], "down"),
        (stalled["name"], "stalled"),
        (unauthorized["name"], "not authorized"),
        (healthy["name"], "healthy"),
    ], dom
    assert "401: wrong apiTokenInstance" in row_of(dom, wrong_token["name"])
    assert 'class="badge stalled"' in row_of(dom, stalled["name"])
    assert re.search(
        r'class="badge unauthorized"[^>]*>notAuthorized<', row_of(dom, unauthorized["name"])
    )
    assert 'class="badge ok"' in row_of(dom, healthy["name"])
    for entry in config["instances"]:
        assert entry["api_token"] not in dom

    # The rows in trouble are painted in their colours (the CSS's row backgrounds).
    size, painted = png_colours(shot, ("fdecec", "fff1e8", "f6effa"))
    assert size == (1280, 900)
    assert all(count > 5000 for count in painted.values()), painted
