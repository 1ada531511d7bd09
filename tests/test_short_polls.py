"""Short polls between resyncs change what is fetched, never what is shown.

The same simulated traffic is polled by two pollers on one fake clock: one reads the whole
journal at every poll (``resync_interval: 0``), the other reads it in full only now and then
and its recent past in between (the default). Once traffic stops, both must show the same
window gauges, counters and histograms — through a reload, a restart from a state file, failed
polls and a gap longer than the short window — while the second fetches a fraction of the
bytes. The self-check must find out when the journal filters ``?minutes=`` by send time, and
fall back to full polls.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest

from exporter.client import Fetch
from exporter.collectors import OUTGOING, Reading
from exporter.config import InstanceConfig, parse_config
from exporter.poller import InstancePoller
from exporter.simulator import Fleet
from exporter.tracker import TrackerSnapshot

START = 1_800_000_000.0
POLL = 60.0


class Clock:
    """One clock for the simulator and both pollers (wall and monotonic alike)."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


@dataclass
class InProcessClient:
    """Answers a poller's requests from the simulator directly, at the clock's time."""

    fleet: Fleet
    clock: Clock
    failing: bool = False
    minutes: list[int] = field(default_factory=list)
    received: int = 0

    def get(self, url: str, params: dict[str, str], timeout: float, secret: str) -> Fetch:
        if self.failing:
            return Fetch("timeout", error="no complete answer within 10s")
        id_instance = url.split("/waInstance")[1].split("/")[0]
        instance = self.fleet.instance(id_instance)
        minutes = int(params["minutes"])
        self.minutes.append(minutes)
        body = orjson.dumps(instance.journal(self.clock.now, minutes, 5000))
        self.received += len(body)
        return Fetch("success", status=200, body=body)


def config(**settings: Any) -> InstanceConfig:
    entry = {"name": "sim-1", "id_instance": "1101000001", "api_token": "t" * 50,
             "poll_interval": "1m", "window": "6h", **settings}  # fmt: skip
    return parse_config({"instances": [entry]}, "test", {}).instances[0]


class Pair:
    """A full-polls-only poller and a short-polls poller over the same simulated instance."""

    def __init__(self, minutes_by: str = "last_action", seed: int = 3, rate: float = 0.05) -> None:
        self.clock = Clock()
        self.fleet = Fleet(instances=1, seed=seed, clock=self.clock, history=3600,
                           rate=rate, offline_ratio=0.05, stuck_ratio=0.01)  # fmt: skip
        self.fleet.set_minutes_by("sim-1", minutes_by)
        self.settings: dict[str, dict[str, Any]] = {"full": {"resync_interval": 0}, "short": {}}
        self.clients = {kind: InProcessClient(self.fleet, self.clock) for kind in self.settings}
        self.pollers = {kind: self._poller(kind) for kind in self.settings}

    def _poller(self, kind: str) -> InstancePoller:
        return InstancePoller(config(**self.settings[kind]), baseline_before=START,
                              clock=self.clock, monotonic=self.clock, rng=random.Random(1))  # fmt: skip

    def run(self, seconds: float, step: float = POLL, polling: bool = True) -> None:
        """Let time pass; each poller polls when its schedule says so."""
        end = self.clock.now + seconds
        while self.clock.now < end:
            self.clock.now = min(end, self.clock.now + step)
            if polling:
                for kind, poller in self.pollers.items():
                    while poller.next_time() <= self.clock.now:
                        poller.poll(self.clients[kind])  # type: ignore[arg-type]

    def stop_traffic(self) -> None:
        self.fleet.set_rate("sim-1", 0)

    def reload(self, **settings: Any) -> None:
        for kind, poller in self.pollers.items():
            self.settings[kind] = {**self.settings[kind], **settings}
            poller.configure(config(**self.settings[kind]))

    def restart(self) -> None:
        """Both pollers saved and restored, as a restart with a state_file does."""
        for kind, poller in self.pollers.items():
            saved = json.loads(json.dumps(poller.export()))
            fresh = self._poller(kind)
            fresh.restore(saved)
            self.pollers[kind] = fresh

    def tracker(self, kind: str) -> TrackerSnapshot:
        reading: Reading = self.pollers[kind].snapshot.reading(OUTGOING.name)
        assert isinstance(reading.value, TrackerSnapshot)
        return reading.value


def shown(snapshot: TrackerSnapshot) -> dict[str, Any]:
    """What the metrics show of a journal, minus what describes the polls themselves."""
    window = snapshot.window
    assert window is not None
    return {
        "messages_total": dict(snapshot.messages_total),
        "status_reached": dict(snapshot.status_reached),
        "forwarded_total": snapshot.forwarded_total,
        "outcomes": dict(snapshot.outcomes),
        "delivery_lag": snapshot.delivery_lag,
        "read_lag": snapshot.read_lag,
        "window": {k: v for k, v in dict(window.by_status_type).items() if v},
        "send_by_api": window.send_by_api,
        "forwarded": window.forwarded,
        "messages": window.messages,
        "undelivered": window.undelivered,
        "oldest_undelivered": window.oldest_undelivered_timestamp,
        "newest": window.last_message_timestamp,
    }


def settle(pair: Pair) -> None:
    """Stop the traffic and wait until every status has settled and both pollers have read
    the journal in full at least once since (the short one resyncs every hour)."""
    pair.stop_traffic()
    pair.run(2 * 3600 + 600)


@pytest.fixture
def pair() -> Iterator[Pair]:
    yield Pair()


