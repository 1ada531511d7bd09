"""HTTP to GREEN-API: bounded requests, bounded answers, and every failure classified.

One ``requests.Session`` serves every instance, with a pool of up to ``pool_size`` kept-alive
connections per host (one per poll that can be in flight). It keeps no cookies: a cookie set
by one instance's answer would otherwise be sent with every other instance's requests.

**A deadline for the whole request.** Socket timeouts bound each read, not a request: a peer
that sends one byte just before every timeout holds a poll, and the worker that runs it, for
as long as it likes. So each :meth:`GreenApiClient.get` has a deadline, ``timeout`` seconds
after it starts, enforced by a watchdog: one thread per client that sleeps until the earliest
deadline of the requests in flight and, when one passes, shuts the request's sockets down
(``shutdown(SHUT_RDWR)``). Whatever the requesting thread is blocked in (a TLS handshake, the
status line, a header, the body, sending the request) then returns at once, and the request is
counted as ``timeout``. The sockets are reached through a duplicate descriptor taken when a
connection is opened or reused for the request (the socket object itself changes when TLS
wraps it) and closed when the request ends, so a deadline can never touch a descriptor number
that has since been reused for something else. Besides, every blocking step has a socket
timeout no longer than the time left when it starts, and connecting tries the addresses of a
host within the time left in all, not ``timeout`` each. Nothing is left behind by a request cut
short: no thread, and no socket beyond those the pool keeps. Name resolution is the one step
outside the deadline: the resolver's own timeouts (``/etc/resolv.conf``) bound it.

**Bounded answers.** The body is read raw and decoded here (gzip, deflate, or a list of them),
so that the size cap applies to the decoded answer, however well it compresses. Headers are
parsed defensively: ``Retry-After`` is ASCII digits or an HTTP date, anything else is ignored;
an unknown or broken ``Content-Encoding``, a malformed status line, too many or too long header
lines are ``invalid_response``; an answer cut short of its ``Content-Length`` is
``connection_error``. Nothing in an answer makes :meth:`GreenApiClient.get` raise.

**Redacted errors.** The token is a path segment of every URL, and ``requests`` quotes URLs in
its exception texts. Nothing leaves this module unredacted: :class:`Fetch.error` is safe to log
and to show on the status page.
"""

from __future__ import annotations

import contextlib
import email.utils
import http.client
import http.cookiejar
import re
import socket
import sys
import threading
import time
import urllib.request
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson
import requests
import urllib3.exceptions
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.poolmanager import ProxyManager
from urllib3.util.connection import allowed_gai_family

from exporter import __version__
from exporter.redaction import redact as redact  # importable from here, as it always was

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

# Largest answer read before giving up, decoded. A full 10,000-message WhatsApp journal with
# thumbnails is about 12 MB; anything far beyond is not a journal.
MAX_BODY_BYTES = 64 * 1024 * 1024
_READ_SIZE = 256 * 1024


@dataclass(frozen=True)
class Fetch:
    """The outcome of one request. ``body`` is set only for HTTP 200."""

    result: str  # one of RESULTS; "success" here means HTTP 200, before the body is parsed
    status: int | None = None
    body: bytes | None = None
    retry_after: float | None = None
    error: str = ""  # redacted, one line


