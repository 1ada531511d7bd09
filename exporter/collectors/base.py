"""What a collector is: one GREEN-API method the exporter polls, as one unit.

A collector owns everything about its method: the request's parameters, parsing an answer,
folding it into the instance's state (a tracker, or nothing), the value it publishes, its
metric families and their samples, its line on the status page, and what it keeps in the
state file. The poller, the metrics collector, the server and the configuration know
collectors only through :mod:`exporter.collectors`' registry, so adding a fifth is one module
and one line there.

Each poll of a collector goes: :meth:`ApiCollector.parse` the body (no lock held), then
:meth:`ApiCollector.fold` it into the state (under the poller's lock), which returns the new
published value. Values are immutable: the metrics collector reads them from other threads.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from exporter.journal import InvalidJournal, Journal, describe_json_error, parse_journal
from exporter.tracker import Histogram

if TYPE_CHECKING:
    from exporter.config import InstanceConfig

StateT = TypeVar("StateT")
ParsedT = TypeVar("ParsedT")
ValueT = TypeVar("ValueT")


class InvalidAnswer(ValueError):
    """An HTTP 200 whose body cannot be used (``invalid_response``). The message never
    quotes the body, which may echo a URL."""


# A state or a count is a few bytes; anything this large is not one.
MAX_SMALL_ANSWER = 64 * 1024


def decode_json(body: bytes) -> object:
    """A small JSON answer (a state, a count); :class:`InvalidAnswer` when it is not JSON."""
    if len(body) > MAX_SMALL_ANSWER:
        raise InvalidAnswer(f"answer of {len(body)} bytes, over {MAX_SMALL_ANSWER}: not a status")
    try:
        return json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise InvalidAnswer(describe_json_error(exc)) from None


@dataclass(frozen=True)
class FamilySpec:
    """One per-instance metric family: its full name (as the README spells it), type, help
    text and the labels it adds to ``name``, ``id_instance`` and the static labels."""

    name: str
    kind: str  # "gauge", "counter" or "histogram"
    documentation: str
    labels: tuple[str, ...] = ()


@dataclass(frozen=True)
class Span:
    """What a journal request asked for: the whole window (``full``), or the journal since
    ``since`` (UNIX time) in a short poll."""

    full: bool = True
    since: float | None = None


FULL = Span()


@dataclass(frozen=True)
class CollectorStatus:
    """How the latest request of one collector went."""

    result: str  # a value of greenapi_polls_total{result}
    error: str  # redacted; "" after a success
    timestamp: float  # UNIX time when the request ended
    duration: float  # seconds the request and its parsing took
    last_success_timestamp: float | None  # when the latest successful request ended

    @property
    def up(self) -> bool:
        return self.result == "success"


@dataclass(frozen=True)
class Reading:
    """What one collector shows for an instance: its latest request, and its value as of
    the latest successful one (a failed request keeps the last good value: the answer is
    unknown, not empty)."""

    status: CollectorStatus | None  # None until a first request has finished
    value: Any  # the collector's own value type; None while it has none


class SampleSink(Protocol):
    """Where a collector writes its samples (the families of one scrape)."""

    def sample(self, family: str, labels: Sequence[str], value: float) -> None: ...

    def histogram(self, family: str, labels: Sequence[str], histogram: Histogram) -> None: ...


class ApiCollector(ABC, Generic[StateT, ParsedT, ValueT]):
    """One GREEN-API method polled for every instance that lists it in ``collect``."""

    name: str  # in `collect:` and in greenapi_polls_total{collector}
    method: str  # the GREEN-API method
    journal: bool = False  # takes ?minutes= and counts against the plan's journal quota
    families: tuple[FamilySpec, ...] = ()
    state_key: str | None = None  # its entry in the state file, if it keeps one

    def params(self, config: InstanceConfig, minutes: int | None = None) -> dict[str, str]:
        """The request's query: a journal's ``?minutes=``, the whole window unless a short
        poll asks for ``minutes``."""
        if not self.journal:
            return {}
        return {"minutes": str(config.window_minutes if minutes is None else minutes)}

    @abstractmethod
    def new_state(self, config: InstanceConfig, baseline_before: float | None) -> StateT:
        """The mutable state the collector keeps for one instance, owned by its poller."""

    def configure(self, state: StateT, config: InstanceConfig) -> None:
        """Apply reloaded settings of the same instance to ``state``."""

    def initial(self, state: StateT) -> ValueT | None:
        """The value shown before a first successful request (None: nothing)."""
        return None

    @abstractmethod
    def parse(self, body: bytes) -> ParsedT:
        """An answer's body; raises :class:`InvalidAnswer` when it cannot be used."""

    @abstractmethod
    def fold(self, state: StateT, parsed: ParsedT, now: float, config: InstanceConfig,
             span: Span) -> ValueT:  # fmt: skip
        """Fold a parsed answer (received at ``now``, UNIX time) into ``state`` and return
        the new value; ``span`` is what a journal's answer covers."""

    @abstractmethod
    def add_samples(self, reading: Reading, window_seconds: float, labels: Sequence[str],
                    sink: SampleSink) -> None:  # fmt: skip
        """This collector's samples of one instance; ``labels`` are the instance's."""

    @abstractmethod
    def describe(self, reading: Reading) -> str:
        """The collector's value in a few words, for the status page."""

    def reads_in_full_only(self, value: ValueT) -> bool:
        """Whether the value says short polls cannot be trusted for this journal (the
        outgoing journal's self-check)."""
        return False

    def tracked(self, value: ValueT | None) -> int:
        """Messages held in memory for this value (greenapi_exporter_tracked_messages)."""
        return 0

    def changed(self, previous: ValueT | None, value: ValueT, instance: str) -> None:
        """Called after each successful request, with the value before it: a collector may
        log what changed (the state collector logs a change of state)."""

    def export(self, state: StateT) -> object:
        """The state-file entry of ``state`` (only when ``state_key`` is set)."""
        raise NotImplementedError(self.name)

    def restore(self, config: InstanceConfig, data: object) -> StateT:
        """A state rebuilt from :meth:`export` output; ValueError when it does not fit."""
        raise NotImplementedError(self.name)


class StatelessCollector(ApiCollector[None, ValueT, ValueT]):
    """A collector whose value is its latest answer, parsed: nothing kept across polls."""

    def new_state(self, config: InstanceConfig, baseline_before: float | None) -> None:
        return None

    def fold(self, state: None, parsed: ValueT, now: float, config: InstanceConfig,
             span: Span) -> ValueT:  # fmt: skip
        return parsed


def parse_journal_answer(body: bytes) -> Journal:
    """A journal answer (outgoing or incoming), or :class:`InvalidAnswer`."""
    try:
        return parse_journal(body)
    except InvalidJournal as exc:
        raise InvalidAnswer(str(exc)) from None