def test_both_modes_show_the_same_after_hours_of_traffic(pair: Pair) -> None:
    pair.run(3 * 3600)
    settle(pair)
    assert shown(pair.tracker("short")) == shown(pair.tracker("full"))
    assert sum(pair.tracker("full").messages_total.values()) > 400


def test_short_polls_fetch_a_fraction_of_the_bytes(pair: Pair) -> None:
    pair.run(3 * 3600)
    full, short = pair.clients["full"].received, pair.clients["short"].received
    assert short < 0.2 * full, (short, full)


def test_both_modes_agree_through_a_reload(pair: Pair) -> None:
    pair.run(3600)
    pair.reload(poll_interval="2m")
    pair.run(3600)
    settle(pair)
    assert shown(pair.tracker("short")) == shown(pair.tracker("full"))


def test_a_reload_that_changes_the_instance_reads_the_journal_in_full(pair: Pair) -> None:
    pair.run(600)
    pair.clients["short"].minutes.clear()
    pair.reload(undelivered_after="10m")
    pair.run(POLL)
    assert pair.clients["short"].minutes[0] == 360  # the whole 6h window


def test_both_modes_agree_through_a_restart_from_the_state_file(pair: Pair) -> None:
    pair.run(3600)
    pair.restart()
    pair.run(3600)
    settle(pair)
    assert shown(pair.tracker("short")) == shown(pair.tracker("full"))


def test_the_first_poll_after_a_restart_reads_the_journal_in_full(pair: Pair) -> None:
    pair.run(600)
    pair.restart()
    pair.clients["short"].minutes.clear()
    pair.run(POLL)
    assert pair.clients["short"].minutes[0] == 360


def test_both_modes_agree_through_failed_polls(pair: Pair) -> None:
    pair.run(3600)
    for client in pair.clients.values():
        client.failing = True
    pair.run(900)
    for client in pair.clients.values():
        client.failing = False
    pair.run(3600)
    settle(pair)
    assert shown(pair.tracker("short")) == shown(pair.tracker("full"))


def test_after_failed_polls_the_short_window_covers_the_gap(pair: Pair) -> None:
    pair.run(600)
    pair.clients["short"].failing = True
    pair.run(900)
    pair.clients["short"].failing = False
    pair.clients["short"].minutes.clear()
    pair.run(2 * POLL)
    # about 16 minutes since the last success, + undelivered_after (5m) + 3m
    assert 23 <= pair.clients["short"].minutes[0] <= 26, pair.clients["short"].minutes


def test_both_modes_agree_through_a_gap_longer_than_the_short_window(pair: Pair) -> None:
    pair.run(3600)
    pair.run(2 * 3600, polling=False)  # the exporter was not running, or its host slept
    pair.run(3600)
    settle(pair)
    assert shown(pair.tracker("short")) == shown(pair.tracker("full"))


def test_short_polls_ask_for_the_time_since_the_last_success_plus_undelivered_after(
    pair: Pair,
) -> None:
    pair.run(600)
    minutes = pair.clients["short"].minutes
    # about a minute (the interval, with its ±3 % jitter) + 5m + 3m, rounded up
    assert minutes[0] == 360 and set(minutes[1:]) <= {9, 10} and 9 in minutes


def test_a_full_poll_comes_every_resync_interval(pair: Pair) -> None:
    pair.run(3 * 3600 + 60)
    full_reads = [m for m in pair.clients["short"].minutes if m == 360]
    assert len(full_reads) == 4  # at start, then every hour
    assert pair.tracker("short").full_polls == 4


def test_a_journal_filtering_by_last_action_raises_no_correction(pair: Pair) -> None:
    pair.run(3 * 3600)
    assert pair.tracker("short").resync_corrections == 0
    assert not pair.tracker("short").filters_by_send_time


# --- the self-check ---------------------------------------------------------------------------


@pytest.fixture
def by_send_time() -> Iterator[Pair]:
    yield Pair(minutes_by="send_time")


def test_a_journal_filtering_by_send_time_is_found_out_at_the_first_resync(
    by_send_time: Pair,
) -> None:
    pair = by_send_time
    pair.run(3600 + 120)
    snapshot = pair.tracker("short")
    assert snapshot.filters_by_send_time
    assert snapshot.resync_corrections > 0


def test_once_found_out_every_poll_reads_the_journal_in_full(by_send_time: Pair) -> None:
    pair = by_send_time
    pair.run(3600 + 120)
    pair.clients["short"].minutes.clear()
    pair.run(600)
    assert set(pair.clients["short"].minutes) == {360}


def test_after_the_fallback_both_modes_agree(by_send_time: Pair) -> None:
    pair = by_send_time
    pair.run(3 * 3600)
    settle(pair)
    assert shown(pair.tracker("short")) == shown(pair.tracker("full"))


def test_the_fallback_survives_a_restart(by_send_time: Pair) -> None:
    pair = by_send_time
    pair.run(3600 + 120)
    pair.restart()
    assert pair.tracker("short").filters_by_send_time
    pair.run(600)
    pair.clients["short"].minutes.clear()
    pair.run(600)
    assert set(pair.clients["short"].minutes) == {360}


def test_delivery_outcomes_are_the_same_even_before_the_fallback(by_send_time: Pair) -> None:
    """Short windows cover undelivered_after: every message is watched until its judgement,
    whatever ?minutes= counts from."""
    pair = by_send_time
    pair.run(3600 - 120)
    assert pair.tracker("short").outcomes == pair.tracker("full").outcomes
