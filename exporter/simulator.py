"""A realistic fake GREEN-API on loopback, for the demo, the tests and benchmarks.

It serves ``/waInstance{id}/{method}/{token}`` (and the same under ``/v3``) like the real
API: ``minutes`` and the depth cap are honoured, a wrong token gets 401, an unknown id 403,
and more than one request a second per instance and method gets 429. Traffic is generated
from a seed, so the same seed and clock give the same journal: messages of mixed types
move ``sent`` → ``delivered`` → ``read`` with timestamps that move forward. Most recipients
get a message within seconds; a few per cent have their phone off and get it minutes to
hours later, and a few never do. Generated messages pass through a send queue
(``getMessagesCount``): they leave a moment after being queued, and not at all while the
instance is not authorized (``getStateInstance``), then one a second once it is again.
Deliveries can stall on a schedule: nothing is delivered or read meanwhile, and what was
held is delivered within a minute of the stall's end. Customers answer some read messages
(``lastIncomingMessages``).

Tests drive it in-process (:meth:`Simulator.set_fault`, :meth:`Simulator.set_messages`,
:meth:`Simulator.set_incoming`, :meth:`Simulator.set_state`, :meth:`Simulator.set_outages`,
:meth:`Simulator.set_stalls`, :meth:`Simulator.set_statuses`, :meth:`Simulator.set_queue`)
or, for a simulator in another process, through the control API under ``/_sim/``:
``PUT /_sim/instances/{name or id}/`` ``messages`` or ``incoming`` (a JSON array),
``fault`` (``{"mode": ..., "method": ..., params}``; ``DELETE`` clears it), ``state``
(``{"state": ...}``), ``queue`` (``{"count": N, "cyrillic": bool}``), ``outages`` and
``stalls`` (``{"start_in": s, "duration": s, "period": s}``), ``statuses``
(``{"enabled": bool}``; false: ``statusMessage`` is ``""`` on every message);
``GET /_sim/instances`` and ``GET /_sim/instances/{x}/requests``.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import itertools
import json
import math
import random
import re
import signal
import socket
import struct
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

FAULT_MODES = (
    "status",
    "delay",
    "hang",
    "reset",
    "broken_json",
    "truncated_json",
    "html",
    "not_array",
    "huge",
    "large_journal",
    "future_timestamps",
    "epoch_timestamps",
    "duplicate_ids",
)
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
_RETENTION = 90 * 86400.0
_PATH = re.compile(r"^(?:/v3)?/waInstance(\d+)/([A-Za-z]+)/([^/]+)/?$")

# (typeMessage, weight). Mostly text, as real bots send.
_TYPES = (
    ("textMessage", 50),
    ("extendedTextMessage", 20),
    ("imageMessage", 8),
    ("documentMessage", 5),
    ("videoMessage", 3),
    ("audioMessage", 3),
    ("reactionMessage", 3),
    ("locationMessage", 2),
    ("contactMessage", 2),
    ("pollMessage", 2),
    ("stickerMessage", 2),
)
_TYPE_NAMES = tuple(name for name, _ in _TYPES)
_TYPE_CUMULATIVE_WEIGHTS = tuple(itertools.accumulate(weight for _, weight in _TYPES))
_MEDIA = {"imageMessage": "image/jpeg", "documentMessage": "application/pdf",
          "videoMessage": "video/mp4", "audioMessage": "audio/ogg"}  # fmt: skip
_REPLIES = (
    "Thank you!",
    "When will it arrive?",
    "Ok",
    "Can I change the delivery address?",
    "Great, see you then",
    "I did not get the code",
)
_SENDER_NAMES = ("Anna", "Ivan Petrov", "Maria", "Alex", "Olga S.", "Dmitry", "Elena", "Sam")
_REPLY_DELAY = (10, 10 + 255)  # a customer answers 10 to 265 s after reading
# Statuses that never change, with their share of the generated messages: rare, as on a
# healthy number (failed sends are not written to the journal at all).
_FIXED_STATUSES = (("pending", 0.001), ("noAccount", 0.0015), ("yellowCard", 0.0005), ("", 0.001))
# The configuration that makes the demo's story show within minutes (the exporter's default,
# 5m, would delay every late verdict by three more minutes).
DEMO_UNDELIVERED_AFTER = "2m"
_TEXTS = (
    "Your order #{n} has been shipped",
    "Thank you for contacting us! An operator will answer shortly.",
    "Reminder: your appointment is tomorrow at {h}:00",
    "Your verification code is {n}",
    "Hello! How can we help you today?",
)


@dataclass
class _Message:
    """One generated message: its own delays, and when the stall schedule lets them happen.

    ``delivery_delay`` (after sending) and ``read_delay`` (after delivery) are what the
    recipient would do undisturbed (None: never). ``delivered_at`` and ``read_at`` are the
    planned moments (:meth:`SimulatedInstance.plan`): later than that when a stall holds
    them, infinite while stalls never end.
    """

    chat_id: str
    id_message: str
    sent_at: float
    delivery_delay: float | None
    read_delay: float | None
    fixed_status: str | None  # pending / noAccount / yellowCard / "" stay as they are
    type_message: str
    send_by_api: bool
    forwarded: bool
    text: str
    queued_at: float = 0.0  # when the bot asked to send it
    ready_at: float = 0.0  # the earliest it can go out (queued_at plus a little latency)
    delivered_at: float | None = None
    read_at: float | None = None

    def state(self, now: float) -> tuple[str, float]:
        if self.fixed_status is not None:
            return self.fixed_status, self.sent_at
        if self.read_at is not None and self.read_at <= now:
            return "read", self.read_at
        if self.delivered_at is not None and self.delivered_at <= now:
            return "delivered", self.delivered_at
        return "sent", self.sent_at

    def element(self, now: float, thumbnail: str, statuses: bool = True) -> dict[str, Any]:
        """The journal's element at ``now``; without ``statuses``, ``statusMessage`` is ""."""
        status, timestamp = self.state(now)
        element: dict[str, Any] = {
            "type": "outgoing",
            "idMessage": self.id_message,
            "timestamp": int(timestamp),  # the last action happened, even when not told
            "statusMessage": status if statuses else "",
            "sendByApi": self.send_by_api,
            "typeMessage": self.type_message,
            "chatId": self.chat_id,
            "isForwarded": self.forwarded,
            "forwardingScore": 1 if self.forwarded else 0,
        }
        if self.type_message == "textMessage":
            element["textMessage"] = self.text
        elif self.type_message == "extendedTextMessage":
            element["textMessage"] = self.text + " https://example.com/track"
            element["extendedTextMessage"] = {
                "text": element["textMessage"],
                "description": "Track your parcel",
                "title": "Example Shop",
                "isForwarded": self.forwarded,
                "forwardingScore": element["forwardingScore"],
            }
        elif self.type_message in _MEDIA:
            element.update(
                downloadUrl=f"https://sw-media-out.example/{self.id_message}",
                caption=self.text,
                fileName=f"{self.id_message.lower()}.bin",
                jpegThumbnail=thumbnail,
                mimeType=_MEDIA[self.type_message],
                isAnimated=False,
            )
        elif self.type_message == "reactionMessage":
            element["extendedTextMessageData"] = {"text": "👍"}
        elif self.type_message == "locationMessage":
            element["location"] = {"latitude": 55.75, "longitude": 37.62, "nameLocation": "Office"}
        elif self.type_message == "contactMessage":
            element["contact"] = {"displayName": "Support", "vcard": "BEGIN:VCARD\nEND:VCARD"}
        elif self.type_message == "pollMessage":
            element["pollMessageData"] = {"name": "Rate us", "options": [{"optionName": "5"}]}
        return element


