"""The journal parser: imperfect input in, the facts the metrics need out, never a crash."""

from __future__ import annotations

import contextlib
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter import journal
from exporter.journal import KEY_SEPARATOR, InvalidJournal, parse_journal


class _Refusing:
    """Stands in for orjson when it refuses a body: json.loads decides then."""

    @staticmethod
    def loads(_body: bytes) -> object:
        raise ValueError("refused")


@pytest.fixture(autouse=True, params=["orjson", "json"])
def parser(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test runs with orjson and with the standard library's fallback alone."""
    if request.param == "json":
        monkeypatch.setattr(journal, "orjson", _Refusing)
    return str(request.param)


def test_nan_and_huge_integers_parse_as_the_standard_library_parses_them() -> None:
    parsed = parse_journal(
        b'[{"idMessage": "a", "timestamp": 1, "x": NaN, "y": 123456789012345678901234567890}]'
    )
    assert len(parsed.messages) == 1


def element(**fields: object) -> dict[str, object]:
    base: dict[str, object] = {
        "type": "outgoing",
        "idMessage": "BAE5F4886F6F2D05",
        "timestamp": 1754999812,
        "statusMessage": "sent",
        "sendByApi": True,
        "typeMessage": "textMessage",
        "chatId": "79001234567@c.us",
        "isForwarded": False,
        "forwardingScore": 0,
        "textMessage": "hello",
    }
    base.update(fields)
    return {k: v for k, v in base.items() if v is not ...}


def parse(*elements: object) -> list[tuple[object, ...]]:
    journal = parse_journal(json.dumps(list(elements)).encode())
    return [tuple(m) for m in journal.messages]


def test_a_well_formed_element_keeps_key_timestamp_status_type_and_flags() -> None:
    [message] = parse_journal(json.dumps([element()])).messages
    assert message.key == "79001234567@c.us" + KEY_SEPARATOR + "BAE5F4886F6F2D05"
    assert message.timestamp == 1754999812
    assert message.status == "sent"
    assert message.message_type == "textMessage"
    assert message.send_by_api is True
    assert message.forwarded is False


def test_empty_or_missing_status_becomes_unknown() -> None:
    journal = parse_journal(
        json.dumps(
            [element(idMessage="a", statusMessage=""), element(idMessage="b", statusMessage=...)]
        )
    )
    assert {m.status for m in journal.messages} == {"unknown"}


def test_undocumented_status_and_type_become_other() -> None:
    [message] = parse_journal(
        json.dumps([element(statusMessage="weird", typeMessage="hologramMessage")])
    ).messages
    assert (message.status, message.message_type) == ("other", "other")


def test_non_string_status_becomes_other() -> None:
    [message] = parse_journal(json.dumps([element(statusMessage=5)])).messages
    assert message.status == "other"


def test_forwarded_is_read_from_the_element_or_its_extended_text() -> None:
    journal = parse_journal(
        json.dumps(
            [
                element(idMessage="a", isForwarded=True),
                element(idMessage="b", isForwarded=None, extendedTextMessage={"isForwarded": True}),
                element(idMessage="c", isForwarded="yes"),
            ]
        )
    )
    assert {m.key[-1]: m.forwarded for m in journal.messages} == {"a": True, "b": True, "c": False}


def test_forwarded_contacts_and_locations_carry_the_flag_in_their_content() -> None:
    journal = parse_journal(
        json.dumps(
            [
                element(idMessage="a", typeMessage="contactMessage",
                        contact={"displayName": "Support", "isForwarded": True}),
                element(idMessage="b", typeMessage="locationMessage",
                        location={"latitude": 55.75, "isForwarded": True}),
                element(idMessage="c", typeMessage="locationMessage", location="not an object"),
            ]
        )
    )  # fmt: skip
    assert {m.key[-1]: m.forwarded for m in journal.messages} == {"a": True, "b": True, "c": False}


def test_a_quoted_forwarded_message_does_not_make_the_reply_forwarded() -> None:
    [message] = parse_journal(
        json.dumps([element(typeMessage="quotedMessage", quotedMessage={"isForwarded": True})])
    ).messages
    assert message.forwarded is False


def test_the_same_id_in_two_chats_is_two_messages() -> None:
    journal = parse_journal(json.dumps([element(chatId="1@c.us"), element(chatId="2@c.us")]))
    assert len(journal.messages) == 2


def test_a_message_repeated_in_one_response_counts_once_with_its_latest_state() -> None:
    journal = parse_journal(
        json.dumps(
            [
                element(timestamp=100, statusMessage="sent"),
                element(timestamp=200, statusMessage="delivered"),
                element(timestamp=150, statusMessage="sent"),
            ]
        )
    )
    [message] = journal.messages
    assert (message.timestamp, message.status) == (200, "delivered")
    assert journal.elements == 3 and journal.invalid == 0


@pytest.mark.parametrize(
    "bad",
    [
        "not an object",
        17,
        None,
        [],
        {"timestamp": 1},
        {"idMessage": "", "timestamp": 1},
        {"idMessage": 5, "timestamp": 1},
        {"idMessage": "x"},
        {"idMessage": "x", "timestamp": None},
        {"idMessage": "x", "timestamp": True},
        {"idMessage": "x", "timestamp": -5},
        {"idMessage": "x", "timestamp": "soon"},
        {"idMessage": "x", "timestamp": 1, "chatId": 12},
    ],
    ids=repr,
)
def test_unusable_elements_are_counted_as_invalid(bad: object) -> None:
    journal = parse_journal(json.dumps([bad, element()]))
    assert journal.invalid == 1
    assert len(journal.messages) == 1


def test_a_missing_chat_id_still_counts_the_message() -> None:
    journal = parse_journal(json.dumps([element(chatId=...)]))
    assert journal.invalid == 0 and len(journal.messages) == 1


def test_numeric_string_and_float_timestamps_are_accepted() -> None:
    journal = parse_journal(
        json.dumps(
            [
                element(idMessage="a", timestamp="1700000000"),
                element(idMessage="b", timestamp=1700000000.7),
            ]
        )
    )
    assert sorted(m.timestamp for m in journal.messages) == [1700000000, 1700000000]


def test_the_api_pages_trailing_commas_are_tolerated() -> None:
    body = b'[{"idMessage": "a", "timestamp": 1, "statusMessage": "", "sendByApi": true,},]'
    journal = parse_journal(body)
    assert len(journal.messages) == 1


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"<html><body>502 Bad Gateway</body></html>",
        b'[{"idMessage": "a"',
        b"\xff\xfe\x00",
        b"[" * 100_000,
    ],
    ids=["empty", "html", "truncated", "not-utf8", "deep"],
)
def test_a_body_that_is_not_json_is_invalid(body: bytes) -> None:
    with pytest.raises(InvalidJournal):
        parse_journal(body)


