"""Customers' replies to the simulator's messages, as ``lastIncomingMessages`` serves them.

About 40 % of read messages get an answer, 10 to 265 s after the read. Everything about a
reply (whether there is one, when, its id, sender, type and text) comes from the id of the
message it answers, so the same reply appears in every answer and no random state is used.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from exporter.simulator.messages import Message

_REPLIES = (
    "Thank you!",
    "When will it arrive?",
    "Ok",
    "Can I change the delivery address?",
    "Great, see you then",
    "I did not get the code",
)
_SENDER_NAMES = ("Anna", "Ivan Petrov", "Maria", "Alex", "Olga S.", "Dmitry", "Elena", "Sam")
REPLY_DELAY = (10, 10 + 255)  # a customer answers 10 to 265 s after reading


def replies(
    messages: Sequence[Message],
    *,
    now: float,
    cutoff: float,
    depth: int,
    longest_read_lag: float,
    thumbnail: str,
) -> list[dict[str, Any]]:
    """The replies to ``messages`` (oldest first) timed from ``cutoff`` to ``now``, newest
    first, ``depth`` at most. ``longest_read_lag`` (send to read) bounds how far back in
    ``messages`` a reply in the window can come from."""
    found: list[dict[str, Any]] = []
    earliest, latest = REPLY_DELAY
    for message in reversed(messages):
        if message.sent_at < cutoff - longest_read_lag - latest:
            break
        read_at = message.read_at
        if read_at is None or read_at + earliest > now or read_at + latest < cutoff:
            continue  # cheap checks first: this loop may see the whole journal
        digest = hashlib.sha256(message.id_message.encode()).digest()
        if digest[0] >= 100:  # ~40 % of read messages
            continue
        at = read_at + earliest + digest[1]
        if cutoff <= at <= now:
            found.append(_reply(message, digest, int(at), thumbnail))
    found.sort(key=lambda e: e["timestamp"], reverse=True)  # newest first
    return found[:depth]


def _reply(message: Message, digest: bytes, timestamp: int, thumbnail: str) -> dict[str, Any]:
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
                     fileName=f"{id_message.lower()}.jpg", jpegThumbnail=thumbnail,
                     isAnimated=False)  # fmt: skip
    elif roll < 94:
        reply.update(typeMessage="audioMessage", caption="", mimeType="audio/ogg; codecs=opus",
                     downloadUrl=f"https://sw-media.example/{id_message}",
                     fileName=f"{id_message.lower()}.oga", jpegThumbnail="")  # fmt: skip
    else:
        reply["typeMessage"] = "reactionMessage"
        reply["extendedTextMessageData"] = {"text": "👍", "stanzaId": message.id_message}
    return reply
