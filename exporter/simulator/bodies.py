"""JSON bodies and parameters of the control API, declared once: read and described alike.

A :class:`Field` names a key, its :class:`Kind` (what values it takes, as the help names it)
and its default. :class:`ObjectBody` and :class:`ArrayBody` read a request's body against
their declaration (a :class:`BodyError` says what was wrong and what was expected) and give
the ``shape`` that ``greenapi-simulator --help`` prints, so the help and the checks cannot
drift apart. The fault modes declare their parameters with the same fields.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeGuard


class BodyError(ValueError):
    """A body or a parameter that does not fit its declaration (the control API: 400)."""


@dataclass(frozen=True)
class Kind:
    """What values a field takes: ``name`` for the help and errors, ``accepts`` to check."""

    name: str
    accepts: Callable[[object], bool]


def _number(value: object) -> TypeGuard[float]:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _whole(value: object, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


SECONDS = Kind("seconds", _number)  # from now: negative is in the past
DURATION = Kind("seconds >= 0", lambda v: _number(v) and v >= 0)
POSITIVE = Kind("number > 0", lambda v: _number(v) and v > 0)
RATE = Kind("number >= 0", lambda v: _number(v) and v >= 0)
COUNT = Kind("0 to 100000", lambda v: _whole(v, 0, 100_000))
HTTP_STATUS = Kind("100 to 599", lambda v: _whole(v, 100, 599))
BOOLEAN = Kind("true or false", lambda v: isinstance(v, bool))
TEXT = Kind("text", lambda v: isinstance(v, str))
SECONDS_OR_TEXT = Kind("seconds or text", lambda v: _number(v) or isinstance(v, str))


@dataclass(frozen=True)
class Field:
    """One key of a JSON object: its kind, whether it must be there, whether null is taken,
    and the value it has when absent."""

    name: str
    kind: Kind
    required: bool = False
    nullable: bool = False
    default: Any = None
    help: str = ""

    def describe(self) -> str:
        """``"name": kind``, as the help shows it."""
        kind = self.kind.name + (" or null" if self.nullable else "")
        return f'"{self.name}": {kind}'

    def read(self, context: str, body: Mapping[str, Any], expected: str) -> Any:
        if self.name not in body:
            if self.required:
                raise BodyError(f"{context}: {self.name} is missing; expected {expected}")
            return self.default
        value = body[self.name]
        if value is None and self.nullable:
            return None
        if not self.kind.accepts(value):
            raise BodyError(
                f"{context}: {self.name} must be {self.kind.name}, not {value!r}; expected {expected}"
            )
        return value


def read_fields(
    context: str, fields: Sequence[Field], values: Mapping[str, Any], expected: str
) -> dict[str, Any]:
    """``values`` checked against ``fields``, absent ones at their default; no other keys."""
    known = [f.name for f in fields]
    unknown = sorted(set(values) - set(known))
    if unknown:
        known_text = ", ".join(known) or "none"
        raise BodyError(
            f"{context}: unknown key {unknown[0]!r} (known: {known_text}); expected {expected}"
        )
    return {f.name: f.read(context, values, expected) for f in fields}


def shape_of(fields: Sequence[Field]) -> str:
    """``{"a": kind, "b": kind}``: the object ``fields`` describe."""
    return "{" + ", ".join(f.describe() for f in fields) + "}"


class Body(Protocol):
    """What a route takes as its body: ``read`` checks it, ``shape`` describes it."""

    @property
    def shape(self) -> str: ...

    def read(self, context: str, body: Any) -> Any: ...


@dataclass(frozen=True)
class ArrayBody:
    """A JSON array of anything (journal elements are served as given)."""

    items: str

    @property
    def shape(self) -> str:
        return f"[{self.items}]"

    def read(self, context: str, body: Any) -> list[Any]:
        if not isinstance(body, list):
            raise BodyError(f"{context}: expected a JSON array, {self.shape}")
        return body


@dataclass(frozen=True)
class ObjectBody:
    """A JSON object with the keys ``fields`` declare."""

    fields: tuple[Field, ...]

    @property
    def shape(self) -> str:
        return shape_of(self.fields)

    def read(self, context: str, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise BodyError(f"{context}: expected {self.shape}")
        return read_fields(context, self.fields, body, self.shape)