class GreenApiClient:
    """Thread-safe GETs over one pooled ``requests.Session``, each bounded by its ``timeout``."""

    def __init__(self, pool_size: int = 8, max_body_bytes: int = MAX_BODY_BYTES) -> None:
        self._max_body_bytes = max_body_bytes
        self._watchdog = _Watchdog()
        self._session = requests.Session()
        self._session.headers["User-Agent"] = f"greenapi-exporter/{__version__}"
        self._session.headers["Accept"] = "application/json"
        # The codings decoded here; requests would also offer br and zstd when installed.
        self._session.headers["Accept-Encoding"] = "gzip, deflate"
        self._session.cookies.set_policy(_NoCookies())
        adapter = _DeadlineAdapter(
            pool_connections=16, pool_maxsize=max(pool_size, 1), max_retries=0
        )
        self._session.mount("https://", adapter)
        self._session.mount("http://", adapter)

    def close(self) -> None:
        self._session.close()
        self._watchdog.close()

    def get(self, url: str, params: dict[str, str], timeout: float, secret: str) -> Fetch:
        """GET ``url`` within ``timeout`` seconds in all, whatever the server does."""
        deadline = _Deadline(timeout)
        self._watchdog.arm(deadline)
        _current.deadline = deadline
        try:
            fetch = self._fetch(url, params, deadline)
        except Exception as exc:  # classified below; nothing in an answer may crash a poll
            fetch = Fetch(_result_of_failure(exc), error=_error_text(exc, secret))
        finally:
            _current.deadline = None
            self._watchdog.disarm(deadline)
            deadline.finish()
        if deadline.expired or fetch.result == "timeout":
            # Whatever the shutdown made the library raise (or a body read to a false end); and
            # a socket timeout, which fires at the deadline too: one text for either.
            step = deadline.expired_while or deadline.step
            return Fetch("timeout", error=f"no complete answer within {timeout:g}s: {step}")
        return fetch

    def _fetch(self, url: str, params: dict[str, str], deadline: _Deadline) -> Fetch:
        left = max(deadline.left(), 0.001)
        with self._session.get(
            url, params=params, timeout=(left, left), stream=True, allow_redirects=False
        ) as response:
            return self._outcome(response, deadline)

    def _outcome(self, response: requests.Response, deadline: _Deadline) -> Fetch:
        status = response.status_code
        if status != 200:
            retry_after = parse_retry_after(response.headers.get("Retry-After"), time.time())
            return Fetch(
                _result_of(status), status=status, retry_after=retry_after, error=f"HTTP {status}"
            )
        deadline.step = "reading the body"
        try:
            body = self._read_body(response)
        except _UnusableAnswer as exc:
            return Fetch("invalid_response", status=status, error=str(exc))
        code = _error_code_in_body(body)
        if code is not None:
            # GREEN-API has been seen answering 200 with {"code": 401, ...}; its Go SDK
            # special-cases it. It is the error it names, not a journal.
            return Fetch(
                _result_of(code), status=status, error=f"HTTP 200 with error {code} in the body"
            )
        return Fetch("success", status=status, body=body)

    def _read_body(self, response: requests.Response) -> bytes:
        """The decoded body, read whole; the connection goes back to the pool after."""
        raw = response.raw
        decoder = _Decoder(response.headers.get("Content-Encoding"), self._max_body_bytes)
        chunks: list[bytes] = []
        while chunk := raw.read(_READ_SIZE, decode_content=False):
            chunks.append(decoder.feed(chunk))
        chunks.append(decoder.finish())
        raw.release_conn()  # read to its end: the connection can serve the next request
        return b"".join(chunks)


# --- The deadline -------------------------------------------------------------------------


class _Deadline:
    """One request's deadline, and the sockets to shut down when it passes."""

    def __init__(self, timeout: float) -> None:
        self.at = time.monotonic() + timeout
        self.step = "connecting"  # what the request is doing, for the error text
        self.expired = False
        self.expired_while = ""  # the step when the deadline passed
        self._lock = threading.Lock()
        self._finished = False
        self._sockets: dict[int, socket.socket] = {}  # descriptor watched → a duplicate

    def left(self) -> float:
        return self.at - time.monotonic()

    def watch(self, sock: socket.socket) -> None:
        """Shut ``sock`` down if the deadline passes before :meth:`finish`."""
        fd = sock.fileno()
        if fd < 0:
            return
        with self._lock:
            if self._finished or fd in self._sockets:
                return
            duplicate = socket.fromfd(fd, sock.family, sock.type, sock.proto)
            self._sockets[fd] = duplicate
            if self.expired:  # passed while connecting: the next step must not block
                _shut(duplicate)

    def expire(self) -> None:
        """Called by the watchdog once the deadline has passed."""
        with self._lock:
            if self._finished:
                return
            self.expired = True
            self.expired_while = self.step
            for duplicate in self._sockets.values():
                _shut(duplicate)

    def finish(self) -> None:
        """The request is over: let go of the duplicates."""
        with self._lock:
            self._finished = True
            for duplicate in self._sockets.values():
                duplicate.close()
            self._sockets.clear()


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # not connected (any more): nothing is blocked on it
        sock.shutdown(socket.SHUT_RDWR)


