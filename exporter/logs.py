"""Logging in logfmt or JSON, with every known token scrubbed from every line.

Call sites pass context as ``extra={"instance": ..., "result": ...}``; those fields are
printed after the message. Redaction is a last line of defence: the client already
redacts its errors, but a token must not leak even through a library's debug line.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from collections.abc import Iterable

from exporter.redaction import redact

LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}
# Spellings of other exporters (the Go ones say `warn`) that mean one of LEVELS.
LEVEL_ALIASES = {"warn": "warning"}
FORMATS = ("logfmt", "json")

# Attributes every LogRecord has; anything else on a record came from `extra=`.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
}


class Secrets:
    """The tokens to scrub. Grows on reload and never shrinks: old lines may still be queued."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: tuple[str, ...] = ()

    def add(self, values: Iterable[str]) -> None:
        with self._lock:
            merged = set(self._values) | {v for v in values if v}
            # Longest first, so a token that contains another is replaced whole.
            self._values = tuple(sorted(merged, key=len, reverse=True))

    def scrub(self, text: str) -> str:
        return redact(text, self._values)


def _fields(record: logging.LogRecord) -> list[tuple[str, object]]:
    fields: list[tuple[str, object]] = [
        ("ts", _timestamp(record.created)),
        ("level", record.levelname.lower()),
        ("logger", record.name),
        ("msg", record.getMessage()),
    ]
    fields.extend((key, value) for key, value in vars(record).items() if key not in _STANDARD)
    if record.exc_info:
        fields.append(("exc", logging.Formatter().formatException(record.exc_info)))
    return fields


def _timestamp(created: float) -> str:
    seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created))
    return f"{seconds}.{int(created % 1 * 1000):03d}Z"


class LogfmtFormatter(logging.Formatter):
    """``ts=… level=info logger=exporter.poller msg="poll failed" instance=sales-bot``"""

    def __init__(self, secrets: Secrets) -> None:
        super().__init__()
        self._secrets = secrets

    def format(self, record: logging.LogRecord) -> str:
        parts = [f"{key}={_logfmt_value(value)}" for key, value in _fields(record)]
        return self._secrets.scrub(" ".join(parts))


class JsonFormatter(logging.Formatter):
    """One JSON object per line with the same keys as logfmt."""

    def __init__(self, secrets: Secrets) -> None:
        super().__init__()
        self._secrets = secrets

    def format(self, record: logging.LogRecord) -> str:
        line = json.dumps(dict(_fields(record)), default=str, ensure_ascii=False)
        return self._secrets.scrub(line)


def _logfmt_value(value: object) -> str:
    text = value if isinstance(value, str) else str(value)
    if text and not any(c in text for c in ' ="\\\n\t') and text.isprintable():
        return text
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def setup_logging(level: str, fmt: str, secrets: Secrets) -> None:
    """Configure the root logger. ``level`` and ``fmt`` are validated by the CLI."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(secrets) if fmt == "json" else LogfmtFormatter(secrets))
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(LEVELS[level])
    # urllib3 logs every request line, token included, at debug level. Its information is
    # already in our own poll logs; keep it quiet whatever --log.level says.
    logging.getLogger("urllib3").setLevel(logging.WARNING)
    # A malformed header line makes urllib3's connection log a warning quoting the URL at every
    # poll: the client classifies the answer itself, so that warning is noise.
    logging.getLogger("urllib3.connection").setLevel(logging.ERROR)
