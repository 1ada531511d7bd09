"""The exporter's HTTP endpoints (README, "Endpoints"), served so that slow, idle or hostile
clients cannot exhaust the process. Every answer is built from snapshots: a scrape never waits
on GREEN-API.

**How it is built.** One thread, the *loop* (:meth:`ExporterServer.serve_forever`), owns every
connection. It accepts, runs TLS handshakes, reads request heads and writes answers, all
non-blocking over one ``selectors`` poll, each step under a deadline. Only a complete request
head (request line and headers) goes to one of a fixed pool of *workers*. A worker parses the
head with ``http.server.BaseHTTPRequestHandler``, checks the password, runs the route and hands
back the whole answer as bytes. Workers never touch a socket. So a client that sends or reads
slowly holds a small buffer of the loop, never a thread. Threads are the loop and
``WORKER_THREADS``, whatever the clients do. TLS uses the ``ssl.SSLContext`` that
``exporter.web_config`` builds, client certificates included; only the handshake is driven
non-blocking here.

**What is bounded** (each a constant below, and a field of :class:`ServerLimits`):

- ``MAX_REQUEST_LINE_BYTES`` (8 KiB), ``MAX_HEADER_BYTES`` (64 KiB for the request line and
  every header together) and ``MAX_HEADER_LINES`` (100). The loop counts them as bytes arrive
  and never buffers more: beyond them the answer is 414 or 431 and the connection is closed.
  A header flood costs at most 64 KiB a connection, not the 100 lines of 64 KiB that
  ``http.client.parse_headers`` alone would accept.
- ``MAX_BODY_BYTES`` (64 KiB). No route reads a body. One of at most this size is skipped
  after the answer, so the connection can serve the next request. A longer one, or one without
  a ``Content-Length`` (chunked, or after ``Expect: 100-continue``), gets its answer (413 when
  authorized) and then the connection closes.
- ``REQUEST_DEADLINE`` (10 s). A request's head and body must arrive within it. It runs from
  the first byte, or for a connection's first request from the accept (after the handshake with
  TLS). A client that sends a byte every few seconds is closed when it passes, however steady
  the trickle.
- ``IDLE_TIMEOUT`` (75 s) between the requests of a kept-alive connection. This is longer than
  Prometheus's default scrape interval (1 m), so a scraper's connection carries scrape after
  scrape without a new TCP connection or TLS handshake each time.
- ``HANDSHAKE_TIMEOUT`` (10 s) from the accept to the end of the TLS handshake.
- ``ANSWER_DEADLINE`` (30 s) to write an answer out. ``ANSWER_BYTES_BUDGET`` (64 MiB) bounds
  the answers that slow readers have not taken: beyond it, the connection that has been reading
  the longest is closed.
- ``MAX_CONNECTIONS`` (512), lowered to fit the file descriptor limit (below). At the limit, a
  new connection is let in by closing the one that has waited longest for its next request.
  Those that have never had an answer below 400 (no successful request, a wrong password) go
  first. A scraper's new connection is therefore served while thousands of sockets try to hold
  their place. Only when every connection is being answered is the new one closed at once.
- ``WORKER_THREADS`` (8) answer at once, ``MAX_QUEUED_REQUESTS`` (64) more wait for one.
  Beyond that, 503 at once, without a worker.
- ``PASSWORD_CHECKS_AT_ONCE`` (2). With basic auth, a request whose ``Authorization`` header
  has not passed before needs a bcrypt check, and those run one at a time (0.1-0.3 s each). At
  most two workers wait for one; the others get 503 with ``Retry-After: 1`` at once. A header
  that has passed once skips that queue, and ``WebConfig``'s cache answers it. So guesses cannot
  hold every worker while Prometheus waits. Auth comes before anything expensive. The 401 is
  sent before any body is read (bodies are only ever skipped, after the answer). A request
  without valid credentials never reaches a route: it renders nothing and reloads nothing.

**File descriptors kept for the polls.** The polls need descriptors that the server must not
take. The GREEN-API client keeps up to 16 pools of ``concurrency`` connections, plus a
duplicate descriptor for each request in flight: ``DESCRIPTORS_PER_POLL_SLOT`` (18) for each
unit of ``concurrency``. The rest of the process (logs, the state file, the selector, the
listening socket, libraries) gets ``PROCESS_DESCRIPTORS`` (64). The connection limit is the
soft ``RLIMIT_NOFILE`` less those, read again at each accept and capped at
``MAX_CONNECTIONS``: at the usual 1,024 with the default ``concurrency`` 8, 1024 - (18 * 8 + 64)
= 816, so 512. At 256 it is 48. It never drops below ``MIN_CONNECTIONS`` (16), and the exporter
warns at start when the limit is below ``MAX_CONNECTIONS``. If an accept still fails for want
of descriptors, the longest-waiting connection is closed and accepting pauses for
``ACCEPT_PAUSE``. The loop never spins on a listening socket it cannot drain, and a connection
beyond the limit is always accepted and closed, never left in the backlog.

Refusals are logged as warnings at most once a minute per kind, with their count.
"""

from __future__ import annotations

