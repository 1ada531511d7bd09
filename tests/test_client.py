"""The HTTP client against hostile fakes of GREEN-API on loopback.

Each fake is a raw socket server that answers as a test scripts it: a byte at a time,
with endless headers, with cookies, with odd ``Retry-After`` or ``Content-Encoding`` values.
What the client must hold to whatever the server does: a request ends within its ``timeout``,
an answer is bounded by its decoded size, nothing read from an answer makes it raise, no
cookie travels, and the token stays out of every error text.
"""

from __future__ import annotations

import email.utils
import os
import socket
import ssl
import threading
import time
import tracemalloc
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter import __version__
from exporter.client import RESULTS, Fetch, GreenApiClient, parse_retry_after
from tests.conftest import free_port, self_signed_certificate, wait_until

TOKEN = "d75b3a66374942c5b3c019c698abc2067e151558acbd4123ab"
TIMEOUT = 1.0
# How late after its timeout a request may end: scheduling on a busy machine, not the peer.
SLACK = 0.6


@dataclass
class Exchange:
    """One request as the fake received it, and the socket to answer on."""

    sock: socket.socket
    head: bytes
    stopping: threading.Event

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def trickle(self, data: bytes, interval: float = 0.05) -> None:
        """Send ``data`` one byte every ``interval`` seconds: each read sees progress."""
        for index in range(len(data)):
            if self.stopping.wait(interval):
                return
            self.sock.sendall(data[index : index + 1])


Script = Callable[[Exchange], bool]
"""Answers one request; True keeps the connection open for the next one."""


class HostileServer:
    """A fake GREEN-API on a loopback port that answers every request with ``script``."""

    def __init__(
        self, script: Script, tls: ssl.SSLContext | None = None, read_request: bool = True
    ) -> None:
        self.script = script
        self.read_request = read_request  # False: answer as soon as a client connects
        self.heads: list[bytes] = []  # every request received, up to its blank line
        self.connections = 0  # accepted so far
        self.active = 0  # connections still being served
        self.stopping = threading.Event()
        self._tls = tls
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0), backlog=64)
        self._listener.settimeout(0.1)  # so that the accept loop sees a stop
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def url(self, instance: str = "1101000001", host: str = "127.0.0.1") -> str:
        scheme = "https" if self._tls else "http"
        return f"{scheme}://{host}:{self.port}/waInstance{instance}/lastOutgoingMessages/{TOKEN}"

    def stop(self) -> None:
        self.stopping.set()
        wait_until(lambda: self.active == 0, timeout=10)
        self._listener.close()

    def _accept(self) -> None:
        while not self.stopping.is_set():
            try:
                sock, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self.connections += 1
                self.active += 1
            threading.Thread(target=self._serve, args=(sock,), daemon=True).start()

    def _serve(self, sock: socket.socket) -> None:
        try:
            if self._tls is not None:
                sock = self._tls.wrap_socket(sock, server_side=True)
            if not self.read_request:
                self.script(Exchange(sock, b"", self.stopping))
                return
            while not self.stopping.is_set():
                head = _read_head(sock)
                if head is None:
                    break
                with self._lock:
                    self.heads.append(head)
                if not self.script(Exchange(sock, head, self.stopping)):
                    break
        except OSError:
            pass  # the client gave up: that is what most of these tests want
        finally:
            sock.close()
            with self._lock:
                self.active -= 1


def _read_head(sock: socket.socket) -> bytes | None:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return None
        data += chunk
    return data.partition(b"\r\n\r\n")[0]


def answer(status: int = 200, body: bytes = b"[]", headers: tuple[str, ...] = (),
           length: bool = True) -> bytes:  # fmt: skip
    lines = [f"HTTP/1.1 {status} Whatever", *headers]
    if length:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def answering(data: bytes, keep_alive: bool = True) -> Script:
    def script(exchange: Exchange) -> bool:
        exchange.send(data)
        return keep_alive

    return script


def trickling(data: bytes, interval: float = 0.05, first: bytes = b"") -> Script:
    """Send ``first`` at once, then ``data`` a byte at a time."""

    def script(exchange: Exchange) -> bool:
        exchange.send(first)
        exchange.trickle(data, interval)
        return False

    return script


