"""Parsing getStateInstance and getMessagesCount answers."""

from __future__ import annotations

import json

import pytest

from exporter.collectors import InvalidAnswer
from exporter.collectors.queue import parse_queue
from exporter.collectors.state import INSTANCE_STATES, parse_state


@pytest.mark.parametrize("state", [s for s in INSTANCE_STATES if s != "unknown"])
def test_every_documented_state_is_kept(state: str) -> None:
    assert parse_state(json.dumps({"stateInstance": state}).encode()) == state


def test_a_null_body_of_an_instance_being_created_is_unknown() -> None:
    assert parse_state(b"null") == "unknown"


@pytest.mark.parametrize("state", ["someFutureState", "", None, 3, ["authorized"]])
def test_a_state_that_is_not_documented_is_unknown(state: object) -> None:
    assert parse_state(json.dumps({"stateInstance": state}).encode()) == "unknown"


@pytest.mark.parametrize(
    ("body", "message"),
    [(b"[]", "expected a JSON object or null, got a JSON array"),
     (b"{}", "no stateInstance in the answer"),
     (b'{"stateInstance": "authorized"', "invalid JSON at line 1 column 31"),
     (b"<html>502</html>", "invalid JSON at line 1 column 1"),
     (b"\xff\xfe", "invalid JSON")],
)  # fmt: skip
def test_a_state_body_that_says_nothing_usable_is_refused(body: bytes, message: str) -> None:
    with pytest.raises(InvalidAnswer, match=message):
        parse_state(body)


def test_the_refusal_never_quotes_the_body() -> None:
    with pytest.raises(InvalidAnswer) as caught:
        parse_state(b'{"stateInstance": "SECRET-TOKEN-IN-AN-ECHOED-URL"')
    assert "SECRET" not in str(caught.value)


def test_the_queue_count_is_read() -> None:
    assert parse_queue(b'{"count": 12}') == 12


def test_the_queue_count_spelled_with_a_cyrillic_es_is_read() -> None:
    assert parse_queue('{"\u0441ount": 5}'.encode()) == 5


def test_an_empty_queue_is_zero() -> None:
    assert parse_queue(b'{"count": 0}') == 0


@pytest.mark.parametrize(
    ("body", "message"),
    [(b"null", "expected a JSON object, got a JSON null"),
     (b"[1]", "expected a JSON object, got a JSON array"),
     (b'{"total": 3}', "no count in the answer"),
     (b'{"count": -1}', "count is not a whole number"),
     (b'{"count": 1.5}', "count is not a whole number"),
     (b'{"count": true}', "count is not a whole number"),
     (b'{"count": "3"}', "count is not a whole number")],
)  # fmt: skip
def test_a_queue_body_without_a_usable_count_is_refused(body: bytes, message: str) -> None:
    with pytest.raises(InvalidAnswer, match=message):
        parse_queue(body)


def test_a_status_answer_far_too_large_to_be_one_is_invalid() -> None:
    with pytest.raises(InvalidAnswer, match="not a status"):
        parse_state(b'{"stateInstance": "authorized", "x": "' + b"a" * 70_000 + b'"}')
