"""State across polls: counting distinct messages, statuses reached, lags and forgetting."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.journal import journal_from_elements
from exporter.tracker import (
    LAG_BUCKETS,
    OUTCOMES,
    IncomingSnapshot,
    IncomingTracker,
    MessageTracker,
    TrackerSnapshot,
)

START = 1_800_000_000.0
DAY = 86400.0


def msg(
    id_: str, ts: float, status: str = "sent", chat: str = "1@c.us", **extra: object
) -> dict[str, object]:
    element: dict[str, object] = {
        "idMessage": id_, "timestamp": int(ts), "statusMessage": status, "chatId": chat,
        "typeMessage": "textMessage", "sendByApi": True,
    }  # fmt: skip
    element.update(extra)
    return element


def observe(tracker: MessageTracker, now: float, *elements: dict[str, object]) -> TrackerSnapshot:
    return tracker.observe(journal_from_elements(list(elements)), now, max_messages=5000)


def new_tracker(baseline: float | None = START) -> MessageTracker:
    return MessageTracker(window=DAY, undelivered_after=300, baseline_before=baseline)


def lag_observations(histogram_buckets: tuple[int, ...], bound: float) -> int:
    return histogram_buckets[LAG_BUCKETS.index(bound)]


def test_a_new_message_is_counted_once_across_polls() -> None:
    tracker = new_tracker()
    observe(tracker, START + 10, msg("a", START + 5))
    snap = observe(tracker, START + 70, msg("a", START + 5))
    assert snap.messages_total == {("textMessage", True): 1}
    assert snap.status_reached["sent"] == 1


def test_messages_older_than_start_at_the_first_poll_are_a_baseline() -> None:
    tracker = new_tracker()
    snap = observe(tracker, START + 10, msg("old", START - 3600, "read"), msg("new", START + 5))
    assert snap.messages_total == {("textMessage", True): 1}
    assert dict(snap.status_reached) == {"sent": 1, "delivered": 0, "read": 0}
    assert snap.tracked == 2


def test_the_baseline_applies_to_the_first_poll_only() -> None:
    tracker = new_tracker()
    observe(tracker, START + 10, msg("a", START + 5))
    # Appears late (the journal lags up to 2 minutes) with an older timestamp: still new.
    snap = observe(tracker, START + 70, msg("a", START + 5), msg("late", START - 60))
    assert snap.messages_total[("textMessage", True)] == 2


def test_without_a_baseline_everything_in_the_first_poll_counts() -> None:
    tracker = new_tracker(baseline=None)
    snap = observe(tracker, START + 10, msg("old", START - 3600, "read"))
    assert dict(snap.status_reached) == {"sent": 1, "delivered": 1, "read": 1}


def test_a_baseline_message_that_moves_on_after_start_counts_the_move() -> None:
    tracker = new_tracker()
    observe(tracker, START + 10, msg("old", START - 30, "sent"))
    snap = observe(tracker, START + 70, msg("old", START + 60, "delivered"))
    assert dict(snap.status_reached) == {"sent": 0, "delivered": 1, "read": 0}
    assert snap.delivery_lag.count == 1 and snap.delivery_lag.total == 90


def test_a_message_first_seen_read_counts_sent_delivered_and_read_without_lag() -> None:
    tracker = new_tracker()
    snap = observe(tracker, START + 10, msg("a", START + 5, "read"))
    assert dict(snap.status_reached) == {"sent": 1, "delivered": 1, "read": 1}
    assert snap.delivery_lag.count == 0 and snap.read_lag.count == 0


def test_sent_then_read_counts_delivered_and_read_and_both_lags() -> None:
    tracker = new_tracker()
    observe(tracker, START + 10, msg("a", START + 5, "sent"))
    snap = observe(tracker, START + 70, msg("a", START + 45, "read"))
    assert dict(snap.status_reached) == {"sent": 1, "delivered": 1, "read": 1}
    assert (snap.delivery_lag.count, snap.delivery_lag.total) == (1, 40)
    assert (snap.read_lag.count, snap.read_lag.total) == (1, 40)


def test_delivery_lag_is_measured_between_the_apis_timestamps() -> None:
    tracker = new_tracker()
    observe(tracker, START + 10, msg("a", START + 5, "sent"))
    observe(tracker, START + 20, msg("a", START + 8, "delivered"))
    snap = observe(tracker, START + 200, msg("a", START + 125, "read"))
    assert snap.delivery_lag.total == 3
    assert lag_observations(snap.delivery_lag.buckets, 5) == 1
    assert lag_observations(snap.delivery_lag.buckets, 2) == 0
    assert snap.read_lag.total == 120
    assert lag_observations(snap.read_lag.buckets, 120) == 1


def test_the_lag_starts_at_the_first_pending_or_sent_timestamp() -> None:
    tracker = new_tracker()
    observe(tracker, START + 10, msg("a", START + 5, "pending"))
    observe(tracker, START + 20, msg("a", START + 9, "sent"))
    snap = observe(tracker, START + 30, msg("a", START + 25, "delivered"))
    assert snap.delivery_lag.total == 20
    assert dict(snap.status_reached) == {"pending": 1, "sent": 1, "delivered": 1, "read": 0}


def test_a_negative_lag_is_not_recorded() -> None:
    tracker = new_tracker()
    observe(tracker, START + 10, msg("a", START + 50, "sent"))
    snap = observe(tracker, START + 70, msg("a", START + 20, "delivered"))
    assert snap.delivery_lag.count == 0
    assert snap.status_reached["delivered"] == 1


def test_a_lag_whose_timestamp_did_not_move_is_measured_to_the_poll_that_saw_it() -> None:
    """Some products give the send time as the timestamp: a lag of 0 would be a lie."""
    tracker = new_tracker()
    observe(tracker, START + 10, msg("a", START + 5, "sent"))
    snap = observe(tracker, START + 70, msg("a", START + 5, "delivered"))
    assert (snap.delivery_lag.count, snap.delivery_lag.total) == (1, 65)


def test_a_read_whose_timestamp_did_not_move_is_measured_to_the_poll_that_saw_it() -> None:
    tracker = new_tracker()
    observe(tracker, START + 10, msg("a", START + 5, "sent"))
    observe(tracker, START + 20, msg("a", START + 8, "delivered"))
    snap = observe(tracker, START + 90, msg("a", START + 8, "read"))
    assert (snap.read_lag.count, snap.read_lag.total) == (1, 85)
    assert (snap.delivery_lag.count, snap.delivery_lag.total) == (1, 3)


# --- delivery outcomes ------------------------------------------------------------------------


def outcomes(snap: TrackerSnapshot) -> dict[str, int]:
    return {k: v for k, v in snap.outcomes.items() if v}


def test_every_outcome_exists_at_zero_before_any_message() -> None:
    assert dict(new_tracker().snapshot().outcomes) == dict.fromkeys(OUTCOMES, 0)


def test_a_message_is_not_judged_before_undelivered_after_has_passed() -> None:
    tracker = new_tracker()
    snap = observe(tracker, START + 100, msg("a", START + 10, "sent"))
    assert outcomes(snap) == {}
    snap = observe(tracker, START + 309, msg("a", START + 10, "sent"))
    assert outcomes(snap) == {}


def test_a_message_delivered_within_undelivered_after_is_in_time() -> None:
    tracker = new_tracker()
    observe(tracker, START + 20, msg("a", START + 10, "sent"))
    observe(tracker, START + 80, msg("a", START + 70, "delivered"))
    snap = observe(tracker, START + 320, msg("a", START + 70, "delivered"))
    assert outcomes(snap) == {"in_time": 1}


def test_a_message_still_sent_when_judged_is_late() -> None:
    tracker = new_tracker()
    observe(tracker, START + 20, msg("a", START + 10, "sent"))
    snap = observe(tracker, START + 320, msg("a", START + 10, "sent"))
    assert outcomes(snap) == {"late": 1}


def test_a_message_delivered_after_its_judgement_stays_late() -> None:
    tracker = new_tracker()
    observe(tracker, START + 20, msg("a", START + 10, "sent"))
    observe(tracker, START + 320, msg("a", START + 10, "sent"))
    snap = observe(tracker, START + 900, msg("a", START + 850, "read"))
    assert outcomes(snap) == {"late": 1}


def test_a_delivery_seen_by_a_poll_after_the_deadline_is_judged_by_its_timestamp() -> None:
    """The journal says when it was delivered: a poll that comes late changes nothing."""
    tracker = new_tracker()
    observe(tracker, START + 20, msg("a", START + 10, "sent"))
    snap = observe(tracker, START + 700, msg("a", START + 200, "delivered"))
    assert outcomes(snap) == {"in_time": 1}
    tracker = new_tracker()
    observe(tracker, START + 20, msg("b", START + 10, "sent"))
    snap = observe(tracker, START + 700, msg("b", START + 400, "delivered"))
    assert outcomes(snap) == {"late": 1}


def test_a_delivery_whose_timestamp_did_not_move_is_dated_by_the_poll_that_saw_it() -> None:
    tracker = new_tracker()
    observe(tracker, START + 20, msg("a", START + 10, "sent"))
    observe(tracker, START + 100, msg("a", START + 10, "delivered"))
    snap = observe(tracker, START + 400, msg("a", START + 10, "delivered"))
    assert outcomes(snap) == {"in_time": 1}
    tracker = new_tracker()
    observe(tracker, START + 20, msg("b", START + 10, "sent"))
    snap = observe(tracker, START + 700, msg("b", START + 10, "delivered"))
    assert outcomes(snap) == {"late": 1}


def test_a_message_first_seen_delivered_is_in_time() -> None:
    snap = observe(new_tracker(), START + 400, msg("a", START + 30, "read"))
    assert outcomes(snap) == {"in_time": 1}


def test_failure_statuses_are_failed() -> None:
    tracker = new_tracker()
    elements = [msg(s, START + 10, s) for s in ("noAccount", "notInGroup", "yellowCard")]
    snap = observe(tracker, START + 400, *elements)
    assert outcomes(snap) == {"failed": 3}


def test_a_journal_without_statuses_gives_no_status_outcomes() -> None:
    tracker = new_tracker()
    observe(tracker, START + 20, msg("a", START + 10, ""), msg("b", START + 10, "surprise"))
    snap = observe(tracker, START + 400, msg("a", START + 10, ""), msg("b", START + 10, "surprise"))
    assert outcomes(snap) == {"no_status": 2}


def test_a_message_without_status_that_is_delivered_in_time_is_in_time() -> None:
    tracker = new_tracker()
    observe(tracker, START + 20, msg("a", START + 10, ""))
    snap = observe(tracker, START + 400, msg("a", START + 60, "delivered"))
    assert outcomes(snap) == {"in_time": 1}


def test_each_message_is_judged_exactly_once() -> None:
    tracker = new_tracker()
    observe(tracker, START + 20, msg("a", START + 10, "sent"))
    for minute in range(1, 30):
        snap = observe(tracker, START + 60 * minute, msg("a", START + 10, "sent"))
    assert outcomes(snap) == {"late": 1}


def test_baseline_messages_are_not_judged() -> None:
    tracker = new_tracker()
    observe(tracker, START + 10, msg("old", START - 60, "sent"))
    snap = observe(tracker, START + 600, msg("old", START - 60, "sent"))
    assert outcomes(snap) == {}


def test_a_message_missing_from_the_answer_is_judged_on_what_was_last_seen() -> None:
    tracker = new_tracker()
    observe(tracker, START + 20, msg("a", START + 10, "sent"), msg("b", START + 10, "sent"))
    observe(tracker, START + 80, msg("a", START + 70, "delivered"), msg("b", START + 10, "sent"))
    snap = observe(tracker, START + 400)  # the journal lost both for one answer
    assert outcomes(snap) == {"in_time": 1, "late": 1}


def test_unjudged_messages_survive_export_and_restore() -> None:
    tracker = new_tracker()
    observe(tracker, START + 20, msg("a", START + 10, "sent"), msg("b", START + 10, "sent"))
    observe(tracker, START + 80, msg("a", START + 70, "delivered"))
    restored = new_tracker(baseline=None)
    restored.restore(json.loads(json.dumps(tracker.export())))
    snap = observe(restored, START + 400, msg("b", START + 10, "sent"))
    assert outcomes(snap) == {"in_time": 1, "late": 1}


def test_state_without_outcomes_restores_them_at_zero() -> None:
    """A state file written before delivery outcomes existed."""
    tracker = new_tracker()
    observe(tracker, START + 20, msg("a", START + 10, "sent"))
    saved = tracker.export()
    del saved["outcomes"], saved["unjudged"]
    restored = new_tracker(baseline=None)
    restored.restore(saved)
    assert dict(restored.snapshot().outcomes) == dict.fromkeys(OUTCOMES, 0)


def test_other_statuses_count_only_themselves() -> None:
    tracker = new_tracker()
    snap = observe(tracker, START + 10, msg("a", START + 5, "noAccount"))
    assert dict(snap.status_reached) == {"sent": 0, "delivered": 0, "read": 0, "noAccount": 1}


def test_going_back_to_an_earlier_status_counts_nothing() -> None:
    tracker = new_tracker()
    observe(tracker, START + 10, msg("a", START + 5, "read"))
    snap = observe(tracker, START + 20, msg("a", START + 6, "sent"))
    assert dict(snap.status_reached) == {"sent": 1, "delivered": 1, "read": 1}


def test_the_same_id_in_two_chats_counts_twice() -> None:
    tracker = new_tracker()
    snap = observe(
        tracker, START + 10, msg("a", START + 5, chat="1@c.us"), msg("a", START + 5, chat="2@c.us")
    )
    assert snap.messages_total[("textMessage", True)] == 2


def test_a_forwarded_message_counts_once() -> None:
    tracker = new_tracker()
    observe(tracker, START + 10, msg("a", START + 5, isForwarded=True))
    snap = observe(tracker, START + 20, msg("a", START + 6, "delivered", isForwarded=True))
    assert snap.forwarded_total == 1


def test_messages_total_is_split_by_type_and_send_by_api() -> None:
    tracker = new_tracker()
    snap = observe(
        tracker, START + 10,
        msg("a", START + 5), msg("b", START + 5, sendByApi=False), msg("c", START + 5, typeMessage="imageMessage"),
    )  # fmt: skip
    assert dict(snap.messages_total) == {
        ("textMessage", True): 1, ("textMessage", False): 1, ("imageMessage", True): 1,
    }  # fmt: skip


def test_window_counts_by_status_and_type() -> None:
    tracker = new_tracker()
    snap = observe(
        tracker, START + 10,
        msg("a", START + 5, "read"), msg("b", START + 5, "read"), msg("c", START + 5, "sent", typeMessage="imageMessage"),
    )  # fmt: skip
    assert snap.window is not None
    assert dict(snap.window.by_status_type) == {
        ("read", "textMessage"): 2,
        ("sent", "imageMessage"): 1,
    }


def test_a_status_type_pair_that_leaves_the_window_drops_to_zero() -> None:
    tracker = new_tracker()
    observe(tracker, START + 10, msg("a", START + 5, "sent"))
    snap = observe(tracker, START + 20, msg("a", START + 15, "delivered"))
    assert snap.window is not None
    assert dict(snap.window.by_status_type) == {
        ("sent", "textMessage"): 0,
        ("delivered", "textMessage"): 1,
    }


def test_undelivered_are_sent_or_pending_older_than_the_threshold() -> None:
    tracker = new_tracker()
    now = START + 1000
    snap = observe(
        tracker, now,
        msg("old-sent", now - 600, "sent"), msg("old-pending", now - 400, "pending"),
        msg("old-unknown", now - 900, ""), msg("fresh-sent", now - 10, "sent"),
        msg("old-delivered", now - 900, "delivered"), msg("future", now + 5000, "sent"),
    )  # fmt: skip
    assert snap.window is not None
    assert snap.window.undelivered == 2  # an unknown status is nothing to judge
    assert snap.window.oldest_undelivered_timestamp == now - 600


def test_no_undelivered_message_means_no_oldest_timestamp() -> None:
    snap = observe(new_tracker(), START + 10, msg("a", START + 5, "read"))
    assert snap.window is not None
    assert (snap.window.undelivered, snap.window.oldest_undelivered_timestamp) == (0, None)


def test_window_truncated_when_the_response_reaches_max_messages() -> None:
    tracker = new_tracker()
    journal = journal_from_elements([msg(str(i), START) for i in range(3)])
    assert tracker.observe(journal, START + 1, max_messages=3).window.truncated  # type: ignore[union-attr]
    assert not tracker.observe(journal, START + 2, max_messages=4).window.truncated  # type: ignore[union-attr]


def test_window_gauges_cover_send_by_api_forwarded_newest_and_invalid() -> None:
    tracker = new_tracker()
    journal = journal_from_elements(
        [
            msg("a", START + 5, sendByApi=False, isForwarded=True),
            msg("b", START + 9),
            "junk",
            {"idMessage": 3},
        ]
    )
    window = tracker.observe(journal, START + 10, 5000).window
    assert window is not None
    assert (window.messages, window.send_by_api, window.forwarded) == (2, 1, 1)
    assert (window.last_message_timestamp, window.invalid) == (START + 9, 2)


def test_a_message_missing_from_one_response_is_not_counted_again() -> None:
    tracker = new_tracker()
    observe(tracker, START + 10, msg("a", START + 5))
    observe(tracker, START + 70)
    snap = observe(tracker, START + 130, msg("a", START + 5))
    assert snap.messages_total[("textMessage", True)] == 1


def test_messages_older_than_the_window_are_forgotten() -> None:
    tracker = new_tracker()
    observe(tracker, START + 10, msg("a", START + 5), msg("b", START + 6))
    snap = observe(tracker, START + DAY + 7, msg("b", START + 6))
    assert snap.tracked == 1


def test_a_message_dated_far_in_the_future_is_forgotten_once_missing() -> None:
    tracker = new_tracker()
    observe(tracker, START + 10, msg("f", START + 10 * DAY))
    assert observe(tracker, START + 20, msg("f", START + 10 * DAY)).tracked == 1
    assert observe(tracker, START + 30).tracked == 0


def test_a_message_dated_a_little_ahead_is_kept_while_missing() -> None:
    tracker = new_tracker()
    observe(tracker, START + 10, msg("f", START + 3600))
    assert observe(tracker, START + 20).tracked == 1


responses = st.lists(
    st.lists(
        st.fixed_dictionaries(
            {
                "idMessage": st.sampled_from(["a", "b", "c", "d"]),
                "chatId": st.sampled_from(["1@c.us", "2@c.us"]),
                "timestamp": st.integers(int(START - DAY), int(START + DAY)),
                "statusMessage": st.sampled_from(
                    ["", "pending", "sent", "delivered", "read", "noAccount", "x"]
                ),
                "isForwarded": st.booleans(),
            }
        ),
        max_size=8,
    ),
    max_size=8,
)


@settings(max_examples=200, deadline=None)
@given(responses)
def test_counters_never_decrease_and_gauges_never_go_negative(
    polls: list[list[dict[str, object]]],
) -> None:
    tracker = new_tracker()
    previous = tracker.snapshot()
    for index, elements in enumerate(polls):
        snap = observe(tracker, START + 60 * index, *elements)
        for key, value in previous.messages_total.items():
            assert snap.messages_total[key] >= value
        for status, reached in previous.status_reached.items():
            assert snap.status_reached[status] >= reached
        assert snap.forwarded_total >= previous.forwarded_total
        assert snap.delivery_lag.count >= previous.delivery_lag.count
        assert all(
            b >= a
            for a, b in zip(previous.delivery_lag.buckets, snap.delivery_lag.buckets, strict=True)
        )
        assert list(snap.delivery_lag.buckets) == sorted(snap.delivery_lag.buckets)
        assert snap.window is not None
        assert snap.window.undelivered >= 0
        for outcome, count in previous.outcomes.items():
            assert snap.outcomes[outcome] >= count
        assert sum(snap.outcomes.values()) <= sum(snap.messages_total.values())
        assert all(v >= 0 for v in snap.window.by_status_type.values())
        previous = snap


# --- incoming ---------------------------------------------------------------------------------

T0 = 1_800_000_000


def received(id_message: str, timestamp: int, kind: str = "textMessage", chat: str = "1@c.us") -> dict[str, object]:  # fmt: skip
    return {"idMessage": id_message, "chatId": chat, "timestamp": timestamp, "typeMessage": kind}


def incoming_poll(tracker: IncomingTracker, now: int, *elements: dict[str, object]) -> IncomingSnapshot:  # fmt: skip
    return tracker.observe(journal_from_elements(list(elements)), now)


def test_an_incoming_message_is_counted_once_by_type_across_polls() -> None:
    tracker = IncomingTracker(window=86400, baseline_before=None)
    incoming_poll(tracker, T0, received("a", T0 - 5), received("b", T0 - 4, "imageMessage"))
    snap = incoming_poll(
        tracker, T0 + 60, received("a", T0 - 5), received("b", T0 - 4, "imageMessage")
    )
    assert dict(snap.messages_total) == {"textMessage": 1, "imageMessage": 1}


def test_incoming_messages_older_than_start_at_the_first_poll_are_a_baseline() -> None:
    tracker = IncomingTracker(window=86400, baseline_before=T0)
    snap = incoming_poll(tracker, T0, received("old", T0 - 60), received("new", T0 + 1))
    assert dict(snap.messages_total) == {"textMessage": 1}
    assert dict(snap.window or {}) == {"textMessage": 2}


def test_the_incoming_window_keeps_a_type_that_left_it_at_zero() -> None:
    tracker = IncomingTracker(window=86400, baseline_before=None)
    incoming_poll(tracker, T0, received("a", T0, "audioMessage"))
    snap = incoming_poll(tracker, T0 + 60, received("b", T0 + 30))
    assert dict(snap.window or {}) == {"audioMessage": 0, "textMessage": 1}
    assert snap.last_message_timestamp == T0 + 30


def test_the_same_incoming_id_in_two_chats_counts_twice() -> None:
    tracker = IncomingTracker(window=86400, baseline_before=None)
    snap = incoming_poll(
        tracker, T0, received("a", T0, chat="1@c.us"), received("a", T0, chat="2@c.us")
    )
    assert dict(snap.messages_total) == {"textMessage": 2}


def test_an_incoming_message_that_left_the_window_is_forgotten() -> None:
    tracker = IncomingTracker(window=3600, baseline_before=None)
    incoming_poll(tracker, T0, received("a", T0))
    assert incoming_poll(tracker, T0 + 60).tracked == 1  # missing once: kept while in the window
    assert incoming_poll(tracker, T0 + 3601).tracked == 0


def test_incoming_state_survives_export_and_restore() -> None:
    tracker = IncomingTracker(window=86400, baseline_before=None)
    incoming_poll(tracker, T0, received("a", T0), received("b", T0, "imageMessage"))
    restored = IncomingTracker(window=86400, baseline_before=T0 + 10**6)
    restored.restore(json.loads(json.dumps(tracker.export())))
    snap = incoming_poll(restored, T0 + 60, received("a", T0), received("c", T0 + 50))
    assert dict(snap.messages_total) == {"textMessage": 2, "imageMessage": 1}


def test_restoring_incoming_state_of_the_wrong_shape_changes_nothing() -> None:
    tracker = IncomingTracker(window=86400, baseline_before=None)
    incoming_poll(tracker, T0, received("a", T0))
    shapes: tuple[object, ...] = (None, [], {"messages_total": {}}, {"messages_total": {"x": -1},
                                  "window_types": [], "messages": []})  # fmt: skip
    for broken in shapes:
        with pytest.raises(ValueError):
            tracker.restore(broken)
    assert dict(incoming_poll(tracker, T0 + 1, received("a", T0)).messages_total) == {
        "textMessage": 1
    }


# --- bounds -----------------------------------------------------------------------------------


def test_beyond_the_tracked_limit_the_oldest_messages_are_forgotten_and_counted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from exporter import tracker as tracker_module

    monkeypatch.setattr(tracker_module, "MAX_TRACKED", 100)
    tracker = new_tracker(baseline=None)
    snap = observe(tracker, START + 400, *(msg(f"m{i}", START + i) for i in range(150)))
    assert snap.tracked == 100 and snap.dropped == 50
    assert snap.window is not None and snap.window.messages == 100  # the newest 100


def test_the_incoming_tracker_has_the_same_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    from exporter import tracker as tracker_module

    monkeypatch.setattr(tracker_module, "MAX_TRACKED", 10)
    tracker = IncomingTracker(window=DAY, baseline_before=None)
    snap = incoming_poll(
        tracker, int(START) + 100, *(received(f"i{n}", int(START) + n) for n in range(25))
    )
    assert (snap.tracked, snap.dropped) == (10, 15)


def test_a_short_answer_at_the_depth_cap_marks_the_window_truncated() -> None:
    tracker = new_tracker(baseline=None)
    observe(tracker, START + 10, msg("a", START))
    journal = journal_from_elements([msg(str(i), START + 20) for i in range(3)])
    snap = tracker.observe(journal, START + 70, max_messages=3, full=False, since=START - 480)
    assert snap.window is not None and snap.window.truncated


def test_only_a_full_answer_clears_the_truncation() -> None:
    tracker = new_tracker(baseline=None)
    many = journal_from_elements([msg(str(i), START) for i in range(3)])
    tracker.observe(many, START + 10, max_messages=3)
    few = journal_from_elements([msg("0", START)])
    snap = tracker.observe(few, START + 70, max_messages=3, full=False, since=START - 480)
    assert snap.window is not None and snap.window.truncated
    snap = tracker.observe(few, START + 130, max_messages=3)
    assert snap.window is not None and not snap.window.truncated