@pytest.fixture
def serve() -> Iterator[Callable[..., HostileServer]]:
    servers: list[HostileServer] = []

    def start(script: Script, **kwargs: Any) -> HostileServer:
        server = HostileServer(script, **kwargs)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def client() -> Iterator[GreenApiClient]:
    client = GreenApiClient(pool_size=4)
    yield client
    client.close()


def timed_get(client: GreenApiClient, url: str, timeout: float = TIMEOUT) -> tuple[Fetch, float]:
    started = time.monotonic()
    fetch = client.get(url, {"minutes": "60"}, timeout, TOKEN)
    return fetch, time.monotonic() - started


def assert_cut_at_the_deadline(fetch: Fetch, elapsed: float, timeout: float = TIMEOUT) -> None:
    assert fetch.result == "timeout", fetch
    assert elapsed < timeout + SLACK, elapsed
    assert f"within {timeout:g}s" in fetch.error
    assert TOKEN not in fetch.error and "\n" not in fetch.error


# --- Every request ends within its timeout -------------------------------------------------


def test_a_status_line_sent_a_byte_at_a_time_is_cut_at_the_deadline(
    serve: Callable[..., HostileServer], client: GreenApiClient
) -> None:
    server = serve(trickling(answer(body=b"[]" + b" " * 40)))  # three seconds of bytes
    fetch, elapsed = timed_get(client, server.url())
    assert_cut_at_the_deadline(fetch, elapsed)
    assert "status line" in fetch.error


def test_headers_sent_a_byte_at_a_time_are_cut_at_the_deadline(
    serve: Callable[..., HostileServer], client: GreenApiClient
) -> None:
    server = serve(
        trickling(b"X-Padding: " + b"a" * 100 + b"\r\n\r\n", first=b"HTTP/1.1 200 OK\r\n")
    )
    fetch, elapsed = timed_get(client, server.url())
    assert_cut_at_the_deadline(fetch, elapsed)


def test_a_body_sent_a_byte_at_a_time_is_cut_at_the_deadline(
    serve: Callable[..., HostileServer], client: GreenApiClient
) -> None:
    body = b"[" + b" " * 98 + b"]"
    server = serve(trickling(body, first=answer(body=body)[: -len(body)]))
    fetch, elapsed = timed_get(client, server.url())
    assert_cut_at_the_deadline(fetch, elapsed)
    assert "reading the body" in fetch.error


def test_a_body_without_length_trickled_until_the_deadline_is_not_taken_as_complete(
    serve: Callable[..., HostileServer], client: GreenApiClient
) -> None:
    # Read until the server closes: the deadline's shutdown must not look like that end.
    server = serve(trickling(b"[" + b" " * 98 + b"]", first=answer(length=False, body=b"")))
    fetch, elapsed = timed_get(client, server.url())
    assert_cut_at_the_deadline(fetch, elapsed)


def test_endless_interim_answers_are_cut_at_the_deadline(
    serve: Callable[..., HostileServer], client: GreenApiClient
) -> None:
    def continues(exchange: Exchange) -> bool:
        while not exchange.stopping.wait(0.01):
            exchange.send(b"HTTP/1.1 100 Continue\r\n\r\n")
        return False

    fetch, elapsed = timed_get(client, serve(continues).url())
    assert_cut_at_the_deadline(fetch, elapsed)


def test_a_tls_handshake_sent_a_byte_at_a_time_is_cut_at_the_deadline(
    serve: Callable[..., HostileServer], client: GreenApiClient
) -> None:
    # A TLS record header announcing 16 KiB of handshake, then the record a byte at a time.
    server = serve(trickling(os.urandom(200), first=b"\x16\x03\x03\x40\x00"), read_request=False)
    url = server.url().replace("http://", "https://")
    fetch, elapsed = timed_get(client, url)
    assert_cut_at_the_deadline(fetch, elapsed)


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return self_signed_certificate(tmp_path_factory.mktemp("tls"))


def test_a_body_sent_a_byte_at_a_time_over_tls_is_cut_at_the_deadline(
    serve: Callable[..., HostileServer],
    client: GreenApiClient,
    tls_files: tuple[Path, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cert, key = tls_files
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))  # trust the fake's certificate
    body = b"[" + b" " * 98 + b"]"
    healthy = serve(answering(answer(body=b"[]")), tls=context)
    assert timed_get(client, healthy.url())[0].result == "success"  # the TLS set-up works
    server = serve(trickling(body, first=answer(body=body)[: -len(body)]), tls=context)
    fetch, elapsed = timed_get(client, server.url())
    assert_cut_at_the_deadline(fetch, elapsed)


