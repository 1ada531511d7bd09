"""The running exporter: the current configuration, one poller per instance, the scheduler.

Reload is safe: a new configuration is parsed and validated completely before anything
changes; if it is refused, the running one stays. An instance whose ``name`` and
``id_instance`` are unchanged keeps its poller, counters and tracked messages, and only
adopts the new settings.

With a ``state_file``, scrapes see each instance as of its latest save, never more recent
(write-ahead, see :mod:`exporter.state`): a restart then never shows a counter lower than
one already scraped. A poll marks its poller changed; the saver writes what changed a
quarter of a second later and only then shows the polls it saved. The state file is opened
(and locked) at start; a reload that changes ``state_file`` is logged and takes effect at
the next start.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Mapping

from exporter import __version__
from exporter.client import GreenApiClient
from exporter.collector import ExporterSnapshot
from exporter.config import Config, ConfigError
from exporter.exposition import Exposition
from exporter.logs import Secrets
from exporter.memory import Allocator
from exporter.pages import DeliveryHistory
from exporter.poller import InstancePoller, InstanceSnapshot
from exporter.scheduler import Scheduler
from exporter.state import Saved, StateFile, StateRefused

log = logging.getLogger("exporter.app")

SAVE_DELAY = 0.25  # seconds: polls that finish together land in one save
RETRY_FAILED_SAVE = (5.0, 300.0)  # seconds: first and longest wait after a failed save
STOP_SAVE_TIMEOUT = 15.0  # seconds stop() waits for the last save

Exposed = weakref.WeakKeyDictionary[InstancePoller, InstanceSnapshot]

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
        # The state file before anything else: a start it refuses has begun nothing.
        self._state: StateFile | None = None
        saved = Saved()
        if config.state_file:
            self._state, saved = _open_state(config)
        self._start_time = clock()
        self._client = client or GreenApiClient(pool_size=config.concurrency)
        self._scheduler = Scheduler(config.concurrency, self._poll, clock=self._monotonic)
        self._keys: dict[int, str] = {}  # id(poller) → scheduler key, for live pollers
        self._serials = itertools.count()
        self.exposition = Exposition()
        self.delivery_history = DeliveryHistory()  # the status page's recent outcomes
        self._reload_successful = True
        self._reload_success_timestamp = self._start_time
        pollers = {
            instance.name: InstancePoller(
                instance, baseline_before=self._start_time, monotonic=self._monotonic
            )
            for instance in config.instances
        }
        _restore(saved, pollers)
        # The configuration and its pollers change together, in one assignment, so that a
        # scrape sees the old pair or the new pair, never a mix.
        self._current: tuple[Config, dict[str, InstancePoller]] = (config, pollers)
        # What scrapes see of each poller with a state file: its snapshot as of its latest
        # save (see the module docstring). None: every poller's latest snapshot (no state
        # file, or the file was removed after a failed save).
        self._exposure_lock = threading.Lock()
        self._exposed: Exposed | None = None
        if self._state is not None:
            self._exposed = weakref.WeakKeyDictionary(
                (poller, poller.snapshot) for poller in pollers.values()
            )
        self._dirty: set[InstancePoller] = set()  # polled since the latest save
        self._dirty_lock = threading.Lock()
        self._save_lock = threading.Lock()
        self._retry_at = 0.0  # monotonic time before which a failed save is not retried
        self._retry_wait = 0.0
        self._state_dirty = threading.Event()
        self._stopping = threading.Event()
        self._saver: threading.Thread | None = None

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
        if self._state is not None:
            self._saver = threading.Thread(target=self._save_loop, name="state-saver", daemon=True)
            self._saver.start()

    def stop(self) -> None:
        self._scheduler.stop()
        self._stopping.set()  # a rewrite in progress is abandoned; an append finishes
        self._state_dirty.set()
        if self._saver is not None:
            self._saver.join(STOP_SAVE_TIMEOUT)
        self._client.close()
        if self._state is not None and not (self._saver is not None and self._saver.is_alive()):
            self._state.close()

    def _poll(self, key: str) -> float:
        name = key.rpartition("#")[0]
        poller = self._pollers.get(name)
        if poller is None or self._keys.get(id(poller)) != key:  # removed or replaced
            return self._monotonic() + 60.0
        try:
            return poller.poll(self._client)
        finally:
            self._allocator.received(poller.last_answer_bytes)
            self._polled(name, poller)

    # --- the state file: saves, and what scrapes see ------------------------------------------

    def _polled(self, name: str, poller: InstancePoller) -> None:
        """With a state file the poll is shown once saved (the saver refreshes the
        exposition then); without one, or while saves fail, at once. The status page's
        history of delivery outcomes takes every poll."""
        self.delivery_history.record_instance(poller.snapshot)
        if self._state is not None:
            with self._dirty_lock:
                self._dirty.add(poller)
            self._state_dirty.set()
        if self._exposed is None:
            config, pollers = self._current
            if pollers.get(name) is poller:  # not replaced by a reload while it polled
                self.exposition.refresh(poller.snapshot, config.label_names)

    def _shown_from_start(self, poller: InstancePoller) -> None:
        """A poller made by a reload is shown as it starts (nothing counted yet) until its
        first save."""
        with self._exposure_lock:
            if self._exposed is not None:
                self._exposed[poller] = poller.snapshot

    def _shown(self, pollers: Mapping[str, InstancePoller]) -> list[InstanceSnapshot]:
        with self._exposure_lock:
            exposed = self._exposed
            if exposed is None:
                return [poller.snapshot for poller in pollers.values()]
            return [exposed[p] for p in pollers.values() if p in exposed]

    def _save_loop(self) -> None:
        """Save after polls finish: a burst of finishing polls lands in one save."""
        while not self._stopping.is_set():
            self._state_dirty.wait()
            self._stopping.wait(max(SAVE_DELAY, self._retry_at - self._monotonic()))
            self._state_dirty.clear()
            try:
                self.save_state()
            except Exception:  # a bug: the saver must go on, or nothing new is ever shown
                log.exception("state saver failed")

    def save_state(self) -> None:
        """Save what changed since the latest save, then show it to scrapes."""
        state = self._state
        if state is None:
            return
        with self._save_lock:
            config, pollers = self._current
            with self._dirty_lock:
                dirty, self._dirty = self._dirty, set()
            try:
                if state.needs_rewrite():
                    saved = self._save_everything(state, pollers)
                else:
                    saved = self._save_changes(state, pollers, dirty)
            except Exception as exc:  # an OSError, or an entry JSON cannot hold: not fatal
                self._save_failed(state, dirty, exc)
                return
            if saved is None:
                return  # stopping: the previous file stays, and so does what is shown
            self._save_succeeded()
            self._show(saved, config.label_names)
            if state.compaction_due() and not self._stopping.is_set():
                self._compact(state)

    def _save_changes(
        self, state: StateFile, pollers: Mapping[str, InstancePoller], dirty: set[InstancePoller]
    ) -> dict[InstancePoller, InstanceSnapshot]:
        # A poller's snapshot is taken before its export, so what is saved is at least what
        # will be shown.
        shown: dict[InstancePoller, InstanceSnapshot] = {}
        entries = []
        for name, poller in pollers.items():
            if poller in dirty:
                shown[poller] = poller.snapshot
                entries.append((name, poller.export_changes(state.wants_complete(name))))
        state.append(entries, keep=pollers.keys())
        return shown

    def _save_everything(
        self, state: StateFile, pollers: Mapping[str, InstancePoller]
    ) -> dict[InstancePoller, InstanceSnapshot] | None:
        with self._exposure_lock:
            if self._exposed is None:
                # Scrapes saw every poll while saves failed: from now on they see no more
                # than what this save will hold.
                self._exposed = weakref.WeakKeyDictionary(
                    (poller, poller.snapshot) for poller in pollers.values()
                )
        shown: dict[InstancePoller, InstanceSnapshot] = {}

        def entries() -> Iterator[tuple[str, dict[str, object]]]:
            for name, poller in pollers.items():
                shown[poller] = poller.snapshot
                yield name, poller.export_changes(complete=True)

        return shown if state.rewrite(entries(), abort=self._stopping.is_set) else None

    def _show(
        self, saved: dict[InstancePoller, InstanceSnapshot], label_names: tuple[str, ...]
    ) -> None:
        with self._exposure_lock:
            exposed = self._exposed
            if exposed is None:
                return
            for poller, snapshot in saved.items():
                exposed[poller] = snapshot
        pollers = self._pollers
        for poller, snapshot in saved.items():
            if pollers.get(snapshot.name) is poller:  # not replaced by a reload meanwhile
                self.exposition.refresh(snapshot, label_names)

    def _compact(self, state: StateFile) -> None:
        try:
            state.compact(abort=self._stopping.is_set)
        except OSError as exc:  # the file as it is stays usable
            log.error("cannot compact the state file",
                      extra={"path": state.path, "error": exc.strerror or str(exc)})  # fmt: skip

    def _save_failed(self, state: StateFile, dirty: set[InstancePoller], exc: Exception) -> None:
        with self._dirty_lock:
            self._dirty |= dirty
        self._retry_wait = min(
            max(self._retry_wait * 2, RETRY_FAILED_SAVE[0]), RETRY_FAILED_SAVE[1]
        )
        self._retry_at = self._monotonic() + self._retry_wait
        error = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        try:
            state.discard()
        except OSError as gone:
            log.error(
                "cannot write the state file, nor remove it: instances are shown as last "
                "saved until a save succeeds",
                extra={"path": state.path, "error": error, "remove_error": gone.strerror,
                       "retry_in": self._retry_wait},
            )  # fmt: skip
            return
        with self._exposure_lock:
            self._exposed = None
        log.error(
            "cannot write the state file; removed so that a restart counts afresh rather than "
            "from older values; the next save writes it whole",
            extra={"path": state.path, "error": error, "retry_in": self._retry_wait},
        )

    def _save_succeeded(self) -> None:
        if self._retry_wait:
            log.info("the state file is written again", extra={"path": self._state_path()})
        self._retry_wait = self._retry_at = 0.0

    def _state_path(self) -> str:
        return self._state.path if self._state is not None else ""

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
            if config.state_file != self._current[0].state_file:
                log.warning("state_file changes take effect at the next start",
                            extra={"state_file": config.state_file or "none",
                                   "in_use": self._state_path() or "none"})  # fmt: skip
            summary = self._apply(config)
            with self._dirty_lock:  # labels may have changed: shown after the next save
                self._dirty.update(self._pollers.values())
            self._state_dirty.set()
            self._reload_successful = True
            self._reload_success_timestamp = self._clock()
            log.info("configuration reloaded", extra={"changes": summary})
            for warning in config.warnings:
                log.warning(warning)
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
                self._shown_from_start(poller)
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
            instances=tuple(self._shown(pollers)),
            label_names=config.label_names,
            reload_successful=self._reload_successful,
            reload_success_timestamp=self._reload_success_timestamp,
        )

    def ready(self) -> bool:
        """True once every configured instance has finished its first poll of every
        collector (success or failure), and scrapes see it."""
        pollers = self._pollers
        shown = self._shown(pollers)
        return len(shown) == len(pollers) and all(snapshot.ready for snapshot in shown)


def _open_state(config: Config) -> tuple[StateFile, Saved]:
    assert config.state_file
    try:
        return StateFile.open(config.state_file, config_file=config.source)
    except StateRefused as exc:
        raise ConfigError([f"{config.source}: state_file: {exc}"]) from None


def _restore(saved: Saved, pollers: Mapping[str, InstancePoller]) -> None:
    for name, poller in pollers.items():
        reason = saved.unusable.get(name)
        entry = saved.instances.get(name)
        if reason is None and entry is not None:
            try:
                poller.restore(entry)
            except ValueError as exc:
                reason = str(exc)
            else:
                log.info("counting resumes from the state file", extra={"instance": name})
        if reason is not None:
            log.warning("saved state of an instance ignored",
                        extra={"instance": name, "reason": reason})  # fmt: skip