import collections
import contextlib
import email.parser
import email.utils
import enum
import errno
import functools
import gzip
import hashlib
import heapq
import hmac
import http.client
import io
import itertools
import logging
import math
import queue
import selectors
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from secrets import token_bytes
from typing import Any
from urllib.parse import parse_qs, urlsplit

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from exporter.app import Exporter
from exporter.collector import GreenApiCollector, ProbeCollector
from exporter.config import ConfigError
from exporter.exposition import finish, format_of, render
from exporter.logs import Secrets
from exporter.pages import config_page, status_page
from exporter.web_config import WebConfig, basic_credentials

try:
    import resource
except ImportError:  # not on Windows: no file limit to fit in
    resource = None  # type: ignore[assignment]

log = logging.getLogger("exporter.server")

KiB = 1024
MAX_REQUEST_LINE_BYTES = 8 * KiB  # 414 beyond
MAX_HEADER_BYTES = 64 * KiB  # request line and headers together; 431 beyond
MAX_HEADER_LINES = 100  # header lines (continuations included); 431 beyond
MAX_BODY_BYTES = 64 * KiB  # skipped after the answer; longer: answered, then closed
REQUEST_DEADLINE = 10.0  # seconds for a request's head and body
IDLE_TIMEOUT = 75.0  # seconds between requests of a kept-alive connection
HANDSHAKE_TIMEOUT = 10.0  # seconds from the accept to the end of the TLS handshake
ANSWER_DEADLINE = 30.0  # seconds to write an answer out
ANSWER_BYTES_BUDGET = 64 * KiB * KiB  # answers not yet taken by their clients, in all
MAX_CONNECTIONS = 512  # open at once, before the file limit lowers it
MIN_CONNECTIONS = 16  # however low the file limit
WORKER_THREADS = 8  # requests answered at once
MAX_QUEUED_REQUESTS = 64  # complete requests waiting for a worker; 503 beyond
PASSWORD_CHECKS_AT_ONCE = 2  # workers that may wait for a bcrypt check; 503 beyond
DESCRIPTORS_PER_POLL_SLOT = 18  # kept for the polls per unit of `concurrency`
PROCESS_DESCRIPTORS = 64  # kept for everything else the process opens
LISTEN_BACKLOG = 128
ACCEPT_PAUSE = 0.25  # seconds without accepting after running out of descriptors

_RECV_BYTES = 16 * KiB
_SEND_BYTES = 256 * KiB
_ACCEPTS_PER_TURN = 64  # then the loop serves the connections it has
_WARNING_INTERVAL = 60.0  # seconds between two warnings of one kind


@dataclass(frozen=True)
class ServerLimits:
    """What :class:`ExporterServer` bounds; the defaults are the constants above."""

    request_line_bytes: int = MAX_REQUEST_LINE_BYTES
    header_bytes: int = MAX_HEADER_BYTES
    header_lines: int = MAX_HEADER_LINES
    body_bytes: int = MAX_BODY_BYTES
    request_deadline: float = REQUEST_DEADLINE
    idle_timeout: float = IDLE_TIMEOUT
    handshake_timeout: float = HANDSHAKE_TIMEOUT
    answer_deadline: float = ANSWER_DEADLINE
    answer_bytes: int = ANSWER_BYTES_BUDGET
    connections: int = MAX_CONNECTIONS
    workers: int = WORKER_THREADS
    queued_requests: int = MAX_QUEUED_REQUESTS
    password_checks: int = PASSWORD_CHECKS_AT_ONCE


DEFAULT_LIMITS = ServerLimits()


def descriptors_for_polls(concurrency: int) -> int:
    """File descriptors the server leaves to the polls and the rest of the process."""
    return DESCRIPTORS_PER_POLL_SLOT * concurrency + PROCESS_DESCRIPTORS


def connection_limit(file_limit: int | None, concurrency: int, most: int = MAX_CONNECTIONS) -> int:
    """HTTP connections open at once under a soft ``RLIMIT_NOFILE`` of ``file_limit`` (None:
    unlimited), leaving :func:`descriptors_for_polls` free."""
    if file_limit is None:
        return most
    return min(most, max(MIN_CONNECTIONS, file_limit - descriptors_for_polls(concurrency)))


def file_limit() -> int | None:
    """The soft ``RLIMIT_NOFILE`` now; None when unlimited."""
    if resource is None:
        return None
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return None if soft == resource.RLIM_INFINITY else int(soft)


def build_registries(exporter: Exporter) -> tuple[CollectorRegistry, CollectorRegistry]:
    """(everything, the Python runtime's own series alone)."""
    runtime = CollectorRegistry(auto_describe=True)
    ProcessCollector(registry=runtime)
    PlatformCollector(registry=runtime)
    GCCollector(registry=runtime)
    registry = CollectorRegistry(auto_describe=True)
    registry.register(GreenApiCollector(exporter.snapshot))
    registry.register(_Runtime(runtime))
    return registry, runtime