def test_connecting_to_every_address_of_a_host_shares_one_deadline(
    client: GreenApiClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A listener with a full backlog: the kernel drops further SYNs, connect() hangs.
    listener = socket.create_server(("127.0.0.1", 0), backlog=0)
    port = listener.getsockname()[1]
    queued = socket.create_connection(("127.0.0.1", port))
    # A host name with three such addresses (no resolver here has one: the lookup is faked).
    resolve = socket.getaddrinfo
    monkeypatch.setattr(
        socket, "getaddrinfo", lambda host, *args, **kwargs: resolve("127.0.0.1", *args) * 3
    )
    try:
        url = f"http://greenapi.invalid:{port}/waInstance1/lastOutgoingMessages/{TOKEN}"
        fetch, elapsed = timed_get(client, url)
    finally:
        queued.close()
        listener.close()
    assert fetch.result == "timeout", fetch
    assert elapsed < TIMEOUT + SLACK
    assert TOKEN not in fetch.error


def test_a_request_through_an_http_proxy_is_cut_at_the_deadline(
    serve: Callable[..., HostileServer], client: GreenApiClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    proxy = serve(trickling(answer(body=b"[" + b" " * 98 + b"]")))  # a proxy that trickles
    for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy.port}")
    fetch, elapsed = timed_get(client, f"http://greenapi.invalid/waInstance1/x/{TOKEN}")
    assert_cut_at_the_deadline(fetch, elapsed)
    assert b"greenapi.invalid" in proxy.heads[0]  # it did go through the proxy


def test_an_answer_slow_but_complete_before_the_deadline_succeeds(
    serve: Callable[..., HostileServer], client: GreenApiClient
) -> None:
    server = serve(trickling(answer(body=b"[]"), interval=0.005))
    fetch, _ = timed_get(client, server.url())
    assert fetch.result == "success" and fetch.body == b"[]"


def open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_requests_cut_short_leave_no_thread_and_no_descriptor_behind(
    serve: Callable[..., HostileServer], client: GreenApiClient
) -> None:
    server = serve(trickling(b"X: " + b"a" * 1000, interval=0.02, first=b"HTTP/1.1 200 OK\r\n"))
    url = server.url()
    assert timed_get(client, url, 0.2)[0].result == "timeout"  # the watchdog starts here
    wait_until(lambda: server.active == 0)
    before = (threading.active_count(), open_descriptors())
    results: list[str] = []

    def make_requests() -> None:
        results.extend(timed_get(client, url, 0.2)[0].result for _ in range(10))

    workers = [threading.Thread(target=make_requests) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert results == ["timeout"] * 40
    # The fake's own threads and sockets end once it notices the client is gone.
    wait_until(lambda: (threading.active_count(), open_descriptors()) == before, timeout=10)


# --- Headers of answers, parsed defensively -----------------------------------------------

NOW = 1_750_000_000.0


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("120", 120.0),
        (" 7\t", 7.0),
        ("0", 0.0),
        (email.utils.formatdate(NOW + 90, usegmt=True), 90.0),
        (email.utils.formatdate(NOW - 90, usegmt=True), 0.0),  # a date in the past: now
        ("²", None),  # str.isdigit() says yes, float() says no
        ("٣", None),  # str.isdecimal() says yes: an Arabic-Indic three
        ("\uff13", None),  # a fullwidth three
        ("1e3", None),
        ("-5", None),
        ("3.5", None),
        ("0x10", None),
        ("9" * 16, None),
        ("", None),
        (None, None),
        ("Wed, 99 Foo 2015 07:28:00 GMT", None),
        ("soon", None),
    ],
)
def test_retry_after_is_ascii_delta_seconds_or_an_http_date(
    value: str | None, seconds: float | None
) -> None:
    assert parse_retry_after(value, NOW) == seconds


@settings(max_examples=500, deadline=None)
@given(st.text())
def test_retry_after_never_raises_for_any_text(value: str) -> None:
    seconds = parse_retry_after(value, NOW)
    assert seconds is None or seconds >= 0


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=64))
def test_retry_after_never_raises_for_any_bytes_as_http_client_decodes_them(raw: bytes) -> None:
    seconds = parse_retry_after(raw.decode("latin-1"), NOW)
    assert seconds is None or seconds >= 0


