"""The fault modes: how a simulated instance can misbehave, declared once in :data:`FAULTS`.

Each :class:`FaultMode` has a name, the parameters it takes (declared as
:class:`~exporter.simulator.bodies.Field`, checked when the fault is set, listed by
``greenapi-simulator --help``), what it does in one line, and the function that answers a
request with it. An answer function gets an :class:`Exchange` (the request being answered,
provided by :mod:`exporter.simulator.http`) and returns True when it has answered, False
when the normal answer should follow (``delay``). A fault applies to every method's
requests, or to one of :data:`METHODS` only.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from exporter.simulator.bodies import (
    COUNT,
    DURATION,
    HTTP_STATUS,
    POSITIVE,
    SECONDS_OR_TEXT,
    TEXT,
    BodyError,
    Field,
    Kind,
    read_fields,
    shape_of,
)
from exporter.simulator.messages import generated, plain
from exporter.simulator.traffic import SimulatedInstance

METHODS = ("lastOutgoingMessages", "lastIncomingMessages", "getStateInstance", "getMessagesCount")
QUOTA_BODY = {
    "invokeStatus": {
        "method": "lastOutgoingMessages",
        "used": 1000,
        "total": 1000,
        "status": "QUOTE_EXCEEDED",
        "description": "Monthly quota of the Developer plan exceeded",
    }
}
_BROKEN_JSON = b'[{"idMessage": "BAE5BROKEN", "timestamp": 1700000000 "statusMessage"}]'
_BAD_GATEWAY_PAGE = (
    b"<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1></body></html>"
)


class Exchange(Protocol):
    """One request as a fault answers it: what was asked, and the ways to answer."""

    @property
    def instance(self) -> SimulatedInstance: ...

    @property
    def method(self) -> str: ...

    @property
    def now(self) -> float: ...

    def record(self, status: int) -> None:
        """Note the request in the instance's requests log with ``status``."""

    def normal_body(self) -> Any:
        """The answer the method would give without the fault."""

    def send(self, status: int, body: bytes, content_type: str = "application/json",
             headers: Mapping[str, str] | None = None) -> None: ...  # fmt: skip

    def send_json(self, status: int, body: Any, headers: Mapping[str, str] | None = None) -> None: ...  # fmt: skip

    def stream(self, length: int, chunks: Iterable[bytes]) -> None:
        """A 200 JSON answer of ``length`` bytes, written chunk by chunk."""

    def wait(self, seconds: float | None) -> bool:
        """Sleep ``seconds`` (None: until the simulator stops); True if it is stopping."""

    def close(self) -> None:
        """Close the connection once the request is done, without answering."""

    def reset(self) -> None:
        """Close the connection now with a TCP reset."""


Answer = Callable[[Exchange, Mapping[str, Any]], bool]
_METHOD_FIELD = Field(
    "method",
    Kind("method", lambda v: v in METHODS),
    nullable=True,
    help="only this method's requests (default: every method's)",
)


@dataclass(frozen=True)
class FaultMode:
    """A way to misbehave: ``answer`` applies it with the parameters ``params`` declare."""

    name: str
    effect: str
    answer: Answer
    params: tuple[Field, ...] = ()

    @property
    def shape(self) -> str:
        """The fault's body for the control API: ``{"mode": name, params...}``."""
        mode = Field("mode", Kind(json.dumps(self.name), lambda v: v == self.name))
        return shape_of((mode, _METHOD_FIELD, *self.params))


def _status(exchange: Exchange, params: Mapping[str, Any]) -> bool:
    code = params["code"]
    exchange.record(code)
    retry_after = params["retry_after"]
    headers = {} if retry_after is None else {"Retry-After": str(retry_after)}
    if params["body"] is not None:
        exchange.send(code, params["body"].encode(), "text/plain", headers)
    elif code == 466:
        quota = {"invokeStatus": {**QUOTA_BODY["invokeStatus"], "method": exchange.method}}
        exchange.send_json(code, quota, headers)
    else:
        exchange.send_json(code, {"message": f"error {code}"}, headers)
    return True


def _delay(exchange: Exchange, params: Mapping[str, Any]) -> bool:
    return exchange.wait(float(params["seconds"]))  # then the normal answer (logged then)


def _hang(exchange: Exchange, params: Mapping[str, Any]) -> bool:
    exchange.record(200)
    exchange.wait(None)
    exchange.close()
    return True


def _reset(exchange: Exchange, params: Mapping[str, Any]) -> bool:
    exchange.record(200)
    exchange.reset()
    return True


def _broken_json(exchange: Exchange, params: Mapping[str, Any]) -> bool:
    exchange.record(200)
    exchange.send(200, _BROKEN_JSON)
    return True


