"""Parsing one ``lastOutgoingMessages`` response into the few facts the metrics need.

The journal is imperfect input (GREEN-API issues #572, #474, #800): elements can be
missing fields, carry ``null`` or wrong types, or the body can be cut short. This module
never raises anything but :class:`InvalidJournal`, and only for a body that is not a JSON
array at all; unusable elements are counted, not fatal.

Only the fields that a metric needs are kept (no text, thumbnails or URLs), so a parsed
journal is small even when the response carried megabytes of base64 previews.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import NamedTuple

import orjson

# Status values GREEN-API documents for the journal (and `failed`, from the status webhook).
# Anything else becomes "other"; an empty or missing status becomes "unknown".
KNOWN_STATUSES = frozenset(
    {"pending", "sent", "delivered", "read", "failed", "noAccount", "notInGroup", "yellowCard"}
)
STATUS_UNKNOWN = "unknown"
STATUS_OTHER = "other"

# `typeMessage` is an open set; these are the documented values. Keeping the label bounded
# protects Prometheus from a new type per release turning into unbounded cardinality.
KNOWN_MESSAGE_TYPES = frozenset(
    {
        "textMessage",
        "extendedTextMessage",
        "imageMessage",
        "videoMessage",
        "documentMessage",
        "audioMessage",
        "locationMessage",
        "contactMessage",
        "contactsArrayMessage",
        "pollMessage",
        "pollUpdateMessage",
        "reactionMessage",
        "quotedMessage",
        "stickerMessage",
        "editedMessage",
        "deletedMessage",
        "buttonsMessage",
        "listMessage",
        "templateMessage",
        "groupInviteMessage",
        "interactiveButtons",
    }
)
TYPE_UNKNOWN = "unknown"
TYPE_OTHER = "other"

# Order used when the same message appears twice in one response (the seed page's own
# example does this): the later timestamp wins, then the further status.
_STATUS_RANK = {"pending": 0, "sent": 1, "delivered": 2, "read": 3}

# Timestamps are UNIX seconds. A value beyond this is almost surely milliseconds or garbage.
_MAX_TIMESTAMP = 100_000_000_000

# Separates chatId and idMessage in a message key; neither ever contains it.
KEY_SEPARATOR = "\x1f"


class InvalidJournal(ValueError):
    """The body is not a JSON array. The message never quotes the body (it may echo a URL)."""


class JournalMessage(NamedTuple):
    """One usable journal element, reduced to what the metrics need."""

    key: str  # chatId + KEY_SEPARATOR + idMessage: idMessage is unique only within a chat
    timestamp: int  # time of the last action on the message (moves on delivery and read)
    status: str  # bounded: KNOWN_STATUSES, "unknown" or "other"
    message_type: str  # bounded: KNOWN_MESSAGE_TYPES, "unknown" or "other"
    send_by_api: bool
    forwarded: bool


@dataclass(frozen=True)
class Journal:
    """A parsed response: distinct messages, the raw element count and what was unusable."""

    messages: tuple[JournalMessage, ...]
    elements: int  # length of the JSON array, as the API sent it (for window_truncated)
    invalid: int  # elements that could not be used


# An answer is bounded by what it holds, not only by its size: a few megabytes of `[{},{},…]`
# decode into millions of objects (gigabytes) while the decoder holds the GIL. The journal
# holds at most 10,000 messages (WhatsApp) and each element a few nested objects.
MAX_ELEMENTS = 50_000
MAX_OBJECTS = 10 * MAX_ELEMENTS  # "{" in the body, counted before decoding: an upper bound


def parse_journal(body: bytes | str) -> Journal:
    """Parse a response body; raise :class:`InvalidJournal` if it is not a JSON array, or
    holds more than :data:`MAX_ELEMENTS` elements."""
    raw = body.encode("utf-8", "surrogatepass") if isinstance(body, str) else body
    if raw.count(b"{") > MAX_OBJECTS:
        raise InvalidJournal(f"answer holds over {MAX_OBJECTS} objects: far beyond a journal")
    data = _loads(raw)
    if not isinstance(data, list):
        raise InvalidJournal(f"expected a JSON array, got a JSON {json_type(data)}")
    if len(data) > MAX_ELEMENTS:
        raise InvalidJournal(f"answer holds {len(data)} elements, over {MAX_ELEMENTS}")
    return journal_from_elements(data)


def journal_from_elements(elements: list[object]) -> Journal:
    """Reduce already-decoded journal elements; never raises."""
    messages: dict[str, JournalMessage] = {}
    invalid = 0
    for element in elements:
        message = parse_message(element)
        if message is None:
            invalid += 1
            continue
        previous = messages.get(message.key)
        if previous is None or _supersedes(message, previous):
            messages[message.key] = message
    return Journal(messages=tuple(messages.values()), elements=len(elements), invalid=invalid)


def parse_message(element: object) -> JournalMessage | None:
    """One element, or None when it cannot be used (no object, no idMessage, no timestamp).

    This runs for every element of every answer: the common case (a dict with an int
    timestamp and known status and type) takes the shortest path.
    """
    if type(element) is not dict:  # json.loads only makes plain dicts
        return None
    get = element.get
    id_message = get("idMessage")
    if type(id_message) is not str or not id_message:
        return None
    timestamp = get("timestamp")
    if type(timestamp) is not int or not 0 <= timestamp < _MAX_TIMESTAMP:
        timestamp = _timestamp(timestamp)
        if timestamp is None:
            return None
    chat_id = get("chatId")
    if chat_id is None:
        chat_id = ""
    elif type(chat_id) is not str:
        return None
    forwarded = get("isForwarded") is True
    if not forwarded:
        for content_key in _FORWARD_FLAG_HOLDERS:
            content = get(content_key)
            if type(content) is dict and content.get("isForwarded") is True:
                forwarded = True
                break
    return JournalMessage(
        chat_id + KEY_SEPARATOR + id_message,
        timestamp,
        _bounded(get("statusMessage"), _STATUS_LABEL, STATUS_UNKNOWN, STATUS_OTHER),
        _bounded(get("typeMessage"), _TYPE_LABEL, TYPE_UNKNOWN, TYPE_OTHER),
        get("sendByApi") is True,
        forwarded,
    )


# Where the forward flag lives besides the top level (which only file messages use): text in
# extendedTextMessage, contacts and locations in their content objects. quotedMessage is left
# out on purpose: its flag describes the quoted message, not this one.
_FORWARD_FLAG_HOLDERS = ("extendedTextMessage", "contact", "location")

_STATUS_LABEL = {status: status for status in KNOWN_STATUSES}
_TYPE_LABEL = {kind: kind for kind in KNOWN_MESSAGE_TYPES}


def _bounded(value: object, known: dict[str, str], unknown: str, other: str) -> str:
    if type(value) is str:
        return known.get(value) or (unknown if not value else other)
    return unknown if value is None else other


def _timestamp(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        number = value
    elif isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            return None
        number = int(value)
    elif isinstance(value, str) and value.isdigit() and len(value) <= 12:
        number = int(value)
    else:
        return None
    if 0 <= number < _MAX_TIMESTAMP:
        return number
    return None


def _supersedes(new: JournalMessage, old: JournalMessage) -> bool:
    if new.timestamp != old.timestamp:
        return new.timestamp > old.timestamp
    return _STATUS_RANK.get(new.status, -1) > _STATUS_RANK.get(old.status, -1)


# orjson decodes a journal full of base64 thumbnails in a fraction of the standard library's
# time, with far fewer temporary objects. Anything it refuses goes to json.loads, which accepts
# a little more (NaN, huge integers), so the accepted input is the standard library's.
# A comma before a closing bracket, as in the API page's own example. Only tried after the
# strict parse failed, so well-formed bodies never pay for it.
_TRAILING_COMMA = re.compile(rb",\s*([\]}])")


def _loads(body: bytes | str) -> object:
    raw = body.encode("utf-8", "surrogatepass") if isinstance(body, str) else body
    try:
        return orjson.loads(raw)
    except (ValueError, RecursionError):
        pass  # the standard parser decides
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as strict_error:
        try:
            return json.loads(_TRAILING_COMMA.sub(rb"\1", raw))
        except (ValueError, RecursionError):
            raise InvalidJournal(describe_json_error(strict_error)) from None


def describe_json_error(error: BaseException) -> str:
    """Where and why a body is not JSON, without quoting it (it may echo a URL)."""
    if isinstance(error, json.JSONDecodeError):
        return f"invalid JSON at line {error.lineno} column {error.colno}: {error.msg}"
    if isinstance(error, RecursionError):
        return "invalid JSON: nested too deeply"
    return "invalid JSON: not UTF-8 text"


def json_type(value: object) -> str:
    """The JSON name of a decoded value's type, for messages such as "got a JSON string"."""
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    return "null"
