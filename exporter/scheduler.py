"""Runs polls on time, at most ``concurrency`` at once, never two of one instance together.

Workers share one heap of due times. A worker that finds nothing due sleeps until the next
due time or until it is woken by a change (a poll finished, an instance added, a stop),
so there is no separate timer thread and no busy loop. No lock is held while polling.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger("exporter.scheduler")

PollFunction = Callable[[str], float]
"""Polls the instance with this key and returns when to poll it next, in the scheduler's
clock (the pollers' own monotonic clock: one "now" for both)."""


class Scheduler:
    """Due times come from ``clock`` (monotonic seconds): tests inject their own."""

    def __init__(
        self, concurrency: int, poll: PollFunction, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._poll = poll
        self._clock = clock
        self._concurrency = concurrency
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, str]] = []
        self._due: dict[str, float] = {}  # authoritative; heap entries that disagree are stale
        self._running: set[str] = set()
        self._requested: dict[str, float] = {}  # schedule() calls made while a poll ran
        self._sequence = itertools.count()
        self._workers: list[threading.Thread] = []
        self._stopping = False
        self.max_lateness = 0.0  # worst delay between a poll's due time and its start

    def start(self) -> None:
        with self._cond:
            self._grow_locked()

    def stop(self, timeout: float = 2.0) -> None:
        """Stop scheduling. Polls in flight are abandoned after ``timeout``: workers are
        daemon threads, so a hung GREEN-API request never holds up process exit."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        deadline = time.monotonic() + timeout
        for worker in self._workers:
            worker.join(max(0.0, deadline - time.monotonic()))

    def set_concurrency(self, concurrency: int) -> None:
        with self._cond:
            self._concurrency = concurrency
            if self._workers:
                self._grow_locked()
            self._cond.notify_all()

    def schedule(self, key: str, at: float) -> None:
        """Poll ``key`` at ``at``, a time of the scheduler's clock (add it, or move its next
        poll). A poll of ``key`` in flight finishes first; the earlier of the two times wins."""
        with self._cond:
            if key in self._running:
                self._requested[key] = min(at, self._requested.get(key, at))
            else:
                self._push_locked(key, at)
            self._cond.notify()

    def remove(self, key: str) -> None:
        """Stop polling ``key``; a poll of it in flight finishes and is not rescheduled."""
        with self._cond:
            self._due.pop(key, None)
            self._requested.pop(key, None)

    def _push_locked(self, key: str, due: float) -> None:
        self._due[key] = due
        heapq.heappush(self._heap, (due, next(self._sequence), key))

    def _grow_locked(self) -> None:
        while len([w for w in self._workers if w.is_alive()]) < self._concurrency:
            index = len(self._workers)
            worker = threading.Thread(
                target=self._work, args=(index,), name=f"poll-{index}", daemon=True
            )
            self._workers.append(worker)
            worker.start()

    def _work(self, index: int) -> None:
        while True:
            key = self._next_key(index)
            if key is None:
                return
            try:
                at = self._poll(key)
            except Exception:  # a bug in one poll must not stop every instance's polling
                log.exception("poll crashed", extra={"instance": key})
                at = self._clock() + 60.0
            with self._cond:
                self._running.discard(key)
                requested = self._requested.pop(key, None)
                if key in self._due:
                    self._push_locked(key, at if requested is None else min(at, requested))
                self._cond.notify_all()

    def _next_key(self, index: int) -> str | None:
        with self._cond:
            while True:
                if self._stopping or index >= self._concurrency:
                    if index >= self._concurrency:  # concurrency was lowered by a reload
                        current = threading.current_thread()
                        self._workers = [w for w in self._workers if w is not current]
                    return None
                now = self._clock()
                wait: float | None = None
                while self._heap:
                    due, _, key = self._heap[0]
                    if self._due.get(key) != due:
                        heapq.heappop(self._heap)  # stale: rescheduled or removed
                        continue
                    if key in self._running:
                        # Its previous poll still runs; it will be pushed again when done.
                        heapq.heappop(self._heap)
                        continue
                    if due > now:
                        wait = due - now
                        break
                    heapq.heappop(self._heap)
                    self._running.add(key)
                    self.max_lateness = max(self.max_lateness, now - due)
                    return key
                self._cond.wait(wait)
