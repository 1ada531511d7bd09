"""The state file: counters and tracked messages that survive a restart (README, "Restarts").

What it promises, and how
-------------------------
*A scraper never sees a counter lower than one it saw before*, across any number of
restarts, ``kill -9`` included. Prometheus reads any decrease as a counter reset and counts
the whole value again, so a file that restores counters a little older than what was
scraped would be worse than none. The exporter therefore shows a poll's counts only once
they are in this file (write-ahead, :mod:`exporter.app`): what a restart restores is never
older than anything that was shown. The price is that a poll shows up in ``/metrics`` one
save later (a quarter of a second plus the write). The other way, hiding a restored
instance until its first poll has counted again what the last save missed, cannot keep
``greenapi_polls_total``, outcomes already judged, or messages that left the window
meanwhile, and would hide an instance that fails after a restart.

*Saves cost in proportion to what changed.* The file is a log, one JSON document a line:
a header, then records. A record holds one instance's
:meth:`~exporter.poller.InstancePoller.export_changes`: every field is the instance's
latest, except the journal tracker's ``tracker.messages`` and ``tracker.unjudged``, rows
keyed by their first element (the message key) that list only what was written since the
instance's previous record, and ``tracker.judged``, the keys that left ``unjudged``
meanwhile. ``tracker.messages_complete`` marks a record that lists them all: the earlier
records of the instance then no longer count. A save appends the records of the instances
polled since the previous one, with one ``fdatasync``. Once the file holds more than twice
what still counts (and at least :data:`COMPACT_AT` bytes), the records that count are
copied, as bytes, into a new file that replaces it atomically (temporary file, fsync,
rename, fsync of the directory). An instance whose changes since its last complete record
outweigh that record writes a complete one, so restores stay short too; so does one whose
journal was just read in full (the tracker rebuilds its messages then). With a million
tracked messages in the file, a save after a short poll that changed 100 of them takes about
1 ms and appends 16 KiB; writing the whole state takes about 4 s (most of it the trackers'
export) and 107 MiB (docs/performance.md).

*A crash leaves either the previous state or the new one.* A ``kill -9`` during an append
leaves at most one unfinished last line: it was never shown (the save had not finished),
so a restart drops it, and the next append first cuts it off. A crash during a rewrite
leaves the old file in place and a temporary file beside it, named
``<state file>.tmp-<random>``; the next start removes those, and only those. A stop
(SIGTERM) abandons a rewrite and removes its temporary file.

*Nothing is ever overwritten that this exporter did not write.* At start:

- a path that is the configuration file (the same inode: a hard link too), a directory,
  or anything but a regular file is refused (the exporter exits 1 naming ``state_file``);
- so is an existing file that does not begin as a state file does
  (``{"format":"greenapi-exporter-state"``): another program's JSON, YAML, a token file.
  It is left as it is, for the operator to point ``state_file`` elsewhere;
- a file that does begin so but cannot be used (damaged, written by a newer version, not
  of the shape this version writes) is moved aside to
  ``<state file>.unusable-<UTC time>`` with a warning naming both paths, and counting
  starts afresh;
- an empty file is taken as no state yet.

A record that cannot be restored for one instance (another ``id_instance``, values that do
not fit) is reported and ignored for that instance only. Files of version 1 (one JSON
document, written by earlier versions of this exporter) restore as they did, and are
rewritten in this format by the first save.

*One process per file.* An advisory lock (``flock``) on ``<state file>.lock``, held for
the process's life, refuses a second exporter on the same path at start; the lock file
holds the holder's pid, which the refusal names.

If a save fails (a full disk), the file is removed, so that a restart counts afresh
(which Prometheus handles) rather than from values older than what was shown; the
instances are then shown as polled, and the next save, a few seconds later and then less
and less often, writes the whole state anew. Only if the file cannot be removed either
are the instances shown as last saved until a save succeeds.

The file holds message ids and counts, never a token; it is created with mode 600.
"""

