"""The running exporter: the current configuration, one poller per instance, the scheduler.

Reload is safe: a new configuration is parsed and validated completely before anything
changes; if it is refused, the running one stays. An instance whose ``name`` and
``id_instance`` are unchanged keeps its poller, counters and tracked messages, and only
adopts the new settings.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable

from exporter import __version__
from exporter.client import GreenApiClient
from exporter.collector import ExporterSnapshot
from exporter.config import Config, ConfigError
from exporter.exposition import Exposition
from exporter.logs import Secrets
from exporter.memory import Allocator
from exporter.poller import InstancePoller
from exporter.scheduler import Scheduler
from exporter.state import StateError, load_state, save_state

log = logging.getLogger("exporter.app")

ConfigLoader = Callable[[], Config]
"""Reads and validates the configuration; raises ConfigError when it is refused."""


class Exporter:
    """The pollers of the current configuration, their schedule, and reload.

    The scheduler knows each poller by a key of its own (see :meth:`_key`), never by the
    instance name alone: a name that a reload points at another ``id_instance`` gets a new
    poller that runs at once, while a poll of the old one may still be in flight.
    """

    def __init__(
        self,
        load: ConfigLoader,
        secrets: Secrets | None = None,
        clock: Callable[[], float] = time.time,
        client: GreenApiClient | None = None,
        allocator: Allocator | None = None,
    ) -> None:
        self._load = load
        self._secrets = secrets or Secrets()
        self._clock = clock  # UNIX time
        self._monotonic = time.monotonic  # the pollers' and the scheduler's one "now"
        self._reload_lock = threading.Lock()
        self._allocator = allocator or Allocator()
        config = load()  # raises ConfigError: the caller reports it and exits 1
        self._secrets.add(config.secrets())
        self._start_time = clock()
        self._client = client or GreenApiClient(pool_size=config.concurrency)
        self._scheduler = Scheduler(config.concurrency, self._poll, clock=self._monotonic)
        self._keys: dict[int, str] = {}  # id(poller) → scheduler key, for live pollers
        self._serials = itertools.count()
        self.exposition = Exposition()
        self._reload_successful = True
        self._reload_success_timestamp = self._start_time
        pollers = {
            instance.name: InstancePoller(
                instance, baseline_before=self._start_time, monotonic=self._monotonic
            )
            for instance in config.instances
        }
        if config.state_file:
            self._restore(config.state_file, pollers)
        # The configuration and its pollers change together, in one assignment, so that a
        # scrape sees the old pair or the new pair, never a mix.
        self._current: tuple[Config, dict[str, InstancePoller]] = (config, pollers)
        self._state_dirty = threading.Event()
        self._stopping = threading.Event()
        self._saver: threading.Thread | None = None

    @staticmethod
    def _restore(path: str, pollers: dict[str, InstancePoller]) -> None:
        try:
            saved = load_state(path)
        except StateError as exc:
            log.warning("state file ignored; counting starts afresh", extra={"reason": str(exc)})
            return
        for name, poller in pollers.items():
            entry = saved.get(name)
            if entry is None:
                continue
            try:
                poller.restore(entry)
            except ValueError as exc:
                log.warning("saved state of an instance ignored",
                            extra={"instance": name, "reason": str(exc)})  # fmt: skip
            else:
                log.info("counting resumes from the state file", extra={"instance": name})

    @property
    def config(self) -> Config:
        return self._current[0]

    @property
    def _pollers(self) -> dict[str, InstancePoller]:
        return self._current[1]

    def _key(self, poller: InstancePoller) -> str:
        key = self._keys.get(id(poller))
        if key is None:
            key = f"{poller.config.name}#{next(self._serials)}"
            self._keys[id(poller)] = key
        return key

    def start(self) -> None:
        for poller in self._pollers.values():
            self._scheduler.schedule(self._key(poller), self._monotonic() + poller.first_delay())
        self._scheduler.start()
        self._saver = threading.Thread(target=self._save_loop, name="state-saver", daemon=True)
        self._saver.start()

    def stop(self) -> None:
        self._scheduler.stop()
        self._stopping.set()
        self._state_dirty.set()
        if self._saver is not None:
            self._saver.join(5.0)
        self._client.close()

    def _poll(self, key: str) -> float:
        name = key.rpartition("#")[0]
        poller = self._pollers.get(name)
        if poller is None or self._keys.get(id(poller)) != key:  # removed or replaced
            return self._monotonic() + 60.0
        try:
            return poller.poll(self._client)
        finally:
            self._allocator.received(poller.last_answer_bytes)
            self._state_dirty.set()
            config, pollers = self._current
            if pollers.get(name) is poller:  # not replaced by a reload while it polled
                self.exposition.refresh(poller.snapshot, config.label_names)

    def _save_loop(self) -> None:
        """Write the state file after polls finish, at most once a second."""
        while not self._stopping.is_set():
            self._state_dirty.wait()
            self._stopping.wait(1.0)  # let a burst of finishing polls land in one write
            self._state_dirty.clear()
            self.save_state()

    def save_state(self) -> None:
        config, pollers = self._current
        if not config.state_file:
            return
        # Export under each poller's lock (computation only); write with no lock held.
        instances = {name: poller.export() for name, poller in pollers.items()}
        try:
            save_state(config.state_file, instances)
        except OSError as exc:
            log.error("cannot write the state file",
                      extra={"path": config.state_file, "error": exc.strerror or str(exc)})  # fmt: skip

    def reload(self) -> str:
        """Load the configuration again and apply it. Raises ConfigError when refused;
        returns a one-line summary of what changed."""
        with self._reload_lock:
            try:
                config = self._load()
            except ConfigError:
                self._reload_successful = False
                raise
            self._secrets.add(config.secrets())
            summary = self._apply(config)
            self._reload_successful = True
            self._reload_success_timestamp = self._clock()
            log.info("configuration reloaded", extra={"changes": summary})
            return summary

    def _apply(self, config: Config) -> str:
        old = self._pollers
        new: dict[str, InstancePoller] = {}
        added = kept = 0
        now_due: list[InstancePoller] = []
        for instance in config.instances:
            poller = old.get(instance.name)
            if poller is not None and poller.config.id_instance == instance.id_instance:
                if poller.configure(instance):
                    now_due.append(poller)
                kept += 1
            else:
                # A new instance (or a name now pointing at another id) starts from a
                # baseline, exactly like at start-up.
                poller = InstancePoller(
                    instance, baseline_before=self._clock(), monotonic=self._monotonic
                )
                added += 1
            new[instance.name] = poller
        replaced = [p for name, p in old.items() if new.get(name) is not p]
        self._current = (config, new)
        for poller in replaced:
            self._scheduler.remove(self._keys.pop(id(poller)))
        for name, poller in new.items():
            if name not in old:
                # A new name: spread like at start-up, so a reload adding many does not
                # fire them together.
                self._scheduler.schedule(
                    self._key(poller), self._monotonic() + poller.first_delay()
                )
            elif old[name] is not poller:
                self._scheduler.schedule(self._key(poller), self._monotonic())  # repointed: now
        for poller in now_due:
            self._scheduler.schedule(self._key(poller), poller.next_time())
        self._scheduler.set_concurrency(config.concurrency)
        return f"{kept} kept, {added} added, {len(old) - kept} removed or replaced"

    def snapshot(self) -> ExporterSnapshot:
        config, pollers = self._current
        return ExporterSnapshot(
            version=__version__,
            instances=tuple(poller.snapshot for poller in pollers.values()),
            label_names=config.label_names,
            reload_successful=self._reload_successful,
            reload_success_timestamp=self._reload_success_timestamp,
        )

    def ready(self) -> bool:
        """True once every configured instance has finished its first poll of every
        collector (success or failure)."""
        return all(poller.snapshot.ready for poller in self._pollers.values())