class _Watchdog:
    """One thread that expires the deadlines of requests in flight when they pass.

    The requests in flight are at most the pool's size, so a scan of all of them at each
    wake-up costs less than keeping a heap in order.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._pending: set[_Deadline] = set()
        self._thread: threading.Thread | None = None
        self._closing = False

    def arm(self, deadline: _Deadline) -> None:
        with self._cond:
            self._pending.add(deadline)
            if self._thread is None:
                self._closing = False
                self._thread = threading.Thread(
                    target=self._run, name="request-deadlines", daemon=True
                )
                self._thread.start()
            self._cond.notify()

    def disarm(self, deadline: _Deadline) -> None:
        """Once this returns, the watchdog leaves ``deadline`` alone: it has expired it or never will."""
        with self._cond:
            self._pending.discard(deadline)

    def close(self) -> None:
        with self._cond:
            thread, self._thread = self._thread, None
            self._closing = True
            self._cond.notify()
        if thread is not None:
            thread.join(5.0)

    def _run(self) -> None:
        with self._cond:
            while not self._closing:
                now = time.monotonic()
                for deadline in [d for d in self._pending if d.at <= now]:
                    self._pending.discard(deadline)
                    deadline.expire()
                next_at = min((d.at for d in self._pending), default=None)
                self._cond.wait(None if next_at is None else next_at - now)


class _Current(threading.local):
    """The deadline of the request the current thread is making, for the connections."""

    deadline: _Deadline | None = None


_current = _Current()


class _DeadlineConnection(HTTPConnection):
    """A connection whose sockets are watched by the deadline of the request using it."""

    def _new_conn(self) -> socket.socket:
        deadline = _current.deadline
        if deadline is None:
            return super()._new_conn()
        try:
            sock = _connect_within(deadline, (self._dns_host, self.port), self.source_address,
                                   self.socket_options)  # fmt: skip
        except socket.gaierror as exc:
            raise urllib3.exceptions.NameResolutionError(self.host, self, exc) from exc
        except TimeoutError as exc:
            raise urllib3.exceptions.ConnectTimeoutError(
                self, f"Connection to {self.host} timed out"
            ) from exc
        except OSError as exc:
            raise urllib3.exceptions.NewConnectionError(
                self, f"Failed to establish a new connection: {exc}"
            ) from exc
        sys.audit("http.client.connect", self, self.host, self.port)  # as urllib3 does
        deadline.watch(sock)
        deadline.step = "sending the request"
        return sock

    def request(self, *args: Any, **kwargs: Any) -> None:
        deadline = _current.deadline
        if deadline is not None:
            self.timeout = max(deadline.left(), 0.001)
            if self.sock is not None:  # a kept-alive connection, reused
                deadline.watch(self.sock)
                deadline.step = "sending the request"
        super().request(*args, **kwargs)

    def getresponse(self) -> Any:
        deadline = _current.deadline
        if deadline is not None:
            deadline.step = "waiting for the status line and headers"
            self.timeout = max(deadline.left(), 0.001)  # urllib3 sets it on the socket
        return super().getresponse()


class _DeadlineHTTPSConnection(_DeadlineConnection, HTTPSConnection):
    pass


class _DeadlineHTTPPool(HTTPConnectionPool):
    ConnectionCls = _DeadlineConnection


class _DeadlineHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _DeadlineHTTPSConnection


_DEADLINE_POOLS = {"http": _DeadlineHTTPPool, "https": _DeadlineHTTPSPool}


class _DeadlineAdapter(HTTPAdapter):
    """An adapter whose pools (direct or through an HTTP proxy) use deadline connections."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = dict(_DEADLINE_POOLS)

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if isinstance(manager, ProxyManager):  # not SOCKS: its pools are its own
            manager.pool_classes_by_scheme = dict(_DEADLINE_POOLS)
        return manager


def _connect_within(deadline: _Deadline, address: tuple[str, int],
                    source_address: tuple[str, int] | None,
                    socket_options: Any) -> socket.socket:  # fmt: skip
    """``socket.create_connection``, but all addresses tried within the time left."""
    host, port = address
    host = host.strip("[]")
    try:
        host.encode("idna")
    except UnicodeError:  # as urllib3 says it
        raise urllib3.exceptions.LocationParseError(f"'{host}', label empty or too long") from None
    error: OSError | None = None
    for family, kind, proto, _, sockaddr in socket.getaddrinfo(
        host, port, allowed_gai_family(), socket.SOCK_STREAM
    ):
        left = deadline.left()
        if left <= 0:
            raise TimeoutError("connect timed out")
        sock = socket.socket(family, kind, proto)
        try:
            for option in socket_options or ():
                sock.setsockopt(*option)
            if source_address:
                sock.bind(source_address)
            sock.settimeout(left)
            sock.connect(sockaddr)
        except OSError as exc:
            sock.close()
            error = exc
            continue
        return sock
    raise error if error is not None else OSError("getaddrinfo returned no address")


