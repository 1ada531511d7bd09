"""HTTP to GREEN-API: one shared session, bounded answers, and every failure classified.

The token is a path segment of every URL, and ``requests`` quotes URLs in its exception
texts. Nothing leaves this module unredacted: :class:`Fetch.error` is safe to log and to
show on the landing page.
"""

from __future__ import annotations

import email.utils
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass

import orjson
import requests
import urllib3.exceptions
from requests.adapters import HTTPAdapter

from exporter import __version__

# Every value of greenapi_polls_total{result}.
RESULTS = (
    "success",
    "timeout",
    "connection_error",
    "http_400",
    "http_401",
    "http_403",
    "http_429",
    "http_466",
    "http_4xx",
    "http_5xx",
    "invalid_response",
)
_NAMED_STATUSES = {400, 401, 403, 429, 466}

# Largest answer read before giving up. A full 10,000-message WhatsApp journal with
# thumbnails is tens of megabytes; anything far beyond is not a journal.
MAX_BODY_BYTES = 128 * 1024 * 1024

REDACTED = "<redacted>"
# The path segment after /waInstance{id}/{method}/ is the token, whatever its value.
_TOKEN_IN_PATH = re.compile(r"(waInstance\d*/[A-Za-z]+/)[^/?#\s'\"]+")


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """Remove tokens from ``text``: the known ones anywhere, and any token-shaped path segment."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    return _TOKEN_IN_PATH.sub(r"\1" + REDACTED, text)


@dataclass(frozen=True)
class Fetch:
    """The outcome of one request. ``body`` is set only for HTTP 200."""

    result: str  # one of RESULTS; "success" here means HTTP 200, before the body is parsed
    status: int | None = None
    body: bytes | None = None
    retry_after: float | None = None
    error: str = ""  # redacted, one line


class GreenApiClient:
    """Thread-safe GETs over one pooled ``requests.Session``."""

    def __init__(self, pool_size: int = 8, max_body_bytes: int = MAX_BODY_BYTES) -> None:
        self._max_body_bytes = max_body_bytes
        self._session = requests.Session()
        self._session.headers["User-Agent"] = f"greenapi-exporter/{__version__}"
        self._session.headers["Accept"] = "application/json"
        adapter = HTTPAdapter(pool_connections=16, pool_maxsize=max(pool_size, 1), max_retries=0)
        self._session.mount("https://", adapter)
        self._session.mount("http://", adapter)

    def close(self) -> None:
        self._session.close()

    def get(self, url: str, params: dict[str, str], timeout: float, secret: str) -> Fetch:
        """GET ``url`` within ``timeout`` seconds in all (connect, headers and body)."""
        deadline = time.monotonic() + timeout
        try:
            with self._session.get(
                url, params=params, timeout=(timeout, timeout), stream=True, allow_redirects=False
            ) as response:
                return self._outcome(response, deadline)
        except _BodyTooSlow:
            return Fetch("timeout", error=f"answer not complete within {timeout:g}s")
        except requests.exceptions.Timeout as exc:
            return Fetch("timeout", error=_error_text(exc, secret))
        except requests.exceptions.RequestException as exc:
            result = "timeout" if _is_read_timeout(exc) else "connection_error"
            return Fetch(result, error=_error_text(exc, secret))
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            return Fetch("connection_error", error=_error_text(exc, secret))

    def _outcome(self, response: requests.Response, deadline: float) -> Fetch:
        status = response.status_code
        if status == 200:
            body = self._read_body(response, deadline)
            if body is None:
                return Fetch(
                    "invalid_response",
                    status=status,
                    error=f"answer larger than {self._max_body_bytes // (1024 * 1024)} MiB",
                )
            code = _error_code_in_body(body)
            if code is not None:
                # GREEN-API has been seen answering 200 with {"code": 401, ...}; its Go SDK
                # special-cases it. It is the error it names, not a journal.
                return Fetch(
                    _result_of(code), status=status, error=f"HTTP 200 with error {code} in the body"
                )
            return Fetch("success", status=status, body=body)
        retry_after = _retry_after(response.headers.get("Retry-After"))
        return Fetch(
            _result_of(status), status=status, retry_after=retry_after, error=f"HTTP {status}"
        )

    def _read_body(self, response: requests.Response, deadline: float) -> bytes | None:
        chunks: list[bytes] = []
        size = 0
        for chunk in response.iter_content(chunk_size=256 * 1024):
            size += len(chunk)
            if size > self._max_body_bytes:
                return None
            chunks.append(chunk)
            if time.monotonic() > deadline:
                raise _BodyTooSlow
        return b"".join(chunks)


def _result_of(status: int) -> str:
    """The ``result`` label of an HTTP status other than 200."""
    if status in _NAMED_STATUSES:
        return f"http_{status}"
    if 400 <= status < 500:
        return "http_4xx"
    if 500 <= status < 600:
        return "http_5xx"
    return "invalid_response"  # redirects are not followed: they could carry the token away


# An error object is small; a journal or a status answer that happens to be long is not one.
_ERROR_BODY_LIMIT = 4096


def _error_code_in_body(body: bytes) -> int | None:
    """The HTTP error code of a 200 answer shaped ``{"code": 401, "description": ...}``."""
    if len(body) > _ERROR_BODY_LIMIT or not body.lstrip().startswith(b"{"):
        return None
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    code = data.get("code") if isinstance(data, dict) else None
    if isinstance(code, int) and not isinstance(code, bool) and 400 <= code < 600:
        return code
    return None


class _BodyTooSlow(Exception):
    """The server trickles the body past the request's deadline."""


def _retry_after(value: str | None) -> float | None:
    """``Retry-After`` as seconds from now: delta-seconds or an HTTP date (RFC 9110)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _is_read_timeout(exc: BaseException) -> bool:
    # requests wraps a read timeout during the body in a ConnectionError.
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, (urllib3.exceptions.ReadTimeoutError, TimeoutError)):
            return True
        if any(isinstance(arg, urllib3.exceptions.ReadTimeoutError) for arg in current.args):
            return True
        current = current.__cause__ or current.__context__
    return False


def _error_text(exc: BaseException, secret: str) -> str:
    """One redacted line naming the failure, e.g. ``ConnectionError: ... Connection refused``."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    text = redact(text, (secret,))
    if len(text) > 300:
        text = text[:297] + "..."
    return f"{type(exc).__name__}: {text}"
