"""The optional state file: counters and tracked messages that survive a restart.

Written atomically (temporary file in the same directory, fsync, rename, fsync of the
directory), so a crash or ``kill -9`` leaves either the previous state or the new one,
never half of each. A file that cannot be used is reported and ignored: losing counters
is better than refusing to start.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
from collections.abc import Mapping

FORMAT = "greenapi-exporter-state"
VERSION = 1


class StateError(Exception):
    """The state file exists but cannot be used; the message says why (no token inside)."""


def save_state(path: str, instances: Mapping[str, Mapping[str, object]]) -> None:
    """Replace ``path`` with the given per-instance state, atomically."""
    document = {"format": FORMAT, "version": VERSION, "saved_at": time.time(),
                "instances": instances}  # fmt: skip
    directory = os.path.dirname(os.path.abspath(path))
    descriptor, temporary = tempfile.mkstemp(prefix=".greenapi-state-", dir=directory)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            json.dump(document, handle, separators=(",", ":"))
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, 0o600)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    _fsync_directory(directory)


def load_state(path: str) -> dict[str, dict[str, object]]:
    """Per-instance state by name; empty when there is no file yet. Raises StateError."""
    try:
        with open(path, encoding="utf-8") as handle:
            document = json.load(handle)
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise StateError(f"{path}: cannot read: {exc.strerror}") from None
    except (ValueError, RecursionError):
        raise StateError(f"{path}: not a state file (invalid JSON)") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise StateError(f"{path}: not a greenapi-exporter state file")
    if document.get("version") != VERSION:
        raise StateError(f"{path}: state version {document.get('version')!r} is not {VERSION}")
    instances = document.get("instances")
    if not isinstance(instances, dict) or not all(
        isinstance(name, str) and isinstance(entry, dict) for name, entry in instances.items()
    ):
        raise StateError(f"{path}: 'instances' is not a mapping of instance states")
    return instances


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