from __future__ import annotations

import contextlib
import fcntl
import gc
import logging
import os
import re
import secrets
import stat
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import IO

import orjson

log = logging.getLogger("exporter.state")

FORMAT = "greenapi-exporter-state"
VERSION = 2
COMPACT_AT = 8 << 20  # bytes: below this, a file is never compacted
COMPLETE_AT = 64 << 10  # bytes of changes after which an instance writes a complete record

# How a state file begins, whatever the JSON spacing (version 1 files included).
_MAGIC = re.compile(rb'\A\s*\{\s*"format"\s*:\s*"' + FORMAT.encode() + rb'"')
_MAGIC_BYTES = 256  # enough of the head to match it

Entry = Mapping[str, object]  # one instance's InstancePoller.export_changes() or export()


class StateRefused(Exception):
    """The state file cannot be used at all: the exporter must not start with it. The
    message names the path, never a file's content."""


class _Unusable(Exception):
    """A state file of this exporter that cannot be used: it is moved aside."""


@dataclass
class Saved:
    """What a state file held at start."""

    instances: dict[str, dict[str, object]] = field(default_factory=dict)
    unusable: dict[str, str] = field(default_factory=dict)  # instance → why it is ignored


@dataclass
class _Live:
    """One instance's records that still count: its latest complete one and the changes
    after it, as (offset, length) in the file."""

    ranges: list[tuple[int, int]]
    complete_bytes: int
    change_bytes: int = 0