@pytest.mark.parametrize("body", [b"{}", b'"text"', b"null", b"42", b"true"])
def test_json_that_is_not_an_array_is_invalid(body: bytes) -> None:
    with pytest.raises(InvalidJournal, match="expected a JSON array"):
        parse_journal(body)


def test_the_invalid_journal_message_never_quotes_the_body() -> None:
    with pytest.raises(InvalidJournal) as caught:
        parse_journal(b"<html>GET /waInstance1/lastOutgoingMessages/SECRETTOKEN</html>")
    assert "SECRETTOKEN" not in str(caught.value)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=5)
        | st.dictionaries(
            st.sampled_from(
                [
                    "idMessage",
                    "timestamp",
                    "statusMessage",
                    "typeMessage",
                    "chatId",
                    "sendByApi",
                    "isForwarded",
                    "extendedTextMessage",
                    "x",
                ]
            ),
            children,
            max_size=8,
        )
    ),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_any_json_value_parses_or_is_invalid_never_crashes(value: object) -> None:
    body = json.dumps(value).encode()
    try:
        journal = parse_journal(body)
    except InvalidJournal:
        assert not isinstance(value, list)
        return
    assert journal.elements == len(value)  # type: ignore[arg-type]
    assert journal.invalid + len(journal.messages) <= journal.elements


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_any_bytes_parse_or_are_invalid_never_crash(body: bytes) -> None:
    with contextlib.suppress(InvalidJournal):
        parse_journal(body)


def test_an_answer_of_too_many_objects_is_refused_before_it_is_decoded() -> None:
    body = b"[" + b",".join([b"{}"] * (journal.MAX_OBJECTS + 1)) + b"]"
    with pytest.raises(InvalidJournal, match="objects: far beyond a journal"):
        parse_journal(body)


def test_an_answer_of_too_many_elements_is_refused() -> None:
    body = json.dumps([1] * (journal.MAX_ELEMENTS + 1))
    with pytest.raises(InvalidJournal, match="elements, over"):
        parse_journal(body)
