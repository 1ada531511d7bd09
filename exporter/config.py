"""The configuration file: parsed and validated in one place.

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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from enum import Enum
from typing import Any

import yaml

# Label names the exporter itself puts on series (and Prometheus's target labels): a static
# label with one of these names would clash or be renamed to exported_*.
OWN_LABELS: frozenset[str] = frozenset(
    {"name", "id_instance", "status", "message_type", "send_by_api", "result", "collector",
     "state", "le", "quantile", "version", "job", "instance"}
)  # fmt: skip

# What `collect:` can list, in the order an instance's requests are made, and the GREEN-API
# method each one calls.
COLLECTORS: tuple[str, ...] = ("outgoing", "state", "queue", "incoming")
COLLECTOR_METHODS: Mapping[str, str] = {
    "outgoing": "lastOutgoingMessages",
    "state": "getStateInstance",
    "queue": "getMessagesCount",
    "incoming": "lastIncomingMessages",
}
# The journal methods: they take ?minutes= and count against the plan's monthly quota.
JOURNAL_COLLECTORS = frozenset({"outgoing", "incoming"})
DEFAULT_API_URL = "https://api.green-api.com"
DEFAULT_CONCURRENCY = 8
MIN_POLL_INTERVAL = 1.0  # GREEN-API allows one request per second per instance and method
MIN_WINDOW = 60.0  # the journal is asked for whole minutes
MAX_WINDOW = 90 * 86400.0  # the journal keeps at most about three months
MAX_DURATION = MAX_WINDOW  # no setting makes sense beyond the journal's depth
MONTH = 30 * 86400.0

_TOP_KEYS = ("defaults", "concurrency", "state_file", "instances")
_NAME = re.compile(r"[A-Za-z0-9_.-]+")
_LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_DIGITS = re.compile(r"[0-9]+")
_VARIABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# `$$`, then a closed `${...}`, then an unclosed `${` (tried in this order at each `$`).
_REFERENCE = re.compile(r"\$\$|\$\{[^}]*\}|\$\{")
# A token goes into the URL path: printable ASCII without the characters that end or escape it.
_TOKEN = re.compile(r"[\x21-\x7e]+")
_TOKEN_FORBIDDEN = frozenset("/?#%\\")
_MAX_TOKEN_FILE = 64 * 1024  # characters read from an api_token_file, at most
_MIN_REDACTED = 8  # shorter "tokens" (mistakes, test values) are not hunted for in messages

_NUMBER = re.compile(r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|y|w|d|h|m|s)")
_UNIT_ORDER = ("y", "w", "d", "h", "m", "s", "ms")  # Prometheus: largest first, each once
_UNIT_SECONDS: Mapping[str, float] = {
    "y": 365 * 86400.0, "w": 7 * 86400.0, "d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0,
    "ms": 0.001,
}  # fmt: skip
_DURATION_HINT = " (use e.g. 90s, 5m, 1h30m or a number of seconds)"


@dataclass(frozen=True)
class InstanceConfig:
    """One GREEN-API instance, with every default applied."""

    name: str
    id_instance: str
    api_token: str = field(repr=False)
    api_url: str
    poll_interval: float
    window: float
    timeout: float
    undelivered_after: float
    max_messages: int
    labels: tuple[tuple[str, str], ...]
    collect: tuple[str, ...] = ("outgoing",)
    token_source: str = "api_token"  # for summaries: "api_token" or "api_token_file PATH"
    monthly_quota: int | None = None  # the plan's journal calls a month, when the user states it

    @property
    def journal_methods(self) -> int:
        """Journal methods fetched per poll: the plan's quota counts these."""
        return sum(1 for c in self.collect if c in JOURNAL_COLLECTORS)

    @property
    def monthly_calls(self) -> int:
        """Journal calls a month at this poll interval."""
        return int(MONTH / self.poll_interval) * self.journal_methods

    @property
    def window_minutes(self) -> int:
        """The ``?minutes=`` value sent to GREEN-API."""
        return max(1, int(self.window // 60))

    def method_url(self, collector: str) -> str:
        """The request URL of a collector. It contains the token: never log it, use
        :meth:`redacted_url`."""
        return self._url(collector, self.api_token)

    def method_params(self, collector: str) -> dict[str, str]:
        """The query of a collector's request: the journals take the window in minutes."""
        return {"minutes": str(self.window_minutes)} if collector in JOURNAL_COLLECTORS else {}

    def journal_url(self) -> str:
        """The outgoing journal's request URL (contains the token)."""
        return self.method_url("outgoing")

    def redacted_url(self, collector: str = "outgoing") -> str:
        """:meth:`method_url` with the token replaced by ``<redacted>``."""
        return self._url(collector, "<redacted>")

    def _url(self, collector: str, token: str) -> str:
        method = COLLECTOR_METHODS[collector]
        return f"{self.api_url}/waInstance{self.id_instance}/{method}/{token}"


@dataclass(frozen=True)
class Config:
    """A whole validated configuration file."""

    source: str
    instances: tuple[InstanceConfig, ...]
    concurrency: int = DEFAULT_CONCURRENCY
    state_file: str | None = None
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
        return replace(self, instances=mine)

    def secrets(self) -> tuple[str, ...]:
        """Every token, for log redaction."""
        return tuple(i.api_token for i in self.instances)

    def summary(self) -> str:
        """A human summary for ``--check-config``; tokens appear only as their source."""
        lines = [
            f"configuration: {self.source}",
            f"concurrency: {self.concurrency}",
            f"state_file: {self.state_file or 'none'}",
            f"instances: {len(self.instances)}",
        ]
        for i in self.instances:
            labels = ", ".join(f"{k}={v}" for k, v in i.labels) or "none"
            quota = "not stated" if i.monthly_quota is None else str(i.monthly_quota)
            lines += [
                f"  - name: {i.name}",
                f"    id_instance: {i.id_instance}",
                f"    api_url: {i.api_url}",
                f"    poll_interval: {format_duration(i.poll_interval)}",
                f"    window: {format_duration(i.window)} (?minutes={i.window_minutes})",
                f"    timeout: {format_duration(i.timeout)}",
                f"    undelivered_after: {format_duration(i.undelivered_after)}",
                f"    max_messages: {i.max_messages}",
                f"    collect: {', '.join(i.collect)}",
                f"    labels: {labels}",
                f"    monthly_quota: {quota} (about {i.monthly_calls} journal calls a month)",
                f"    token from: {i.token_source}",
            ]
        # Belt and braces: a token also written in some other field must not show either.
        return _redact("\n".join(lines), self.secrets())


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


# --- loading --------------------------------------------------------------------------------


def load_config(path: str, environ: Mapping[str, str] | None = None) -> Config:
    """Read ``path`` and validate it; raise ConfigError naming every problem.

    ``environ`` (``os.environ`` by default) supplies the ``${VAR}``s. Relative
    ``api_token_file`` and ``state_file`` paths are relative to the file's directory.
    """
    environ = os.environ if environ is None else environ
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
            mode = os.fstat(handle.fileno()).st_mode
    except FileNotFoundError:
        raise ConfigError([f"{path}: cannot read the configuration file: no such file"]) from None
    except IsADirectoryError:
        raise ConfigError([f"{path}: cannot read the configuration file: is a directory"]) from None
    except PermissionError:
        raise ConfigError(
            [f"{path}: cannot read the configuration file: permission denied"]
        ) from None
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ConfigError([f"{path}: cannot read the configuration file: {reason}"]) from None
    except UnicodeDecodeError:
        raise ConfigError([f"{path}: the configuration file is not UTF-8 text"]) from None
    document = _parse_yaml(text, path)
    config = parse_config(document, path, environ, base_dir=os.path.dirname(os.path.abspath(path)))
    if mode & stat.S_IROTH and _has_inline_token(document):
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


class _Invalid(Enum):
    """Marks a value that was refused (and reported already)."""

    INVALID = "invalid"


_INVALID = _Invalid.INVALID


@dataclass(frozen=True)
class _Settings:
    """The keys of ``defaults``, which every instance can override."""

    api_url: str = DEFAULT_API_URL
    poll_interval: float = 60.0
    window: float = 86400.0
    timeout: float = 10.0
    undelivered_after: float = 300.0
    max_messages: int = 5000
    collect: tuple[str, ...] = ("outgoing",)
    monthly_quota: int | None = None


_SETTING_KEYS = tuple(f.name for f in fields(_Settings))
_INSTANCE_KEYS = ("name", "id_instance", "api_token", "api_token_file", "labels", *_SETTING_KEYS)
_DURATION_KEYS = ("poll_interval", "window", "timeout", "undelivered_after")


class _Parser:
    """One validation run: collects every error, then refuses or builds the Config."""

    def __init__(self, source: str, environ: Mapping[str, str], base_dir: str) -> None:
        self.source = source
        self.environ = environ
        self.base_dir = base_dir
        self.errors: list[str] = []
        self.names: dict[str, int] = {}  # name → index of the first instance with it
        self.ids: dict[str, int] = {}
        self.tokens: list[str] = []  # every token value met, valid or not, to scrub messages

    def refuse(self) -> ConfigError:
        return ConfigError([_redact(line, self.tokens) for line in self.errors])

    def error(self, path: str, message: str) -> None:
        prefix = f"{self.source}: {path}: " if path else f"{self.source}: "
        self.errors.append(prefix + _one_line(message))

    def parse(self, document: object) -> Config:
        if document is None:
            self.error("", "the configuration is empty; it needs at least 'instances'")
            raise self.refuse()
        if not isinstance(document, dict):
            self.error("", f"expected a mapping at the top level, got {_kind(document)}")
            raise self.refuse()
        self.unknown_keys(document, _TOP_KEYS, "")
        defaults = self.settings(document.get("defaults"), "defaults", _Settings(), True)
        concurrency = self.concurrency(document)
        state_file = self.state_file(document)
        instances = self.instances(document, defaults)
        if self.errors:
            raise self.refuse()
        return Config(
            source=self.source,
            instances=instances,
            concurrency=concurrency,
            state_file=state_file,
            warnings=self.warnings(instances),
        )

    # -- generic helpers --

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
        """Expand ``${VAR}`` in a string; ``$$`` is a literal ``$``. Returns _INVALID (after
        reporting) when a variable is unset or a reference is malformed. Never quotes the
        value itself, which may be a token."""
        if not isinstance(value, str) or "$" not in value:
            return value
        problems: list[str] = []

        def substitute(match: re.Match[str]) -> str:
            text = match.group(0)
            if text == "$$":
                return "$"
            if not text.endswith("}"):
                problems.append("'${' without a closing '}' (write $$ for a literal $)")
                return ""
            name = text[2:-1]
            if not _VARIABLE_NAME.fullmatch(name):
                problems.append(
                    "invalid ${VAR} reference: a variable name is letters, digits and '_'"
                )
                return ""
            if name not in self.environ:
                problems.append(f"environment variable {name} is not set")
                return ""
            return self.environ[name]

        result = _REFERENCE.sub(substitute, value)
        for problem in problems:
            self.error(path, problem)
        return _INVALID if problems else result

    def whole_number(self, value: object, path: str, minimum: int) -> int | _Invalid:
        """An int (not a bool), or a string of digits such as a ${VAR} gives."""
        number: int | None = None
        if isinstance(value, int) and not isinstance(value, bool):
            number = value
        elif isinstance(value, str) and _DIGITS.fullmatch(value.strip()) and len(value) < 19:
            number = int(value.strip())
        if number is None or number < minimum:
            self.error(path, f"expected a whole number >= {minimum}, got {_show(value)}")
            return _INVALID
        return number

    # -- top level --

    def concurrency(self, document: Mapping[object, object]) -> int:
        if "concurrency" not in document:
            return DEFAULT_CONCURRENCY
        value = self.expand(document["concurrency"], "concurrency")
        if isinstance(value, _Invalid):
            return DEFAULT_CONCURRENCY
        number = self.whole_number(value, "concurrency", 1)
        return DEFAULT_CONCURRENCY if isinstance(number, _Invalid) else number

    def state_file(self, document: Mapping[object, object]) -> str | None:
        value = self.expand(document.get("state_file"), "state_file")
        if value is None or isinstance(value, _Invalid):
            return None
        if not isinstance(value, str) or not value.strip():
            self.error("state_file", f"expected a file path or null, got {_show(value)}")
            return None
        return self.resolve(value)

    def resolve(self, path: str) -> str:
        if os.path.isabs(path) or self.base_dir in ("", "."):
            return path
        return os.path.join(self.base_dir, path)

    # -- settings (defaults and per instance) --

    def settings(
        self, section: object, path: str, inherited: _Settings, is_defaults: bool
    ) -> _Settings:
        """Validate the overridable keys of ``defaults`` or of an instance."""
        if section is None:
            return inherited
        if not isinstance(section, dict):
            self.error(path, f"expected a mapping, got {_kind(section)}")
            return inherited
        if is_defaults:
            self.unknown_keys(section, _SETTING_KEYS, path)
        changes: dict[str, Any] = {}
        for key in _SETTING_KEYS:
            if key not in section:
                continue
            where = f"{path}.{key}"
            value = self.expand(section[key], where)
            if isinstance(value, _Invalid):
                continue
            parsed = self.setting(key, value, where)
            if not isinstance(parsed, _Invalid):
                changes[key] = parsed
        return replace(inherited, **changes)

    def setting(self, key: str, value: object, path: str) -> object:
        if key == "api_url":
            return self.api_url(value, path)
        if key == "max_messages":
            return self.whole_number(value, path, 1)
        if key == "monthly_quota":
            return None if value is None else self.whole_number(value, path, 1)
        if key == "collect":
            return self.collect(value, path)
        return self.duration(key, value, path)

    def duration(self, key: str, value: object, path: str) -> float | _Invalid:
        try:
            seconds = parse_duration(value)
        except ValueError as exc:
            self.error(path, str(exc))
            return _INVALID
        shown = format_duration(seconds)
        if key == "poll_interval" and seconds < MIN_POLL_INTERVAL:
            self.error(
                path,
                f"must be at least 1s (GREEN-API allows one request per second), got {shown}",
            )
        elif key == "window" and seconds < MIN_WINDOW:
            self.error(path, f"must be at least 1m (it is sent in whole minutes), got {shown}")
        elif key == "window" and seconds > MAX_WINDOW:
            self.error(path, f"must be at most 90d (the journal keeps 3 months), got {shown}")
        elif seconds > MAX_DURATION:
            self.error(path, f"must be at most 90d, got {shown}")
        elif key == "timeout" and seconds <= 0:
            self.error(path, "must be greater than 0")
        else:
            return seconds
        return _INVALID

    def api_url(self, value: object, path: str) -> str | _Invalid:
        url = value.strip() if isinstance(value, str) else ""
        match = re.fullmatch(r"(https?)://([^/?#@\s]+)(/[^?#\s]*)?", url, re.IGNORECASE)
        host = match.group(2) if match else ""
        port = re.fullmatch(r"(\[[0-9A-Fa-f:.]+\]|[^:\[\]]+)(?::([0-9]{1,5}))?", host)
        if match is None or port is None or (port.group(2) and int(port.group(2)) > 65535):
            self.error(
                path,
                f"expected an http:// or https:// URL of a host, like {DEFAULT_API_URL}, "
                f"got {_show(value)}",
            )
            return _INVALID
        url = f"{match.group(1).lower()}://{host}{match.group(3) or ''}".rstrip("/")
        if url.endswith("/v3"):
            url = url[: -len("/v3")].rstrip("/")
        return url

    def collect(self, value: object, path: str) -> tuple[str, ...] | _Invalid:
        known = ", ".join(COLLECTORS)
        if not isinstance(value, list) or not value:
            self.error(
                path, f"expected a non-empty list of collectors ({known}), got {_show(value)}"
            )
            return _INVALID
        seen: list[str] = []
        valid = True
        for index, raw in enumerate(value):
            where = f"{path}[{index}]"
            item = self.expand(raw, where)
            if isinstance(item, _Invalid):
                valid = False
            elif not isinstance(item, str) or item not in COLLECTORS:
                self.error(where, f"unknown collector {_show(item)} (known: {known})")
                valid = False
            elif item in seen:
                self.error(where, f"{item!r} is listed twice (also {path}[{seen.index(item)}])")
                valid = False
            else:
                seen.append(item)
        # Requests go out in COLLECTORS order (the journal first) whatever the listing order.
        return tuple(c for c in COLLECTORS if c in seen) if valid else _INVALID

    # -- instances --

    def instances(
        self, document: Mapping[object, object], defaults: _Settings
    ) -> tuple[InstanceConfig, ...]:
        if "instances" not in document:
            self.error("instances", "missing: list at least one instance")
            return ()
        value = self.expand(document["instances"], "instances")
        if isinstance(value, _Invalid):
            return ()
        if not isinstance(value, list) or not value:
            self.error("instances", f"expected a non-empty list of instances, got {_kind(value)}")
            return ()
        result = []
        for index, entry in enumerate(value):
            instance = self.instance(entry, index, defaults)
            if instance is not None:
                result.append(instance)
        return tuple(result)

    def instance(self, entry: object, index: int, defaults: _Settings) -> InstanceConfig | None:
        path = f"instances[{index}]"
        if not isinstance(entry, dict):
            self.error(path, f"expected a mapping, got {_kind(entry)}")
            return None
        errors_before = len(self.errors)
        self.unknown_keys(entry, _INSTANCE_KEYS, path)
        name = self.name(entry, path, index)
        id_instance = self.id_instance(entry, path, index)
        token = self.token(entry, path)
        settings = self.settings(entry, path, defaults, False)
        labels = self.labels(entry, path)
        if (
            len(self.errors) > errors_before
            or name is None
            or id_instance is None
            or token is None
            or labels is None
        ):
            return None
        return InstanceConfig(
            name=name,
            id_instance=id_instance,
            api_token=token[0],
            api_url=settings.api_url,
            poll_interval=settings.poll_interval,
            window=settings.window,
            timeout=settings.timeout,
            undelivered_after=settings.undelivered_after,
            max_messages=settings.max_messages,
            labels=labels,
            collect=settings.collect,
            token_source=token[1],
            monthly_quota=settings.monthly_quota,
        )

    def unique(self, seen: dict[str, int], value: str, path: str, what: str, index: int) -> None:
        if value in seen:
            self.error(path, f"duplicate {what} {value!r} (also instances[{seen[value]}])")
        else:
            seen[value] = index

    def name(self, entry: Mapping[object, object], path: str, index: int) -> str | None:
        where = f"{path}.name"
        if "name" not in entry:
            self.error(where, "missing")
            return None
        value = self.expand(entry["name"], where)
        if isinstance(value, _Invalid):
            return None
        if not isinstance(value, str):
            self.error(
                where, f"expected a string of letters, digits, '_', '-' or '.', got {_show(value)}"
            )
            return None
        if not _NAME.fullmatch(value):
            self.error(where, f"{_show(value)} is not a name of letters, digits, '_', '-' or '.'")
            return None
        self.unique(self.names, value, where, "name", index)
        return value

    def id_instance(self, entry: Mapping[object, object], path: str, index: int) -> str | None:
        where = f"{path}.id_instance"
        if "id_instance" not in entry:
            self.error(where, "missing")
            return None
        value = self.expand(entry["id_instance"], where)
        if isinstance(value, _Invalid):
            return None
        text: str | None = None
        if isinstance(value, int) and not isinstance(value, bool):
            text = str(value) if 0 <= value < 10**30 else None
        elif isinstance(value, str) and _DIGITS.fullmatch(value.strip()):
            text = value.strip()
        if text is None:
            self.error(where, f"expected digits (the idInstance), got {_show(value)}")
            return None
        self.unique(self.ids, text, where, "id_instance", index)
        return text

    def token(self, entry: Mapping[object, object], path: str) -> tuple[str, str] | None:
        """(token, where it comes from). Messages here never quote the token."""
        inline, from_file = "api_token" in entry, "api_token_file" in entry
        if inline and from_file:
            self.error(
                f"{path}.api_token_file", "give either api_token or api_token_file, not both"
            )
            return None
        if not inline and not from_file:
            self.error(f"{path}.api_token", "missing (give api_token or api_token_file)")
            return None
        if inline:
            where = f"{path}.api_token"
            value = self.expand(entry["api_token"], where)
            if isinstance(value, _Invalid):
                return None
            if value is None:
                self.error(where, "must not be empty")
                return None
            if not isinstance(value, str):
                self.error(where, f"expected a string (quote the token), got {_kind(value)}")
                return None
            self.tokens.append(value.strip())
            token = self.checked_token(value.strip(), where, "")
            return None if token is None else (token, "api_token")
        where = f"{path}.api_token_file"
        value = self.expand(entry["api_token_file"], where)
        if isinstance(value, _Invalid):
            return None
        if not isinstance(value, str) or not value.strip():
            self.error(where, f"expected a file path, got {_show(value)}")
            return None
        file_path = self.resolve(value)
        reason = None
        try:
            with open(file_path, encoding="utf-8") as handle:
                content = handle.read(_MAX_TOKEN_FILE + 1)
        except FileNotFoundError:
            reason = "no such file"
        except IsADirectoryError:
            reason = "is a directory"
        except PermissionError:
            reason = "permission denied"
        except UnicodeDecodeError:
            reason = "not UTF-8 text"
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
        if reason is None and len(content) > _MAX_TOKEN_FILE:
            reason = "too large to hold a token"
        if reason is not None:
            self.error(where, f"cannot read {file_path}: {reason}")
            return None
        self.tokens.append(content.strip())
        token = self.checked_token(content.strip(), where, f"{file_path}: ")
        return None if token is None else (token, f"api_token_file {file_path}")

    def checked_token(self, token: str, where: str, prefix: str) -> str | None:
        if not token:
            self.error(where, f"{prefix}must not be empty")
            return None
        if not _TOKEN.fullmatch(token) or _TOKEN_FORBIDDEN.intersection(token):
            self.error(
                where,
                f"{prefix}the token holds characters a GREEN-API token never has "
                "(whitespace, / ? # % \\ or non-ASCII)",
            )
            return None
        return token

    def labels(
        self, entry: Mapping[object, object], path: str
    ) -> tuple[tuple[str, str], ...] | None:
        where = f"{path}.labels"
        value = self.expand(entry.get("labels"), where)
        if isinstance(value, _Invalid):
            return None
        if value is None:
            return ()
        if not isinstance(value, dict):
            self.error(where, f"expected a mapping of label names to values, got {_kind(value)}")
            return None
        labels: list[tuple[str, str]] = []
        valid = True
        for key, raw in value.items():
            key_path = _join(where, key)
            if not isinstance(key, str) or not _LABEL.fullmatch(key) or key.startswith("__"):
                self.error(
                    key_path,
                    "not a valid Prometheus label name "
                    "([a-zA-Z_][a-zA-Z0-9_]*, not starting with __)",
                )
                valid = False
                continue
            if key in OWN_LABELS:
                self.error(
                    key_path,
                    f"clashes with a label the exporter sets itself ({', '.join(sorted(OWN_LABELS))})",
                )
                valid = False
                continue
            label_value = self.label_value(self.expand(raw, key_path), key_path)
            if label_value is None:
                valid = False
            else:
                labels.append((key, label_value))
        return tuple(sorted(labels)) if valid else None

    def label_value(self, value: object, path: str) -> str | None:
        if isinstance(value, _Invalid):
            return None
        if isinstance(value, str):
            return value
        if isinstance(value, bool):
            self.error(
                path, f"expected a string or number, got a boolean (quote it: '{_show(value)}')"
            )
        elif isinstance(value, int) and abs(value) < 10**30:
            return str(value)
        elif isinstance(value, float):
            return repr(value)
        else:
            self.error(path, f"expected a string or number, got {_show(value)}")
        return None

    # -- non-fatal --

    def warnings(self, instances: Sequence[InstanceConfig]) -> tuple[str, ...]:
        warnings = []
        for index, i in enumerate(instances):
            path = f"{self.source}: instances[{index}]"
            if i.monthly_quota is not None and i.monthly_calls > i.monthly_quota:
                needed = math.ceil(MONTH * i.journal_methods / i.monthly_quota)
                warnings.append(
                    f"{path}: poll_interval {format_duration(i.poll_interval)} "
                    f"makes about {i.monthly_calls} journal calls a month, over monthly_quota "
                    f"{i.monthly_quota}: GREEN-API will answer 466 before the month ends; "
                    f"use poll_interval {format_duration(needed)} or more"
                )
            if i.poll_interval > i.window:
                warnings.append(
                    f"{path}: poll_interval {format_duration(i.poll_interval)} is longer than "
                    f"window {format_duration(i.window)}: messages sent and settled between two "
                    "polls are never seen"
                )
            if i.undelivered_after >= i.window:
                warnings.append(
                    f"{path}: undelivered_after {format_duration(i.undelivered_after)} is not "
                    f"shorter than window {format_duration(i.window)}: no message can ever "
                    "count as undelivered"
                )
        return tuple(warnings)


def _join(path: str, key: object) -> str:
    shown = key if isinstance(key, str) and _NAME.fullmatch(key) else _show(key)
    return f"{path}.{shown}" if path else shown


def _redact(text: str, secrets: Sequence[str]) -> str:
    for secret in sorted(secrets, key=len, reverse=True):
        if len(secret) >= _MIN_REDACTED:
            text = text.replace(secret, "<redacted>")
    return text


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _show(value: object, limit: int = 40) -> str:
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
