"""One instance's schedule, driven by an injected monotonic clock and a fake client: when a
request goes out, how far apart, and how a reload moves it."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from exporter.app import Exporter
from exporter.client import Fetch
from exporter.config import Config, InstanceConfig, parse_config
from exporter.poller import InstancePoller
from exporter.schedule import MIN_SPACING, QUOTA_BACKOFF
from exporter.scheduler import Scheduler

TOKEN = "a" * 50
NEW_TOKEN = "b" * 50


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Request:
    url: str
    params: dict[str, str]
    token: str
    at: float


@dataclass
class FakeClient:
    """Answers every request with ``answer`` (success and an empty journal by default);
    ``during`` runs while a request is "in flight", before it is answered."""

    clock: FakeClock
    answer: Fetch = field(default_factory=lambda: Fetch("success", status=200, body=b"[]"))
    during: Callable[[], None] | None = None
    requests: list[Request] = field(default_factory=list)

    def get(self, url: str, params: dict[str, str], timeout: float, secret: str) -> Fetch:
        self.requests.append(Request(url, params, secret, self.clock.now))
        if self.during is not None:
            during, self.during = self.during, None
            during()
        return self.answer


def instance_config(**settings: Any) -> InstanceConfig:
    entry = {"name": "sales-bot", "id_instance": "1101000001", "api_token": TOKEN, **settings}
    return parse_config({"instances": [entry]}, "test", {}).instances[0]


def delay_of(poller: InstancePoller, clock: FakeClock) -> float:
    """Seconds until the poller's next request may and should start."""
    return max(0.0, poller.next_time() - clock.now)


def poll(poller: InstancePoller, client: FakeClient, clock: FakeClock) -> float:
    """One run of the poller; the seconds until its next run."""
    return max(0.0, poller.poll(client) - clock.now)  # type: ignore[arg-type]


def make_poller(clock: FakeClock, **settings: Any) -> InstancePoller:
    return InstancePoller(
        instance_config(**settings), baseline_before=None, clock=lambda: 1.8e9,
        rng=random.Random(1), monotonic=clock,
    )  # fmt: skip


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def test_the_first_poll_goes_out_at_once(clock: FakeClock) -> None:
    client = FakeClient(clock)
    poller = make_poller(clock, poll_interval="1h")
    poll(poller, client, clock)
    assert [r.at for r in client.requests] == [clock.now]


def test_the_next_poll_is_due_one_interval_later(clock: FakeClock) -> None:
    poller = make_poller(clock, poll_interval="1m")
    delay = poll(poller, FakeClient(clock), clock)
    assert 60 * 0.97 <= delay <= 60 * 1.03  # with a little jitter


def test_requests_of_several_collectors_are_spaced(clock: FakeClock) -> None:
    client = FakeClient(clock, answer=Fetch("success", status=200, body=b'{"count": 0}'))
    poller = make_poller(clock, poll_interval="1m", collect=["outgoing", "queue"])
    first = poll(poller, client, clock)
    assert first == pytest.approx(MIN_SPACING)
    clock.advance(0.5)
    assert poll(poller, client, clock) == pytest.approx(MIN_SPACING - 0.5)
    assert len(client.requests) == 1
    clock.advance(MIN_SPACING - 0.5)
    poll(poller, client, clock)
    assert [r.url.split("/")[-2] for r in client.requests] == [
        "lastOutgoingMessages", "getMessagesCount",
    ]  # fmt: skip


def test_a_reload_to_a_shorter_poll_interval_polls_at_once(clock: FakeClock) -> None:
    client = FakeClient(clock)
    poller = make_poller(clock, poll_interval="1h")
    poll(poller, client, clock)
    clock.advance(30)
    assert poller.configure(instance_config(poll_interval="1m")) is True
    assert delay_of(poller, clock) == 0.0
    poll(poller, client, clock)
    assert len(client.requests) == 2


def test_a_fixed_token_is_polled_at_once_after_a_quota_back_off(clock: FakeClock) -> None:
    client = FakeClient(clock, answer=Fetch("http_466", status=466, error="HTTP 466"))
    poller = make_poller(clock)
    assert poll(poller, client, clock) >= QUOTA_BACKOFF
    clock.advance(5)
    poller.configure(instance_config(api_token=NEW_TOKEN))
    assert delay_of(poller, clock) == 0.0
    poll(poller, client, clock)
    assert [r.token for r in client.requests] == [TOKEN, NEW_TOKEN]


def test_a_changed_api_url_is_polled_at_once(clock: FakeClock) -> None:
    poller = make_poller(clock)
    poll(poller, FakeClient(clock), clock)
    clock.advance(5)
    assert poller.configure(instance_config(api_url="https://1101.api.green-api.com")) is True
    assert delay_of(poller, clock) == 0.0


