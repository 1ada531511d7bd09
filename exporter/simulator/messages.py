"""The simulator's messages: one generated message, its journal element, plain elements.

A :class:`Message` is drawn once, from the instance's random generator, with everything the
recipient will do undisturbed (how long until delivery, until read, or never); the send
queue and the stall schedule (:mod:`exporter.simulator.traffic`) then decide when that
happens. :func:`new_message` draws in a fixed order: the same seed gives the same traffic.
:func:`plain` and :func:`generated` make the simple elements the load faults serve.
"""

from __future__ import annotations

import hashlib
import itertools
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

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
# Statuses that never change, with their share of the generated messages: rare, as on a
# healthy number (failed sends are not written to the journal at all).
_FIXED_STATUSES = (("pending", 0.001), ("noAccount", 0.0015), ("yellowCard", 0.0005), ("", 0.001))
_TEXTS = (
    "Your order #{n} has been shipped",
    "Thank you for contacting us! An operator will answer shortly.",
    "Reminder: your appointment is tomorrow at {h}:00",
    "Your verification code is {n}",
    "Hello! How can we help you today?",
)


@dataclass
class Message:
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


def new_message(
    rng: random.Random,
    chats: Sequence[str],
    queued_at: float,
    *,
    stuck_ratio: float,
    offline_ratio: float,
) -> Message:
    """A message the bot queues at ``queued_at``, to one of ``chats``.

    Most recipients are online and get it within seconds; ``offline_ratio`` of them have
    their phone off (half get it within 17 minutes, one in ten after an hour and a half);
    ``stuck_ratio`` never get it.
    """
    type_message = rng.choices(_TYPE_NAMES, cum_weights=_TYPE_CUMULATIVE_WEIGHTS)[0]
    fixed = _fixed_status(rng.random())
    delivery = read = None
    if fixed is None:
        recipient = rng.random()
        if recipient >= stuck_ratio + offline_ratio:  # online: seconds
            delivery = min(600.0, rng.lognormvariate(1.3, 0.9))
        elif recipient >= stuck_ratio:  # phone off: minutes to hours, a day at most
            delivery = min(86400.0, 120 + rng.lognormvariate(6.8, 1.4))
        if delivery is not None and rng.random() < 0.6:
            read = min(3600.0, 5 + rng.lognormvariate(3.0, 1.2))
    text = rng.choice(_TEXTS).format(n=rng.randint(1000, 99999), h=rng.randint(9, 18))
    chat_id = rng.choice(chats)
    id_message = f"BAE5{rng.getrandbits(48):012X}"
    # Sending takes 0.2 to 2 s; from the id, so the traffic itself stays as it was.
    latency = 0.2 + 1.8 * hashlib.sha256(f"send:{id_message}".encode()).digest()[0] / 255
    return Message(
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


def _fixed_status(roll: float) -> str | None:
    for status, share in _FIXED_STATUSES:
        if roll < share:
            return status
        roll -= share
    return None


def plain(id_message: str, chat_id: str, timestamp: int, status: str) -> dict[str, Any]:
    """A minimal outgoing text element."""
    return {
        "type": "outgoing", "idMessage": id_message, "timestamp": timestamp,
        "statusMessage": status, "sendByApi": True, "typeMessage": "textMessage",
        "chatId": chat_id, "isForwarded": False, "forwardingScore": 0, "textMessage": "hello",
    }  # fmt: skip


def generated(
    count: int, start: float, spacing: float, id_instance: str, chats: Sequence[str]
) -> Iterator[dict[str, Any]]:
    """``count`` plausible messages from ``start`` on, newest first, for the load faults.
    The same messages (keys and statuses) at every call, as a journal answers: only their
    timestamps move with ``start``."""
    rng = random.Random(f"{id_instance}:{count}")
    statuses = ("sent", "delivered", "read", "read")
    for index in reversed(range(count)):
        yield plain(f"BAE5GEN{index:09d}", rng.choice(chats), int(start + index * spacing),
                    rng.choice(statuses))  # fmt: skip
