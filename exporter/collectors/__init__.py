"""The collectors an instance can ``collect``, in the order its requests go out.

This tuple is the registry: the configuration validates ``collect:`` against it, the poller
requests what it lists, the metrics collector declares its families from it (in this order),
the server describes each on the status page. To add a collector, write a module with an
:class:`~exporter.collectors.base.ApiCollector` subclass (see ``queue.py``, the smallest)
and list an instance of it here.
"""

from __future__ import annotations

from typing import Any

from exporter.collectors.base import (
    ApiCollector,
    CollectorStatus,
    FamilySpec,
    InvalidAnswer,
    Reading,
    SampleSink,
    Span,
)
from exporter.collectors.incoming import IncomingCollector
from exporter.collectors.outgoing import OutgoingCollector
from exporter.collectors.queue import QueueCollector
from exporter.collectors.state import StateCollector

AnyCollector = ApiCollector[Any, Any, Any]

OUTGOING = OutgoingCollector()
COLLECTORS: tuple[AnyCollector, ...] = (OUTGOING, StateCollector(), QueueCollector(),
                                        IncomingCollector())  # fmt: skip
NAMES: tuple[str, ...] = tuple(c.name for c in COLLECTORS)
BY_NAME: dict[str, AnyCollector] = {c.name: c for c in COLLECTORS}

__all__ = [
    "BY_NAME", "COLLECTORS", "NAMES", "OUTGOING", "AnyCollector", "ApiCollector",
    "CollectorStatus", "FamilySpec", "InvalidAnswer", "Reading", "SampleSink", "Span",
]  # fmt: skip
