"""The configuration file: every key declared once, then parsed and validated in one place.

A key of the file is a :class:`Setting`: its kind of value (how it is read, checked and shown,
and the words for the README's table), its default, and a one-line description. Where a key
may appear follows from where it is declared:

- fields of :class:`Settings` are keys of ``defaults`` and of every instance; an instance
  starts from ``defaults`` and replaces what it sets (a ``collect`` list replaces, it does not
  add);
- fields of :class:`Config` that carry a setting are top-level keys;
- :data:`INSTANCE_KEYS` are an instance's own: who it is and its token.

The parser, ``--check-config`` (:meth:`Config.summary`) and :func:`settings_table` (the
README's table, which a test keeps equal to the code) all read those declarations, so a new
setting is one field of :class:`Settings` plus the code that uses it.

Every problem is collected before anything is refused, so a user fixes a file in one go.
Each message is one line naming the file, then the key path, then what is wrong::

    config.yaml: instances[2].poll_interval: invalid duration 'soon' (use e.g. 90s, 5m, 1h30m or a number of seconds)

Error messages, ``repr()`` and :meth:`Config.summary` never quote a token.
"""

from __future__ import annotations

import difflib
import math
import os
import re
import stat
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any, TypeVar

import yaml

from exporter import collectors
from exporter.redaction import NOT_UTF8, UnreadableFile, read_small_file, redact

# Label names the exporter itself puts on series (and Prometheus's target labels): a static
# label with one of these names would clash or be renamed to exported_*.
OWN_LABELS: frozenset[str] = frozenset(
    {"name", "id_instance", "status", "message_type", "send_by_api", "result", "collector",
     "state", "le", "quantile", "version", "job", "instance"}
)  # fmt: skip

# What `collect:` can list, in the order an instance's requests are made: the registry.
COLLECTORS: tuple[str, ...] = collectors.NAMES
DEFAULT_API_URL = "https://api.green-api.com"
DEFAULT_CONCURRENCY = 8
MIN_POLL_INTERVAL = 1.0  # GREEN-API allows one request per second per instance and method
MIN_WINDOW = 60.0  # the journal is asked for whole minutes
MAX_WINDOW = 90 * 86400.0  # the journal keeps at most about three months
MAX_DURATION = MAX_WINDOW  # no setting makes sense beyond the journal's depth
MONTH = 30 * 86400.0

_NAME = re.compile(r"[A-Za-z0-9_.-]+")
_LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_DIGITS = re.compile(r"[0-9]+")
_VARIABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# `$$`, then a closed `${...}`, then an unclosed `${` (tried in this order at each `$`).
_REFERENCE = re.compile(r"\$\$|\$\{[^}]*\}|\$\{")
# A token goes into the URL path: printable ASCII without the characters that end or escape it.
_TOKEN = re.compile(r"[\x21-\x7e]+")
_TOKEN_FORBIDDEN = frozenset("/?#%\\")
_MAX_TOKEN_FILE = 64 * 1024  # bytes read from an api_token_file, at most
_MAX_CONFIG_FILE = 64 * 1024 * 1024  # far beyond ten thousand instances
_MIN_REDACTED = 8  # shorter "tokens" (mistakes, test values) are not hunted for in messages

_NUMBER = re.compile(r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|y|w|d|h|m|s)")
_UNIT_ORDER = ("y", "w", "d", "h", "m", "s", "ms")  # Prometheus: largest first, each once
_UNIT_SECONDS: Mapping[str, float] = {
    "y": 365 * 86400.0, "w": 7 * 86400.0, "d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0,
    "ms": 0.001,
}  # fmt: skip
_DURATION_HINT = " (use e.g. 90s, 5m, 1h30m or a number of seconds)"

T = TypeVar("T")


# --- durations ------------------------------------------------------------------------------


def parse_duration(value: object) -> float:
    """Seconds from ``90s``, ``5m``, ``1h30m``, ``500ms``, ``1d``, ``1w``, ``1y`` (Prometheus
    style: units largest first, each at most once), a number, or a string holding a number.

    Raises ValueError with a readable message (that quotes the value).
    """
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"invalid duration {_show(value)}{_DURATION_HINT}")
    if isinstance(value, str):
        text = value.strip()
        negative = text.startswith("-")
        seconds = _duration_seconds(text[1:] if negative else text)
        if seconds is None:
            raise ValueError(f"invalid duration {_show(value)}{_DURATION_HINT}")
        if negative and seconds != 0:
            seconds = -seconds
    else:
        try:
            seconds = float(value)
        except OverflowError:
            raise ValueError(f"invalid duration {_show(value)}: too large") from None
    if not math.isfinite(seconds):
        raise ValueError(f"invalid duration {_show(value)}: must be a finite number of seconds")
    if seconds < 0:
        raise ValueError(f"invalid duration {_show(value)}: must not be negative")
    return seconds


