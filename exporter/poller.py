"""One instance's polls: request what is due, let its collector fold the answer, publish.

Data flows one way: client → collector (parse, then fold into the instance's state) →
:class:`InstanceSnapshot` → metrics collector. The snapshot is replaced (never mutated) at
the end of each request, so a scrape reads a consistent picture without taking a lock. When
each request goes out is the :class:`~exporter.schedule.InstanceSchedule`'s business; what a
request is and what its answer means is the collector's (:mod:`exporter.collectors`).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from exporter.client import RESULTS, GreenApiClient
from exporter.collectors import (
    BY_NAME,
    COLLECTORS,
    NAMES,
    OUTGOING,
    CollectorStatus,
    InvalidAnswer,
    Reading,
    Span,
)
from exporter.config import InstanceConfig
from exporter.schedule import InstanceSchedule, JournalPolicy

log = logging.getLogger("exporter.poller")

_NOT_POLLED = Reading(None, None)


@dataclass(frozen=True)
class InstanceSnapshot:
    """Everything the metrics collector and the pages show for one instance.

    ``readings`` has the latest of every configured collector (``collect``), the outgoing
    journal included; ``polls_total`` counts their requests by result.
    """

    name: str
    id_instance: str
    labels: tuple[tuple[str, str], ...]
    window_seconds: float
    collect: tuple[str, ...]
    polls_total: Mapping[str, Mapping[str, int]]  # collector → result → count
    readings: Mapping[str, Reading]
    fetched_bytes: Mapping[str, int] = field(
        default_factory=lambda: MappingProxyType({})
    )  # collector → answer bytes received

    def reading(self, collector: str) -> Reading:
        return self.readings.get(collector, _NOT_POLLED)

    @property
    def ready(self) -> bool:
        """Every configured collector has finished a first request (success or failure)."""
        return all(self.reading(name).status is not None for name in self.collect)


class InstancePoller:
    """Polls one instance. Only the scheduler calls :meth:`poll`, never twice at once.

    Each call makes at most one request: the collector that the schedule says is due. The
    state of every collector (its tracker, if it keeps one) lives here, guarded by a lock
    that is held for computation only, never across a request.
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
        self._clock = clock  # UNIX time: timestamps, and the journal's clock
        self._monotonic = monotonic  # due times, spacing and durations
        self._states: dict[str, Any] = {
            c.name: c.new_state(config, baseline_before) for c in COLLECTORS
        }
        self._readings = {
            c.name: Reading(None, c.initial(self._states[c.name])) for c in COLLECTORS
        }
        self._polls_total = {name: dict.fromkeys(RESULTS, 0) for name in NAMES}
        settings = config.settings
        self._schedule = InstanceSchedule(
            settings.collect, settings.poll_interval, monotonic, rng,
            journals=_JOURNALS, policy=_policy(config),
        )  # fmt: skip
        self._fetched_bytes = dict.fromkeys(NAMES, 0)
        self.last_answer_bytes = 0  # body size of the latest request, for the allocator
        self._lock = threading.Lock()
        self.snapshot = self._snapshot()

    def poll(self, client: GreenApiClient) -> float:
        """Make the request that is due (if any), publish, and return the monotonic time at
        which the next one may and should start."""
        with self._lock:
            name = self._schedule.due()
            if name is None:
                return self._schedule.next_time()
            ticket = self._schedule.start(name)
            config = self.config
        collector = BY_NAME[name]
        fetch = client.get(
            config.method_url(name),
            collector.params(config, ticket.minutes),
            config.settings.timeout,
            config.api_token,
        )
        self.last_answer_bytes = len(fetch.body) if fetch.body is not None else 0
        result, error, parsed = fetch.result, fetch.error, None
        if fetch.body is not None and result == "success":
            try:
                parsed = collector.parse(fetch.body)
            except InvalidAnswer as exc:
                result, error = "invalid_response", str(exc)
        with self._lock:
            self._fetched_bytes[name] += self.last_answer_bytes
            value = None
            if result == "success":
                now = self._clock()
                span = Span(
                    ticket.full, None if ticket.minutes is None else now - ticket.minutes * 60
                )
                value = collector.fold(self._states[name], parsed, now, self.config, span)
                if collector.reads_in_full_only(value) and self._schedule.read_in_full_only(name):
                    log.warning(
                        "the journal filters ?minutes= by send time: reading it in full from now on",
                        extra={"instance": self.config.name, "collector": name},
                    )
            self._publish(name, result, error, self._monotonic() - ticket.started, value)
            self._schedule.finish(ticket, result, fetch.retry_after)
            return self._schedule.next_time()

    def configure(self, config: InstanceConfig) -> bool:
        """Adopt a reloaded configuration of the same instance; counters are kept.

        A collector added by the reload is due at once; a removed one stops. A changed
        token, ``api_url`` or ``poll_interval`` makes every collector due at once, whatever
        its back-off: the user just fixed what the old requests got wrong (a token after
        401s, an interval after 466s). Returns True when something became due, so that the
        caller can move this poller's next run to now (spacing still applies).
        """
        with self._lock:
            previous, self.config = self.config, config
            for collector in COLLECTORS:
                collector.configure(self._states[collector.name], config)
            retarget = (config.api_token, config.settings.api_url,
                        config.settings.poll_interval) != (
                previous.api_token, previous.settings.api_url, previous.settings.poll_interval
            )  # fmt: skip
            due_now = self._schedule.reconfigure(
                config.settings.collect, config.settings.poll_interval, retarget,
                policy=_policy(config), changed=config != previous,
            )  # fmt: skip
            self.snapshot = self._snapshot()
            return due_now

    def next_time(self) -> float:
        """The monotonic time at which the next request may and should start."""
        with self._lock:
            return self._schedule.next_time()

    def first_delay(self) -> float:
        """Seconds to wait before the first request: first polls are spread a little."""
        return self._schedule.first_delay()

    def export(self) -> dict[str, object]:
        """This instance's state for the state file."""
        return self._export(changes_only=False, complete=True)

    def export_changes(self, complete: bool) -> dict[str, object]:
        """:meth:`export` for an incremental save of the state file: the same entry, but the
        journal's tracker lists only the messages it changed since the previous call,
        unless ``complete`` (see :meth:`MessageTracker.export_changes`)."""
        return self._export(changes_only=True, complete=complete)

    def _export(self, changes_only: bool, complete: bool) -> dict[str, object]:
        with self._lock:
            entry: dict[str, object] = {
                "id_instance": self.config.id_instance,
                "polls_total": {
                    name: dict(counts)
                    for name, counts in self._polls_total.items()
                    if any(counts.values())
                },
                "fetched_bytes": {name: n for name, n in self._fetched_bytes.items() if n},
            }
            for collector in COLLECTORS:
                if collector.state_key is None:
                    continue
                state = self._states[collector.name]
                if changes_only and collector is OUTGOING:
                    entry[collector.state_key] = state.export_changes(complete)
                else:
                    entry[collector.state_key] = collector.export(state)
            return entry

    def restore(self, data: dict[str, object]) -> None:
        """Resume counters from :meth:`export` output of an earlier run of this instance.
        Raises ValueError when the data does not fit; nothing is changed then."""
        if data.get("id_instance") != self.config.id_instance:
            raise ValueError("saved for another id_instance")
        polls = _restored_polls(data.get("polls_total"))
        fetched = _restored_bytes(data.get("fetched_bytes", {}))
        if OUTGOING.state_key not in data:
            raise ValueError("the journal's tracker state is missing")
        # Every collector's state is rebuilt aside, and swapped in only once all fit. A
        # collector newer than the file (no entry) starts afresh.
        states = {
            c.name: c.restore(self.config, data[c.state_key])
            for c in COLLECTORS
            if c.state_key is not None and data.get(c.state_key) is not None
        }
        with self._lock:
            self._states.update(states)
            for name in states:
                self._readings[name] = Reading(
                    self._readings[name].status, BY_NAME[name].initial(states[name])
                )
            for name, counts in polls.items():
                for result in RESULTS:
                    self._polls_total[name][result] = counts.get(result, 0)
            self._fetched_bytes.update(fetched)
            self.snapshot = self._snapshot()

    def _snapshot(self) -> InstanceSnapshot:
        config = self.config
        collect = config.settings.collect
        return InstanceSnapshot(
            name=config.name,
            id_instance=config.id_instance,
            labels=config.labels,
            window_seconds=config.settings.window,
            collect=collect,
            polls_total=MappingProxyType(
                {name: MappingProxyType(dict(self._polls_total[name])) for name in collect}
            ),
            fetched_bytes=MappingProxyType({name: self._fetched_bytes[name] for name in collect}),
            readings=MappingProxyType({name: self._readings[name] for name in collect}),
        )

    def _publish(self, name: str, result: str, error: str, duration: float, value: object) -> None:
        """Count a request and replace the snapshot. A failure keeps the collector's last
        good value: the journal did not change as far as anyone knows, and the status (and
        greenapi_up for the journal) says that the picture is stale."""
        now = self._clock()
        self._polls_total[name][result] += 1
        previous = self._readings[name]
        success = result == "success"
        last_success = previous.status.last_success_timestamp if previous.status else None
        status = CollectorStatus(
            result=result,
            error="" if success else error,
            timestamp=now,
            duration=duration,
            last_success_timestamp=now if success else last_success,
        )
        reading = Reading(status, value if success else previous.value)
        self._log_change(name, previous.status, reading)
        if success:
            BY_NAME[name].changed(previous.value, value, self.config.name)
        self._readings[name] = reading
        self.snapshot = self._snapshot()

    def _log_change(self, name: str, before: CollectorStatus | None, reading: Reading) -> None:
        """Log a failure when it starts or changes kind, not at every poll (401s repeat
        forever), and a success after none or after failures."""
        status = reading.status
        assert status is not None
        extra: dict[str, object] = {"instance": self.config.name, "collector": name}
        if status.up:
            extra["value"] = BY_NAME[name].describe(reading)
            if before is None:
                log.info("first poll succeeded", extra=extra)
            elif not before.up:
                log.info("poll succeeded again", extra=extra)
            else:
                log.debug("poll succeeded", extra=extra)
            return
        extra.update(result=status.result, error=status.error)
        if before is None or status.result != before.result:
            log.warning("poll failed", extra=extra)
        else:
            log.debug("poll failed", extra=extra)


_JOURNALS = frozenset(c.name for c in COLLECTORS if c.journal)


def _policy(config: InstanceConfig) -> JournalPolicy:
    settings = config.settings
    return JournalPolicy(settings.window, settings.undelivered_after, settings.resync_interval)


def _restored_bytes(data: object) -> dict[str, int]:
    """fetched_bytes from a state file (absent in files of earlier versions)."""
    if not isinstance(data, dict) or not all(
        name in NAMES and isinstance(n, int) and not isinstance(n, bool) and n >= 0
        for name, n in data.items()
    ):
        raise ValueError("fetched_bytes is not a mapping of collectors to byte counts")
    return dict(data)


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
        return {OUTGOING.name: counts(data)}
    unknown = set(data) - set(NAMES)
    if unknown:
        raise ValueError(f"polls_total of unknown collectors {sorted(map(str, unknown))}")
    return {name: counts(value) for name, value in data.items()}