@pytest.mark.parametrize(("value", "seconds"), [("²", None), ("3", 3.0), ("1e3", None)])
def test_a_429_with_an_odd_retry_after_is_counted_not_a_crash(
    serve: Callable[..., HostileServer], client: GreenApiClient, value: str, seconds: float | None
) -> None:
    server = serve(answering(answer(429, b"{}", (f"Retry-After: {value}",)), keep_alive=False))
    fetch, _ = timed_get(client, server.url())
    assert (fetch.result, fetch.retry_after) == ("http_429", seconds)


class Scripted:
    """A fake whose next answer the test sets, closed after each answer."""

    def __init__(self) -> None:
        self.next = b""

    def __call__(self, exchange: Exchange) -> bool:
        exchange.send(self.next)
        return False


@pytest.fixture(scope="module")
def scripted() -> Iterator[tuple[Scripted, HostileServer, GreenApiClient]]:
    script = Scripted()
    server = HostileServer(script)
    client = GreenApiClient(pool_size=1)
    yield script, server, client
    client.close()
    server.stop()


header_names = st.sampled_from(
    ["Retry-After", "Content-Length", "Content-Encoding", "Transfer-Encoding", "Content-Type",
     "Connection", "Location", "Set-Cookie", "X-Anything", "", "Retry-After "]
)  # fmt: skip
header_values = st.text(st.characters(min_codepoint=0, max_codepoint=255), max_size=60)


@settings(max_examples=80, deadline=None)
@given(
    st.sampled_from([200, 100, 204, 301, 429, 466, 503, 999]),
    st.lists(st.tuples(header_names, header_values), max_size=4),
    st.binary(max_size=40),
)
def test_no_header_value_makes_a_request_raise(
    scripted: tuple[Scripted, HostileServer, GreenApiClient],
    status: int,
    headers: list[tuple[str, str]],
    body: bytes,
) -> None:
    script, server, client = scripted
    lines = tuple(f"{name}: {value}" for name, value in headers)
    script.next = answer(status, body, lines, length=False)
    fetch = client.get(server.url(), {}, 0.5, TOKEN)
    assert fetch.result in RESULTS
    assert "\n" not in fetch.error and TOKEN not in fetch.error
    assert fetch.retry_after is None or fetch.retry_after >= 0


def test_endless_header_lines_are_an_invalid_response_at_once(
    serve: Callable[..., HostileServer], client: GreenApiClient
) -> None:
    def endless(exchange: Exchange) -> bool:
        exchange.send(b"HTTP/1.1 200 OK\r\n")
        while not exchange.stopping.is_set():
            exchange.send(b"X-More: yes\r\n" * 100)
        return False

    fetch, elapsed = timed_get(client, serve(endless).url(), timeout=5.0)
    assert fetch.result == "invalid_response", fetch
    assert elapsed < 2.0


def test_an_endless_header_line_is_an_invalid_response_at_once(
    serve: Callable[..., HostileServer], client: GreenApiClient
) -> None:
    def endless(exchange: Exchange) -> bool:
        exchange.send(b"HTTP/1.1 200 OK\r\nX-Long: ")
        while not exchange.stopping.is_set():
            exchange.send(b"a" * 65536)
        return False

    fetch, elapsed = timed_get(client, serve(endless).url(), timeout=5.0)
    assert fetch.result == "invalid_response", fetch
    assert elapsed < 2.0


def test_a_status_line_that_is_not_http_is_an_invalid_response(
    serve: Callable[..., HostileServer], client: GreenApiClient
) -> None:
    server = serve(answering(b"SSH-2.0-OpenSSH_9.6\r\n\r\n", keep_alive=False))
    assert timed_get(client, server.url())[0].result == "invalid_response"


def test_a_body_cut_short_of_its_content_length_is_a_connection_error(
    serve: Callable[..., HostileServer], client: GreenApiClient
) -> None:
    server = serve(answering(answer(body=b"[]")[:-2] + b"[", keep_alive=False))
    fetch, _ = timed_get(client, server.url())
    assert fetch.result == "connection_error", fetch


