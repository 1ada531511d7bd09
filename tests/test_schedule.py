"""The request schedule of one instance, on an injected clock: due times, spacing, back-off
and how a reload re-bases them."""

from __future__ import annotations

import random

import pytest

from exporter.schedule import (
    MIN_SPACING,
    QUOTA_BACKOFF,
    RATE_LIMIT_BACKOFF_CAP,
    RETRY_AFTER_CAP,
    InstanceSchedule,
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def schedule(clock: FakeClock, *collectors: str, interval: float = 60.0) -> InstanceSchedule:
    return InstanceSchedule(collectors or ("outgoing",), interval, clock, random.Random(7))


def request(plan: InstanceSchedule, result: str = "success", retry_after: float | None = None) -> str:  # fmt: skip
    """Make the request that is due now; fail the test when none is."""
    name = plan.due()
    assert name is not None, "nothing is due"
    plan.finish(plan.start(name), result, retry_after)
    return name


def test_every_collector_is_due_at_the_start(clock: FakeClock) -> None:
    assert schedule(clock).due() == "outgoing"
    assert schedule(clock).delay() == 0.0


def test_ties_go_in_the_listed_order(clock: FakeClock) -> None:
    plan = schedule(clock, "outgoing", "state", "queue")
    order = []
    for _ in range(3):
        order.append(request(plan))
        clock.advance(MIN_SPACING)
    assert order == ["outgoing", "state", "queue"]


def test_requests_of_an_instance_are_spaced(clock: FakeClock) -> None:
    plan = schedule(clock, "outgoing", "state")
    request(plan)
    assert plan.due() is None
    assert plan.delay() == pytest.approx(MIN_SPACING)
    clock.advance(MIN_SPACING)
    assert plan.due() == "state"


def test_the_next_request_is_one_interval_later_with_a_little_jitter(clock: FakeClock) -> None:
    plan = schedule(clock, interval=60)
    request(plan)
    assert 60 * 0.97 <= plan.delay() <= 60 * 1.03


def test_the_interval_counts_from_the_start_of_the_request(clock: FakeClock) -> None:
    plan = schedule(clock, interval=60)
    ticket = plan.start("outgoing")
    clock.advance(8)  # a slow answer
    plan.finish(ticket, "success")
    assert 60 * 0.97 - 8 <= plan.delay() <= 60 * 1.03 - 8


def test_a_429_with_retry_after_waits_that_long(clock: FakeClock) -> None:
    plan = schedule(clock, interval=10)
    request(plan, "http_429", retry_after=120)
    assert plan.delay() == pytest.approx(120)


def test_retry_after_is_capped_and_never_shorter_than_the_interval(clock: FakeClock) -> None:
    plan = schedule(clock, interval=10)
    request(plan, "http_429", retry_after=10**9)
    assert plan.delay() == pytest.approx(RETRY_AFTER_CAP)
    clock.advance(RETRY_AFTER_CAP)
    request(plan, "http_429", retry_after=0)
    assert plan.delay() == pytest.approx(10)


def test_429s_without_retry_after_back_off_exponentially_with_jitter(clock: FakeClock) -> None:
    plan = schedule(clock, interval=10)
    for intervals in (2, 4, 8, 16, 32):
        request(plan, "http_429")
        assert 0.8 * intervals * 10 <= plan.delay() <= 1.2 * intervals * 10
        clock.advance(plan.delay())


def test_the_429_back_off_is_capped(clock: FakeClock) -> None:
    plan = schedule(clock, interval=10)
    for _ in range(12):
        request(plan, "http_429")
        clock.advance(plan.delay())
    request(plan, "http_429")
    assert plan.delay() <= 1.2 * RATE_LIMIT_BACKOFF_CAP


def test_a_success_ends_the_429_back_off(clock: FakeClock) -> None:
    plan = schedule(clock, interval=10)
    request(plan, "http_429")
    clock.advance(plan.delay())
    request(plan, "success")
    assert plan.delay() <= 10 * 1.03
    clock.advance(plan.delay())
    request(plan, "http_429")
    assert plan.delay() <= 1.2 * 20  # counting starts again at two intervals


def test_a_466_waits_an_hour(clock: FakeClock) -> None:
    plan = schedule(clock, interval=60)
    request(plan, "http_466")
    assert plan.delay() == pytest.approx(QUOTA_BACKOFF)


def test_a_466_waits_the_interval_when_it_is_longer_than_an_hour(clock: FakeClock) -> None:
    plan = schedule(clock, interval=7200)
    request(plan, "http_466")
    assert plan.delay() == pytest.approx(7200)


def test_a_back_off_delays_only_the_collector_that_got_it(clock: FakeClock) -> None:
    plan = schedule(clock, "outgoing", "state", interval=60)
    request(plan, "http_466")
    clock.advance(MIN_SPACING)
    request(plan, "success")
    clock.advance(70)
    assert plan.due() == "state"


def test_a_reload_that_changes_how_requests_look_makes_everything_due(clock: FakeClock) -> None:
    plan = schedule(clock, "outgoing", "state", interval=3600)
    request(plan, "http_466")
    clock.advance(MIN_SPACING)
    request(plan)
    clock.advance(30)
    assert plan.reconfigure(("outgoing", "state"), 60, retarget=True) is True
    assert plan.delay() == 0.0
    assert request(plan) == "outgoing"


def test_a_reload_never_breaks_the_spacing(clock: FakeClock) -> None:
    plan = schedule(clock, interval=3600)
    request(plan)
    clock.advance(0.3)
    plan.reconfigure(("outgoing",), 60, retarget=True)
    assert plan.delay() == pytest.approx(MIN_SPACING - 0.3)


def test_a_reload_that_changes_nothing_keeps_the_due_times(clock: FakeClock) -> None:
    plan = schedule(clock, interval=60)
    request(plan)
    before = plan.delay()
    assert plan.reconfigure(("outgoing",), 60, retarget=False) is False
    assert plan.delay() == before


def test_a_collector_added_by_a_reload_is_due_at_once(clock: FakeClock) -> None:
    plan = schedule(clock, "outgoing", interval=60)
    request(plan)
    clock.advance(MIN_SPACING)
    assert plan.reconfigure(("outgoing", "queue"), 60, retarget=False) is True
    assert plan.due() == "queue"


def test_a_collector_removed_by_a_reload_is_never_due_again(clock: FakeClock) -> None:
    plan = schedule(clock, "outgoing", "state", interval=60)
    plan.reconfigure(("outgoing",), 60, retarget=False)
    request(plan)
    clock.advance(600)
    assert plan.due() == "outgoing"


def test_a_request_under_way_during_a_reload_does_not_undo_it(clock: FakeClock) -> None:
    """The request that was in flight used the old settings; the new ones go next."""
    plan = schedule(clock, interval=60)
    ticket = plan.start("outgoing")
    clock.advance(2)
    plan.reconfigure(("outgoing",), 60, retarget=True)
    plan.finish(ticket, "http_466")
    assert plan.due() == "outgoing"


def test_first_polls_are_spread_over_at_most_two_seconds(clock: FakeClock) -> None:
    plan = schedule(clock)
    delays = [plan.first_delay() for _ in range(50)]
    assert all(0 <= d <= 2 for d in delays) and len(set(delays)) > 1
    assert schedule(clock, interval=1).first_delay() <= 1
