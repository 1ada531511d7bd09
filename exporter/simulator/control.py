"""The control API under ``/_sim/``: a route table, from (verb, path) to a handler.

Tests and demos drive a simulator in another process through it. Each :class:`Route` says
its verb, its path (``{x}`` is an instance's name or id), what body it takes (declared in
:mod:`exporter.simulator.bodies`: read and checked before the handler runs) and what it
does; ``greenapi-simulator --help`` and the README's table are made from :data:`ROUTES`.
:func:`handle` answers 404 for a route or an instance that does not exist, 400 for a body
that does not fit (the message says what was expected), 200 with the handler's reply, or
``{"ok": true}``, otherwise.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from exporter.simulator.bodies import (
    BOOLEAN,
    COUNT,
    DURATION,
    RATE,
    SECONDS,
    TEXT,
    ArrayBody,
    Body,
    BodyError,
    Field,
    Kind,
    ObjectBody,
)
from exporter.simulator.fleet import Fleet
from exporter.simulator.traffic import MINUTES_BY

INSTANCES = "/_sim/instances"
INSTANCE = INSTANCES + "/{x}"

# (the fleet, the instance's name or id ("" for the listing), the body as read) -> the reply
Handler = Callable[[Fleet, str, Any], Any]


@dataclass(frozen=True)
class Route:
    """``verb path``: ``run`` gets ``body`` as read (None: no body is read); ``effect`` is
    what the help and the README say it does."""

    verb: str
    path: str
    body: Body | None
    effect: str
    run: Handler

    @property
    def action(self) -> str:
        """What error messages call the route: its last path segment."""
        return self.path.rsplit("/", 1)[-1].strip("{}")


class _FaultBody:
    """``{"mode": ..., "method": ..., params}``: the mode's own parameters are checked by
    :func:`exporter.simulator.faults.check_fault`, against the fault table."""

    shape = '{"mode": mode, "method": method or null, ...the parameters of the mode}'

    def read(self, context: str, body: Any) -> tuple[str, str | None, dict[str, Any]]:
        if not isinstance(body, dict) or not isinstance(body.get("mode"), str):
            raise BodyError(f"{context}: expected {self.shape}")
        method = body.get("method")
        if method is not None and not isinstance(method, str):
            raise BodyError(f"{context}: method must be a method name; expected {self.shape}")
        params = {k: v for k, v in body.items() if k not in ("mode", "method")}
        return body["mode"], method, params


_SCHEDULE = ObjectBody((
    Field("start_in", SECONDS, nullable=True, help="from now; null: never"),
    Field("duration", DURATION, default=0),
    Field("period", DURATION, nullable=True, help="null or 0: once"),
))  # fmt: skip


def _schedule(fleet: Fleet, body: dict[str, Any]) -> tuple[float | None, float, float | None]:
    start_in = body["start_in"]
    start = None if start_in is None else fleet.clock() + start_in
    return start, body["duration"], body["period"]


def _listing(fleet: Fleet, _: str, __: None) -> list[dict[str, Any]]:
    return [{"name": i.name, "id_instance": i.id_instance, "token": i.token,
             "api_url": fleet.api_url(i)} for i in fleet.instances]  # fmt: skip


def _fault(fleet: Fleet, x: str, body: tuple[str, str | None, dict[str, Any]]) -> None:
    mode, method, params = body
    fleet.set_fault(x, mode, method, **params)


def _ok(action: Callable[[Fleet, str], None]) -> Handler:
    """A handler without a body."""
    return lambda fleet, x, _: action(fleet, x)


_STATE = ObjectBody((Field("state", TEXT, required=True, nullable=True),))
_QUEUE = ObjectBody((Field("count", COUNT, default=0), Field("cyrillic", BOOLEAN, default=False)))
_STATUSES = ObjectBody((Field("enabled", BOOLEAN, required=True),))
_RATE = ObjectBody((Field("per_second", RATE, required=True),))
BASIS = Kind(" or ".join(f'"{b}"' for b in MINUTES_BY), lambda v: v in MINUTES_BY)
_MINUTES_BY = ObjectBody((Field("basis", BASIS, required=True),))
_BURST = ObjectBody((Field("count", COUNT, required=True),))
_ELEMENTS = ArrayBody("elements")

ROUTES_IN_ORDER = (
    Route(
        "GET", INSTANCES, None,
        "every instance: name, id_instance, token, api_url",
        _listing,
    ),
    Route(
        "GET", INSTANCE, None,
        "the instance now: state and queue as the API answers them, rate, fault, outages "
        "and stalls (start_in from now), scripted or not",
        lambda fleet, x, _: fleet.summary(x),
    ),
    Route(
        "GET", INSTANCE + "/requests", None,
        "the requests it answered: time, method, path (token hidden), minutes, status",
        lambda fleet, x, _: fleet.requests_log(x),
    ),
    Route(
        "PUT", INSTANCE + "/messages", _ELEMENTS,
        "serve these as its lastOutgoingMessages journal (those older than minutes left out)",
        Fleet.set_messages,
    ),
    Route(
        "DELETE", INSTANCE + "/messages", None,
        "back to its generated journal",
        _ok(lambda fleet, x: fleet.set_messages(x, None)),
    ),
    Route(
        "PUT", INSTANCE + "/incoming", _ELEMENTS,
        "the same for lastIncomingMessages",
        Fleet.set_incoming,
    ),
    Route(
        "DELETE", INSTANCE + "/incoming", None,
        "back to its generated replies",
        _ok(lambda fleet, x: fleet.set_incoming(x, None)),
    ),
    Route(
        "PUT", INSTANCE + "/fault", _FaultBody(),
        "misbehave as the fault mode says (see the fault modes), for every method or only "
        "method",
        _fault,
    ),
    Route(
        "DELETE", INSTANCE + "/fault", None,
        "answer normally again",
        _ok(Fleet.clear_fault),
    ),
    Route(
        "PUT", INSTANCE + "/state", _STATE,
        "getStateInstance answers this state (null: a null body) and nothing is sent unless "
        "it is authorized; authorized: the outage schedule rules again",
        lambda fleet, x, body: fleet.set_state(x, body["state"]),
    ),
    Route(
        "PUT", INSTANCE + "/queue", _QUEUE,
        'getMessagesCount answers count more; cyrillic: its key is spelled with a Cyrillic "\u0441"',
        lambda fleet, x, body: fleet.set_queue(x, body["count"], body["cyrillic"]),
    ),
    Route(
        "PUT", INSTANCE + "/outages", _SCHEDULE,
        "notAuthorized for duration s from start_in s from now, again every period s (null "
        "or 0: once; start_in null: never); what is queued meanwhile goes out one a second "
        "after",
        lambda fleet, x, body: fleet.set_outages(x, *_schedule(fleet, body)),
    ),
    Route(
        "DELETE", INSTANCE + "/outages", None,
        "no more outages: the queue drains from now",
        _ok(lambda fleet, x: fleet.set_outages(x, None, 0)),
    ),
    Route(
        "PUT", INSTANCE + "/stalls", _SCHEDULE,
        "nothing delivered or read for duration s from start_in s from now, again every "
        "period s (as for outages); what was held happens within a minute of the end",
        lambda fleet, x, body: fleet.set_stalls(x, *_schedule(fleet, body)),
    ),
    Route(
        "DELETE", INSTANCE + "/stalls", None,
        "no more stalls: what was held happens within a minute",
        _ok(lambda fleet, x: fleet.set_stalls(x, None, 0)),
    ),
    Route(
        "PUT", INSTANCE + "/statuses", _STATUSES,
        'false: statusMessage is "" on every journal element',
        lambda fleet, x, body: fleet.set_statuses(x, body["enabled"]),
    ),
    Route(
        "PUT", INSTANCE + "/minutes_by", _MINUTES_BY,
        "what lastOutgoingMessages' ?minutes= counts back from: last_action (a message's "
        "timestamp, the default) or send_time",
        lambda fleet, x, body: fleet.set_minutes_by(x, body["basis"]),
    ),
    Route(
        "PUT", INSTANCE + "/rate", _RATE,
        "generate per_second messages a second from now on (0: none)",
        lambda fleet, x, body: fleet.set_rate(x, body["per_second"]),
    ),
    Route(
        "PUT", INSTANCE + "/burst", _BURST,
        "the bot queues count messages now; they leave one a second while it is authorized",
        lambda fleet, x, body: fleet.burst(x, body["count"]),
    ),
)  # fmt: skip
ROUTES: dict[tuple[str, str], Route] = {(r.verb, r.path): r for r in ROUTES_IN_ORDER}


def handle(fleet: Fleet, verb: str, path: str, raw_body: bytes | None) -> tuple[int, Any]:
    """The status and JSON reply of the control request ``verb path`` with ``raw_body``."""
    template, x = _template(path)
    route = ROUTES.get((verb, template))
    if route is None:
        return 404, {"error": f"no control route {verb} {path} (greenapi-simulator --help "
                              "lists them)"}  # fmt: skip
    if x is not None:
        try:
            fleet.instance(x)
        except KeyError as exc:
            return 404, {"error": str(exc.args[0])}
    try:
        body = None if route.body is None else route.body.read(route.action, _json(route, raw_body))
        reply = route.run(fleet, x or "", body)
    except ValueError as exc:  # a BodyError, or a knob refusing a value
        return 400, {"error": str(exc)}
    return 200, {"ok": True} if reply is None else reply


def _template(path: str) -> tuple[str, str | None]:
    """The route path ``path`` matches, and the instance it names (None: none)."""
    parts = path.strip("/").split("/")
    if parts[:2] != ["_sim", "instances"] or len(parts) > 4:
        return "", None
    if len(parts) == 2:
        return INSTANCES, None
    return "/".join([INSTANCE, *parts[3:]]), parts[2]


def _json(route: Route, raw_body: bytes | None) -> Any:
    if not raw_body:
        return None
    try:
        return json.loads(raw_body)
    except ValueError:
        shape = route.body.shape if route.body is not None else "no body"
        raise BodyError(f"{route.action}: the body is not JSON; expected {shape}") from None