def _truncated_json(exchange: Exchange, params: Mapping[str, Any]) -> bool:
    exchange.record(200)
    body = json.dumps(exchange.normal_body()).encode()
    exchange.send(200, body[: max(1, len(body) // 2)])
    return True


def _html(exchange: Exchange, params: Mapping[str, Any]) -> bool:
    exchange.record(200)
    exchange.send(200, _BAD_GATEWAY_PAGE, "text/html")
    return True


def _not_array(exchange: Exchange, params: Mapping[str, Any]) -> bool:
    exchange.record(200)
    exchange.send_json(200, {"message": "unexpected"})
    return True


def _huge(exchange: Exchange, params: Mapping[str, Any]) -> bool:
    """A valid JSON array of about ``megabytes`` MiB, streamed element by element."""
    exchange.record(200)
    filler = base64.b64encode(b"\0" * 48 * 1024).decode()  # 64 KiB of base64 per element
    now = exchange.now

    def element(index: int) -> bytes:
        item = plain(f"BAE5HUGE{index:08d}", "79001234567@c.us", int(now) - index, "read")
        item.update(typeMessage="imageMessage", jpegThumbnail=filler)
        return json.dumps(item).encode()

    size = len(element(0))
    count = max(1, math.ceil(params["megabytes"] * 1024 * 1024 / (size + 1)))

    def chunks() -> Iterator[bytes]:
        yield b"["
        for index in range(count):
            yield (b"," if index else b"") + element(index)
        yield b"]"

    exchange.stream(2 + count * size + (count - 1), chunks())
    return True


def _empty_objects(exchange: Exchange, params: Mapping[str, Any]) -> bool:
    """A valid JSON array of about ``megabytes`` MiB of empty objects: ``[{},{},…]``, three
    bytes an element, millions of them (a journal says nothing with them, at great cost)."""
    exchange.record(200)
    count = max(1, math.ceil(params["megabytes"] * 1024 * 1024 / 3))
    block = b",{}" * 65536

    def chunks() -> Iterator[bytes]:
        yield b"[{}"
        left = count - 1
        while left > 0:
            size = min(left, 65536)
            yield block[: 3 * size]
            left -= size
        yield b"]"

    exchange.stream(2 + 2 + 3 * (count - 1), chunks())
    return True


def _large_journal(exchange: Exchange, params: Mapping[str, Any]) -> bool:
    return _generated(exchange, params["count"], exchange.now - 3600, 0.3)


def _future_timestamps(exchange: Exchange, params: Mapping[str, Any]) -> bool:
    return _generated(exchange, 50, 4102444800, 60)


def _epoch_timestamps(exchange: Exchange, params: Mapping[str, Any]) -> bool:
    return _generated(exchange, 50, 0, 60)


def _generated(exchange: Exchange, count: int, start: float, spacing: float) -> bool:
    """``count`` generated messages, ``spacing`` seconds apart from ``start`` on."""
    exchange.record(200)
    instance = exchange.instance
    elements = generated(count, start, spacing, instance.id_instance, instance.chats)
    exchange.send_json(200, list(elements))
    return True


def _duplicate_ids(exchange: Exchange, params: Mapping[str, Any]) -> bool:
    exchange.record(200)
    base = int(exchange.now)
    duplicates = [
        plain("BAE5DUPLICATE0001", "79001112233@c.us", base - 60, "sent"),
        plain("BAE5DUPLICATE0001", "79001112233@c.us", base - 30, "delivered"),
        plain("BAE5DUPLICATE0001", "79001112233@c.us", base - 10, "read"),
        plain("BAE5DUPLICATE0001", "79004445566@c.us", base - 20, "sent"),
        plain("BAE5DUPLICATE0001", "120363000000000001@g.us", base - 5, "delivered"),
    ]
    real = exchange.normal_body()
    exchange.send_json(200, duplicates + (real if isinstance(real, list) else []))
    return True


_MODES = (
    FaultMode(
        "status",
        'answer with that HTTP status: JSON {"message": ...}, the quota body for 466, or the '
        "text of body",
        _status,
        (
            Field("code", HTTP_STATUS, default=500, help="the HTTP status"),
            Field("retry_after", SECONDS_OR_TEXT, nullable=True, help="a Retry-After header"),
            Field("body", TEXT, nullable=True, help="a text/plain body instead"),
        ),
    ),
    FaultMode(
        "delay",
        "wait, then answer normally",
        _delay,
        (Field("seconds", DURATION, default=5, help="how long"),),
    ),
    FaultMode("hang", "never answer (until the simulator stops)", _hang),
    FaultMode("reset", "close the connection with a TCP reset", _reset),
    FaultMode("broken_json", "a 200 whose body is not JSON", _broken_json),
    FaultMode("truncated_json", "the normal answer cut in half", _truncated_json),
    FaultMode("html", "a 200 carrying a proxy's 502 Bad Gateway HTML page", _html),
    FaultMode("not_array", 'a 200 with {"message": "unexpected"} instead of an array', _not_array),
    FaultMode(
        "huge",
        "a valid JSON array of that many MiB, streamed",
        _huge,
        (Field("megabytes", POSITIVE, default=50, help="its size"),),
    ),
    FaultMode(
        "empty_objects",
        "a valid JSON array of that many MiB of empty objects: [{},{},…]",
        _empty_objects,
        (Field("megabytes", POSITIVE, default=40, help="its size"),),
    ),
    FaultMode(
        "large_journal",
        "that many messages of the last hour",
        _large_journal,
        (Field("count", COUNT, default=10000, help="how many"),),
    ),
    FaultMode("future_timestamps", "50 messages timestamped in the year 2100", _future_timestamps),
    FaultMode("epoch_timestamps", "50 messages timestamped in 1970", _epoch_timestamps),
    FaultMode(
        "duplicate_ids",
        "five elements sharing one idMessage, then the normal journal",
        _duplicate_ids,
    ),
)
FAULTS: dict[str, FaultMode] = {mode.name: mode for mode in _MODES}
FAULT_MODES = tuple(FAULTS)


def check_fault(mode: str, method: str | None, params: Mapping[str, Any]) -> dict[str, Any]:
    """The parameters of fault ``mode`` at their defaults where absent; a BodyError (a
    ValueError) for an unknown mode or method, or parameters the mode does not take."""
    if mode not in FAULTS:
        raise BodyError(f"unknown fault mode {mode!r} (known: {', '.join(FAULT_MODES)})")
    if method is not None and method not in METHODS:
        raise BodyError(f"unknown method {method!r} (known: {', '.join(METHODS)})")
    fault = FAULTS[mode]
    return read_fields(f"fault {mode}", fault.params, params, fault.shape)