def _duration_seconds(text: str) -> float | None:
    if not text:
        return None
    if _NUMBER.fullmatch(text):
        return float(text)
    total, position, rank = 0.0, 0, -1
    while position < len(text):
        match = _DURATION_PART.match(text, position)
        if match is None:
            return None
        unit_rank = _UNIT_ORDER.index(match.group(2))
        if unit_rank <= rank:
            return None  # out of order or repeated, e.g. 5m1h or 1m1m
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        position, rank = match.end(), unit_rank
    return total


def format_duration(seconds: float) -> str:
    """90 → ``1m30s``; 86400 → ``1d``; 0 → ``0s``; 0.5 → ``0.5s``."""
    if not math.isfinite(seconds):
        return f"{seconds}s"
    if seconds < 0:
        return "-" + format_duration(-seconds)
    parts = []
    remaining = seconds
    for unit, size in (("d", 86400.0), ("h", 3600.0), ("m", 60.0)):
        count = remaining // size
        if count:
            parts.append(f"{count:.0f}{unit}")
            remaining -= count * size
    remaining = round(remaining, 3)
    if remaining or not parts:
        parts.append(f"{remaining:g}s")
    return "".join(parts)


# --- declarations ---------------------------------------------------------------------------


class _Invalid(Exception):
    """A value is refused. The message is about the key being read; an empty one means the
    problems were reported already, at deeper key paths (``collect[1]``, ``labels.team``)."""


@dataclass(frozen=True)
class Kind:
    """A kind of value: how it is read and checked, how it is shown, how the README says it.

    ``read(value, key_path, parser)`` gets the value with ``${VAR}`` expanded and returns the
    parsed value, or raises _Invalid with a one-line message that never quotes a token.
    """

    read: Callable[[object, str, _Parser], Any]
    text: str  # the type and bounds, for the README's table
    show: Callable[[Any], str] = str  # for --check-config and the table's default column


@dataclass(frozen=True)
class Setting:
    """One key of the configuration file."""

    kind: Kind
    doc: str  # one line, for the README's table
    default: Any = None
    key: str = ""  # the field's name, for the settings declared as fields
    required: bool = False
    unique: bool = False  # no two instances may have the same value
    default_text: str = ""  # the table's default column, when the default is no value
    note: Callable[[Settings], str] | None = None  # what a value means, for --check-config


def setting(default: T, kind: Kind, doc: str, note: Callable[[Settings], str] | None = None) -> T:
    """A dataclass field that declares a key of the file, with ``default`` as its default."""
    return field(default=default, metadata={"setting": Setting(kind, doc, default, note=note)})


def _declared(cls: type) -> tuple[Setting, ...]:
    return tuple(
        replace(f.metadata["setting"], key=f.name) for f in fields(cls) if "setting" in f.metadata
    )


# --- kinds of values ------------------------------------------------------------------------


def duration(
    minimum: float = 0.0,
    maximum: float = MAX_DURATION,
    *,
    above_zero: bool = False,
    why_minimum: str = "",
    why_maximum: str = "",
) -> Kind:
    """A duration between ``minimum`` and ``maximum``, both allowed (0 too, unless
    ``above_zero``). ``why_*`` explain a bound in the message that refuses a value."""

    def read(value: object, path: str, parser: _Parser) -> float:
        try:
            seconds = parse_duration(value)
        except ValueError as exc:
            raise _Invalid(str(exc)) from None
        shown = format_duration(seconds)
        if above_zero and seconds <= 0:
            raise _Invalid("must be greater than 0")
        if seconds < minimum:
            raise _Invalid(f"must be at least {format_duration(minimum)}{why_minimum}, got {shown}")
        if seconds > maximum:
            raise _Invalid(f"must be at most {format_duration(maximum)}{why_maximum}, got {shown}")
        return seconds

    lowest = "above 0" if above_zero else f"at least {format_duration(minimum)}"
    return Kind(read, f"duration {lowest}, at most {format_duration(maximum)}", format_duration)