def test_a_reload_that_changes_nothing_keeps_the_schedule(clock: FakeClock) -> None:
    poller = make_poller(clock, poll_interval="1m")
    delay = poll(poller, FakeClient(clock), clock)
    clock.advance(10)
    assert poller.configure(instance_config(poll_interval="1m")) is False
    assert delay_of(poller, clock) == pytest.approx(delay - 10)


def test_a_reload_never_makes_two_requests_closer_than_the_spacing(clock: FakeClock) -> None:
    poller = make_poller(clock, poll_interval="1h")
    poll(poller, FakeClient(clock), clock)
    clock.advance(0.3)
    poller.configure(instance_config(poll_interval="1m"))
    assert delay_of(poller, clock) == pytest.approx(MIN_SPACING - 0.3)


def test_a_reload_during_a_request_is_not_undone_by_that_requests_back_off(
    clock: FakeClock,
) -> None:
    """The request in flight used the old token and got 466; the new token goes next."""

    def reload() -> None:
        clock.advance(2)
        poller.configure(instance_config(api_token=NEW_TOKEN))

    client = FakeClient(clock, answer=Fetch("http_466", status=466, error="HTTP 466"),
                        during=reload)  # fmt: skip
    poller = make_poller(clock)
    delay = poll(poller, client, clock)
    assert delay == 0.0  # the request started 2 s ago: spacing allows the next one now
    client.answer = Fetch("success", status=200, body=b"[]")
    poll(poller, client, clock)
    assert [r.token for r in client.requests] == [TOKEN, NEW_TOKEN]


def test_a_rate_limited_collector_honours_retry_after(clock: FakeClock) -> None:
    client = FakeClient(clock, answer=Fetch("http_429", status=429, retry_after=120.0))
    poller = make_poller(clock, poll_interval="10s")
    assert poll(poller, client, clock) == pytest.approx(120.0)


def test_a_rate_limited_collector_backs_off_exponentially_without_retry_after(
    clock: FakeClock,
) -> None:
    client = FakeClient(clock, answer=Fetch("http_429", status=429))
    poller = make_poller(clock, poll_interval="10s")
    delays = []
    for _ in range(3):
        delays.append(poll(poller, client, clock))
        clock.advance(delays[-1])
    for delay, intervals in zip(delays, (2, 4, 8), strict=True):  # with ±20 % jitter
        assert 0.8 * intervals * 10 <= delay <= 1.2 * intervals * 10


# --- the scheduler ---------------------------------------------------------------------------


def test_a_key_due_now_runs_while_another_keys_poll_hangs() -> None:
    release = threading.Event()
    ran = threading.Event()

    def poll(key: str) -> float:
        if key == "old":
            release.wait(10)
        else:
            ran.set()
        return 60.0

    scheduler = Scheduler(2, poll, clock=FakeClock())
    scheduler.start()
    try:
        scheduler.schedule("old", 0.0)
        scheduler.schedule("new", 0.0)
        assert ran.wait(5)
    finally:
        release.set()
        scheduler.stop()


# --- reload through the exporter -------------------------------------------------------------


class BlockingClient:
    """Hangs every request to ``blocked_id`` until released; answers others at once."""

    def __init__(self, blocked_id: str) -> None:
        self.blocked_id = blocked_id
        self.release = threading.Event()
        self.requested: list[str] = []
        self.new_id_requested = threading.Event()

    def get(self, url: str, params: dict[str, str], timeout: float, secret: str) -> Fetch:
        self.requested.append(url)
        if f"waInstance{self.blocked_id}/" in url:
            self.release.wait(10)
            return Fetch("http_466", status=466, error="HTTP 466")
        self.new_id_requested.set()
        return Fetch("success", status=200, body=b"[]")

    def close(self) -> None:
        self.release.set()


def test_a_repointed_name_is_polled_at_once_while_the_old_instance_hangs() -> None:
    documents = [
        {"instances": [{"name": "sales-bot", "id_instance": "1101000001", "api_token": TOKEN}]},
        {"instances": [{"name": "sales-bot", "id_instance": "1101000002", "api_token": TOKEN}]},
    ]

    def load() -> Config:
        return parse_config(documents[0], "test", {})

    client = BlockingClient("1101000001")
    exporter = Exporter(load, client=client)  # type: ignore[arg-type]
    exporter.start()
    try:
        started = threading.Event()
        for _ in range(50):  # the first poll is spread over up to two seconds
            if client.requested:
                started.set()
                break
            started.wait(0.1)
        assert client.requested, "the first poll did not start"
        documents.pop(0)
        exporter.reload()
        assert client.new_id_requested.wait(3), "the repointed name waited on the old instance"
        assert [i.id_instance for i in exporter.snapshot().instances] == ["1101000002"]
    finally:
        client.release.set()
        exporter.stop()
