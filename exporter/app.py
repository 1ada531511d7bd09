"""The running exporter: the current configuration, one poller per instance, the scheduler.

Reload is safe: a new configuration is parsed and validated completely before anything
changes; if it is refused, the running one stays. An instance whose ``name`` and
``id_instance`` are unchanged keeps its poller, counters and tracked messages, and only
adopts the new settings.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from exporter import __version__
from exporter.client import GreenApiClient
from exporter.collector import ExporterSnapshot
from exporter.config import Config, ConfigError
from exporter.exposition import TextExposition
from exporter.logs import Secrets
from exporter.poller import InstancePoller
from exporter.scheduler import Scheduler
from exporter.state import StateError, load_state, save_state

log = logging.getLogger("exporter.app")

ConfigLoader = Callable[[], Config]
"""Reads and validates the configuration; raises ConfigError when it is refused."""


class Exporter:
    def __init__(
        self,
        load: ConfigLoader,
        secrets: Secrets | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._load = load
        self._secrets = secrets or Secrets()
        self._clock = clock
        self._reload_lock = threading.Lock()
        config = load()  # raises ConfigError: the caller reports it and exits 1
        self._secrets.add(config.secrets())
        self._start_time = clock()
        self._client = GreenApiClient(pool_size=config.concurrency)
        self._scheduler = Scheduler(config.concurrency, self._poll)
        self.exposition = TextExposition()
        self._reload_successful = True
        self._reload_success_timestamp = self._start_time
        pollers = {
            instance.name: InstancePoller(instance, baseline_before=self._start_time)
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

    def start(self) -> None:
        for name, poller in self._pollers.items():
            self._scheduler.schedule(name, poller.first_delay())
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

    def _poll(self, name: str) -> float:
        poller = self._pollers.get(name)
        if poller is None:  # removed by a reload while queued
            return 60.0
        try:
            return poller.poll(self._client)
        finally:
            self._state_dirty.set()
            self.exposition.refresh(poller.snapshot, self.config.label_names)

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
        for instance in config.instances:
            poller = old.get(instance.name)
            if poller is not None and poller.config.id_instance == instance.id_instance:
                poller.configure(instance)
                kept += 1
            else:
                # A new instance (or a name now pointing at another id) starts from a
                # baseline, exactly like at start-up.
                poller = InstancePoller(instance, baseline_before=self._clock())
                added += 1
            new[instance.name] = poller
        removed = [name for name in old if name not in new or new[name] is not old[name]]
        self._current = (config, new)
        for name in removed:
            self._scheduler.remove(name)
        for name, poller in new.items():
            if name in removed or name not in old:
                self._scheduler.schedule(name, poller.first_delay())
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