def test_content_lengths_that_disagree_are_an_invalid_response(
    serve: Callable[..., HostileServer], client: GreenApiClient
) -> None:
    data = answer(body=b"[]", headers=("Content-Length: 2, 3",), length=False)
    fetch, _ = timed_get(client, serve(answering(data, keep_alive=False)).url())
    assert fetch.result == "invalid_response", fetch


def test_a_content_length_that_is_not_a_number_reads_to_the_end(
    serve: Callable[..., HostileServer], client: GreenApiClient
) -> None:
    data = answer(body=b"[]", headers=("Content-Length: ²",), length=False)
    fetch, _ = timed_get(client, serve(answering(data, keep_alive=False)).url())
    assert (fetch.result, fetch.body) == ("success", b"[]")


# --- Content-Encoding, and the size cap on what it decodes to ------------------------------


def gzipped(data: bytes) -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush()


def deflated(data: bytes, wbits: int) -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, wbits)
    return compressor.compress(data) + compressor.flush()


JOURNAL = b'[{"idMessage": "BAE5A", "statusMessage": "read", "timestamp": 1750000000}]'


@pytest.mark.parametrize(
    ("coding", "body"),
    [
        ("gzip", gzipped(JOURNAL)),
        ("x-gzip", gzipped(JOURNAL)),
        ("GZip", gzipped(JOURNAL)),
        ("identity", JOURNAL),
        ("identity, gzip", gzipped(JOURNAL)),
        ("gzip, gzip", gzipped(gzipped(JOURNAL))),
        ("gzip", gzipped(JOURNAL[:30]) + gzipped(JOURNAL[30:])),  # two gzip members
        ("deflate", deflated(JOURNAL, zlib.MAX_WBITS)),  # zlib-wrapped, as specified
        ("deflate", deflated(JOURNAL, -zlib.MAX_WBITS)),  # raw, as some servers send
    ],
)
def test_encoded_answers_are_decoded(
    serve: Callable[..., HostileServer], client: GreenApiClient, coding: str, body: bytes
) -> None:
    server = serve(answering(answer(body=body, headers=(f"Content-Encoding: {coding}",))))
    fetch, _ = timed_get(client, server.url())
    assert (fetch.result, fetch.body) == ("success", JOURNAL)


@pytest.mark.parametrize(
    ("coding", "body"),
    [
        ("br", JOURNAL),
        ("gzip, zstd", gzipped(JOURNAL)),
        ("compress", JOURNAL),
        ("gzip", JOURNAL),  # says gzip, is not
        ("gzip", gzipped(JOURNAL)[:-12]),  # cut short
        ("gzip", b""),
        ("deflate", b"x"),
        ("gzip, gzip, gzip, gzip, gzip", JOURNAL),
    ],
)
def test_unknown_or_broken_encodings_are_an_invalid_response(
    serve: Callable[..., HostileServer], client: GreenApiClient, coding: str, body: bytes
) -> None:
    server = serve(answering(answer(body=body, headers=(f"Content-Encoding: {coding}",))))
    fetch, _ = timed_get(client, server.url())
    assert fetch.result == "invalid_response", fetch
    assert "\n" not in fetch.error


