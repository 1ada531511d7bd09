"""One instance's polls: fetch, parse, track, publish a snapshot, and decide when to go again.

Data flows one way: client → journal → tracker → :class:`InstanceSnapshot` → collector.
The snapshot is replaced (never mutated) at the end of each poll, so a scrape reads a
consistent picture without taking a lock.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType

from exporter.client import RESULTS, Fetch, GreenApiClient
from exporter.config import InstanceConfig
from exporter.journal import InvalidJournal, parse_journal
from exporter.tracker import MessageTracker, TrackerSnapshot

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
class InstanceSnapshot:
    """Everything the collector shows for one instance, as of its latest poll."""

    name: str
    id_instance: str
    labels: tuple[tuple[str, str], ...]
    window_seconds: float
    polled: bool = False  # a first poll has finished (success or failure)
    up: bool = False
    last_result: str = ""
    last_error: str = ""  # redacted
    last_poll_timestamp: float | None = None
    last_poll_duration: float = 0.0
    last_success_timestamp: float | None = None
    polls_total: Mapping[str, int] = field(
        default_factory=lambda: MappingProxyType(dict.fromkeys(RESULTS, 0))
    )
    tracker: TrackerSnapshot = field(default_factory=TrackerSnapshot)


class InstancePoller:
    """Polls one instance. Only the scheduler calls :meth:`poll`, never twice at once."""

    def __init__(
        self,
        config: InstanceConfig,
        baseline_before: float | None,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self._clock = clock
        self._rng = rng or random.Random()
        self._tracker = MessageTracker(config.window, config.undelivered_after, baseline_before)
        self._polls_total = dict.fromkeys(RESULTS, 0)
        self._rate_limited_in_a_row = 0
        # Guards the tracker and poll counters against export() from the state saver. Held
        # for computation only, never across the HTTP request.
        self._lock = threading.Lock()
        self.snapshot = self._initial_snapshot(config)

    @staticmethod
    def _initial_snapshot(config: InstanceConfig) -> InstanceSnapshot:
        return InstanceSnapshot(
            name=config.name,
            id_instance=config.id_instance,
            labels=config.labels,
            window_seconds=config.window,
        )

    def configure(self, config: InstanceConfig) -> None:
        """Adopt a reloaded configuration of the same instance; counters are kept."""
        with self._lock:
            self.config = config
            self._tracker.configure(config.window, config.undelivered_after)
            self.snapshot = replace(
                self.snapshot,
                name=config.name,
                id_instance=config.id_instance,
                labels=config.labels,
                window_seconds=config.window,
            )

    def poll(self, client: GreenApiClient) -> float:
        """Poll once, publish the new snapshot, return the seconds until the next poll."""
        config = self.config
        started = time.monotonic()
        fetch = client.get(
            config.journal_url(),
            {"minutes": str(config.window_minutes)},
            config.timeout,
            config.api_token,
        )
        result, error, tracker = fetch.result, fetch.error, None
        if result == "success":
            assert fetch.body is not None
            try:
                journal = parse_journal(fetch.body)
            except InvalidJournal as exc:
                result, error = "invalid_response", str(exc)
            else:
                with self._lock:
                    tracker = self._tracker.observe(journal, self._clock(), config.max_messages)
        duration = time.monotonic() - started
        with self._lock:
            self._publish(result, error, duration, tracker)
        return self._next_delay(fetch, result)

    def export(self) -> dict[str, object]:
        """This instance's state for the state file."""
        with self._lock:
            return {
                "id_instance": self.config.id_instance,
                "polls_total": dict(self._polls_total),
                "tracker": self._tracker.export(),
            }

    def restore(self, data: dict[str, object]) -> None:
        """Resume counters from :meth:`export` output of an earlier run of this instance.
        Raises ValueError when the data does not fit; nothing is changed then."""
        if data.get("id_instance") != self.config.id_instance:
            raise ValueError("saved for another id_instance")
        polls = data.get("polls_total")
        if not isinstance(polls, dict) or not all(
            isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in polls.values()
        ):
            raise ValueError("polls_total is not a mapping of counts")
        with self._lock:
            try:
                self._tracker.restore(data.get("tracker"))
            except (KeyError, TypeError) as exc:
                raise ValueError(f"tracker state incomplete: {exc}") from None
            for result in RESULTS:
                self._polls_total[result] = int(polls.get(result, 0))
            self.snapshot = replace(
                self.snapshot,
                polls_total=MappingProxyType(dict(self._polls_total)),
                tracker=self._tracker.snapshot(),
            )

    def _publish(
        self, result: str, error: str, duration: float, tracker: TrackerSnapshot | None
    ) -> None:
        previous = self.snapshot
        now = self._clock()
        self._polls_total[result] += 1
        self._log_change(previous, result, error, tracker)
        success = result == "success"
        self.snapshot = InstanceSnapshot(
            name=previous.name,
            id_instance=previous.id_instance,
            labels=previous.labels,
            window_seconds=previous.window_seconds,
            polled=True,
            up=success,
            last_result=result,
            last_error="" if success else error,
            last_poll_timestamp=now,
            last_poll_duration=duration,
            last_success_timestamp=now if success else previous.last_success_timestamp,
            polls_total=MappingProxyType(dict(self._polls_total)),
            # A failed poll keeps the last window and counters: the journal did not change
            # as far as we know, and greenapi_up says the picture is stale.
            tracker=tracker if tracker is not None else previous.tracker,
        )

    def _log_change(
        self,
        previous: InstanceSnapshot,
        result: str,
        error: str,
        tracker: TrackerSnapshot | None,
    ) -> None:
        """Log a failure when it starts or changes kind, not at every poll (401s repeat forever)."""
        name = self.config.name
        if result == "success":
            window = tracker.window if tracker else None
            messages = window.messages if window else 0
            if not previous.polled:
                log.info("first poll succeeded", extra={"instance": name, "messages": messages})
            elif previous.last_result != "success":
                log.info("poll succeeded again", extra={"instance": name, "messages": messages})
            else:
                log.debug("poll succeeded", extra={"instance": name, "messages": messages})
            return
        if result != previous.last_result:
            log.warning("poll failed", extra={"instance": name, "result": result, "error": error})
        else:
            log.debug("poll failed", extra={"instance": name, "result": result, "error": error})

    def _next_delay(self, fetch: Fetch, result: str) -> float:
        interval = self.config.poll_interval
        if result == "http_429":
            self._rate_limited_in_a_row += 1
            if fetch.retry_after is not None:
                delay = max(interval, min(fetch.retry_after, RETRY_AFTER_CAP))
            else:
                exponent = min(self._rate_limited_in_a_row, 16)
                cap = max(interval, RATE_LIMIT_BACKOFF_CAP)
                delay = min(cap, interval * 2**exponent) * self._rng.uniform(0.8, 1.2)
        else:
            self._rate_limited_in_a_row = 0
            if result == "http_466":
                delay = max(interval, QUOTA_BACKOFF)
            else:
                # A little jitter so that instances configured alike drift apart.
                delay = interval * self._rng.uniform(0.97, 1.03)
        return max(delay, MIN_SPACING)

    def first_delay(self) -> float:
        """Spread the first polls over a few seconds rather than fire them together."""
        return self._rng.uniform(0.0, min(self.config.poll_interval, 2.0))