@dataclass
class SimulatedInstance:
    """One fake instance: its identity, generated traffic, and the knobs tests turn.

    Generated messages go through a send queue: each leaves a moment after the bot queued
    it, one a second at most, and only while the instance is authorized. ``state`` is the
    explicit state (:meth:`Simulator.set_state`); the outage schedule (``outage_start``,
    ``outage_duration``, ``outage_period``, in clock seconds) makes an instance whose
    explicit state is ``authorized`` ``notAuthorized`` for a while, repeatedly when
    ``outage_period`` is set. Messages queued meanwhile go out one a second from the
    moment it is authorized again.

    Recipients: most get a message within seconds; ``offline_ratio`` of them have their
    phone off and get it minutes to hours later (a day at most); ``stuck_ratio`` never get
    it. The stall schedule (``stall_start``, ``stall_duration``, ``stall_period``, in clock
    seconds, like the outages) stops every delivery and read for a while: what falls into a
    stall happens a few seconds to a minute after its end. ``statuses`` False makes the
    journal say ``statusMessage: ""`` on every message, as some journals do.
    """

    name: str
    id_instance: str
    token: str
    v3: bool = False
    rate: float = 1 / 60  # messages per second
    stuck_ratio: float = 0.005  # never delivered
    offline_ratio: float = 0.025  # delivered minutes to hours later
    rng: random.Random = field(default_factory=random.Random, repr=False)
    messages: list[_Message] = field(default_factory=list, repr=False)
    next_send: float = 0.0
    scripted: list[Any] | None = None
    scripted_incoming: list[Any] | None = None
    fault: tuple[str, dict[str, Any], str | None] | None = None  # mode, params, method
    state: str | None = "authorized"
    outage_start: float | None = None
    outage_duration: float = 0.0
    outage_period: float | None = None
    stall_start: float | None = None
    stall_duration: float = 0.0
    stall_period: float | None = None
    statuses: bool = True
    longest_read_lag: float = 0.0  # send to read, the longest yet: how far back replies go
    waiting: list[_Message] = field(default_factory=list, repr=False)  # held, no send time yet
    send_free_at: float = -math.inf  # the queue sends one message a second at most
    queue_count: int = 0
    queue_cyrillic: bool = False
    thumbnail: str = field(default="", repr=False)
    last_request: dict[str, float] = field(default_factory=dict, repr=False)
    log: list[dict[str, Any]] = field(default_factory=list, repr=False)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    chats: list[str] = field(default_factory=list, repr=False)
    counter: int = 0

    # --- authorization and the send queue ----------------------------------------------

    def _outage_end(self, at: float) -> float | None:
        """The end of the scheduled outage under way at ``at``; None outside outages."""
        return _scheduled_end(at, self.outage_start, self.outage_duration, self.outage_period)

    def effective_state(self, now: float) -> str | None:
        """What getStateInstance answers at ``now`` (None: a ``null`` body)."""
        if self.state != "authorized":
            return self.state
        return "authorized" if self._outage_end(now) is None else "notAuthorized"

    def _authorized_from(self, at: float) -> float:
        """The first moment from ``at`` on when the instance is authorized (inf: not known)."""
        if self.state != "authorized":
            return math.inf  # until someone sets it back
        end = self._outage_end(at)
        return at if end is None else end

    def _schedule(self, message: _Message) -> None:
        """Give a queued message its send time, or hold it while that is not known."""
        at = self._authorized_from(max(message.ready_at, self.send_free_at))
        if self.waiting or math.isinf(at):
            self.waiting.append(message)
            return
        message.sent_at = at
        self.plan(message)
        self.messages.append(message)
        self.send_free_at = at + self._spacing()

    def _spacing(self) -> float:
        """Seconds between two sends: 1, less for a generator so fast it would fall behind."""
        return min(1.0, 0.5 / self.rate) if self.rate > 0 else 1.0

    def replan(self, now: float) -> None:
        """Send again what has not left by ``now``, after the state or the schedule changed."""
        pending: list[_Message] = []
        while self.messages and self.messages[-1].sent_at > now:
            pending.append(self.messages.pop())
        pending.reverse()
        pending += self.waiting
        self.waiting = []
        last = self.messages[-1].sent_at + self._spacing() if self.messages else -math.inf
        self.send_free_at = max(last, now)
        for message in pending:
            self._schedule(message)

    # --- deliveries and the stall schedule ------------------------------------------------

    def _stall_end(self, at: float) -> float | None:
        """The end of the scheduled stall under way at ``at``; None outside stalls."""
        return _scheduled_end(at, self.stall_start, self.stall_duration, self.stall_period)

    def _clear_of_stalls(self, at: float, key: str) -> float:
        """``at``, or a few seconds to a minute after the end of a stall under way then."""
        if self.stall_start is None:  # the common case, kept cheap
            return at
        end = None if math.isinf(at) else self._stall_end(at)
        if end is None or math.isinf(end):
            return at if end is None else end
        delay = _release_delay(f"{key}:{end}")
        if self.stall_period:  # never as late as the next stall
            delay = min(delay, (self.stall_period - self.stall_duration) / 2)
        return end + delay

    def _event_at(self, natural: float, now: float, key: str) -> float:
        """When an event due at ``natural`` happens, planned at ``now``."""
        if natural <= now:  # held past its time by a stall that has been changed since
            natural = now + _release_delay(f"{key}:{now}")
        return self._clear_of_stalls(natural, key)

    def plan(self, message: _Message, now: float = -math.inf) -> None:
        """Set when ``message`` is delivered and read under the stall schedule.

        What had happened by ``now`` stays as it was: planning again after the schedule
        changed never takes a status back.
        """
        if message.delivery_delay is None:
            message.delivered_at = message.read_at = None
            return
        if message.delivered_at is None or message.delivered_at > now:
            natural = message.sent_at + message.delivery_delay
            message.delivered_at = self._event_at(natural, now, f"delivered:{message.id_message}")
        if message.read_delay is None:
            message.read_at = None
            return
        if message.read_at is None or message.read_at > now:
            natural = message.delivered_at + message.read_delay
            message.read_at = self._event_at(natural, now, f"read:{message.id_message}")
        if math.isfinite(message.read_at):
            self.longest_read_lag = max(self.longest_read_lag, message.read_at - message.sent_at)

    def replan_deliveries(self, now: float) -> None:
        """Plan every sent message again, after the stall schedule changed at ``now``."""
        for message in self.messages:
            self.plan(message, now)

    def queued(self, now: float) -> int:
        """Generated messages that have not been sent by ``now``."""
        count = sum(1 for m in self.waiting if m.queued_at <= now)
        for message in reversed(self.messages):
            if message.sent_at <= now:
                break
            count += message.queued_at <= now
        return count

    def advance(self, now: float, depth: int) -> None:
        """Generate the messages queued up to ``now`` and forget what no answer can show."""
        if self.rate <= 0:
            return
        while self.next_send <= now:
            self._schedule(self._new_message(self.next_send))
            self.next_send += self.rng.expovariate(self.rate)
        unsent = self.queued(now) - len(self.waiting)  # kept beyond the depth
        if len(self.messages) > depth + unsent:
            del self.messages[: len(self.messages) - depth - unsent]
        horizon = now - _RETENTION
        while self.messages and self.messages[0].sent_at < horizon:
            self.messages.pop(0)

    def _new_message(self, queued_at: float) -> _Message:
        rng = self.rng
        self.counter += 1
        type_message = rng.choices(_TYPE_NAMES, cum_weights=_TYPE_CUMULATIVE_WEIGHTS)[0]
        fixed = _fixed_status(rng.random())
        delivery = read = None
        if fixed is None:
            recipient = rng.random()
            if recipient >= self.stuck_ratio + self.offline_ratio:  # online: seconds
                delivery = min(600.0, rng.lognormvariate(1.3, 0.9))
            elif recipient >= self.stuck_ratio:  # phone off: half in 17 min, 1 in 10 after 1.5 h
                delivery = min(86400.0, 120 + rng.lognormvariate(6.8, 1.4))
            if delivery is not None and rng.random() < 0.6:
                read = min(3600.0, 5 + rng.lognormvariate(3.0, 1.2))
        text = rng.choice(_TEXTS).format(n=rng.randint(1000, 99999), h=rng.randint(9, 18))
        chat_id = rng.choice(self.chats)
        id_message = f"BAE5{rng.getrandbits(48):012X}"
        # Sending takes 0.2 to 2 s; from the id, so the traffic itself stays as it was.
        latency = 0.2 + 1.8 * hashlib.sha256(f"send:{id_message}".encode()).digest()[0] / 255
        return _Message(
            chat_id=chat_id,
            id_message=id_message,
            sent_at=queued_at,  # until scheduled
            delivery_delay=delivery,
            read_delay=read,
            fixed_status=fixed,
            type_message=type_message,
            send_by_api=rng.random() < 0.9,
            forwarded=rng.random() < 0.05,
            text=text,
            queued_at=queued_at,
            ready_at=queued_at + latency,
        )

    def journal(self, now: float, minutes: int, depth: int) -> list[Any]:
        cutoff = now - minutes * 60
        if self.scripted is not None:
            return [e for e in self.scripted if _scripted_in_window(e, cutoff)]
        self.advance(now, depth)
        elements: list[Any] = []
        for message in reversed(self.messages):  # newest first, like the real API
            if message.sent_at > now:
                continue
            if message.sent_at < cutoff or len(elements) >= depth:
                break
            elements.append(message.element(now, self.thumbnail, self.statuses))
        return elements

    def incoming(self, now: float, minutes: int, depth: int) -> list[Any]:
        """Replies from customers: some read messages get an answer a little later.

        About 40 % of read messages get one, 10 to 265 s after the read; everything about a
        reply comes from the id of the message it answers, so it is the same in every answer.
        """
        cutoff = now - minutes * 60
        if self.scripted_incoming is not None:
            return [e for e in self.scripted_incoming if _scripted_in_window(e, cutoff)]
        self.advance(now, depth)
        replies: list[dict[str, Any]] = []
        earliest, latest = _REPLY_DELAY
        for message in reversed(self.messages):
            if message.sent_at < cutoff - self.longest_read_lag - latest:
                break
            read_at = message.read_at
            if read_at is None or read_at + earliest > now or read_at + latest < cutoff:
                continue  # cheap checks first: this loop may see the whole journal
            digest = hashlib.sha256(message.id_message.encode()).digest()
            if digest[0] >= 100:  # ~40 % of read messages
                continue
            at = read_at + earliest + digest[1]
            if cutoff <= at <= now:
                replies.append(self._reply(message, digest, int(at)))
        replies.sort(key=lambda e: e["timestamp"], reverse=True)  # newest first
        return replies[:depth]

    def _reply(self, message: _Message, digest: bytes, timestamp: int) -> dict[str, Any]:
        id_message = f"3EB0{digest[2:10].hex().upper()}"
        sender = message.chat_id
        if sender.endswith("@g.us"):  # in a group, one of its members answers
            sender = f"7900{int.from_bytes(digest[10:14], 'big') % 9000000 + 1000000}@c.us"
        reply: dict[str, Any] = {
            "type": "incoming",
            "idMessage": id_message,
            "timestamp": timestamp,
            "typeMessage": "textMessage",
            "chatId": message.chat_id,
            "senderId": sender,
            "senderName": _SENDER_NAMES[digest[3] % len(_SENDER_NAMES)],
            "senderContactName": "",
            "isForwarded": False,
            "forwardingScore": 0,
        }
        text = _REPLIES[digest[5] % len(_REPLIES)]
        roll = digest[4] % 100
        if roll < 70:
            reply["textMessage"] = text
        elif roll < 80:
            reply["typeMessage"] = "extendedTextMessage"
            reply["textMessage"] = text + " https://example.com/order"
            reply["extendedTextMessage"] = {"text": reply["textMessage"], "description": "",
                                            "title": "", "isForwarded": False,
                                            "forwardingScore": 0}  # fmt: skip
        elif roll < 88:
            reply.update(typeMessage="imageMessage", caption="", mimeType="image/jpeg",
                         downloadUrl=f"https://sw-media.example/{id_message}",
                         fileName=f"{id_message.lower()}.jpg", jpegThumbnail=self.thumbnail,
                         isAnimated=False)  # fmt: skip
        elif roll < 94:
            reply.update(typeMessage="audioMessage", caption="", mimeType="audio/ogg; codecs=opus",
                         downloadUrl=f"https://sw-media.example/{id_message}",
                         fileName=f"{id_message.lower()}.oga", jpegThumbnail="")  # fmt: skip
        else:
            reply["typeMessage"] = "reactionMessage"
            reply["extendedTextMessageData"] = {"text": "👍", "stanzaId": message.id_message}
        return reply