class _NoCookies(http.cookiejar.CookiePolicy):
    """Refuses to store or send any cookie: GREEN-API needs none."""

    netscape = True
    rfc2965 = False
    hide_cookie2 = True

    def set_ok(self, cookie: http.cookiejar.Cookie, request: urllib.request.Request) -> bool:
        return False

    def return_ok(self, cookie: http.cookiejar.Cookie, request: urllib.request.Request) -> bool:
        return False

    def domain_return_ok(self, domain: str, request: urllib.request.Request) -> bool:
        return False

    def path_return_ok(self, path: str, request: urllib.request.Request) -> bool:
        return False


# --- Reading answers ----------------------------------------------------------------------


class _UnusableAnswer(Exception):
    """An answer that is too large or cannot be decoded: ``invalid_response``."""


# Content codings decoded here → zlib's wbits for them (deflate: chosen from its header).
_CODINGS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": 0}
_MAX_CODINGS = 4


class _Decoder:
    """Undoes ``Content-Encoding`` as the body arrives; no stage may produce more than
    ``limit`` bytes, so a small compressed answer cannot inflate past the size cap."""

    def __init__(self, content_encoding: str | None, limit: int) -> None:
        codings = _content_codings(content_encoding)
        # The sender applied them in the order listed: undo them from the last.
        self._stages = [_Inflater(coding, limit) for coding in reversed(codings)]
        self._limit = limit
        self._size = 0

    def feed(self, data: bytes) -> bytes:
        for stage in self._stages:
            data = stage.feed(data)
        return self._counted(data)

    def finish(self) -> bytes:
        data = b""
        for stage in self._stages:
            data = stage.feed(data) + stage.finish()
        return self._counted(data)

    def _counted(self, data: bytes) -> bytes:
        self._size += len(data)
        if self._size > self._limit:
            raise _UnusableAnswer(_too_large(self._limit))
        return data


def _too_large(limit: int) -> str:
    if limit >= 1024 * 1024:
        return f"answer larger than {limit // (1024 * 1024)} MiB"
    return f"answer larger than {limit} bytes"


def _content_codings(header: str | None) -> list[str]:
    """The codings of a ``Content-Encoding`` value, ``identity`` left out."""
    if not header:
        return []
    codings = [part.strip(" \t").lower() for part in header.split(",")]
    codings = [coding for coding in codings if coding and coding != "identity"]
    if len(codings) > _MAX_CODINGS:
        raise _UnusableAnswer(f"more than {_MAX_CODINGS} content codings")
    for coding in codings:
        if coding not in _CODINGS:
            raise _UnusableAnswer(f"unsupported Content-Encoding {coding[:40]!a}")
    return codings