class _Runtime:
    """The runtime registry's series, as a collector of the main registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry

    def collect(self) -> Any:
        return self._registry.collect()


# -- the connections ---------------------------------------------------------------------


class _Phase(enum.Enum):
    HANDSHAKE = "handshake"
    WAITING = "waiting"  # for a request head (idle: for its first byte)
    WORKING = "working"  # a worker is answering; nothing is read meanwhile
    ANSWERING = "answering"  # the answer goes out; a body, if any, is skipped


class _Connection:
    """One client connection, as the loop sees it."""

    __slots__ = ("buffer", "client", "close_after", "closed", "deadline", "discard", "events",
                 "idle", "line_start", "lines", "out", "phase", "request_deadline", "sent",
                 "sock", "trusted")  # fmt: skip

    def __init__(self, sock: socket.socket, client: tuple[str, int]) -> None:
        self.sock = sock
        self.client = client
        self.phase = _Phase.WAITING
        self.events = 0  # what the selector watches for
        self.closed = False
        self.deadline = math.inf  # the current step's
        self.request_deadline = math.inf  # the current request's head and body
        self.buffer = bytearray()  # the head so far, then what came after it
        self.line_start = 0  # where the head's unfinished line starts in buffer
        self.lines = 0  # finished lines of the head
        self.idle = False  # waiting for the first byte of a request
        self.out = b""  # the answer
        self.sent = 0  # bytes of it sent
        self.discard = 0  # body bytes still to skip
        self.close_after = False
        self.trusted = False  # its latest answer was below 400: evicted last


@dataclass(frozen=True)
class _Answer:
    data: bytes
    close: bool
    discard: int = 0  # body bytes to skip after it
    trusted: bool = False


class _HeadRefused(Exception):
    def __init__(self, status: HTTPStatus, text: str) -> None:
        super().__init__(text)
        self.status = status
        self.text = text


_TOO_LARGE = HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE


def _scan_head(conn: _Connection, limits: ServerLimits) -> int:
    """The length of the request head at the start of ``conn.buffer`` (0 while incomplete),
    counting lines and bytes as they come. Raises _HeadRefused past a limit."""
    buffer = conn.buffer
    while (newline := buffer.find(b"\n", conn.line_start)) >= 0:
        length = newline - conn.line_start  # a "\r" before the "\n" included
        empty = length == 0 or (length == 1 and buffer[newline - 1] == 0x0D)
        if empty and conn.lines == 0:  # before the request line: ignored (RFC 9112, 2.2)
            del buffer[: newline + 1]
            conn.line_start = 0
            continue
        if empty:
            if newline + 1 > limits.header_bytes:
                raise _HeadRefused(_TOO_LARGE, "Headers too large.\n")
            return newline + 1
        if conn.lines == 0 and length > limits.request_line_bytes + 1:
            raise _HeadRefused(HTTPStatus.REQUEST_URI_TOO_LONG, "Request line too long.\n")
        conn.lines += 1
        if conn.lines > limits.header_lines + 1:  # the request line is not a header
            raise _HeadRefused(_TOO_LARGE, "Too many headers.\n")
        conn.line_start = newline + 1
    if conn.lines == 0 and len(buffer) > limits.request_line_bytes + 1:
        raise _HeadRefused(HTTPStatus.REQUEST_URI_TOO_LONG, "Request line too long.\n")
    if len(buffer) > limits.header_bytes:
        raise _HeadRefused(_TOO_LARGE, "Headers too large.\n")
    return 0


class _Tally:
    """Refusals of one kind, logged as a warning at most once per interval with their count."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._counts: collections.Counter[str] = collections.Counter()
        self._logged: dict[str, float] = {}

    def add(self, message: str, **fields: object) -> None:
        self._counts[message] += 1
        now = self._clock()
        last = self._logged.get(message)
        if last is None or now - last >= _WARNING_INTERVAL:
            log.warning(message, extra={**fields, "count": self._counts[message]})
            self._counts[message] = 0
            self._logged[message] = now


class _PasswordGate:
    """Who may wait for a bcrypt check (see the module docstring).

    An ``Authorization`` header that has passed before is remembered by an HMAC under a key of
    this process (never the header itself), and goes straight to ``WebConfig.authorized``.
    Any other takes one of a few slots, or is turned away (None) while all are taken.
    """

    REMEMBERED = 64  # headers that passed; forgotten all at once beyond

    def __init__(self, web: WebConfig, slots: int) -> None:
        self._web = web
        self._slots = threading.BoundedSemaphore(slots)
        self._key = token_bytes(32)
        self._passed: set[bytes] = set()
        self._lock = threading.Lock()

    def check(self, header: str | None) -> bool | None:
        if not self._web.users:
            return True
        if header is None or basic_credentials(header) is None:
            return False  # nothing a bcrypt check could accept
        digest = hmac.new(self._key, header.encode("utf-8", "replace"), hashlib.sha256).digest()
        with self._lock:
            passed = digest in self._passed
        if passed:
            return self._web.authorized(header)
        if not self._slots.acquire(blocking=False):
            return None
        try:
            authorized = self._web.authorized(header)
        finally:
            self._slots.release()
        if authorized:
            with self._lock:
                if len(self._passed) >= self.REMEMBERED:
                    self._passed.clear()
                self._passed.add(digest)
        return authorized


_LISTENER = object()  # selector keys' data: the listening socket,
_WAKE = object()  # and the workers' wake-up call