def whole_number(minimum: int, *, nullable: bool = False) -> Kind:
    """An int (not a bool) of at least ``minimum``, or a string of digits as ${VAR} gives."""

    def read(value: object, path: str, parser: _Parser) -> int | None:
        if value is None and nullable:
            return None
        number: int | None = None
        if isinstance(value, int) and not isinstance(value, bool):
            number = value
        elif isinstance(value, str) and _DIGITS.fullmatch(value.strip()) and len(value) < 19:
            number = int(value.strip())
        if number is None or number < minimum:
            raise _Invalid(f"expected a whole number >= {minimum}, got {_show(value)}")
        return number

    text = f"whole number, at least {minimum}" + (", or null" if nullable else "")
    return Kind(read, text, lambda number: "none" if number is None else str(number))


def _read_api_url(value: object, path: str, parser: _Parser) -> str:
    url = value.strip() if isinstance(value, str) else ""
    match = re.fullmatch(r"(https?)://([^/?#@\s]+)(/[^?#\s]*)?", url, re.IGNORECASE)
    host = match.group(2) if match else ""
    port = re.fullmatch(r"(\[[0-9A-Fa-f:.]+\]|[^:\[\]]+)(?::([0-9]{1,5}))?", host)
    if match is None or port is None or (port.group(2) and int(port.group(2)) > 65535):
        raise _Invalid(
            f"expected an http:// or https:// URL of a host, like {DEFAULT_API_URL}, "
            f"got {_show(value)}"
        )
    url = f"{match.group(1).lower()}://{host}{match.group(3) or ''}".rstrip("/")
    return url[: -len("/v3")].rstrip("/") if url.endswith("/v3") else url


def _read_collect(value: object, path: str, parser: _Parser) -> tuple[str, ...]:
    known = ", ".join(COLLECTORS)
    if not isinstance(value, list) or not value:
        raise _Invalid(f"expected a non-empty list of collectors ({known}), got {_show(value)}")
    first: dict[object, str] = {}  # collector → key path of its first listing

    def one(where: str, raw: object) -> object:
        item = parser.expand(raw, where)
        if not isinstance(item, str) or item not in COLLECTORS:
            raise _Invalid(f"unknown collector {_show(item)} (known: {known})")
        if item in first:
            raise _Invalid(f"{item!r} is listed twice (also {first[item]})")
        first[item] = where
        return item

    listed = parser.each([(f"{path}[{i}]", raw) for i, raw in enumerate(value)], one)
    # Requests go out in COLLECTORS order (the journal first) whatever the listing order.
    return tuple(c for c in COLLECTORS if c in listed)


def _read_optional_path(value: object, path: str, parser: _Parser) -> str | None:
    return None if value is None else parser.resolve(_file_path(value, "a file path or null"))