class _Inflater:
    """One gzip or deflate stage. Gzip may have several members; bytes after the end of the
    stream are ignored, as urllib3 does."""

    def __init__(self, coding: str, limit: int) -> None:
        self._coding = coding
        self._limit = limit
        self._produced = 0
        self._head = b""  # deflate: the first bytes, until they tell zlib from raw deflate
        self._inflate: Any = None  # a zlib decompress object, once the format is known
        self._members = 0
        self._trailing = False

    def feed(self, data: bytes) -> bytes:
        if self._trailing or not data:
            return b""
        if self._inflate is None:
            data = self._start(data)
            if not data:
                return b""
        output: list[bytes] = []
        while data:
            if self._inflate.eof:  # another gzip member, or trailing bytes
                if self._coding == "deflate" or not data.startswith(b"\x1f\x8b"):
                    self._trailing = True
                    break
                self._inflate = zlib.decompressobj(_CODINGS["gzip"])
            try:
                part = self._inflate.decompress(data, self._limit - self._produced + 1)
            except zlib.error:
                if self._members:  # garbage after a complete member
                    self._trailing = True
                    break
                raise _UnusableAnswer(f"{self._coding} data is corrupt") from None
            self._produced += len(part)
            if self._produced > self._limit:
                raise _UnusableAnswer(_too_large(self._limit))
            output.append(part)
            # All input is consumed unless the member ended (max_length was not reached).
            data = self._inflate.unused_data if self._inflate.eof else b""
            if self._inflate.eof:
                self._members += 1
        return b"".join(output)

    def _start(self, data: bytes) -> bytes:
        """Create the decompressor once its format is known; the data to feed it."""
        if self._coding != "deflate":
            self._inflate = zlib.decompressobj(_CODINGS[self._coding])
            return data
        self._head += data
        if len(self._head) < 2:
            return b""
        data, self._head = self._head, b""
        # "deflate" is meant to be zlib-wrapped, but raw deflate is common (RFC 9110 8.4.1.2).
        zlib_wrapped = data[0] & 0x0F == 8 and (data[0] << 8 | data[1]) % 31 == 0
        self._inflate = zlib.decompressobj(zlib.MAX_WBITS if zlib_wrapped else -zlib.MAX_WBITS)
        return data

    def finish(self) -> bytes:
        if not self._trailing and (self._inflate is None or not self._inflate.eof):
            raise _UnusableAnswer(f"{self._coding} data cut short")
        return b""


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


# delta-seconds (RFC 9110 10.2.3): ASCII digits only. str.isdigit() and str.isdecimal() also
# accept "²" or "٣", which float() refuses or reads as another number. Fifteen digits are
# thirty million years: more is not a delay.
_DELTA_SECONDS = re.compile(r"[0-9]{1,15}")


def parse_retry_after(value: str | None, now: float) -> float | None:
    """``Retry-After`` as seconds after ``now`` (UNIX time): delta-seconds or an HTTP date.
    Anything else, whatever it holds, is None."""
    if not value:
        return None
    value = value.strip(" \t")
    if _DELTA_SECONDS.fullmatch(value):
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
        return max(0.0, when.timestamp() - now)
    except (TypeError, ValueError, IndexError, OverflowError, OSError):
        return None


# --- Failures -----------------------------------------------------------------------------


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and what it wraps: causes, contexts, and exceptions among its arguments."""
    seen: set[int] = set()
    todo = [exc]
    while todo:
        current = todo.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        wrapped = [current.__cause__, current.__context__, getattr(current, "reason", None),
                   *current.args]  # fmt: skip
        todo.extend(e for e in wrapped if isinstance(e, BaseException))


def _is_timeout(exc: BaseException) -> bool:
    if isinstance(exc, urllib3.exceptions.NewConnectionError):
        return False  # urllib3 makes it a ConnectTimeoutError, whatever the reason
    return isinstance(exc, (TimeoutError, requests.exceptions.Timeout,
                            urllib3.exceptions.TimeoutError))  # fmt: skip


def _is_malformed(exc: BaseException) -> bool:
    """The server answered, but not in HTTP: a status line or header the parser refuses."""
    if isinstance(exc, http.client.BadStatusLine):
        return not isinstance(exc, http.client.RemoteDisconnected)  # that is a closed socket
    return type(exc) is http.client.HTTPException or isinstance(  # "more than 100 headers"
        exc,
        (http.client.LineTooLong, urllib3.exceptions.InvalidHeader,
         requests.exceptions.InvalidHeader, _UnusableAnswer),
    )  # fmt: skip


def _result_of_failure(exc: BaseException) -> str:
    causes = list(_causes(exc))
    if any(_is_timeout(cause) for cause in causes):
        return "timeout"
    if any(_is_malformed(cause) for cause in causes):
        return "invalid_response"
    if any(isinstance(cause, (OSError, urllib3.exceptions.HTTPError,
                              requests.exceptions.RequestException)) for cause in causes):  # fmt: skip
        return "connection_error"
    return "invalid_response"  # something in the answer that no library expected


def _error_text(exc: BaseException, secret: str) -> str:
    """One redacted line naming the failure, e.g. ``ConnectionError: ... Connection refused``."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    text = redact(text, (secret,))
    if len(text) > 300:
        text = text[:297] + "..."
    return f"{type(exc).__name__}: {text}"