class StateFile:
    """The open state file of a running exporter: locked, restored, appended to, compacted.

    Not thread-safe: one saver uses it at a time.
    """

    def __init__(self, path: str, lock: int, clock: Callable[[], float]) -> None:
        self.path = path
        self._lock = lock
        self._clock = clock
        self._fd: int | None = None  # the log being appended to; None: rewrite first
        self._inode: tuple[int, int] | None = None  # (device, inode) of the file that is ours
        self._size = 0
        self._header_bytes = 0
        self._live: dict[str, _Live] = {}

    # --- start ------------------------------------------------------------------------------

    @classmethod
    def open(
        cls, path: str, config_file: str | None = None, clock: Callable[[], float] = time.time
    ) -> tuple[StateFile, Saved]:
        """Lock ``path``, clean up after a crash and read what it holds. Raises
        StateRefused when the exporter must not start with it (see the module docstring)."""
        path = os.path.realpath(path)
        _refuse_path(path, config_file)
        lock = _lock(path)
        try:
            _remove_temporary_files(path)
            state = cls(path, lock, clock)
            with _cyclic_gc_paused():
                saved = state._load()
        except OSError as exc:
            os.close(lock)
            raise StateRefused(f"cannot use {path}: {exc.strerror or exc}") from None
        except BaseException:
            os.close(lock)
            raise
        return state, saved

    def _load(self) -> Saved:
        try:
            handle = open(self.path, "rb")  # noqa: SIM115 (closed below, or on error)
        except FileNotFoundError:
            self._start_afresh()
            return Saved()
        except OSError as exc:
            raise StateRefused(f"cannot read {self.path}: {exc.strerror}") from None
        with handle:
            self._inode = _identity(os.fstat(handle.fileno()))
            if not handle.read(_MAGIC_BYTES).strip():
                self._start_afresh()
                return Saved()
            handle.seek(0)
            try:
                return self._read(handle)
            except _Unusable as exc:
                reason = str(exc)
        try:
            moved = _move_aside(self.path, self._clock())
        except OSError as exc:
            raise StateRefused(
                f"{self.path} cannot be used ({reason}) nor moved aside: {exc.strerror}"
            ) from None
        log.warning(
            "unusable state file moved aside; counting starts afresh",
            extra={"path": self.path, "moved_to": moved, "reason": reason},
        )
        self._start_afresh()
        return Saved()

    def _read(self, handle: IO[bytes]) -> Saved:
        first = handle.readline()
        try:
            header = orjson.loads(first)
        except orjson.JSONDecodeError:
            header = None
        if header is None and not first.endswith(b"\n"):
            raise _Unusable("damaged: not a whole JSON document")
        if header is None:  # a version 1 document laid out on several lines
            try:
                header = orjson.loads(first + handle.read())
            except orjson.JSONDecodeError:
                raise _Unusable("damaged: its first line is not JSON") from None
        if not isinstance(header, dict) or header.get("format") != FORMAT:
            raise _Unusable("damaged: its header is not a state file's")
        version = header.get("version")
        if version == 1:
            return self._read_version_1(header)
        if version == VERSION:
            return self._read_log(handle, len(first))
        if isinstance(version, int) and not isinstance(version, bool) and version > VERSION:
            raise _Unusable(f"written by a newer version of the exporter (state version {version})")
        raise _Unusable(f"state version {version!r} is not one this exporter reads")

    def _read_version_1(self, document: dict[str, object]) -> Saved:
        instances = document.get("instances")
        if not isinstance(instances, dict) or not all(
            isinstance(name, str) and isinstance(entry, dict) for name, entry in instances.items()
        ):
            raise _Unusable("'instances' is not a mapping of instance states")
        # Stays as it is until the first save rewrites it in this version's format.
        return Saved(instances=dict(instances))

    def _read_log(self, handle: IO[bytes], offset: int) -> Saved:
        merged: dict[str, _Merged] = {}
        self._header_bytes = offset
        for line in handle:
            if not line.endswith(b"\n"):
                # An append that a crash cut short: it was never shown, so it is dropped.
                log.info("unfinished last record of the state file dropped",
                         extra={"path": self.path, "bytes": len(line)})  # fmt: skip
                break
            try:
                record = orjson.loads(line)
            except orjson.JSONDecodeError:
                raise _Unusable(f"damaged: the record at byte {offset} is not JSON") from None
            self._replay(record, offset, len(line), merged)
            offset += len(line)
        self._open_log(truncate_to=offset)
        saved = Saved()
        for name, state in merged.items():
            if state.broken:
                saved.unusable[name] = state.broken
            else:
                saved.instances[name] = state.entry()
        return saved

    def _replay(self, record: object, offset: int, length: int, merged: dict[str, _Merged]) -> None:
        if not isinstance(record, dict) or not isinstance(record.get("instance"), str):
            raise _Unusable(f"damaged: the record at byte {offset} is not one of an instance")
        name = record["instance"]
        if record.get("removed") is True:
            merged.pop(name, None)
            self._live.pop(name, None)
            return
        entry = record.get("entry")
        if not isinstance(entry, dict):
            raise _Unusable(f"damaged: the record at byte {offset} has no instance state")
        complete = _complete(entry)
        if complete or name not in merged:
            broken = "" if complete else "changes without a complete record before them"
            merged[name] = _Merged(entry, broken=broken)
        merged[name].add(entry)
        self._note(name, offset, length, complete)

    def _start_afresh(self) -> None:
        """A new file that holds no instance yet (nothing was restored, nothing is lost).
        If it cannot be written, the first save tries again."""
        try:
            self._rewrite_with(iter(()), lambda: False)
        except OSError as exc:
            log.error("cannot write the state file",
                      extra={"path": self.path, "error": exc.strerror or str(exc)})  # fmt: skip

    # --- saves ------------------------------------------------------------------------------

    def needs_rewrite(self) -> bool:
        """Whether the next save must write the whole state: the file is of version 1,
        was removed after a failed save, or is no longer the file this process opened."""
        if self._fd is None:
            return True
        found = _stat(self.path)
        if found is not None and _identity(found) == self._inode:
            return False
        log.warning("the state file was removed or replaced by someone else; it is written anew",
                    extra={"path": self.path})  # fmt: skip
        if found is not None:
            moved = _move_aside(self.path, self._clock())
            log.warning("file found in the state file's place moved aside",
                        extra={"path": self.path, "moved_to": moved})  # fmt: skip
        self._close_log()
        return True

    def wants_complete(self, name: str) -> bool:
        """Whether the next record of ``name`` should list every tracked message: it has
        none yet in this file, or its changes since outweigh its complete record."""
        live = self._live.get(name)
        if live is None:
            return True
        return live.change_bytes > max(live.complete_bytes, COMPLETE_AT)

    def append(self, entries: Iterable[tuple[str, Entry]], keep: Collection[str]) -> None:
        """Append one record per (instance name, entry), and the removal of every instance
        in the file that is not in ``keep``; durable when it returns. Raises OSError (the
        file is then as it was) or TypeError/ValueError (an entry JSON cannot hold)."""
        assert self._fd is not None, "the state file must be rewritten first"
        now = self._clock()
        written: list[tuple[str, bool, int]] = []
        lines: list[bytes] = []
        for name, entry in entries:
            complete = _complete(entry)
            line = _line({"instance": name, "complete": complete, "saved_at": now,
                          "entry": entry})  # fmt: skip
            lines.append(line)
            written.append((name, complete, len(line)))
        removed = [name for name in self._live if name not in keep]
        lines += [_line({"instance": name, "removed": True}) for name in removed]
        if not lines:
            return
        data = b"".join(lines)
        start = self._size
        try:
            _write_at(self._fd, data, start)
            os.fdatasync(self._fd)
        except BaseException:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, start)
            raise
        self._size = start + len(data)
        offset = start
        for name, complete, length in written:
            self._note(name, offset, length, complete)
            offset += length
        for name in removed:
            del self._live[name]

    def compaction_due(self) -> bool:
        """Whether the file holds more than twice what still counts (and is not small)."""
        live = sum(entry.complete_bytes + entry.change_bytes for entry in self._live.values())
        return self._size >= COMPACT_AT and self._size > 2 * (self._header_bytes + live)

    def compact(self, abort: Callable[[], bool]) -> bool:
        """Copy the records that still count into a new file that replaces this one.
        False when ``abort()`` turned true meanwhile (nothing changed then)."""
        assert self._fd is not None
        source = self._fd

        def records() -> Iterator[tuple[str, bytes, bool]]:
            for name, live in list(self._live.items()):
                for index, (offset, length) in enumerate(live.ranges):
                    yield name, os.pread(source, length, offset), index == 0

        return self._rewrite_with(records(), abort)

    def rewrite(self, entries: Iterable[tuple[str, Entry]], abort: Callable[[], bool]) -> bool:
        """Replace the file with one complete record per (instance name, entry). False when
        ``abort()`` turned true meanwhile (nothing changed then). Raises OSError,
        TypeError or ValueError like :meth:`append`; the previous file then stays."""
        now = self._clock()

        def records() -> Iterator[tuple[str, bytes, bool]]:
            for name, entry in entries:
                if not _complete(entry):
                    raise ValueError(f"{name}: a rewrite needs complete records")
                yield name, _line({"instance": name, "complete": True, "saved_at": now,
                                   "entry": entry}), True  # fmt: skip

        return self._rewrite_with(records(), abort)

    def discard(self) -> None:
        """Remove the file after a failed save (only if it is the one this process
        wrote); the next save rewrites it. Raises OSError when it cannot be removed."""
        self._close_log()
        found = _stat(self.path)
        if found is None or _identity(found) != self._inode:
            return  # gone already, or someone else's: not ours to remove
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        _fsync_directory(os.path.dirname(self.path))

    def close(self) -> None:
        """Close the file and release the lock."""
        self._close_log()
        with contextlib.suppress(OSError):
            os.close(self._lock)

    # --- the file ---------------------------------------------------------------------------

    def _rewrite_with(
        self, records: Iterator[tuple[str, bytes, bool]], abort: Callable[[], bool]
    ) -> bool:
        """Write the header and ``records`` (instance, line, complete) to a temporary file
        that then replaces the file; False (and nothing changed) when ``abort()`` turns
        true first."""
        directory, name = os.path.split(self.path)
        temporary = os.path.join(directory, f"{name}.tmp-{secrets.token_hex(6)}")
        header = _line({"format": FORMAT, "version": VERSION, "created_at": self._clock()})
        # Opened for reading too: once renamed, it is the log that saves append to.
        fd = os.open(temporary, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        notes: list[tuple[str, int, int, bool]] = []
        try:
            _write_at(fd, header, 0)
            offset = len(header)
            for instance, line, complete in records:
                if abort():
                    raise _Aborted
                _write_at(fd, line, offset)
                notes.append((instance, offset, len(line), complete))
                offset += len(line)
            os.fsync(fd)
            os.replace(temporary, self.path)
        except BaseException as exc:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            if isinstance(exc, _Aborted):
                return False
            raise
        _fsync_directory(directory)
        self._close_log()
        self._fd, self._inode, self._size = fd, _identity(os.fstat(fd)), offset
        self._header_bytes = len(header)
        self._live = {}
        for instance, start, length, complete in notes:
            self._note(instance, start, length, complete)
        return True

    def _open_log(self, truncate_to: int) -> None:
        fd = os.open(self.path, os.O_RDWR)
        try:
            if os.fstat(fd).st_size != truncate_to:
                os.ftruncate(fd, truncate_to)
                os.fsync(fd)
            info = os.fstat(fd)
        except BaseException:
            os.close(fd)
            raise
        self._fd, self._inode, self._size = fd, _identity(info), truncate_to

    def _close_log(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
        self._fd = None

    def _note(self, name: str, offset: int, length: int, complete: bool) -> None:
        live = self._live.get(name)
        if complete or live is None:
            self._live[name] = _Live([(offset, length)], length)
        else:
            live.ranges.append((offset, length))
            live.change_bytes += length


class _Aborted(Exception):
    pass


@dataclass
class _Merged:
    """One instance's records merged at start: its latest fields and the journal tracker's
    rows by message key, or why it cannot be used."""

    fields: dict[str, object]
    messages: dict[str, list[object]] = field(default_factory=dict)
    unjudged: dict[str, list[object]] = field(default_factory=dict)
    broken: str = ""

    def add(self, entry: dict[str, object]) -> None:
        if self.broken:
            return
        rows = _tracker_rows(entry)
        if isinstance(rows, str):
            self.broken = rows
            return
        messages, unjudged, judged = rows
        self.fields = entry
        for key in judged:
            self.unjudged.pop(key, None)
        for merged, listed in ((self.messages, messages), (self.unjudged, unjudged)):
            for row in listed:
                merged[str(row[0])] = row

    def entry(self) -> dict[str, object]:
        tracker = self.fields.get("tracker")
        if not isinstance(tracker, dict):
            return self.fields  # InstancePoller.restore says what is missing
        merged = {k: v for k, v in tracker.items() if k not in ("messages_complete", "judged")}
        merged["messages"] = list(self.messages.values())
        merged["unjudged"] = list(self.unjudged.values())
        return {**self.fields, "tracker": merged}


Rows = list[list[object]]


def _tracker_rows(entry: dict[str, object]) -> tuple[Rows, Rows, list[str]] | str:
    """The journal tracker's message rows, waiting judgements and judged keys of a record,
    or why they cannot be merged."""
    tracker = entry.get("tracker")
    if not isinstance(tracker, dict):
        return "it has no journal tracker state"
    messages, unjudged = tracker.get("messages"), tracker.get("unjudged", [])
    judged = tracker.get("judged", [])
    if not (_keyed_rows(messages) and _keyed_rows(unjudged) and isinstance(judged, list)):
        return "its tracked messages are not what this version writes"
    return messages, unjudged, [str(key) for key in judged]  # type: ignore[return-value]


def _keyed_rows(rows: object) -> bool:
    return isinstance(rows, list) and all(
        isinstance(row, list) and row and isinstance(row[0], str) for row in rows
    )


def _complete(entry: Entry) -> bool:
    tracker = entry.get("tracker")
    return not isinstance(tracker, dict) or tracker.get("messages_complete", True) is not False


@contextlib.contextmanager
def _cyclic_gc_paused() -> Iterator[None]:
    """Parsing millions of rows makes the cyclic collector scan them again and again (three
    times the parse itself at a million messages); nothing parsed here holds a cycle."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _line(document: Mapping[str, object]) -> bytes:
    return orjson.dumps(document) + b"\n"


def _stat(path: str) -> os.stat_result | None:
    try:
        return os.stat(path)
    except FileNotFoundError:
        return None


def _identity(found: os.stat_result) -> tuple[int, int]:
    return found.st_dev, found.st_ino


def _write_at(fd: int, data: bytes, offset: int) -> None:
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view, offset = view[written:], offset + written


# --- start-up checks ----------------------------------------------------------------------------


def _refuse_path(path: str, config_file: str | None) -> None:
    """Refuse what is not a state file, before anything is created beside it."""
    try:
        found = os.stat(path)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise StateRefused(f"cannot use {path}: {exc.strerror}") from None
    if config_file is not None:
        with contextlib.suppress(OSError):
            if os.path.samestat(found, os.stat(config_file)):
                raise StateRefused(f"{path} is the configuration file")
    if stat.S_ISDIR(found.st_mode):
        raise StateRefused(f"{path} is a directory; state_file is the path of a file")
    if not stat.S_ISREG(found.st_mode):
        raise StateRefused(f"{path} is not a regular file")
    try:
        with open(path, "rb") as handle:
            head = handle.read(_MAGIC_BYTES)
    except OSError as exc:
        raise StateRefused(f"cannot read {path}: {exc.strerror}") from None
    if head.strip() and not _MAGIC.match(head):
        raise StateRefused(
            f"{path} is not a greenapi-exporter state file; it is left as it is: point "
            "state_file at a path of its own"
        )


def _lock(path: str) -> int:
    """The lock of ``path``, held until the descriptor is closed (the process's life)."""
    lock_path = f"{path}.lock"
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise StateRefused(f"cannot create the lock file {lock_path}: {exc.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _holder(fd)
        os.close(fd)
        raise StateRefused(
            f"{path} is in use by another greenapi-exporter ({holder}, lock {lock_path}); "
            "each process needs a state_file of its own"
        ) from None
    except OSError as exc:
        os.close(fd)
        raise StateRefused(f"cannot lock {lock_path}: {exc.strerror}") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def _holder(fd: int) -> str:
    text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    return f"pid {text}" if text.isdecimal() else "pid unknown"


def _remove_temporary_files(path: str) -> None:
    """Remove what rewrites of ``path`` left behind when the process died during one."""
    directory, name = os.path.split(path)
    pattern = re.compile(re.escape(name) + r"\.tmp-[0-9a-f]{12}")
    for entry in os.listdir(directory):
        if pattern.fullmatch(entry):
            leftover = os.path.join(directory, entry)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(leftover)
            log.info("temporary file of an interrupted save removed", extra={"path": leftover})


def _move_aside(path: str, now: float) -> str:
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
    target = f"{path}.unusable-{stamp}"
    serial = 1
    while os.path.lexists(target):  # never over an earlier one
        serial += 1
        target = f"{path}.unusable-{stamp}-{serial}"
    os.rename(path, target)
    _fsync_directory(os.path.dirname(path))
    return target


def _fsync_directory(directory: str) -> None:
    try:
        descriptor = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass  # some filesystems refuse fsync on directories; the rename is still atomic
    finally:
        os.close(descriptor)