def _file_path(value: object, expected: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _Invalid(f"expected {expected}, got {_show(value)}")
    return value


def _read_name(value: object, path: str, parser: _Parser) -> str:
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise _Invalid(f"expected a name of letters, digits, '_', '-' or '.', got {_show(value)}")
    return value


def _read_id_instance(value: object, path: str, parser: _Parser) -> str:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 10**30:
        return str(value)
    if isinstance(value, str) and _DIGITS.fullmatch(value.strip()):
        return value.strip()
    raise _Invalid(f"expected digits (the idInstance), got {_show(value)}")


def _read_inline_token(value: object, path: str, parser: _Parser) -> tuple[str, str]:
    """(token, where it comes from). Messages here never quote the token."""
    if not isinstance(value, (str, type(None))):
        raise _Invalid(f"expected a string (quote the token), got {_kind(value)}")
    return _checked_token((value or "").strip(), parser, ""), "api_token"


def _read_token_file(value: object, path: str, parser: _Parser) -> tuple[str, str]:
    given = _file_path(value, "a file path")
    file_path = parser.resolve(given)
    try:
        content = read_small_file(file_path, _MAX_TOKEN_FILE)
    except UnreadableFile as exc:
        if _looks_like_a_token(given):  # pasted into the wrong key: never echo it
            parser.secrets.append(given.strip())
            raise _Invalid(
                f"cannot read the file it names ({exc}); it looks like a token, not a path: "
                "put the token in api_token (or ${VAR}) and leave api_token_file out"
            ) from None
        raise _Invalid(f"cannot read {file_path}: {exc}") from None
    return _checked_token(content.strip(), parser, f"{file_path}: "), f"api_token_file {file_path}"


def _looks_like_a_token(value: str) -> bool:
    """A long word of letters and digits, with no path separator or extension."""
    return bool(re.fullmatch(r"[A-Za-z0-9]{20,}", value.strip()))


def _checked_token(token: str, parser: _Parser, prefix: str) -> str:
    parser.secrets.append(token)  # valid or not: no message may quote it
    if not token:
        raise _Invalid(f"{prefix}must not be empty")
    if not _TOKEN.fullmatch(token) or _TOKEN_FORBIDDEN.intersection(token):
        raise _Invalid(
            f"{prefix}the token holds characters a GREEN-API token never has "
            "(whitespace, / ? # % \\ or non-ASCII)"
        )
    return token


def _read_labels(value: object, path: str, parser: _Parser) -> tuple[tuple[str, str], ...]:
    if value is None:
        return ()
    if not isinstance(value, dict):
        raise _Invalid(f"expected a mapping of label names to values, got {_kind(value)}")

    def one(where: str, pair: tuple[object, object]) -> tuple[str, str]:
        return _label_name(pair[0]), _label_value(parser.expand(pair[1], where))

    return tuple(sorted(parser.each([(_join(path, k), (k, v)) for k, v in value.items()], one)))


def _label_name(key: object) -> str:
    if not isinstance(key, str) or not _LABEL.fullmatch(key) or key.startswith("__"):
        raise _Invalid(
            "not a valid Prometheus label name ([a-zA-Z_][a-zA-Z0-9_]*, not starting with __)"
        )
    if key in OWN_LABELS:
        raise _Invalid(
            f"clashes with a label the exporter sets itself ({', '.join(sorted(OWN_LABELS))})"
        )
    return key


def _label_value(value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        raise _Invalid(f"expected a string or number, got a boolean (quote it: '{_show(value)}')")
    if isinstance(value, int) and abs(value) < 10**30:
        return str(value)
    if isinstance(value, float):
        return repr(value)
    raise _Invalid(f"expected a string or number, got {_show(value)}")


URL = Kind(_read_api_url, "http:// or https:// URL; a trailing `/` and `/v3` are dropped")
COLLECT = Kind(
    _read_collect, f"list of {', '.join(COLLECTORS)}", lambda names: f"[{', '.join(names)}]"
)
OPTIONAL_PATH = Kind(
    _read_optional_path,
    "file path or null, relative to the configuration file",
    lambda path: path or "none",
)
NAME = Kind(_read_name, "letters, digits, `_`, `-`, `.`")
ID_INSTANCE = Kind(_read_id_instance, "digits, as a string or an integer")
INLINE_TOKEN = Kind(_read_inline_token, "string; `${VAR}` keeps it out of the file")
TOKEN_FILE = Kind(_read_token_file, "file path, relative to the configuration file")
LABELS = Kind(
    _read_labels,
    "mapping of label names to strings or numbers",
    lambda labels: ", ".join(f"{k}={v}" for k, v in labels) or "none",
)


# --- the configuration ----------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    """The keys of ``defaults``, which every instance can override.

    Adding a setting is one field here, then its use: it is then read and checked in
    ``defaults`` and in every instance, inherited, shown by ``--check-config`` and listed in
    the README's table (which ``python -m exporter.config`` prints). For example a duration
    where 0 means "off"::

        resync_interval: float = setting(
            3600.0, duration(), "How often the whole window is read again; 0 turns it off."
        )

    and the poller reads ``config.settings.resync_interval``.
    """

    api_url: str = setting(
        DEFAULT_API_URL, URL, "The instance's GREEN-API host, from the console (its apiUrl)."
    )
    poll_interval: float = setting(
        60.0,
        duration(MIN_POLL_INTERVAL, why_minimum=" (GREEN-API allows one request per second)"),
        "How often each collector makes its request.",
    )
    window: float = setting(
        86400.0,
        duration(
            MIN_WINDOW,
            MAX_WINDOW,
            why_minimum=" (it is sent in whole minutes)",
            why_maximum=" (the journal keeps 3 months)",
        ),
        "How far back each journal request looks, sent as whole minutes (`?minutes=`).",
        note=lambda s: f"?minutes={s.window_minutes}",
    )
    timeout: float = setting(
        10.0, duration(above_zero=True), "Limit for one whole request, connect to last byte."
    )
    undelivered_after: float = setting(
        300.0,
        duration(),
        "A message still sent or pending this long counts as undelivered (late).",
    )
    max_messages: int = setting(
        5000, whole_number(1), "The journal's depth: an answer this long sets window_truncated."
    )
    resync_interval: float = setting(
        3600.0,
        duration(),
        "How often a journal is read in full; short polls of its recent past in between. "
        "0: every poll reads it in full.",
    )
    collect: tuple[str, ...] = setting(
        ("outgoing",),
        COLLECT,
        "What each poll fetches; an instance's list replaces the one in `defaults`.",
    )
    monthly_quota: int | None = setting(
        None,
        whole_number(1, nullable=True),
        "The plan's journal calls a month, if limited: warns when poll_interval would exceed it.",
        note=lambda s: f"about {s.monthly_calls} journal calls a month",
    )

    @property
    def journal_methods(self) -> int:
        """Journal methods fetched per poll: the plan's quota counts these."""
        return sum(1 for c in self.collect if collectors.BY_NAME[c].journal)

    @property
    def monthly_calls(self) -> int:
        """Journal calls a month at this poll interval."""
        return int(MONTH / self.poll_interval) * self.journal_methods

    @property
    def window_minutes(self) -> int:
        """The ``?minutes=`` value sent to GREEN-API."""
        return max(1, int(self.window // 60))

    def describe(self) -> list[str]:
        """``key: value`` lines for ``--check-config``, in declaration order."""
        lines = []
        for s in SETTINGS:
            note = f" ({s.note(self)})" if s.note is not None else ""
            lines.append(f"{s.key}: {s.kind.show(getattr(self, s.key))}{note}")
        return lines

    def warnings(self) -> list[str]:
        """Combinations that are valid but defeat their purpose, one line each."""
        found = []
        if self.monthly_quota is not None and self.monthly_calls > self.monthly_quota:
            needed = math.ceil(MONTH * self.journal_methods / self.monthly_quota)
            found.append(
                f"poll_interval {format_duration(self.poll_interval)} makes about "
                f"{self.monthly_calls} journal calls a month, over monthly_quota "
                f"{self.monthly_quota}: GREEN-API will answer 466 before the month ends; "
                f"use poll_interval {format_duration(needed)} or more"
            )
        if self.poll_interval > self.window:
            found.append(
                f"poll_interval {format_duration(self.poll_interval)} is longer than window "
                f"{format_duration(self.window)}: messages sent and settled between two polls "
                "are never seen"
            )
        if self.undelivered_after >= self.window:
            found.append(
                f"undelivered_after {format_duration(self.undelivered_after)} is not shorter "
                f"than window {format_duration(self.window)}: no message can ever count as "
                "undelivered"
            )
        return found


SETTINGS: tuple[Setting, ...] = _declared(Settings)

INSTANCE_KEYS: tuple[Setting, ...] = (
    Setting(NAME, "Unique; the `name` label of the instance's series.", key="name",
            required=True, unique=True),
    Setting(ID_INSTANCE, "The idInstance from the console; unique.", key="id_instance",
            required=True, unique=True),
    Setting(INLINE_TOKEN, "The apiTokenInstance.", key="api_token",
            default_text="this or `api_token_file`"),
    Setting(TOKEN_FILE, "A file holding the token (Docker or Kubernetes secrets).",
            key="api_token_file", default_text="this or `api_token`"),
    Setting(LABELS, "Extra static labels on the instance's series.", default=(), key="labels"),
)  # fmt: skip


@dataclass(frozen=True)
class InstanceConfig:
    """One GREEN-API instance: who it is, its token, and its settings (``defaults`` applied)."""

    name: str
    id_instance: str
    api_token: str = field(repr=False)
    token_source: str = "api_token"  # for summaries: "api_token" or "api_token_file PATH"
    labels: tuple[tuple[str, str], ...] = ()
    settings: Settings = Settings()

    @property
    def journal_methods(self) -> int:
        """Journal methods fetched per poll: the plan's quota counts these."""
        return self.settings.journal_methods

    @property
    def monthly_calls(self) -> int:
        """Journal calls a month at this poll interval."""
        return self.settings.monthly_calls

    @property
    def window_minutes(self) -> int:
        """The ``?minutes=`` value sent to GREEN-API."""
        return self.settings.window_minutes

    def method_url(self, collector: str) -> str:
        """The request URL of a collector. It contains the token: never log it, use
        :meth:`redacted_url`."""
        return self._url(collector, self.api_token)

    def journal_url(self) -> str:
        """The outgoing journal's request URL (contains the token)."""
        return self.method_url("outgoing")

    def redacted_url(self, collector: str = "outgoing") -> str:
        """:meth:`method_url` with the token replaced by ``<redacted>``."""
        return self._url(collector, "<redacted>")

    def _url(self, collector: str, token: str) -> str:
        method = collectors.BY_NAME[collector].method
        return f"{self.settings.api_url}/waInstance{self.id_instance}/{method}/{token}"


@dataclass(frozen=True)
class Config:
    """A whole validated configuration file."""

    source: str
    instances: tuple[InstanceConfig, ...]
    concurrency: int = setting(
        DEFAULT_CONCURRENCY, whole_number(1), "Polls in flight at once across all instances."
    )
    state_file: str | None = setting(
        None, OPTIONAL_PATH, "Where counters are kept across restarts; none without it."
    )
    warnings: tuple[str, ...] = ()  # non-fatal problems, one line each, file first

    @property
    def label_names(self) -> tuple[str, ...]:
        """The union of static label names over all instances, sorted."""
        return tuple(sorted({key for i in self.instances for key, _ in i.labels}))

    def for_shard(self, index: int, count: int) -> Config:
        """The instances this shard polls: a stable hash of id_instance picks exactly one
        shard for each, whatever the order or the other instances of the file."""
        if count == 1:
            return self
        mine = tuple(i for i in self.instances if shard_of(i.id_instance, count) == index)
        warnings = self.warnings
        if not mine:
            warnings = (*warnings, f"{self.source}: shard {index} of {count} polls no instance: "
                        f"none of the {len(self.instances)} id_instance values hashes to it "
                        "(lower --shard.count, or add instances)")  # fmt: skip
        return replace(self, instances=mine, warnings=warnings)

    def secrets(self) -> tuple[str, ...]:
        """Every token, for log redaction."""
        return tuple(i.api_token for i in self.instances)

    def summary(self) -> str:
        """A human summary for ``--check-config``; tokens appear only as their source."""
        lines = [f"configuration: {self.source}"]
        lines += [f"{s.key}: {s.kind.show(getattr(self, s.key))}" for s in TOP_LEVEL]
        lines.append(f"instances: {len(self.instances)}")
        for i in self.instances:
            lines += [f"  - name: {i.name}", f"    id_instance: {i.id_instance}"]
            lines += [f"    {line}" for line in i.settings.describe()]
            lines += [f"    labels: {LABELS.show(i.labels)}", f"    token from: {i.token_source}"]
        # Belt and braces: a token also written in some other field must not show either.
        return redact("\n".join(lines), self.secrets(), _MIN_REDACTED)


TOP_LEVEL: tuple[Setting, ...] = _declared(Config)


class ConfigError(Exception):
    """The configuration is refused. ``errors`` holds one line per problem."""

    def __init__(self, errors: Sequence[str]) -> None:
        self.errors: tuple[str, ...] = tuple(errors)
        super().__init__("\n".join(self.errors))

    def __str__(self) -> str:
        return "\n".join(self.errors)


def shard_of(id_instance: str, count: int) -> int:
    """The shard (0 … count-1) that polls an instance: CRC-32 of its id, stable across
    processes and Python versions (unlike hash())."""
    return zlib.crc32(id_instance.encode("ascii")) % count


def settings_table() -> str:
    """The README's table of every key of the file, in Markdown, from the declarations."""
    rows = ["| Key | Where | Value | Default | What it does |", "|---|---|---|---|---|"]
    places = (("`defaults`, instance", SETTINGS), ("top level", TOP_LEVEL),
              ("instance", INSTANCE_KEYS))  # fmt: skip
    for where, declared in places:
        for s in declared:
            default = s.default_text or (
                "required" if s.required else f"`{s.kind.show(s.default)}`"
            )
            rows.append(f"| `{s.key}` | {where} | {s.kind.text} | {default} | {s.doc} |")
    return "\n".join(rows)


# --- loading --------------------------------------------------------------------------------


def load_config(path: str, environ: Mapping[str, str] | None = None) -> Config:
    """Read ``path`` and validate it; raise ConfigError naming every problem.

    ``environ`` (``os.environ`` by default) supplies the ``${VAR}``s. Relative
    ``api_token_file`` and ``state_file`` paths are relative to the file's directory.
    """
    environ = os.environ if environ is None else environ
    try:
        text = read_small_file(path, _MAX_CONFIG_FILE)
    except UnreadableFile as exc:
        problem = (
            "the configuration file is not UTF-8 text"
            if str(exc) == NOT_UTF8
            else f"cannot read the configuration file: {exc}"
        )
        raise ConfigError([f"{path}: {problem}"]) from None
    document = _parse_yaml(text, path)
    config = parse_config(document, path, environ, base_dir=os.path.dirname(os.path.abspath(path)))
    if _readable_by_all(path) and _has_inline_token(document):
        warning = (
            f"{path}: is readable by all users and holds inline api_token values; "
            "chmod 600 it or use api_token_file/${VAR}"
        )
        config = replace(config, warnings=(*config.warnings, warning))
    return config


def _parse_yaml(text: str, path: str) -> object:
    try:
        return yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1} column {mark.column + 1}: " if mark is not None else ""
        problem = _one_line(exc.problem or exc.context or "syntax error")
        raise ConfigError([f"{path}: {where}invalid YAML: {problem}"]) from None
    except yaml.YAMLError as exc:
        raise ConfigError([f"{path}: invalid YAML: {_one_line(str(exc))}"]) from None
    except (ValueError, RecursionError) as exc:  # e.g. a date like 2024-02-30
        raise ConfigError([f"{path}: invalid YAML: {_one_line(str(exc))}"]) from None


def _readable_by_all(path: str) -> bool:
    try:
        return bool(os.stat(path).st_mode & stat.S_IROTH)
    except OSError:
        return False


def _has_inline_token(document: object) -> bool:
    """Whether some instance writes its token in the file itself (not ${VAR}, not a file)."""
    if not isinstance(document, dict) or not isinstance(document.get("instances"), list):
        return False
    return any(
        isinstance(entry, dict)
        and isinstance(entry.get("api_token"), str)
        and "${" not in entry["api_token"].replace("$$", "")
        for entry in document["instances"]
    )


def parse_config(
    document: object, source: str, environ: Mapping[str, str], base_dir: str = "."
) -> Config:
    """Validate an already loaded document. Raises ConfigError with every problem."""
    return _Parser(source, environ, base_dir).parse(document)


# --- validation -----------------------------------------------------------------------------


class _Parser:
    """One validation run: reads every declared key, collects every error, then refuses or
    builds the Config."""

    def __init__(self, source: str, environ: Mapping[str, str], base_dir: str) -> None:
        self.source = source
        self.environ = environ
        self.base_dir = base_dir
        self.errors: list[str] = []
        self.secrets: list[str] = []  # every token value met, valid or not, to scrub messages
        self.first: dict[tuple[str, object], int] = {}  # (key, value) → first instance with it

    def parse(self, document: object) -> Config:
        if document is None:
            self.error("", "the configuration is empty; it needs at least 'instances'")
            raise self.refusal()
        if not isinstance(document, dict):
            self.error("", f"expected a mapping at the top level, got {_kind(document)}")
            raise self.refusal()
        self.unknown_keys(document, ("defaults", *_keys(TOP_LEVEL), "instances"), "")
        defaults = self.defaults(document.get("defaults"))
        top = self.read(document, "", TOP_LEVEL)
        instances = self.instances(document, defaults)
        if self.errors:
            raise self.refusal()
        config = Config(self.source, instances, **top)
        warnings = [
            f"{self.source}: instances[{index}]: {warning}"
            for index, i in enumerate(instances)
            for warning in i.settings.warnings()
        ]
        return replace(config, warnings=tuple(warnings))

    def defaults(self, section: object) -> Settings:
        if section is None:
            return Settings()
        if not isinstance(section, dict):
            self.error("defaults", f"expected a mapping, got {_kind(section)}")
            return Settings()
        self.unknown_keys(section, _keys(SETTINGS), "defaults")
        return Settings(**self.read(section, "defaults", SETTINGS))

    def instances(
        self, document: Mapping[object, object], defaults: Settings
    ) -> tuple[InstanceConfig, ...]:
        if "instances" not in document:
            self.error("instances", "missing: list at least one instance")
            return ()
        try:
            entries = self.expand(document["instances"], "instances")
        except _Invalid:
            return ()
        if not isinstance(entries, list) or not entries:
            self.error("instances", f"expected a non-empty list of instances, got {_kind(entries)}")
            return ()
        instances = (self.instance(entry, index, defaults) for index, entry in enumerate(entries))
        return tuple(i for i in instances if i is not None)

    def instance(self, entry: object, index: int, defaults: Settings) -> InstanceConfig | None:
        path = f"instances[{index}]"
        if not isinstance(entry, dict):
            self.error(path, f"expected a mapping, got {_kind(entry)}")
            return None
        errors_before = len(self.errors)
        self.unknown_keys(entry, (*_keys(INSTANCE_KEYS), *_keys(SETTINGS)), path)
        given = [key for key in ("api_token", "api_token_file") if key in entry]
        if len(given) == 2:
            self.error(
                f"{path}.api_token_file", "give either api_token or api_token_file, not both"
            )
        elif not given:
            self.error(f"{path}.api_token", "missing (give api_token or api_token_file)")
        own = self.read(entry, path, INSTANCE_KEYS)
        for s in (s for s in INSTANCE_KEYS if s.unique and s.key in own):
            first = self.first.setdefault((s.key, own[s.key]), index)
            if first != index:
                self.error(
                    f"{path}.{s.key}", f"duplicate {s.key} {own[s.key]!r} (also instances[{first}])"
                )
        settings = replace(defaults, **self.read(entry, path, SETTINGS))
        if len(self.errors) > errors_before:
            return None
        token, source = own.pop("api_token", None) or own.pop("api_token_file")
        return InstanceConfig(api_token=token, token_source=source, settings=settings, **own)

    def read(
        self, section: Mapping[object, object], path: str, declared: Sequence[Setting]
    ) -> dict[str, Any]:
        """The declared keys that ``section`` sets, read and checked; refused ones are
        reported and left out."""
        values: dict[str, Any] = {}
        for s in declared:
            where = _join(path, s.key)
            if s.key not in section:
                if s.required:
                    self.error(where, "missing")
                continue
            try:
                values[s.key] = s.kind.read(self.expand(section[s.key], where), where, self)
            except _Invalid as exc:
                self.report(where, exc)
        return values

    def unknown_keys(
        self, mapping: Mapping[object, object], known: Sequence[str], path: str
    ) -> None:
        for key in mapping:
            if isinstance(key, str) and key in known:
                continue
            close = difflib.get_close_matches(key, known, n=1) if isinstance(key, str) else []
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            self.error(_join(path, key), f"unknown key{hint}")

    def expand(self, value: object, path: str) -> object:
        """Expand ``${VAR}`` in a string; ``$$`` is a literal ``$``. Raises _Invalid (after
        reporting) when a variable is unset or a reference is malformed. Never quotes the
        value itself, which may be a token."""
        if not isinstance(value, str) or "$" not in value:
            return value
        problems: list[str] = []

        def substitute(match: re.Match[str]) -> str:
            text = match.group(0)
            name = text[2:-1]
            if text == "$$":
                return "$"
            if not text.endswith("}"):
                problems.append("'${' without a closing '}' (write $$ for a literal $)")
            elif not _VARIABLE_NAME.fullmatch(name):
                problems.append(
                    "invalid ${VAR} reference: a variable name is letters, digits and '_'"
                )
            elif name not in self.environ:
                problems.append(f"environment variable {name} is not set")
            else:
                return self.environ[name]
            return ""

        result = _REFERENCE.sub(substitute, value)
        for problem in problems:
            self.error(path, problem)
        if problems:
            raise _Invalid()
        return result

    def resolve(self, path: str) -> str:
        if os.path.isabs(path) or self.base_dir in ("", "."):
            return path
        return os.path.join(self.base_dir, path)

    def refusal(self) -> ConfigError:
        # A token written under another key is quoted cut to _show's length: hunt for that
        # prefix too.
        secrets = [*self.secrets, *(s[:_SHOWN] for s in self.secrets if len(s) > _SHOWN)]
        return ConfigError([redact(line, secrets, _MIN_REDACTED) for line in self.errors])

    def each(self, items: Sequence[tuple[str, Any]], read: Callable[[str, Any], T]) -> list[T]:
        """``read(key path, item)`` of every item: every refusal is reported, then _Invalid."""
        results, valid = [], True
        for where, item in items:
            try:
                results.append(read(where, item))
            except _Invalid as exc:
                self.report(where, exc)
                valid = False
        if not valid:
            raise _Invalid()
        return results

    def report(self, path: str, invalid: _Invalid) -> None:
        if str(invalid):
            self.error(path, str(invalid))

    def error(self, path: str, message: str) -> None:
        prefix = f"{self.source}: {path}: " if path else f"{self.source}: "
        self.errors.append(prefix + _one_line(message))


def _keys(declared: Sequence[Setting]) -> tuple[str, ...]:
    return tuple(s.key for s in declared)


def _join(path: str, key: object) -> str:
    shown = key if isinstance(key, str) and _NAME.fullmatch(key) else _show(key)
    return f"{path}.{shown}" if path else shown


def _one_line(text: str) -> str:
    return " ".join(text.split())


_SHOWN = 40  # characters of a string value that messages quote


def _show(value: object, limit: int = _SHOWN) -> str:
    """A short, one-line rendering of a (non-secret) value for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value) if abs(value) < 10**30 else "a very large number"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        return repr(value) if len(value) <= limit else repr(value[:limit]) + "..."
    return _kind(value)


def _kind(value: object) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string" if value else "an empty string"
    if isinstance(value, list):
        return "a list" if value else "an empty list"
    if isinstance(value, dict):
        return "a mapping" if value else "an empty mapping"
    return f"a {type(value).__name__}"


if __name__ == "__main__":
    print(settings_table())