def _scheduled_end(
    at: float, start: float | None, duration: float, period: float | None
) -> float | None:
    """The end of the scheduled spell (an outage, a stall) under way at ``at``, or None."""
    if start is None or duration <= 0 or at < start:
        return None
    begin = start
    if period:
        if duration >= period:
            return math.inf  # back to back: it never ends
        begin = start + math.floor((at - start) / period) * period
    end = begin + duration
    return end if at < end else None


def _release_delay(key: str) -> float:
    """3 to 60 s, mostly short: how long after a stall something it held happens."""
    share = hashlib.sha256(key.encode()).digest()[0] / 255
    return 3 + 57 * share * share


def _fixed_status(roll: float) -> str | None:
    for status, share in _FIXED_STATUSES:
        if roll < share:
            return status
        roll -= share
    return None


def _scripted_in_window(element: Any, cutoff: float) -> bool:
    if not isinstance(element, dict):
        return True
    timestamp = element.get("timestamp")
    if isinstance(timestamp, bool) or not isinstance(timestamp, int):
        return True
    return timestamp >= cutoff


class Simulator:
    """A fake GREEN-API. ``start()`` serves it on ``url``; ``stop()`` ends it.

    Every instance it makes sends ``rate`` messages a second; ``offline_ratio`` of their
    recipients get them minutes to hours late, ``stuck_ratio`` never. ``history`` seconds of
    traffic exist before the clock's present.
    """

    def __init__(
        self,
        instances: int = 3,
        seed: int = 1,
        host: str = "127.0.0.1",
        port: int = 0,
        depth: int = 5000,
        rate_limit: bool = True,
        rate: float = 1 / 60,
        history: float = 86400,
        stuck_ratio: float = 0.005,
        clock: Callable[[], float] = time.time,
        first_index: int = 1,
        offline_ratio: float = 0.025,
    ) -> None:
        self.seed = seed
        self.host = host
        self.port = port
        self.depth = depth
        self.rate_limit = rate_limit
        self.clock = clock
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        now = clock()
        self.instances: list[SimulatedInstance] = []
        for index in range(first_index, first_index + instances):
            instance = self._make_instance(index, f"sim-{index}", now - history, rate=rate,
                                           stuck_ratio=stuck_ratio, offline_ratio=offline_ratio)  # fmt: skip
            instance.advance(now, depth)
            self.instances.append(instance)

    def _make_instance(self, index: int, name: str, since: float, *, rate: float,
                       stuck_ratio: float, offline_ratio: float, v3: bool = False,
                       id_prefix: str = "1101") -> SimulatedInstance:  # fmt: skip
        rng = random.Random(f"greenapi-simulator:{self.seed}:{index}")
        token = hashlib.sha256(f"token:{self.seed}:{index}".encode()).hexdigest()[:50]
        chats = [f"7900{rng.randint(1000000, 9999999)}@c.us" for _ in range(27)]
        chats += [f"120363{rng.randint(10**11, 10**12 - 1)}@g.us" for _ in range(3)]
        thumbnail = base64.b64encode(rng.randbytes(3 * 1024)).decode()
        instance = SimulatedInstance(
            name=name,
            id_instance=f"{id_prefix}{index:06d}",
            token=token,
            v3=v3,
            rate=rate,
            stuck_ratio=stuck_ratio,
            offline_ratio=offline_ratio,
            rng=rng,
            chats=chats,
            thumbnail=thumbnail,
        )
        instance.next_send = since + (rng.expovariate(rate) if rate > 0 else 0.0)
        return instance

    @classmethod
    def demo(
        cls,
        seed: int = 1,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        outage_start_in: float = 30.0,
        outage_duration: float = 600.0,
        outage_period: float = 1800.0,
        stall_start_in: float = 60.0,
        stall_duration: float = 1800.0,
        stall_period: float = 7200.0,
        clock: Callable[[], float] = time.time,
    ) -> Simulator:
        """The four instances of the demo, each with an hour of healthy history.

        - shop-bot: a healthy bulk sender (0.3 messages a second); 2.2 % of its recipients
          are offline and get their message minutes to hours later, 0.5 % never: about
          97 % are delivered within two minutes.
        - support-bot: loses its authorization ``outage_start_in`` seconds after the
          simulator is made (default 30), stays ``notAuthorized`` for ``outage_duration``
          seconds (default 600) and again every ``outage_period`` seconds (default 1800;
          0 for once only): its send queue grows meanwhile and drains, one message a
          second, once it is authorized again.
        - stuck-bot: healthy traffic (0.2 a second) whose deliveries stall
          ``stall_start_in`` seconds after the simulator is made (default 60), for
          ``stall_duration`` seconds (default 1800) and again every ``stall_period`` seconds
          (default 7200; 0 for once only): what it sends meanwhile stays ``sent``, and is
          delivered within a minute of the stall's end.
        - max-channel: a MAX instance (``/v3``) whose journal says ``statusMessage: ""`` on
          every message, as GREEN-API's own MAX example does.

        Judge deliveries with ``undelivered_after`` :data:`DEMO_UNDELIVERED_AFTER` for the
        story to show within minutes (:meth:`exporter_config` takes it).
        """
        simulator = cls(instances=0, seed=seed, host=host, port=port, clock=clock)
        now = simulator.clock()
        profiles = [
            # name, messages a second, offline recipients, never delivered, MAX, id prefix
            ("shop-bot", 0.3, 0.022, 0.005, False, "1101"),
            ("support-bot", 0.25, 0.02, 0.005, False, "1101"),
            ("stuck-bot", 0.2, 0.02, 0.005, False, "1101"),
            ("max-channel", 0.2, 0.02, 0.005, True, "3100"),
        ]
        for index, (name, rate, offline, stuck, v3, prefix) in enumerate(profiles, start=1):
            instance = simulator._make_instance(index, name, now - 3600, rate=rate,
                                                stuck_ratio=stuck, offline_ratio=offline,
                                                v3=v3, id_prefix=prefix)  # fmt: skip
            if name == "support-bot":
                instance.outage_start = now + outage_start_in
                instance.outage_duration = outage_duration
                instance.outage_period = outage_period
            if name == "stuck-bot":
                instance.stall_start = now + stall_start_in
                instance.stall_duration = stall_duration
                instance.stall_period = stall_period
            if name == "max-channel":  # like the MAX journal in GREEN-API's documentation
                instance.statuses = False
            instance.advance(now, simulator.depth)
            simulator.instances.append(instance)
        return simulator

    # --- serving ----------------------------------------------------------------------

    def start(self) -> None:
        server = _Server((self.host, self.port), _Handler, self)
        self._server = server
        self.port = int(server.server_address[1])
        self._thread = threading.Thread(target=server.serve_forever, name="simulator", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # --- control ----------------------------------------------------------------------

    def instance(self, id_or_name: str) -> SimulatedInstance:
        for instance in self.instances:
            if id_or_name in (instance.name, instance.id_instance):
                return instance
        raise KeyError(f"no simulated instance {id_or_name!r}")

    def exporter_config(
        self, *, undelivered_after: str | float | None = None, **defaults: object
    ) -> dict[str, Any]:
        """An exporter configuration for these instances, with ``defaults`` for all of them.

        ``undelivered_after`` (a duration such as ``"2m"``) is one of the defaults, named
        because the demo's story depends on it.
        """
        if undelivered_after is not None:
            defaults["undelivered_after"] = undelivered_after
        document: dict[str, Any] = {}
        if defaults:
            document["defaults"] = dict(defaults)
        document["instances"] = [
            {
                "name": i.name,
                "id_instance": i.id_instance,
                "api_token": i.token,
                "api_url": self.url + ("/v3" if i.v3 else ""),
            }
            for i in self.instances
        ]
        return document

    def set_fault(
        self, id_or_name: str, mode: str, method: str | None = None, **params: object
    ) -> None:
        """Make requests fail as ``mode`` says: every method's, or only ``method``'s."""
        if mode not in FAULT_MODES:
            raise ValueError(f"unknown fault mode {mode!r} (known: {', '.join(FAULT_MODES)})")
        if method is not None and method not in METHODS:
            raise ValueError(f"unknown method {method!r} (known: {', '.join(METHODS)})")
        instance = self.instance(id_or_name)
        with instance.lock:
            instance.fault = (mode, dict(params), method)

    def clear_fault(self, id_or_name: str) -> None:
        instance = self.instance(id_or_name)
        with instance.lock:
            instance.fault = None

    def set_messages(self, id_or_name: str, elements: list[Any]) -> None:
        instance = self.instance(id_or_name)
        with instance.lock:
            instance.scripted = list(elements)

    def set_incoming(self, id_or_name: str, elements: list[Any]) -> None:
        """Serve exactly ``elements`` (within ``minutes``) from lastIncomingMessages."""
        instance = self.instance(id_or_name)
        with instance.lock:
            instance.scripted_incoming = list(elements)

    def set_state(self, id_or_name: str, state: str | None) -> None:
        """Force a state (None: a ``null`` body); ``authorized`` lets the outages rule again."""
        instance = self.instance(id_or_name)
        now = self.clock()
        with instance.lock:
            instance.advance(now, self.depth)  # what was queued so far, under the old state
            instance.state = state
            instance.replan(now)

    def set_outages(
        self, id_or_name: str, start: float | None, duration: float, period: float | None = None
    ) -> None:
        """Not authorized for ``duration`` s from clock time ``start``, every ``period`` s.

        ``start`` None means never; ``period`` None or 0 means once.
        """
        _check_schedule("outages", start, duration, period)
        instance = self.instance(id_or_name)
        now = self.clock()
        with instance.lock:
            instance.advance(now, self.depth)
            instance.outage_start = None if start is None else float(start)
            instance.outage_duration = float(duration)
            instance.outage_period = None if period is None else float(period)
            instance.replan(now)

    def set_stalls(
        self, id_or_name: str, start: float | None, duration: float, period: float | None = None
    ) -> None:
        """No delivery and no read for ``duration`` s from clock time ``start``, every ``period`` s.

        ``start`` None means never; ``period`` None or 0 means once. It applies to the
        messages already sent as well: what has not been delivered or read by now waits
        for the end of the stall, then happens a few seconds to a minute after it.
        """
        _check_schedule("stalls", start, duration, period)
        instance = self.instance(id_or_name)
        now = self.clock()
        with instance.lock:
            instance.advance(now, self.depth)
            instance.stall_start = None if start is None else float(start)
            instance.stall_duration = float(duration)
            instance.stall_period = None if period is None else float(period)
            instance.replan_deliveries(now)

    def set_statuses(self, id_or_name: str, enabled: bool) -> None:
        """With ``enabled`` False, every journal element says ``statusMessage: ""``."""
        instance = self.instance(id_or_name)
        with instance.lock:
            instance.statuses = enabled

    def set_queue(self, id_or_name: str, count: int, cyrillic: bool = False) -> None:
        instance = self.instance(id_or_name)
        with instance.lock:
            instance.queue_count, instance.queue_cyrillic = count, cyrillic

    def requests_log(self, id_or_name: str) -> list[dict[str, Any]]:
        instance = self.instance(id_or_name)
        with instance.lock:
            return [dict(entry) for entry in instance.log]


def _check_schedule(kind: str, start: float | None, duration: float, period: float | None) -> None:
    for name, number in (("duration", duration), ("period", period), ("start", start)):
        if number is not None and (
            isinstance(number, bool)
            or not isinstance(number, int | float)
            or not math.isfinite(number)
            or (name != "start" and number < 0)
        ):
            raise ValueError(f"{kind}: {name} must be a finite number of seconds, >= 0")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler],
                 simulator: Simulator) -> None:  # fmt: skip
        self.simulator = simulator
        super().__init__(address, handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients that hang up (timeouts are the point of some faults) are normal here


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    server_version = "GreenApiSimulator/1.0"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    @property
    def sim(self) -> Simulator:
        return self.server.simulator

    # --- the fake API -------------------------------------------------------------------

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if url.path.startswith("/_sim/"):
            self._control("GET", url.path)
            return
        match = _PATH.match(url.path)
        if match is None:
            self._json(404, {"message": "not found"})
            return
        id_instance, method, token = match.groups()
        instance = next((i for i in self.sim.instances if i.id_instance == id_instance), None)
        if instance is None:
            self._json(403, {"message": "instance not found or access denied"})
            return
        query = parse_qs(url.query)
        minutes_raw = query.get("minutes", [None])[0]
        if token != instance.token:
            self._record(instance, method, url, minutes_raw, 401)
            self._json(401, {"message": "Unauthorized"})
            return
        if method not in METHODS:
            self._record(instance, method, url, minutes_raw, 404)
            self._json(404, {"message": f"method {method} not found"})
            return
        if self.sim.rate_limit and not self._within_rate(instance, method):
            self._record(instance, method, url, minutes_raw, 429)
            self._json(429, {"message": "Too Many Requests"})
            return
        minutes = 1440
        if minutes_raw is not None:
            if not minutes_raw.isdigit():
                self._record(instance, method, url, minutes_raw, 400)
                self._json(400, {"message": "minutes must be an integer"})
                return
            minutes = int(minutes_raw)
        with instance.lock:
            fault = instance.fault
        if (
            fault is not None
            and fault[2] in (None, method)
            and self._fault(instance, method, url, minutes_raw, minutes, fault[:2])
        ):
            return
        self._record(instance, method, url, minutes_raw, 200)
        self._json(200, self._body(instance, method, self.sim.clock(), minutes))

    def _body(self, instance: SimulatedInstance, method: str, now: float, minutes: int) -> Any:
        """The normal answer of ``method`` at ``now``."""
        depth = self.sim.depth
        with instance.lock:
            if method == "lastOutgoingMessages":
                return instance.journal(now, minutes, depth)
            if method == "lastIncomingMessages":
                return instance.incoming(now, minutes, depth)
            if method == "getStateInstance":
                state = instance.effective_state(now)
                return None if state is None else {"stateInstance": state}
            count = instance.queue_count
            if instance.scripted is None and instance.rate > 0:
                instance.advance(now, depth)
                count += instance.queued(now)
            return {"\u0441ount" if instance.queue_cyrillic else "count": count}

    def _within_rate(self, instance: SimulatedInstance, method: str) -> bool:
        now = time.monotonic()
        with instance.lock:
            last = instance.last_request.get(method)
            if last is not None and now - last < 1.0:
                return False
            instance.last_request[method] = now
            return True

    def _record(self, instance: SimulatedInstance, method: str, url: Any, minutes: str | None,
                status: int) -> None:  # fmt: skip
        path = url.path.replace(f"/{instance.token}", "/<token>")
        if instance.token not in self.path:  # a wrong token is hidden as well
            path = re.sub(r"(/waInstance\d+/[A-Za-z]+/)[^/]+", r"\1<token>", url.path)
        with instance.lock:
            instance.log.append({"time": time.time(), "method": method, "path": path,
                                 "minutes": minutes, "status": status})  # fmt: skip

    def _fault(self, instance: SimulatedInstance, method: str, url: Any, minutes_raw: str | None,
               minutes: int, fault: tuple[str, dict[str, Any]]) -> bool:  # fmt: skip
        """Apply a fault; True when the request has been fully handled."""
        mode, params = fault
        now = self.sim.clock()
        if mode == "status":
            code = int(params.get("code", 500))
            self._record(instance, method, url, minutes_raw, code)
            headers = {"Retry-After": str(params["retry_after"])} if "retry_after" in params else {}
            if "body" in params:
                self._send(code, str(params["body"]).encode(), "text/plain", headers)
            else:
                quota = {"invokeStatus": {**QUOTA_BODY["invokeStatus"], "method": method}}
                self._json(code, quota if code == 466 else {"message": f"error {code}"}, headers)
            return True
        if mode == "delay":  # then answer normally (and log it then)
            return self.sim._stopping.wait(float(params.get("seconds", 5)))
        self._record(instance, method, url, minutes_raw, 200)
        if mode == "hang":
            self.sim._stopping.wait()
            self.close_connection = True
            return True
        if mode == "reset":
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
            self.close_connection = True
            return True
        real = self._body(instance, method, now, minutes)
        if mode == "broken_json":
            self._send(
                200, b'[{"idMessage": "BAE5BROKEN", "timestamp": 1700000000 "statusMessage"}]'
            )
        elif mode == "truncated_json":
            body = json.dumps(real).encode()
            self._send(200, body[: max(1, len(body) // 2)])
        elif mode == "html":
            page = b"<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1></body></html>"
            self._send(200, page, "text/html")
        elif mode == "not_array":
            self._json(200, {"message": "unexpected"})
        elif mode == "huge":
            self._huge(instance, float(params.get("megabytes", 50)), now)
        elif mode == "large_journal":
            self._json(
                200, list(_generated(int(params.get("count", 10000)), now - 3600, 0.3, instance))
            )
        elif mode == "future_timestamps":
            self._json(200, list(_generated(50, 4102444800, 60, instance)))
        elif mode == "epoch_timestamps":
            self._json(200, list(_generated(50, 0, 60, instance)))
        elif mode == "duplicate_ids":
            base = int(now)
            duplicates = [
                _plain("BAE5DUPLICATE0001", "79001112233@c.us", base - 60, "sent"),
                _plain("BAE5DUPLICATE0001", "79001112233@c.us", base - 30, "delivered"),
                _plain("BAE5DUPLICATE0001", "79001112233@c.us", base - 10, "read"),
                _plain("BAE5DUPLICATE0001", "79004445566@c.us", base - 20, "sent"),
                _plain("BAE5DUPLICATE0001", "120363000000000001@g.us", base - 5, "delivered"),
            ]
            self._json(200, duplicates + (real if isinstance(real, list) else []))
        return True

    def _huge(self, instance: SimulatedInstance, megabytes: float, now: float) -> None:
        """A valid JSON array of about ``megabytes`` MiB, streamed element by element."""
        filler = base64.b64encode(b"\0" * 48 * 1024).decode()  # 64 KiB of base64 per element

        def element(index: int) -> bytes:
            item = _plain(f"BAE5HUGE{index:08d}", "79001234567@c.us", int(now) - index, "read")
            item.update(typeMessage="imageMessage", jpegThumbnail=filler)
            return json.dumps(item).encode()

        size = len(element(0))
        count = max(1, math.ceil(megabytes * 1024 * 1024 / (size + 1)))
        length = 2 + count * size + (count - 1)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(length))
        self.end_headers()
        try:
            self.wfile.write(b"[")
            for index in range(count):
                self.wfile.write((b"," if index else b"") + element(index))
            self.wfile.write(b"]")
        except OSError:
            self.close_connection = True

    # --- control API ----------------------------------------------------------------------

    def do_PUT(self) -> None:
        self._control("PUT", urlsplit(self.path).path)

    def do_DELETE(self) -> None:
        self._control("DELETE", urlsplit(self.path).path)

    def _control(self, verb: str, path: str) -> None:
        parts = path.strip("/").split("/")
        body: Any = None
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            try:
                body = json.loads(self.rfile.read(length))
            except ValueError:
                self._json(400, {"error": "body is not JSON"})
                return
        try:
            if parts == ["_sim", "instances"] and verb == "GET":
                self._json(200, [
                    {"name": i.name, "id_instance": i.id_instance, "token": i.token,
                     "api_url": self.sim.url + ("/v3" if i.v3 else "")}
                    for i in self.sim.instances
                ])  # fmt: skip
                return
            if len(parts) != 4 or parts[:2] != ["_sim", "instances"]:
                self._json(404, {"error": "unknown control path"})
                return
            target, action = parts[2], parts[3]
            if action in ("messages", "incoming") and verb == "PUT":
                if not isinstance(body, list):
                    raise ValueError(f"{action}: expected a JSON array")
                if action == "messages":
                    self.sim.set_messages(target, body)
                else:
                    self.sim.set_incoming(target, body)
            elif action == "fault" and verb == "PUT":
                if not isinstance(body, dict) or "mode" not in body:
                    raise ValueError('fault: expected {"mode": ...}')
                method = body.get("method")
                if method is not None and not isinstance(method, str):
                    raise ValueError("fault: method must be a method name")
                params = {k: v for k, v in body.items() if k not in ("mode", "method")}
                self.sim.set_fault(target, str(body["mode"]), method, **params)
            elif action == "fault" and verb == "DELETE":
                self.sim.clear_fault(target)
            elif action == "requests" and verb == "GET":
                self._json(200, self.sim.requests_log(target))
                return
            elif action == "state" and verb == "PUT":
                if not isinstance(body, dict):
                    raise ValueError('state: expected {"state": ...}')
                self.sim.set_state(target, body.get("state"))
            elif action == "outages" and verb == "PUT":
                self.sim.set_outages(target, *self._schedule(action, body))
            elif action == "stalls" and verb == "PUT":
                self.sim.set_stalls(target, *self._schedule(action, body))
            elif action == "statuses" and verb == "PUT":
                if not isinstance(body, dict) or not isinstance(body.get("enabled"), bool):
                    raise ValueError('statuses: expected {"enabled": true or false}')
                self.sim.set_statuses(target, body["enabled"])
            elif action == "queue" and verb == "PUT":
                if not isinstance(body, dict):
                    raise ValueError('queue: expected {"count": N}')
                self.sim.set_queue(target, int(body.get("count", 0)), bool(body.get("cyrillic")))
            else:
                self._json(404, {"error": "unknown control path"})
                return
        except KeyError as exc:
            self._json(404, {"error": str(exc)})
            return
        except (ValueError, TypeError) as exc:
            self._json(400, {"error": str(exc)})
            return
        self._json(200, {"ok": True})

    def _schedule(self, kind: str, body: Any) -> tuple[float | None, float, float | None]:
        """``{"start_in": s, "duration": s, "period": s}`` as start, duration and period."""
        if not isinstance(body, dict):
            raise ValueError(f'{kind}: expected {{"start_in": s, "duration": s, "period": s}}')
        start_in = body.get("start_in")
        start = None if start_in is None else self.sim.clock() + _seconds(kind, start_in)
        period = body.get("period")
        return (start, _seconds(kind, body.get("duration", 0)),
                None if period is None else _seconds(kind, period))  # fmt: skip

    # --- answers ----------------------------------------------------------------------

    def _json(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        self._send(
            status,
            json.dumps(body, ensure_ascii=False).encode("utf-8"),
            "application/json",
            headers,
        )

    def _send(self, status: int, body: bytes, content_type: str = "application/json",
              headers: dict[str, str] | None = None) -> None:  # fmt: skip
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        try:
            self.wfile.write(body)
        except OSError:
            self.close_connection = True

    def finish(self) -> None:
        # The connection may have been reset on purpose, or the client gave up.
        with contextlib.suppress(OSError):
            super().finish()


def _seconds(kind: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{kind}: {value!r} is not a number of seconds")
    return float(value)


def _plain(id_message: str, chat_id: str, timestamp: int, status: str) -> dict[str, Any]:
    return {
        "type": "outgoing", "idMessage": id_message, "timestamp": timestamp,
        "statusMessage": status, "sendByApi": True, "typeMessage": "textMessage",
        "chatId": chat_id, "isForwarded": False, "forwardingScore": 0, "textMessage": "hello",
    }  # fmt: skip


def _generated(
    count: int, start: float, spacing: float, instance: SimulatedInstance
) -> Iterator[dict[str, Any]]:
    """``count`` plausible messages from ``start`` on, newest first, for the load faults."""
    rng = random.Random(f"{instance.id_instance}:{count}:{start}")
    statuses = ("sent", "delivered", "read", "read")
    for index in reversed(range(count)):
        yield _plain(f"BAE5GEN{index:09d}", rng.choice(instance.chats), int(start + index * spacing),
                     rng.choice(statuses))  # fmt: skip


# --- command line --------------------------------------------------------------------------

_CONTROL_API_HELP = f"""\
control API ({{x}}: an instance's name or id; JSON bodies):
  GET /_sim/instances               names, ids, tokens and api_url
  GET /_sim/instances/{{x}}/requests  the requests it answered (tokens hidden)
  PUT /_sim/instances/{{x}}/messages  [elements]: serve them as its journal
  PUT /_sim/instances/{{x}}/incoming  [elements]: the same for lastIncomingMessages
  PUT /_sim/instances/{{x}}/fault     {{"mode": m, "method": name, params}}; DELETE clears
  PUT /_sim/instances/{{x}}/state     {{"state": "notAuthorized"}} (null: a null body)
  PUT /_sim/instances/{{x}}/queue     {{"count": N, "cyrillic": false}}
  PUT /_sim/instances/{{x}}/outages   {{"start_in": s, "duration": s, "period": s}}:
                                    not authorized on that schedule
  PUT /_sim/instances/{{x}}/stalls    {{"start_in": s, "duration": s, "period": s}}:
                                    nothing delivered or read on that schedule
  PUT /_sim/instances/{{x}}/statuses  {{"enabled": false}}: statusMessage "" everywhere

{textwrap.fill("fault modes: " + ", ".join(FAULT_MODES), 78, subsequent_indent="  ")}
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="greenapi-simulator",
        description="A realistic fake GREEN-API on loopback, for demos and tests.",
        epilog=_CONTROL_API_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--listen", default="127.0.0.1:8080", help="HOST:PORT (default 127.0.0.1:8080)"
    )
    parser.add_argument("--instances", type=int, default=3, help="number of instances (default 3)")
    parser.add_argument("--seed", type=int, default=1, help="traffic seed (default 1)")
    parser.add_argument("--depth", type=int, default=5000, help="journal depth cap (default 5000)")
    parser.add_argument(
        "--rate", type=float, default=1.0, help="messages per minute per instance (default 1)"
    )
    parser.add_argument(
        "--no-rate-limit", action="store_true", help="do not answer 429 to fast clients"
    )
    parser.add_argument(
        "--demo", action="store_true", help="the four instances of greenapi-exporter --demo"
    )
    parser.add_argument(
        "--print-config",
        action="store_true",
        help="print a matching exporter configuration and exit",
    )
    parser.add_argument("--first-instance", type=int, default=1,
                        help="number of the first instance (ids and names count on from it)")  # fmt: skip
    parser.add_argument(
        "--allow-remote", action="store_true", help="allow listening on a non-loopback address"
    )
    args = parser.parse_args(argv)

    host, sep, port_text = args.listen.rpartition(":")
    host = host.strip("[]")
    if not sep or not port_text.isdigit():
        print(f"greenapi-simulator: --listen: {args.listen!r} is not HOST:PORT", file=sys.stderr)
        return 1
    if (
        not args.allow_remote
        and host not in ("127.0.0.1", "localhost", "::1")
        and not host.startswith("127.")
    ):
        print(f"greenapi-simulator: --listen: {host!r} is not a loopback address; add --allow-remote",
              file=sys.stderr)  # fmt: skip
        return 1
    if args.demo:
        simulator = Simulator.demo(seed=args.seed, host=host, port=int(port_text))
    else:
        simulator = Simulator(instances=args.instances, seed=args.seed, host=host, port=int(port_text),
                              depth=args.depth, rate_limit=not args.no_rate_limit, rate=args.rate / 60,
                              first_index=args.first_instance)  # fmt: skip
    if not args.no_rate_limit:
        simulator.rate_limit = True
    if args.print_config:
        import yaml

        demo = {"undelivered_after": DEMO_UNDELIVERED_AFTER} if args.demo else {}
        print(yaml.safe_dump(simulator.exporter_config(**demo), sort_keys=False), end="")
        return 0
    try:
        simulator.start()
    except OSError as exc:
        print(
            f"greenapi-simulator: cannot listen on {args.listen}: {exc.strerror or exc}",
            file=sys.stderr,
        )
        return 2
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    print(
        f"greenapi-simulator: serving {len(simulator.instances)} instances on {simulator.url}",
        file=sys.stderr,
    )
    stop.wait()
    simulator.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