class ExporterServer:
    """The HTTP server (see the module docstring): ``serve_forever`` in one thread, then
    ``shutdown`` from another and ``server_close``."""

    def __init__(
        self,
        address: tuple[str, int],
        exporter: Exporter,
        secrets: Secrets,
        telemetry_path: str = "/metrics",
        family: socket.AddressFamily = socket.AF_INET,
        enable_reload: bool = True,
        web: WebConfig | None = None,
        limits: ServerLimits = DEFAULT_LIMITS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.web = web or WebConfig()
        self.exporter = exporter
        self.secrets = secrets
        self.telemetry_path = telemetry_path
        self.enable_reload = enable_reload
        self.limits = limits
        self.passwords = _PasswordGate(self.web, limits.password_checks)
        self.registry, self.runtime_registry = build_registries(exporter)
        self._clock = clock
        self._listener = _listen(address, family)
        self.server_address: tuple[Any, ...] = self._listener.getsockname()
        self._selector = selectors.DefaultSelector()
        self._wake_reader, self._waker = socket.socketpair()
        for sock in (self._wake_reader, self._waker):
            sock.setblocking(False)
        self._selector.register(self._listener, selectors.EVENT_READ, _LISTENER)
        self._selector.register(self._wake_reader, selectors.EVENT_READ, _WAKE)
        self._accepting_from = 0.0  # accepting is paused until then (clock)
        self._accept_paused = False
        self._connections: set[_Connection] = set()
        # Connections waiting for a request, in the order they began waiting; eviction takes
        # the first of those never trusted, then the first of the others.
        self._waiting: dict[bool, collections.OrderedDict[_Connection, None]] = {
            False: collections.OrderedDict(), True: collections.OrderedDict()
        }  # fmt: skip
        self._writers: collections.OrderedDict[_Connection, None] = collections.OrderedDict()
        self._answer_bytes = 0  # not yet sent, over every writer
        self._deadlines: list[tuple[float, int, _Connection]] = []  # a heap; stale entries skipped
        self._order = itertools.count()
        self._jobs: queue.SimpleQueue[tuple[_Connection, bytes] | None] = queue.SimpleQueue()
        self._answers: collections.deque[tuple[_Connection, _Answer]] = collections.deque()
        self._outstanding = 0  # requests given to the workers and not yet answered
        self._tally = _Tally(clock)
        self._stop_requested = False
        self._stopped = threading.Event()
        self._stopped.set()
        self._workers = [
            threading.Thread(target=self._work, name=f"http-worker-{n}", daemon=True)
            for n in range(limits.workers)
        ]
        for worker in self._workers:
            worker.start()
        self._warn_if_the_file_limit_binds()

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def connection_limit(self) -> int:
        return connection_limit(file_limit(), self.exporter.config.concurrency,
                                self.limits.connections)  # fmt: skip

    def _warn_if_the_file_limit_binds(self) -> None:
        limit = self.connection_limit()
        if limit < self.limits.connections:
            log.warning(
                "the file descriptor limit leaves room for fewer HTTP connections; raise it "
                "(ulimit -n) to serve more at once",
                extra={"file_limit": file_limit(), "connections": limit,
                       "kept_for_polls": descriptors_for_polls(self.exporter.config.concurrency)},
            )  # fmt: skip

    # -- the loop ----------------------------------------------------------------------------

    def serve_forever(self, poll_interval: float = 0.5) -> None:
        """Serve until :meth:`shutdown`; ``poll_interval`` bounds how late a stop is seen."""
        self._stopped.clear()
        try:
            while not self._stop_requested:
                self._turn(poll_interval)
        finally:
            self._stop_requested = False
            self._stopped.set()

    def shutdown(self) -> None:
        """Stop :meth:`serve_forever` (called from another thread) and wait until it has."""
        self._stop_requested = True
        self._wake()
        self._stopped.wait()

    def server_close(self) -> None:
        for conn in list(self._connections):
            self._close(conn)
        self._selector.close()
        for sock in (self._listener, self._wake_reader, self._waker):
            sock.close()
        for _ in self._workers:
            self._jobs.put(None)

    def _turn(self, poll_interval: float) -> None:
        now = self._clock()
        if self._accept_paused and now >= self._accepting_from:
            self._selector.register(self._listener, selectors.EVENT_READ, _LISTENER)
            self._accept_paused = False
        timeout = poll_interval
        if self._deadlines:
            timeout = min(timeout, max(0.0, self._deadlines[0][0] - now))
        for key, _ in self._selector.select(timeout):
            if key.data is _LISTENER:
                self._accept()
            elif key.data is _WAKE:
                with contextlib.suppress(OSError):
                    while self._wake_reader.recv(4096):
                        pass
            else:
                self._guarded(key.data, functools.partial(self._on_ready, key.data))
        self._take_answers()
        self._expire()

    def _guarded(self, conn: _Connection, step: Callable[[], None]) -> None:
        """A step of one connection: a bug in it closes that connection, not the server."""
        try:
            step()
        except Exception:
            log.error("http connection failed", extra={"client": conn.client[0]}, exc_info=True)
            self._close(conn)

    def _wake(self) -> None:
        with contextlib.suppress(OSError):  # full (a wake-up is pending anyway) or closed
            self._waker.send(b"\0")

    def _on_ready(self, conn: _Connection) -> None:
        if conn.closed:
            return
        if conn.phase is _Phase.HANDSHAKE:
            self._handshake(conn)
        elif conn.phase is _Phase.WAITING:
            self._read_head(conn)
        elif conn.phase is _Phase.ANSWERING:
            self._answer_io(conn)

    def _watch(self, conn: _Connection, events: int) -> None:
        if events == conn.events or conn.closed:
            return
        if conn.events == 0:
            self._selector.register(conn.sock, events, conn)
        elif events == 0:
            self._selector.unregister(conn.sock)
        else:
            self._selector.modify(conn.sock, events, conn)
        conn.events = events

    def _set_deadline(self, conn: _Connection, at: float) -> None:
        conn.deadline = at
        if at < math.inf:
            heapq.heappush(self._deadlines, (at, next(self._order), conn))

    def _expire(self) -> None:
        now = self._clock()
        while self._deadlines and self._deadlines[0][0] <= now:
            at, _, conn = heapq.heappop(self._deadlines)
            if conn.closed or conn.deadline != at:
                continue  # a step it has since finished
            if not (conn.phase is _Phase.WAITING and conn.idle):
                log.debug("http connection cut off at its deadline",
                          extra={"client": conn.client[0], "phase": conn.phase.value})  # fmt: skip
            self._close(conn)
        if len(self._deadlines) > 4 * len(self._connections) + 64:  # mostly stale: rebuild
            live = [e for e in self._deadlines if e[2].deadline == e[0] and not e[2].closed]
            self._deadlines = live
            heapq.heapify(self._deadlines)

    # -- accepting ---------------------------------------------------------------------------

    def _accept(self) -> None:
        for _ in range(_ACCEPTS_PER_TURN):
            try:
                sock, client = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    self._out_of_descriptors()
                return  # ECONNABORTED and the like: that client is gone
            if len(self._connections) >= self.connection_limit() and not self._evict_one():
                sock.close()
                self._tally.add("http connections at their limit and all being answered: "
                                "new connections closed", limit=self.connection_limit())  # fmt: skip
                continue
            self._admit(sock, client)

    def _out_of_descriptors(self) -> None:
        self._evict_one()
        self._selector.unregister(self._listener)
        self._accept_paused = True
        self._accepting_from = self._clock() + ACCEPT_PAUSE
        self._tally.add("out of file descriptors: HTTP accepts paused",
                        connections=len(self._connections))  # fmt: skip

    def _evict_one(self) -> bool:
        for trusted in (False, True):
            group = self._waiting[trusted]
            if group:
                self._close(next(iter(group)))
                self._tally.add("http connections at their limit: the longest-waiting closed "
                                "to let new ones in", limit=self.connection_limit())  # fmt: skip
                return True
        return False

    def _admit(self, sock: socket.socket, client: Any) -> None:
        sock.setblocking(False)
        with contextlib.suppress(OSError):  # answers go out whole: no Nagle delay
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        context = self.web.ssl_context
        if context is not None:
            try:
                sock = context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
            except (OSError, ValueError):
                sock.close()
                return
        conn = _Connection(sock, (str(client[0]), int(client[1])))
        self._connections.add(conn)
        if context is not None:
            conn.phase = _Phase.HANDSHAKE
            self._waiting[False][conn] = None
            self._set_deadline(conn, self._clock() + self.limits.handshake_timeout)
            self._handshake(conn)
        else:
            self._enter_waiting(conn, idle=False)

    def _handshake(self, conn: _Connection) -> None:
        assert isinstance(conn.sock, ssl.SSLSocket)
        try:
            conn.sock.do_handshake()
        except ssl.SSLWantReadError:
            self._watch(conn, selectors.EVENT_READ)
        except ssl.SSLWantWriteError:
            self._watch(conn, selectors.EVENT_WRITE)
        except OSError:  # ssl.SSLError included: plain HTTP, a refused client certificate…
            log.debug("tls handshake failed", extra={"client": conn.client[0]}, exc_info=True)
            self._close(conn)
        else:
            self._enter_waiting(conn, idle=False)

    # -- reading a request -------------------------------------------------------------------

    def _enter_waiting(self, conn: _Connection, *, idle: bool) -> None:
        conn.phase = _Phase.WAITING
        self._leave_waiting(conn)
        self._waiting[conn.trusted][conn] = None
        conn.idle = idle and not conn.buffer
        if conn.idle:
            self._set_deadline(conn, self._clock() + self.limits.idle_timeout)
        else:
            self._start_request(conn)
        # Read at once: TLS may hold decrypted bytes that no readiness event will announce.
        self._read_head(conn)

    def _start_request(self, conn: _Connection) -> None:
        conn.request_deadline = self._clock() + self.limits.request_deadline
        self._set_deadline(conn, conn.request_deadline)

    def _leave_waiting(self, conn: _Connection) -> None:
        for group in self._waiting.values():
            group.pop(conn, None)

    def _read_head(self, conn: _Connection) -> None:
        while True:
            try:
                end = _scan_head(conn, self.limits)
            except _HeadRefused as refused:
                self._refuse(conn, refused.status, refused.text)
                return
            if end:
                self._dispatch(conn, end)
                return
            room = self.limits.header_bytes + 1 - len(conn.buffer)
            got = self._recv(conn, min(_RECV_BYTES, room))
            if not isinstance(got, bytes):
                if got is not None:
                    self._watch(conn, got)
                return
            if conn.idle:  # the first byte of a request: its deadline starts
                conn.idle = False
                self._start_request(conn)
            conn.buffer += got

    def _recv(self, conn: _Connection, size: int) -> bytes | int | None:
        """Bytes; else the event to wait for; None once the connection is closed."""
        try:
            data = conn.sock.recv(size)
        except (BlockingIOError, InterruptedError, ssl.SSLWantReadError):
            return selectors.EVENT_READ
        except ssl.SSLWantWriteError:
            return selectors.EVENT_WRITE
        except OSError:  # a reset, broken TLS
            self._close(conn)
            return None
        if not data:
            self._close(conn)
            return None
        return data

    def _dispatch(self, conn: _Connection, end: int) -> None:
        head = bytes(conn.buffer[:end])
        conn.buffer = conn.buffer[end:]  # a body, or the next request; a fresh, small buffer
        conn.line_start = conn.lines = 0
        self._leave_waiting(conn)
        conn.phase = _Phase.WORKING
        self._watch(conn, 0)
        conn.deadline = math.inf
        if self._outstanding >= self.limits.workers + self.limits.queued_requests:
            self._tally.add("http workers busy: requests answered 503")
            self._refuse(conn, HTTPStatus.SERVICE_UNAVAILABLE, "Busy; try again.\n")
            return
        self._outstanding += 1
        self._jobs.put((conn, head))

    def _refuse(self, conn: _Connection, status: HTTPStatus, text: str) -> None:
        """Answer from the loop, without a worker, and close."""
        self._leave_waiting(conn)
        self._start_answer(conn, _Answer(self._canned(status, text), close=True))

    def _canned(self, status: HTTPStatus, text: str) -> bytes:
        body = text.encode("utf-8")
        lines = [
            f"HTTP/1.1 {status.value} {status.phrase}",
            f"Server: {_Handler.server_version}",
            f"Date: {email.utils.formatdate(usegmt=True)}",
            "Content-Type: text/plain; charset=utf-8",
            f"Content-Length: {len(body)}",
            "Connection: close",
            *(f"{key}: {value}" for key, value in self.web.headers.items()),
        ]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace") + body

    # -- the workers -------------------------------------------------------------------------

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            conn, head = job
            try:
                answer = _Handler(head, conn.client, self).answer()
            except Exception:  # a bug in a route: the client gets a 500, the log the trace
                log.error("http request failed", extra={"client": conn.client[0]}, exc_info=True)
                status = HTTPStatus.INTERNAL_SERVER_ERROR
                answer = _Answer(self._canned(status, "Internal error.\n"), close=True)
            self._answers.append((conn, answer))
            self._wake()

    def _take_answers(self) -> None:
        while self._answers:
            conn, answer = self._answers.popleft()
            self._outstanding -= 1
            if not conn.closed:
                self._guarded(conn, functools.partial(self._start_answer, conn, answer))

    # -- writing an answer -------------------------------------------------------------------

    def _start_answer(self, conn: _Connection, answer: _Answer) -> None:
        conn.phase = _Phase.ANSWERING
        conn.out, conn.sent, conn.close_after = answer.data, 0, answer.close
        conn.trusted = answer.trusted
        skipped = min(answer.discard, len(conn.buffer))
        del conn.buffer[:skipped]
        conn.discard = answer.discard - skipped
        self._writers[conn] = None
        self._answer_bytes += len(conn.out)
        self._keep_to_answer_budget(conn)
        self._set_deadline(conn, self._clock() + self.limits.answer_deadline)
        self._answer_io(conn)

    def _keep_to_answer_budget(self, newest: _Connection) -> None:
        while self._answer_bytes > self.limits.answer_bytes:
            oldest = next(iter(self._writers))
            if oldest is newest:
                return
            self._tally.add("answers not taken by slow clients over their budget: the oldest "
                            "dropped", budget=self.limits.answer_bytes)  # fmt: skip
            self._close(oldest)

    def _answer_io(self, conn: _Connection) -> None:
        reading = self._skip_body(conn)
        if reading is None:
            return
        writing = self._send_answer(conn)
        if writing is None:
            return
        if reading == writing == 0:
            if conn.close_after:
                self._close(conn)
            else:
                self._enter_waiting(conn, idle=True)
            return
        self._watch(conn, reading | writing)

    def _skip_body(self, conn: _Connection) -> int | None:
        """0 once the body is skipped; else the event to wait for; None if closed."""
        while conn.discard:
            got = self._recv(conn, min(_RECV_BYTES, conn.discard))
            if not isinstance(got, bytes):
                return got
            conn.discard -= len(got)
        return 0

    def _send_answer(self, conn: _Connection) -> int | None:
        """0 once the answer is sent; else the event to wait for; None if closed."""
        if conn not in self._writers:
            return 0
        while conn.sent < len(conn.out):
            # A retried TLS write must be given the same bytes: only a success moves on.
            chunk = memoryview(conn.out)[conn.sent : conn.sent + _SEND_BYTES]
            try:
                sent = conn.sock.send(chunk)
            except (BlockingIOError, InterruptedError, ssl.SSLWantWriteError):
                return selectors.EVENT_WRITE
            except ssl.SSLWantReadError:
                return selectors.EVENT_READ
            except OSError:
                self._close(conn)
                return None
            conn.sent += sent
            self._answer_bytes -= sent
        del self._writers[conn]
        conn.out, conn.sent = b"", 0
        if conn.discard:  # the body's own deadline, now that the answer's is over
            self._set_deadline(conn, max(conn.request_deadline, self._clock() + 1.0))
        return 0

    def _close(self, conn: _Connection) -> None:
        if conn.closed:
            return
        if conn.events:
            self._selector.unregister(conn.sock)
            conn.events = 0
        conn.closed = True
        self._connections.discard(conn)
        self._leave_waiting(conn)
        if conn in self._writers:
            del self._writers[conn]
            self._answer_bytes -= len(conn.out) - conn.sent
        conn.out, conn.buffer = b"", bytearray()
        with contextlib.suppress(OSError):
            conn.sock.close()


def _listen(address: tuple[str, int], family: socket.AddressFamily) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            # ":9935" listens on IPv4 and IPv6 alike, as the Go exporters do.
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind(address)
        sock.listen(LISTEN_BACKLOG)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


# -- one request -------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    """One request, from its head (read by the loop) to the whole answer as bytes."""

    server: ExporterServer  # type: ignore[assignment]
    protocol_version = "HTTP/1.1"
    server_version = "greenapi-exporter"
    sys_version = ""

    def __init__(self, head: bytes, client: tuple[str, int], server: ExporterServer) -> None:
        # Not BaseRequestHandler.__init__, which would read and write a socket: the loop has
        # read the head, and the answer is collected here for the loop to send.
        self.server = server
        self.client_address = client
        request_line, _, self._header_block = head.partition(b"\n")
        self.raw_requestline = request_line + b"\n"
        # parse_request reads headers with http.client's own bounds (which allow 99): it is
        # given none, and the loop's bounded block is parsed here instead (_parse_headers).
        self.rfile = io.BytesIO(b"\r\n")
        self._answer_bytes = io.BytesIO()
        self.wfile = self._answer_bytes
        self.headers = http.client.HTTPMessage()
        self.close_connection = True
        self._status = 0
        self._must_close = False  # the body cannot be skipped, or it says so
        self._body_too_long = False
        self._discard = 0

    def answer(self) -> _Answer:
        if self.parse_request():
            self._parse_headers()
            self._serve()
        close = self.close_connection or self._must_close
        return _Answer(self._answer_bytes.getvalue(), close=close, discard=0 if close else self._discard,
                       trusted=0 < self._status < 400)  # fmt: skip

    def _parse_headers(self) -> None:
        """The headers, as http.client.parse_headers reads them, and what parse_request makes
        of ``Connection`` (``Expect`` is _frame_body's)."""
        text = self._header_block.decode("iso-8859-1")
        self.headers = email.parser.Parser(_class=http.client.HTTPMessage).parsestr(text)
        connection = self.headers.get("Connection", "").lower()
        if connection == "close":
            self.close_connection = True
        elif connection == "keep-alive" and self.protocol_version >= "HTTP/1.1":
            self.close_connection = False

    def _serve(self) -> None:
        if not self._frame_body() or not self._authorized():
            return
        if self._body_too_long:
            self._send_text(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "Request body too large.\n")
            return
        methods = {"GET": self.do_GET, "HEAD": self.do_HEAD, "POST": self.do_POST}
        method = methods.get(self.command)
        if method is None:
            self.send_error(HTTPStatus.NOT_IMPLEMENTED)
            return
        method()

    def _frame_body(self) -> bool:
        """Where the body ends, which no route reads: it is skipped after the answer, or the
        connection closes after it. False once a 400 has been sent for a broken length."""
        if self.headers.get("Transfer-Encoding") is not None:
            self._must_close = True
            return True
        lengths = {value.strip() for value in self.headers.get_all("Content-Length") or ()}
        if not lengths:
            return True
        length = lengths.pop()
        if lengths or not (length.isascii() and length.isdigit()):
            self.send_error(HTTPStatus.BAD_REQUEST, "Bad Content-Length")
            return False
        size = int(length)
        if size and self.headers.get("Expect", "").lower() == "100-continue":
            self._must_close = True  # it may send the body or not: no telling where it ends
        elif size > self.server.limits.body_bytes:
            self._must_close = self._body_too_long = True
        else:
            self._discard = size
        return True

    def handle_expect_100(self) -> bool:
        return True  # no "100 Continue": no route wants a body, and the 401 comes first

    def _authorized(self) -> bool:
        verdict = self.server.passwords.check(self.headers.get("Authorization"))
        if verdict:
            return True
        if verdict is None:
            self._send_text(HTTPStatus.SERVICE_UNAVAILABLE,
                            "Busy checking other passwords; try again.\n",
                            extra_headers={"Retry-After": "1"})  # fmt: skip
            return False
        self._send_text(HTTPStatus.UNAUTHORIZED, "Unauthorized.\n",
                        extra_headers=dict(self.server.web.unauthorized_headers))  # fmt: skip
        return False

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        routes: dict[str, Callable[[dict[str, list[str]]], None]] = {
            self.server.telemetry_path: self._metrics,
            "/": self._status_page,
            "/config": self._config_page,
            "/-/healthy": self._healthy,
            "/-/ready": self._ready,
            "/probe": self._probe,
        }
        route = routes.get(url.path)
        if route is None:
            if url.path == "/-/reload":
                self._send_text(HTTPStatus.METHOD_NOT_ALLOWED, "Use POST to reload.\n",
                                extra_headers={"Allow": "POST"})  # fmt: skip
                return
            self._send_text(HTTPStatus.NOT_FOUND, "Not found.\n")
            return
        route(parse_qs(url.query))

    def do_POST(self) -> None:
        if urlsplit(self.path).path != "/-/reload":
            self._send_text(HTTPStatus.NOT_FOUND, "Not found.\n")
            return
        if not self.server.enable_reload:
            self._send_text(HTTPStatus.FORBIDDEN, "Reload over HTTP is disabled.\n")
            return
        try:
            summary = self.server.exporter.reload()
        except ConfigError as exc:
            reason = self.server.secrets.scrub(str(exc))
            log.error("configuration reload refused", extra={"reason": reason})
            self._send_text(
                HTTPStatus.BAD_REQUEST,
                f"Reload refused; the running configuration stays.\n{reason}\n",
            )
            return
        self._send_text(HTTPStatus.OK, f"Configuration reloaded: {summary}.\n")

    def _metrics(self, _query: dict[str, list[str]]) -> None:
        # The format Prometheus's client library would pick for this Accept header; the body
        # comes from the per-instance fragments cached after each poll, in either format.
        _, content_type = choose_encoder(self.headers.get("Accept", ""))
        fmt = format_of(content_type)
        snapshot = self.server.exporter.snapshot()
        parts = self.server.exporter.exposition.render(snapshot, fmt)
        parts.append(render(self.server.runtime_registry.collect(), fmt))
        self._send(HTTPStatus.OK, finish(parts, fmt), content_type)

    def _probe(self, query: dict[str, list[str]]) -> None:
        targets = query.get("target", [])
        if len(targets) != 1 or not targets[0]:
            self._send_text(HTTPStatus.BAD_REQUEST, "Give exactly one target: /probe?target=NAME\n")
            return
        snapshot = self.server.exporter.snapshot()
        for instance in snapshot.instances:
            if instance.name == targets[0]:
                registry = CollectorRegistry(auto_describe=False)
                registry.register(ProbeCollector(snapshot, instance))
                self._send_exposition(registry)
                return
        # Only configured names are accepted: /probe can never be turned into a request to
        # an arbitrary host. The name is echoed escaped and only as text/plain.
        self._send_text(
            HTTPStatus.BAD_REQUEST,
            f"Unknown target {targets[0][:100]!r}: not a configured instance name.\n",
        )

    def _send_exposition(self, registry: CollectorRegistry) -> None:
        encoder, content_type = choose_encoder(self.headers.get("Accept", ""))
        body = encoder(registry)
        self._send(HTTPStatus.OK, body, content_type)

    def _healthy(self, _query: dict[str, list[str]]) -> None:
        self._send_text(HTTPStatus.OK, "Healthy.\n")

    def _ready(self, _query: dict[str, list[str]]) -> None:
        if self.server.exporter.ready():
            self._send_text(HTTPStatus.OK, "Ready.\n")
        else:
            self._send_text(
                HTTPStatus.SERVICE_UNAVAILABLE, "Not ready: first polls still running.\n"
            )

    def _status_page(self, _query: dict[str, list[str]]) -> None:
        exporter = self.server.exporter
        snapshot = exporter.snapshot()
        history = exporter.delivery_history  # fed by every poll, pruned here
        history.record(snapshot)
        page = status_page(
            snapshot,
            history.samples,
            now=time.time(),
            telemetry_path=self.server.telemetry_path,
            scrub=self.server.secrets.scrub,
        )
        self._send(HTTPStatus.OK, page.encode("utf-8"), "text/html; charset=utf-8")

    def _config_page(self, _query: dict[str, list[str]]) -> None:
        exporter = self.server.exporter
        page = config_page(
            exporter.config, version=exporter.snapshot().version, scrub=self.server.secrets.scrub
        )
        self._send(HTTPStatus.OK, page.encode("utf-8"), "text/html; charset=utf-8")

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        # Plain text with the configured headers, as every other answer; the reason goes to
        # the debug log only, so that nothing of the request is echoed.
        self.log_error("code %d, message %s", code, message)
        self._must_close = True
        status = HTTPStatus(code)
        self._send_text(status, f"{status.phrase}.\n")

    def send_response(self, code: int, message: str | None = None) -> None:
        self._status = code
        super().send_response(code, message)

    def _send_text(
        self, status: HTTPStatus, text: str, extra_headers: dict[str, str] | None = None
    ) -> None:
        self._send(status, text.encode("utf-8"), "text/plain; charset=utf-8", extra_headers)

    def _send(
        self,
        status: HTTPStatus,
        body: bytes,
        content_type: str,
        extra_headers: dict[str, str] | None = None,
    ) -> None:
        encoding = self.headers.get("Accept-Encoding", "")
        gzipped = "gzip" in encoding and len(body) > 1024
        if gzipped:
            body = gzip.compress(body, compresslevel=5)
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        if gzipped:
            self.send_header("Content-Encoding", "gzip")
        if self._must_close:
            self.send_header("Connection", "close")
        for key, value in {**self.server.web.headers, **(extra_headers or {})}.items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_HEAD(self) -> None:
        self.do_GET()

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("http request", extra={"client": self.client_address[0], "line": format % args})
