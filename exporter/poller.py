"""One instance's polls: fetch, parse, track, publish a snapshot, and decide when to go again.

Data flows one way: client → journal (or status) → tracker → :class:`InstanceSnapshot` →
collector. The snapshot is replaced (never mutated) at the end of each poll, so a scrape reads a
consistent picture without taking a lock.
"""

from __future__ import annotations

import logging
import math
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType

from exporter.client import RESULTS, Fetch, GreenApiClient
from exporter.config import COLLECTORS, InstanceConfig
from exporter.journal import InvalidJournal, parse_journal
from exporter.status import InvalidAnswer, parse_queue, parse_state
from exporter.tracker import IncomingSnapshot, IncomingTracker, MessageTracker, TrackerSnapshot

log = logging.getLogger("exporter.poller")

# GREEN-API allows one request per second per instance and method. Requests are spaced a
# little more than that, so that network jitter cannot make two of them arrive < 1 s apart.
MIN_SPACING = 1.1
# After a 466 the monthly plan quota is spent: retrying every minute only burns log lines.
QUOTA_BACKOFF = 3600.0
# Upper bound for exponential 429 back-off and for honouring a Retry-After header.
RATE_LIMIT_BACKOFF_CAP = 600.0
RETRY_AFTER_CAP = 3600.0


@dataclass(frozen=True)
class CollectorStatus:
    """The latest request of one collector (``outgoing``, ``state``, ``queue``, ``incoming``)."""

    result: str  # a value of RESULTS
    error: str  # redacted; "" after a success
    timestamp: float  # when the request ended


def _zero_polls(collect: tuple[str, ...]) -> Mapping[str, Mapping[str, int]]:
    return MappingProxyType({name: MappingProxyType(dict.fromkeys(RESULTS, 0)) for name in collect})


@dataclass(frozen=True)
class InstanceSnapshot:
    """Everything the collector shows for one instance, as of its latest requests.

    ``up``, ``last_*`` and ``tracker`` describe the outgoing journal (``greenapi_up`` keeps
    that meaning whatever else is collected); ``collectors`` has the latest request of every
    configured collector, the journal included.
    """

    name: str
    id_instance: str
    labels: tuple[tuple[str, str], ...]
    window_seconds: float
    collect: tuple[str, ...] = ("outgoing",)
    polled: bool = False  # a first poll of the outgoing journal has finished
    up: bool = False
    last_result: str = ""
    last_error: str = ""  # redacted
    last_poll_timestamp: float | None = None
    last_poll_duration: float = 0.0
    last_success_timestamp: float | None = None
    polls_total: Mapping[str, Mapping[str, int]] = field(
        default_factory=lambda: _zero_polls(("outgoing",))
    )  # collector → result → count
    tracker: TrackerSnapshot = field(default_factory=TrackerSnapshot)
    collectors: Mapping[str, CollectorStatus] = field(default_factory=lambda: MappingProxyType({}))
    state: str | None = None  # the latest stateInstance, bounded; None before one succeeded
    send_queue: int | None = None  # the latest getMessagesCount
    incoming: IncomingSnapshot = field(default_factory=IncomingSnapshot)

    @property
    def ready(self) -> bool:
        """Every configured collector has finished a first request (success or failure)."""
        return all(name in self.collectors for name in self.collect)


