"""Keeping tokens out of text, and reading the small files that hold them.

The token (apiTokenInstance) is a path segment of every request URL, so it can turn up in any
text that quotes a URL: an exception, a library's debug line, a configuration error. Every
place that writes text somebody may read goes through :func:`redact`, which replaces the
tokens it is told about and, as a second net, whatever sits where a token sits in a GREEN-API
URL (``waInstance{id}/{method}/TOKEN``), known or not.

:func:`read_small_file` reads a token file (or any other small file) and turns every way of
failing into a short human reason, ready for a one-line message; it never quotes the content.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

REDACTED = "<redacted>"
NOT_UTF8 = "not UTF-8 text"  # the reason read_small_file gives for binary content

# The path segment after /waInstance{id}/{method}/ is the token, whatever its value.
_TOKEN_IN_PATH = re.compile(r"(waInstance\d*/[A-Za-z]+/)[^/?#\s'\"]+")


def redact(text: str, secrets: Iterable[str] = (), min_length: int = 1) -> str:
    """``text`` with every secret of at least ``min_length`` characters replaced by
    ``<redacted>``, and any token-shaped URL path segment too.

    Longer secrets go first, so a token that contains another is replaced whole. A
    ``min_length`` above 1 spares short values (a mistyped token, ``t`` in a test) that would
    otherwise blank out ordinary words.
    """
    wanted = max(min_length, 1)
    for secret in sorted((s for s in secrets if len(s) >= wanted), key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return _TOKEN_IN_PATH.sub(r"\1" + REDACTED, text)


class UnreadableFile(Exception):
    """A small file could not be read. ``str()`` is the reason alone, e.g. ``no such file``:
    callers say which file and what it was for."""


def read_small_file(path: str, limit: int) -> str:
    """The UTF-8 text of ``path``, refused when it is over ``limit`` bytes.

    Raises :class:`UnreadableFile` with a human reason: ``no such file``, ``permission
    denied``, ``is a directory``, ``not UTF-8 text``, ``too large (over N bytes)``, or the
    system's wording for anything rarer.
    """
    try:
        with open(path, "rb") as handle:
            content = handle.read(limit + 1)
    except FileNotFoundError:
        raise UnreadableFile("no such file") from None
    except PermissionError:
        raise UnreadableFile("permission denied") from None
    except IsADirectoryError:
        raise UnreadableFile("is a directory") from None
    except OSError as exc:
        raise UnreadableFile(exc.strerror or type(exc).__name__) from None
    if len(content) > limit:
        raise UnreadableFile(f"too large (over {limit} bytes)")
    try:
        return content.decode("utf-8")
    except UnicodeDecodeError:
        raise UnreadableFile(NOT_UTF8) from None
