"""The configuration file: parsed and validated in one place.

Every problem is collected before anything is refused, so a user fixes a file in one go.
Each message is one line naming the file and the key path::

    config.yaml: instances[2].poll_interval: invalid duration 'soon' (use e.g. 90s, 5m, 1h30m or a number of seconds)

Error messages never quote a token.
"""

from __future__ import annotations

import difflib
import math
import os
import re
import stat
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

# Label names the exporter itself puts on series (and Prometheus's target labels): a static
# label with one of these names would clash or be renamed to exported_*.
OWN_LABELS = frozenset(
    {"name", "id_instance", "status", "message_type", "send_by_api", "result", "collector",
     "state", "le", "quantile", "version", "job", "instance"}
)  # fmt: skip

COLLECTORS = ("outgoing", "state", "queue", "incoming")
# The collectors of SPEC §8 other than the journal are not implemented yet: refused by name,
# so that a configuration asking for them fails loudly instead of silently collecting nothing.
IMPLEMENTED_COLLECTORS = ("outgoing",)
DEFAULT_API_URL = "https://api.green-api.com"
MAX_WINDOW = 90 * 86400.0

_DEFAULTS: dict[str, object] = {
    "api_url": DEFAULT_API_URL,
    "poll_interval": 60.0,
    "window": 86400.0,
    "timeout": 10.0,
    "undelivered_after": 300.0,
    "max_messages": 5000,
    "collect": ("outgoing",),
    "monthly_quota": None,
}
MONTH = 30 * 86400.0
_TOP_KEYS = ("defaults", "concurrency", "state_file", "instances")
_INSTANCE_ONLY_KEYS = ("name", "id_instance", "api_token", "api_token_file", "labels")
_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")
_LABEL = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w|y)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
_VARIABLE = re.compile(r"\$\$|\$\{([^}]*)\}|\$\{")


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
        return sum(1 for c in self.collect if c in ("outgoing", "incoming"))

    @property
    def monthly_calls(self) -> int:
        return int(MONTH / self.poll_interval) * self.journal_methods

    @property
    def window_minutes(self) -> int:
        """The ``?minutes=`` value sent to GREEN-API."""
        return max(1, int(self.window // 60))

    def journal_url(self) -> str:
        """The request URL. It contains the token: never log it, use :meth:`redacted_url`."""
        return f"{self.api_url}/waInstance{self.id_instance}/lastOutgoingMessages/{self.api_token}"

    def redacted_url(self) -> str:
        return f"{self.api_url}/waInstance{self.id_instance}/lastOutgoingMessages/<redacted>"


@dataclass(frozen=True)
class Config:
    source: str
    instances: tuple[InstanceConfig, ...]
    concurrency: int = 8
    state_file: str | None = None
    warnings: tuple[str, ...] = ()

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
        return Config(self.source, mine, self.concurrency, self.state_file, self.warnings)

    def secrets(self) -> tuple[str, ...]:
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
            lines.append(
                f"  - {i.name} (id_instance {i.id_instance}): api_url {i.api_url}, "
                f"poll_interval {format_duration(i.poll_interval)}, window {format_duration(i.window)}, "
                f"timeout {format_duration(i.timeout)}, undelivered_after {format_duration(i.undelivered_after)}, "
                f"max_messages {i.max_messages}, collect {','.join(i.collect)}, labels {labels}, "
                f"monthly_quota {i.monthly_quota or 'not stated'} (about {i.monthly_calls} calls a month), "
                f"token from {i.token_source}"
            )
        return "\n".join(lines)


class ConfigError(Exception):
    """The configuration is refused. ``errors`` holds one line per problem."""

    def __init__(self, errors: Sequence[str]) -> None:
        self.errors = tuple(errors)
        super().__init__("\n".join(self.errors))

    def __str__(self) -> str:
        return "\n".join(self.errors)


def shard_of(id_instance: str, count: int) -> int:
    """The shard (0 … count-1) that polls an instance: CRC-32 of its id, stable across
    processes and Python versions (unlike hash())."""
    return zlib.crc32(id_instance.encode("ascii")) % count


def parse_duration(value: object) -> float:
    """``90s``, ``5m``, ``1h30m``, ``500ms``, ``1d``, ``1w`` or a number of seconds."""
    if isinstance(value, bool):
        raise ValueError(f"invalid duration {value!r}")
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip()
        try:
            seconds = float(text)
        except ValueError:
            seconds = 0.0
            position = 0
            for match in _DURATION_PART.finditer(text):
                if match.start() != position:
                    break
                seconds += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
                position = match.end()
            if not text or position != len(text):
                raise ValueError(
                    f"invalid duration {value!r} (use e.g. 90s, 5m, 1h30m or a number of seconds)"
                ) from None
    else:
        raise ValueError(
            f"invalid duration {value!r} (use e.g. 90s, 5m, 1h30m or a number of seconds)"
        )
    if math.isnan(seconds) or math.isinf(seconds) or seconds < 0:
        raise ValueError(f"invalid duration {value!r}: must be a finite number >= 0")
    return seconds


def format_duration(seconds: float) -> str:
    """90 → ``1m30s``; 86400 → ``1d``; 0 → ``0s``."""
    if seconds <= 0:
        return "0s"
    parts = []
    remaining = seconds
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        count = int(remaining // size)
        if count:
            parts.append(f"{count}{unit}")
            remaining -= count * size
    if remaining >= 1 or not parts:
        whole = round(remaining, 3)
        parts.append(f"{whole:g}s")
    return "".join(parts)


def load_config(path: str, environ: Mapping[str, str] | None = None) -> Config:
    """Read ``path`` and validate it; raise ConfigError naming every problem."""
    environ = os.environ if environ is None else environ
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
            mode = os.fstat(handle.fileno()).st_mode
    except FileNotFoundError:
        raise ConfigError([f"{path}: cannot read the configuration file: no such file"]) from None
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read the configuration file: {exc.strerror}"]) from None
    except UnicodeDecodeError:
        raise ConfigError([f"{path}: the configuration file is not UTF-8 text"]) from None
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or "invalid YAML"
        where = f"line {mark.line + 1} column {mark.column + 1}: " if mark is not None else ""
        raise ConfigError([f"{path}: {where}invalid YAML: {problem}"]) from None
    config = parse_config(document, path, environ, base_dir=os.path.dirname(os.path.abspath(path)))
    if mode & stat.S_IROTH and _has_inline_token(document):
        warning = (
            f"{path}: is readable by all users and holds inline api_token values; "
            "chmod 600 it or use api_token_file or ${VAR}"
        )
        config = Config(config.source, config.instances, config.concurrency, config.state_file,
                        (*config.warnings, warning))  # fmt: skip
    return config


def _has_inline_token(document: object) -> bool:
    if not isinstance(document, dict) or not isinstance(document.get("instances"), list):
        return False
    return any(
        isinstance(i, dict)
        and isinstance(i.get("api_token"), (str, int))
        and "${" not in str(i["api_token"])
        for i in document["instances"]
    )


def parse_config(
    document: object, source: str, environ: Mapping[str, str], base_dir: str = "."
) -> Config:
    """Validate an already loaded document. Raises ConfigError with every problem."""
    return _Parser(source, environ, base_dir).parse(document)


class _Parser:
    def __init__(self, source: str, environ: Mapping[str, str], base_dir: str) -> None:
        self.source = source
        self.environ = environ
        self.base_dir = base_dir
        self.errors: list[str] = []

    def error(self, path: str, message: str) -> None:
        self.errors.append(
            f"{self.source}: {path}: {message}" if path else f"{self.source}: {message}"
        )

    def parse(self, document: object) -> Config:
        if document is None:
            self.error("", "the configuration is empty; it needs at least 'instances'")
            raise ConfigError(self.errors)
        if not isinstance(document, dict):
            self.error("", f"expected a mapping at the top level, got {_kind(document)}")
            raise ConfigError(self.errors)
        self.unknown_keys(document, _TOP_KEYS, "")
        defaults = self.settings(document.get("defaults"), "defaults", dict(_DEFAULTS), top=True)
        concurrency = self.positive_int(document.get("concurrency", 8), "concurrency")
        state_file = self.state_file(document.get("state_file"))
        instances = self.instances(document.get("instances"), defaults)
        if self.errors:
            raise ConfigError(self.errors)
        return Config(source=self.source, instances=tuple(instances), concurrency=concurrency,
                      state_file=state_file, warnings=tuple(self.quota_warnings(instances)))  # fmt: skip

    def quota_warnings(self, instances: Sequence[InstanceConfig]) -> list[str]:
        warnings = []
        for index, i in enumerate(instances):
            if i.monthly_quota is not None and i.monthly_calls > i.monthly_quota:
                needed = math.ceil(MONTH * i.journal_methods / i.monthly_quota)
                warnings.append(
                    f"{self.source}: instances[{index}]: poll_interval {format_duration(i.poll_interval)} "
                    f"makes about {i.monthly_calls} journal calls a month, over monthly_quota "
                    f"{i.monthly_quota}: GREEN-API will answer 466 before the month ends; "
                    f"use poll_interval {format_duration(needed)} or more"
                )
        return warnings

    def unknown_keys(self, mapping: Mapping[Any, Any], known: Sequence[str], path: str) -> None:
        for key in mapping:
            if key in known:
                continue
            close = difflib.get_close_matches(str(key), known, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            where = f"{path}.{key}" if path else str(key)
            self.error(where, f"unknown key{hint}")

    def expand(self, value: object, path: str, secret: bool = False) -> object:
        """Expand ``${VAR}`` in strings; ``$$`` is a literal ``$``."""
        if not isinstance(value, str) or "$" not in value:
            return value
        failed = False

        def substitute(match: re.Match[str]) -> str:
            nonlocal failed
            text = match.group(0)
            if text == "$$":
                return "$"
            name = match.group(1)
            if name is None or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                self.error(path, "invalid ${VAR} reference" + ("" if secret else f" in {value!r}"))
                failed = True
                return ""
            if name not in self.environ:
                self.error(path, f"environment variable {name} is not set")
                failed = True
                return ""
            return self.environ[name]

        result = _VARIABLE.sub(substitute, value)
        return None if failed else result

    def settings(
        self, section: object, path: str, inherited: dict[str, object], top: bool = False
    ) -> dict[str, object]:
        """Validate the overridable keys of ``defaults`` or an instance."""
        result = dict(inherited)
        if section is None:
            return result
        if not isinstance(section, dict):
            self.error(path, f"expected a mapping, got {_kind(section)}")
            return result
        if top:
            self.unknown_keys(section, tuple(_DEFAULTS), path)
        for key in _DEFAULTS:
            if key not in section:
                continue
            where = f"{path}.{key}"
            raw = self.expand(section[key], where)
            if raw is None and section[key] is not None:
                continue  # the expansion failed and was reported
            parsed = self.setting(key, raw, where)
            if parsed is not None:
                result[key] = parsed
        return result

    def setting(self, key: str, value: object, path: str) -> object | None:
        if key == "api_url":
            return self.api_url(value, path)
        if key == "monthly_quota":
            if value is None:
                return None
            number = self.positive_int(value, path)
            return number if number > 0 else None
        if key == "max_messages":
            number = self.positive_int(value, path)
            return number if number > 0 else None
        if key == "collect":
            return self.collect(value, path)
        try:
            seconds = parse_duration(value)
        except ValueError as exc:
            self.error(path, str(exc))
            return None
        if key == "poll_interval" and seconds < 1:
            self.error(path, "must be at least 1s (GREEN-API allows one request per second)")
            return None
        if key == "window" and not 60 <= seconds <= MAX_WINDOW:
            self.error(path, "must be between 1m and 90d (the journal keeps at most 3 months)")
            return None
        if key == "timeout" and seconds <= 0:
            self.error(path, "must be greater than 0")
            return None
        return seconds

    def api_url(self, value: object, path: str) -> str | None:
        if not isinstance(value, str) or not re.match(r"^https?://[^/\s]+", value):
            self.error(path, f"expected an http:// or https:// URL, got {value!r}")
            return None
        url = value.strip().rstrip("/")
        if url.endswith("/v3"):
            url = url[: -len("/v3")].rstrip("/")
        return url

    def collect(self, value: object, path: str) -> tuple[str, ...] | None:
        if not isinstance(value, list) or not value:
            self.error(path, f"expected a non-empty list of {', '.join(COLLECTORS)}")
            return None
        seen: list[str] = []
        for index, item in enumerate(value):
            if item not in COLLECTORS:
                self.error(
                    f"{path}[{index}]",
                    f"unknown collector {item!r} (known: {', '.join(COLLECTORS)})",
                )
            elif item not in IMPLEMENTED_COLLECTORS:
                self.error(
                    f"{path}[{index}]", f"collector {item!r} is not supported by this version yet"
                )
            elif item in seen:
                self.error(f"{path}[{index}]", f"{item!r} is listed twice")
            else:
                seen.append(item)
        return tuple(seen) if len(seen) == len(value) else None

    def positive_int(self, value: object, path: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            self.error(path, f"expected a whole number >= 1, got {value!r}")
            return 0
        return value

    def state_file(self, value: object) -> str | None:
        value = self.expand(value, "state_file")
        if value is None:
            return None
        if not isinstance(value, str) or not value.strip():
            self.error("state_file", "expected a file path or null")
            return None
        return os.path.join(self.base_dir, value) if not os.path.isabs(value) else value

    def instances(self, value: object, defaults: dict[str, object]) -> list[InstanceConfig]:
        if value is None:
            self.error("instances", "missing: list at least one instance")
            return []
        if not isinstance(value, list) or not value:
            self.error("instances", f"expected a non-empty list, got {_kind(value)}")
            return []
        result: list[InstanceConfig] = []
        names: dict[str, int] = {}
        ids: dict[str, int] = {}
        for index, entry in enumerate(value):
            path = f"instances[{index}]"
            instance = self.instance(entry, path, defaults)
            if instance is None:
                continue
            if instance.name in names:
                self.error(
                    f"{path}.name",
                    f"duplicate name {instance.name!r} (also instances[{names[instance.name]}])",
                )
            if instance.id_instance in ids:
                self.error(
                    f"{path}.id_instance",
                    f"duplicate id_instance {instance.id_instance} (also instances[{ids[instance.id_instance]}])",
                )
            names.setdefault(instance.name, index)
            ids.setdefault(instance.id_instance, index)
            result.append(instance)
        return result

    def instance(
        self, entry: object, path: str, defaults: dict[str, object]
    ) -> InstanceConfig | None:
        if not isinstance(entry, dict):
            self.error(path, f"expected a mapping, got {_kind(entry)}")
            return None
        errors_before = len(self.errors)
        self.unknown_keys(entry, (*_INSTANCE_ONLY_KEYS, *_DEFAULTS), path)
        name = self.expand(entry.get("name"), f"{path}.name")
        if name is None:
            if "name" not in entry:
                self.error(f"{path}.name", "missing")
        elif not isinstance(name, str) or not _NAME.match(name):
            self.error(
                f"{path}.name", f"{name!r} is not a name of letters, digits, '_', '-' or '.'"
            )
        id_instance = self.id_instance(entry, path)
        token, source = self.token(entry, path)
        settings = self.settings({k: v for k, v in entry.items() if k in _DEFAULTS}, path, defaults)
        labels = self.labels(entry.get("labels"), f"{path}.labels")
        if len(self.errors) > errors_before:
            return None
        assert isinstance(name, str) and id_instance is not None and token is not None
        return InstanceConfig(
            name=name,
            id_instance=id_instance,
            api_token=token,
            api_url=str(settings["api_url"]),
            poll_interval=_float(settings["poll_interval"]),
            window=_float(settings["window"]),
            timeout=_float(settings["timeout"]),
            undelivered_after=_float(settings["undelivered_after"]),
            max_messages=int(_float(settings["max_messages"])),
            labels=labels,
            collect=_collectors(settings["collect"]),
            token_source=source,
            monthly_quota=settings["monthly_quota"],  # type: ignore[arg-type]
        )

    def id_instance(self, entry: Mapping[str, object], path: str) -> str | None:
        where = f"{path}.id_instance"
        if "id_instance" not in entry:
            self.error(where, "missing")
            return None
        value = self.expand(entry["id_instance"], where)
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            self.error(where, f"expected digits, got {_kind(value)}")
            return None
        text = str(value).strip()
        if not text.isdigit() or not text.isascii():
            self.error(where, f"expected digits, got {text!r}")
            return None
        return text

    def token(self, entry: Mapping[str, object], path: str) -> tuple[str | None, str]:
        has_inline, has_file = "api_token" in entry, "api_token_file" in entry
        if has_inline and has_file:
            self.error(path, "give either api_token or api_token_file, not both")
            return None, ""
        if not has_inline and not has_file:
            self.error(f"{path}.api_token", "missing (give api_token or api_token_file)")
            return None, ""
        if has_inline:
            where = f"{path}.api_token"
            value = self.expand(entry["api_token"], where, secret=True)
            if value is None:
                if entry["api_token"] is None:
                    self.error(where, "must not be empty")
                return None, ""
            if isinstance(value, bool) or not isinstance(value, (str, int)):
                self.error(where, f"expected a string, got {_kind(value)}")
                return None, ""
            token = str(value).strip()
            if not token:
                self.error(where, "must not be empty")
                return None, ""
            if any(c in token for c in "/?#% \t\n"):
                self.error(
                    where, "contains characters a GREEN-API token never has (/ ? # % or spaces)"
                )
                return None, ""
            return token, "api_token"
        where = f"{path}.api_token_file"
        file_value = self.expand(entry["api_token_file"], where)
        if not isinstance(file_value, str) or not file_value.strip():
            if entry["api_token_file"] is None or file_value is not None:
                self.error(where, "expected a file path")
            return None, ""
        file_path = (
            file_value if os.path.isabs(file_value) else os.path.join(self.base_dir, file_value)
        )
        try:
            with open(file_path, encoding="utf-8") as handle:
                token = handle.read().strip()
        except FileNotFoundError:
            self.error(where, f"cannot read {file_value}: no such file")
            return None, ""
        except PermissionError:
            self.error(where, f"cannot read {file_value}: permission denied")
            return None, ""
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            self.error(where, f"cannot read {file_value}: {reason}")
            return None, ""
        if not token:
            self.error(where, f"{file_value} is empty")
            return None, ""
        if any(c in token for c in "/?#% \t\n"):
            self.error(where, f"{file_value} holds characters a GREEN-API token never has")
            return None, ""
        return token, f"api_token_file {file_value}"

    def labels(self, value: object, path: str) -> tuple[tuple[str, str], ...]:
        if value is None:
            return ()
        if not isinstance(value, dict):
            self.error(path, f"expected a mapping of label names to values, got {_kind(value)}")
            return ()
        labels: list[tuple[str, str]] = []
        for key, raw in value.items():
            where = f"{path}.{key}"
            if not isinstance(key, str) or not _LABEL.match(key) or key.startswith("__"):
                self.error(
                    where,
                    "not a valid Prometheus label name ([a-zA-Z_][a-zA-Z0-9_]*, not starting with __)",
                )
                continue
            if key in OWN_LABELS:
                self.error(where, "clashes with a label the exporter sets itself")
                continue
            expanded = self.expand(raw, where)
            if isinstance(expanded, bool) or not isinstance(expanded, (str, int, float)):
                if expanded is not None or raw is None:
                    self.error(where, f"expected a string or number, got {_kind(expanded)}")
                continue
            labels.append((key, str(expanded)))
        return tuple(sorted(labels))


def _collectors(value: object) -> tuple[str, ...]:
    assert isinstance(value, tuple)
    return tuple(str(item) for item in value)


def _float(value: object) -> float:
    assert isinstance(value, (int, float))
    return float(value)


def _kind(value: object) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list" if value else "an empty list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__