@pytest.fixture(scope="module")
def gzip_bomb() -> bytes:
    """64 MiB of zeros, gzipped to about 64 KiB."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    parts = [compressor.compress(bytes(1024 * 1024)) for _ in range(64)]
    return b"".join(parts) + compressor.flush()


@pytest.mark.parametrize("layers", [1, 2])
def test_a_gzip_bomb_is_abandoned_at_the_decoded_size_cap(
    serve: Callable[..., HostileServer], gzip_bomb: bytes, layers: int
) -> None:
    body = gzip_bomb if layers == 1 else gzipped(gzip_bomb)
    coding = ", ".join(["gzip"] * layers)
    server = serve(answering(answer(body=body, headers=(f"Content-Encoding: {coding}",))))
    client = GreenApiClient(pool_size=1, max_body_bytes=1024 * 1024)
    tracemalloc.start()
    try:
        fetch = client.get(server.url(), {}, 10.0, TOKEN)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        client.close()
    assert fetch.result == "invalid_response"
    assert fetch.error == "answer larger than 1 MiB"
    assert peak < 8 * 1024 * 1024  # a few times the cap, never the 64 MiB it inflates to


def test_an_answer_over_the_size_cap_is_abandoned(serve: Callable[..., HostileServer]) -> None:
    server = serve(answering(answer(body=b"[" + b" " * 2000 + b"]")))
    client = GreenApiClient(pool_size=1, max_body_bytes=1000)
    try:
        fetch = client.get(server.url(), {}, TIMEOUT, TOKEN)
    finally:
        client.close()
    assert (fetch.result, fetch.body) == ("invalid_response", None)


# --- Cookies ------------------------------------------------------------------------------

COOKIES = (
    "Set-Cookie: session=abc; Path=/",
    "Set-Cookie: host=1; Domain=127.0.0.1; Path=/",
    "Set-Cookie: other=1; Domain=localhost; Path=/",
    "Set-Cookie: scoped=1; Path=/waInstance1101000002",
    "Set-Cookie: lasting=1; Path=/; Max-Age=86400",
    f"Set-Cookie: big={'x' * 4000}; Path=/",
)


def test_cookies_set_by_an_answer_are_never_sent(
    serve: Callable[..., HostileServer], client: GreenApiClient
) -> None:
    server = serve(answering(answer(body=b"[]", headers=COOKIES)))
    urls = [
        server.url("1101000001"),
        server.url("1101000002"),
        server.url("1101000003", "localhost"),
    ]
    for url in urls * 2:
        assert timed_get(client, url)[0].result == "success"
    assert len(server.heads) == 6
    assert not [head for head in server.heads if b"\r\ncookie:" in head.lower()]


# --- What the client keeps doing ------------------------------------------------------------


def test_redirects_are_not_followed(
    serve: Callable[..., HostileServer], client: GreenApiClient
) -> None:
    elsewhere = serve(answering(answer(body=b"[]")))
    server = serve(answering(answer(302, b"", (f"Location: {elsewhere.url()}",))))
    fetch, _ = timed_get(client, server.url())
    assert (fetch.result, fetch.status) == ("invalid_response", 302)
    assert elsewhere.heads == []


def test_http_200_with_an_error_code_in_the_body_is_that_error(
    serve: Callable[..., HostileServer], client: GreenApiClient
) -> None:
    body = b'{"code": 401, "description": "Unauthorized"}'
    fetch, _ = timed_get(client, serve(answering(answer(body=body))).url())
    assert (fetch.result, fetch.body) == ("http_401", None)


def test_requests_of_one_instance_reuse_one_kept_alive_connection(
    serve: Callable[..., HostileServer], client: GreenApiClient
) -> None:
    server = serve(answering(answer(body=gzipped(JOURNAL), headers=("Content-Encoding: gzip",))))
    for _ in range(5):
        assert timed_get(client, server.url())[0].result == "success"
    assert (len(server.heads), server.connections) == (5, 1)


def test_concurrent_requests_use_at_most_pool_size_connections(
    serve: Callable[..., HostileServer],
) -> None:
    def slow(exchange: Exchange) -> bool:
        exchange.stopping.wait(0.05)
        exchange.send(answer(body=b"[]"))
        return True

    server = serve(slow)
    client = GreenApiClient(pool_size=3)
    results: list[str] = []

    def make_requests() -> None:
        results.extend(timed_get(client, server.url())[0].result for _ in range(4))

    workers = [threading.Thread(target=make_requests) for _ in range(3)]
    try:
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
    finally:
        client.close()
    assert results == ["success"] * 12
    assert server.connections <= 3


def test_requests_say_who_they_are_and_what_they_accept(
    serve: Callable[..., HostileServer], client: GreenApiClient
) -> None:
    server = serve(answering(answer(body=b"[]")))
    timed_get(client, server.url())
    head = server.heads[0].decode("latin-1").lower()
    assert f"\r\nuser-agent: greenapi-exporter/{__version__}\r\n" in head + "\r\n"
    assert "\r\naccept-encoding: gzip, deflate\r\n" in head + "\r\n"


def test_failures_are_told_in_one_line_without_the_token(
    serve: Callable[..., HostileServer], client: GreenApiClient
) -> None:
    refused = f"http://127.0.0.1:{free_port()}/waInstance1/lastOutgoingMessages/{TOKEN}"
    fetch, _ = timed_get(client, refused)
    assert fetch.result == "connection_error"
    assert TOKEN not in fetch.error and "\n" not in fetch.error
    assert "<redacted>" in fetch.error