class InstancePoller:
    """Polls one instance. Only the scheduler calls :meth:`poll`, never twice at once.

    Each call makes at most one request: the collector that is due first. Collectors keep
    their own schedule (and back-off), and two requests of an instance always start at
    least MIN_SPACING apart, so the instance never sees them concurrently or faster than
    GREEN-API's 1 request/second, whatever the number of collectors.
    """

    def __init__(
        self,
        config: InstanceConfig,
        baseline_before: float | None,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self._clock = clock  # UNIX time, for timestamps and the journal's clock
        self._monotonic = monotonic  # for due times, spacing and durations
        self._rng = rng or random.Random()
        self._baseline_before = baseline_before
        self._tracker = MessageTracker(
            config.settings.window, config.settings.undelivered_after, baseline_before
        )
        self._incoming = IncomingTracker(config.settings.window, baseline_before)
        self._polls_total = {name: dict.fromkeys(RESULTS, 0) for name in COLLECTORS}
        self._rate_limited_in_a_row = dict.fromkeys(COLLECTORS, 0)
        # Monotonic due time of each configured collector: all due at the first poll.
        self._due = dict.fromkeys(config.settings.collect, -math.inf)
        self._last_request: float | None = None
        # Bumped by a reload that changes what a request looks like: a poll that was in
        # flight then must not push the next request away with the old settings' delay.
        self._generation = 0
        self.last_answer_bytes = 0  # body size of the latest request, for the allocator
        # Guards the trackers and poll counters against export() from the state saver. Held
        # for computation only, never across the HTTP request.
        self._lock = threading.Lock()
        self.snapshot = self._initial_snapshot(config)

    @staticmethod
    def _initial_snapshot(config: InstanceConfig) -> InstanceSnapshot:
        return InstanceSnapshot(
            name=config.name,
            id_instance=config.id_instance,
            labels=config.labels,
            window_seconds=config.settings.window,
            collect=config.settings.collect,
            polls_total=_zero_polls(config.settings.collect),
        )

    def configure(self, config: InstanceConfig) -> bool:
        """Adopt a reloaded configuration of the same instance; counters are kept.

        A collector added by the reload is due at once; a removed one stops. A changed
        token, ``api_url`` or ``poll_interval`` makes every collector due at once, whatever
        its back-off: the user just fixed what the old requests got wrong (a token after
        401s, an interval after 466s). Returns True when something became due, so that the
        caller can move this poller's next run to now (spacing still applies).
        """
        with self._lock:
            previous = self.config
            self.config = config
            self._tracker.configure(config.settings.window, config.settings.undelivered_after)
            self._incoming.configure(config.settings.window)
            retarget = (
                (config.api_token, config.settings.api_url, config.settings.poll_interval)
                != (previous.api_token, previous.settings.api_url, previous.settings.poll_interval)
            )  # fmt: skip
            if retarget:
                self._generation += 1
                self._due = dict.fromkeys(config.settings.collect, -math.inf)
            else:
                self._due = {
                    name: self._due.get(name, -math.inf) for name in config.settings.collect
                }
            added = any(name not in previous.settings.collect for name in config.settings.collect)
            self.snapshot = replace(
                self.snapshot,
                name=config.name,
                id_instance=config.id_instance,
                labels=config.labels,
                window_seconds=config.settings.window,
                collect=config.settings.collect,
                polls_total=self._frozen_polls(config.settings.collect),
                collectors=MappingProxyType(
                    {
                        k: v
                        for k, v in self.snapshot.collectors.items()
                        if k in config.settings.collect
                    }
                ),
            )
            return retarget or added

    def poll(self, client: GreenApiClient) -> float:
        """Make the request that is due (if any), publish, return the seconds until the next."""
        with self._lock:
            config, generation = self.config, self._generation
            now = self._monotonic()
            name = self._due_collector(now)
            if name is None:
                return self._delay_from(now)
            self._last_request = now
        fetch = client.get(
            config.method_url(name),
            config.method_params(name),
            config.settings.timeout,
            config.api_token,
        )
        duration = self._monotonic() - now
        self.last_answer_bytes = len(fetch.body) if fetch.body is not None else 0
        result, error = fetch.result, fetch.error
        outcome: object = None
        if result == "success":
            assert fetch.body is not None
            try:
                outcome = self._read(name, fetch.body)
            except (InvalidJournal, InvalidAnswer) as exc:
                result, error = "invalid_response", str(exc)
        with self._lock:
            if name == "outgoing":
                self._publish_outgoing(result, error, duration, outcome)
            else:
                self._publish_other(name, result, error, outcome)
            # Unless a reload removed the collector or made it due again meanwhile.
            if name in self._due and generation == self._generation:
                self._due[name] = now + self._next_delay(name, fetch, result)
            return self._delay_from(self._monotonic())

    def _read(self, name: str, body: bytes) -> object:
        """Parse a successful answer and fold it into the trackers (outgoing, incoming)."""
        if name == "state":
            return parse_state(body)
        if name == "queue":
            return parse_queue(body)
        journal = parse_journal(body)
        with self._lock:
            if name == "outgoing":
                return self._tracker.observe(
                    journal, self._clock(), self.config.settings.max_messages
                )
            return self._incoming.observe(journal, self._clock())

    def _due_collector(self, now: float) -> str | None:
        """The collector to request now: the most overdue one, once spacing allows."""
        if self._last_request is not None and now < self._last_request + MIN_SPACING - 0.01:
            return None
        due = [(when, name) for name, when in self._due.items() if when <= now + 0.01]
        if not due:
            return None
        # Ties (all are due at the first poll) go in COLLECTORS order: the journal first.
        return min(due, key=lambda pair: (pair[0], COLLECTORS.index(pair[1])))[1]

    def _delay_from(self, now: float) -> float:
        """Seconds from ``now`` until the next request may and should start."""
        if not self._due:
            return self.config.settings.poll_interval
        next_due = min(self._due.values())
        if self._last_request is not None:
            next_due = max(next_due, self._last_request + MIN_SPACING)
        return max(0.0, next_due - now)

    def export(self) -> dict[str, object]:
        """This instance's state for the state file."""
        with self._lock:
            return {
                "id_instance": self.config.id_instance,
                "polls_total": {
                    name: dict(counts)
                    for name, counts in self._polls_total.items()
                    if any(counts.values())
                },
                "tracker": self._tracker.export(),
                "incoming": self._incoming.export(),
            }

    def restore(self, data: dict[str, object]) -> None:
        """Resume counters from :meth:`export` output of an earlier run of this instance.
        Raises ValueError when the data does not fit; nothing is changed then."""
        if data.get("id_instance") != self.config.id_instance:
            raise ValueError("saved for another id_instance")
        polls = _restored_polls(data.get("polls_total"))
        incoming = self._incoming
        if data.get("incoming") is not None:  # absent in files from before the collector
            # Restored aside and swapped in only once the journal's tracker has been too.
            incoming = IncomingTracker(self.config.settings.window, baseline_before=None)
            incoming.restore(data["incoming"])
        with self._lock:
            try:
                self._tracker.restore(data.get("tracker"))
            except (KeyError, TypeError) as exc:
                raise ValueError(f"tracker state incomplete: {exc}") from None
            self._incoming = incoming
            for name, counts in polls.items():
                for result in RESULTS:
                    self._polls_total[name][result] = counts.get(result, 0)
            self.snapshot = replace(
                self.snapshot,
                polls_total=self._frozen_polls(self.config.settings.collect),
                tracker=self._tracker.snapshot(),
                incoming=self._incoming.snapshot(),
            )

    def _frozen_polls(self, collect: tuple[str, ...]) -> Mapping[str, Mapping[str, int]]:
        return MappingProxyType(
            {name: MappingProxyType(dict(self._polls_total[name])) for name in collect}
        )

    def _publish_outgoing(self, result: str, error: str, duration: float, outcome: object) -> None:
        previous = self.snapshot
        now = self._clock()
        self._polls_total["outgoing"][result] += 1
        tracker = outcome if isinstance(outcome, TrackerSnapshot) else None
        self._log_change("outgoing", previous, result, error, tracker)
        success = result == "success"
        self.snapshot = replace(
            previous,
            polled=True,
            up=success,
            last_result=result,
            last_error="" if success else error,
            last_poll_timestamp=now,
            last_poll_duration=duration,
            last_success_timestamp=now if success else previous.last_success_timestamp,
            polls_total=self._frozen_polls(self.config.settings.collect),
            # A failed poll keeps the last window and counters: the journal did not change
            # as far as we know, and greenapi_up says the picture is stale.
            tracker=tracker if tracker is not None else previous.tracker,
            collectors=self._with_status(previous, "outgoing", result, error, now),
        )

    def _publish_other(self, name: str, result: str, error: str, outcome: object) -> None:
        """Publish a state, queue or incoming request. A failure keeps the last good value
        (as a failed journal poll keeps the window); polls_total{collector} tells."""
        previous = self.snapshot
        now = self._clock()
        self._polls_total[name][result] += 1
        self._log_change(name, previous, result, error, None)
        changes: dict[str, object] = {}
        if isinstance(outcome, IncomingSnapshot):
            changes["incoming"] = outcome
        elif name == "state" and isinstance(outcome, str):
            changes["state"] = outcome
            self._log_state(previous.state, outcome)
        elif name == "queue" and isinstance(outcome, int):
            changes["send_queue"] = outcome
        self.snapshot = replace(
            previous,
            polls_total=self._frozen_polls(self.config.settings.collect),
            collectors=self._with_status(previous, name, result, error, now),
            **changes,  # type: ignore[arg-type]
        )

    def _log_state(self, previous: str | None, state: str) -> None:
        """A change of state is news; leaving `authorized` (or starting elsewhere) a warning."""
        if state == previous or (previous is None and state == "authorized"):
            return
        extra = {"instance": self.config.name, "state": state, "previous": previous or "none"}
        if state == "authorized":
            log.info("instance state changed", extra=extra)
        else:
            log.warning("instance state changed", extra=extra)

    def _with_status(self, previous: InstanceSnapshot, name: str, result: str, error: str,
                     now: float) -> Mapping[str, CollectorStatus]:  # fmt: skip
        status = CollectorStatus(result, "" if result == "success" else error, now)
        merged = {**previous.collectors, name: status}
        return MappingProxyType({k: merged[k] for k in self.config.settings.collect if k in merged})

    def _log_change(
        self,
        collector: str,
        previous: InstanceSnapshot,
        result: str,
        error: str,
        tracker: TrackerSnapshot | None,
    ) -> None:
        """Log a failure when it starts or changes kind, not at every poll (401s repeat forever)."""
        before = previous.collectors.get(collector)
        last = before.result if before else ""
        extra: dict[str, object] = {"instance": self.config.name, "collector": collector}
        if result == "success":
            if tracker is not None and tracker.window is not None:
                extra["messages"] = tracker.window.messages
            if before is None:
                log.info("first poll succeeded", extra=extra)
            elif last != "success":
                log.info("poll succeeded again", extra=extra)
            else:
                log.debug("poll succeeded", extra=extra)
            return
        extra.update(result=result, error=error)
        if result != last:
            log.warning("poll failed", extra=extra)
        else:
            log.debug("poll failed", extra=extra)

    def _next_delay(self, collector: str, fetch: Fetch, result: str) -> float:
        """Seconds until this collector's next request: the interval, or a back-off. A
        429 or 466 only delays the collector that got it (limits and quotas are per method)."""
        interval = self.config.settings.poll_interval
        if result == "http_429":
            self._rate_limited_in_a_row[collector] += 1
            if fetch.retry_after is not None:
                delay = max(interval, min(fetch.retry_after, RETRY_AFTER_CAP))
            else:
                exponent = min(self._rate_limited_in_a_row[collector], 16)
                cap = max(interval, RATE_LIMIT_BACKOFF_CAP)
                delay = min(cap, interval * 2**exponent) * self._rng.uniform(0.8, 1.2)
        else:
            self._rate_limited_in_a_row[collector] = 0
            if result == "http_466":
                delay = max(interval, QUOTA_BACKOFF)
            else:
                # A little jitter so that instances configured alike drift apart.
                delay = interval * self._rng.uniform(0.97, 1.03)
        return max(delay, MIN_SPACING)

    def next_delay(self) -> float:
        """Seconds until the next request may and should start, as of now."""
        with self._lock:
            return self._delay_from(self._monotonic())

    def first_delay(self) -> float:
        """Spread the first polls over a few seconds rather than fire them together."""
        return self._rng.uniform(0.0, min(self.config.settings.poll_interval, 2.0))


def _restored_polls(data: object) -> dict[str, dict[str, int]]:
    """polls_total from a state file: collector → result → count. Files written before
    the optional collectors hold one flat result → count mapping, the journal's."""

    def counts(value: object) -> dict[str, int]:
        if not isinstance(value, dict) or not all(
            isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value.values()
        ):
            raise ValueError("polls_total is not a mapping of counts")
        return {str(k): int(v) for k, v in value.items()}

    if not isinstance(data, dict):
        raise ValueError("polls_total is not a mapping of counts")
    if all(isinstance(v, int) for v in data.values()):
        return {"outgoing": counts(data)}
    unknown = set(data) - set(COLLECTORS)
    if unknown:
        raise ValueError(f"polls_total of unknown collectors {sorted(map(str, unknown))}")
    return {name: counts(value) for name, value in data.items()}
