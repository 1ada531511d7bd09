"""The HTTP server holds its ground against slow, idle and hostile clients (exporter.server).

Most tests run the exporter as a process (``--demo``, or against a simulator) and attack it
with raw sockets. They measure what an attack costs the process from ``/proc/PID/status``
(``VmRSS``, ``Threads``), ``/proc/PID/fd`` and ``/proc/PID/stat``, and check that a normal
scrape is still answered meanwhile. Bounds are on resources, with generous margins; the few on
wall time are seconds wide, for a loaded 2-core machine.

The timeouts a process test would have to sit through (75 s idle, the TLS handshake, writing an
answer out) and the limits that need an odd setting to reach (a full worker queue, a small
connection limit, a small answer budget) are tested on an ExporterServer in this process, over
loopback, with an injected clock and small ServerLimits.
"""

from __future__ import annotations

import base64
import contextlib
import os
import resource
import select
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import bcrypt
import pytest
import requests
import yaml

from exporter.app import Exporter
from exporter.config import Config, parse_config
from exporter.logs import Secrets
from exporter.server import (
    ANSWER_DEADLINE,
    DEFAULT_LIMITS,
    HANDSHAKE_TIMEOUT,
    IDLE_TIMEOUT,
    MAX_CONNECTIONS,
    MAX_HEADER_BYTES,
    MAX_HEADER_LINES,
    MAX_REQUEST_LINE_BYTES,
    MIN_CONNECTIONS,
    REQUEST_DEADLINE,
    ExporterServer,
    ServerLimits,
    connection_limit,
    descriptors_for_polls,
)
from exporter.simulator import Simulator
from exporter.web_config import WebConfig, load_web_config
from tests.conftest import ExporterProcess, parse_samples, value, wait_until

MiB = 1024 * 1024
PROMETHEUS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0;q=0.5,"
    "application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2"
)


# -- what the process holds ----------------------------------------------------------------


def _status_field(pid: int, name: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{name}:"):
            return int(line.split()[1])
    raise AssertionError(f"no {name} in /proc/{pid}/status")


def rss_bytes(pid: int) -> int:
    return _status_field(pid, "VmRSS") * 1024


def threads(pid: int) -> int:
    return _status_field(pid, "Threads")


def descriptors(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


class PeakRss:
    """Samples a process's VmRSS every 20 ms while in the ``with`` block."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = rss_bytes(pid)
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._done.wait(0.02):
            self.peak = max(self.peak, rss_bytes(self.pid))

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._done.set()
        self._thread.join()


# -- raw clients ---------------------------------------------------------------------------


def connect(port: int, timeout: float = 5.0) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=timeout)


class Answers:
    """The answers that come on one connection, in order (pipelined ones included)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        # A bytearray: appending small chunks to bytes copies the whole buffer each time
        # (seconds of CPU for a 10 MiB answer through a 4 KiB receive buffer).
        self.buffer = bytearray()

    def _fill(self) -> bool:
        try:
            chunk = self.sock.recv(65536)
        except ConnectionResetError:
            return False
        self.buffer += chunk
        return bool(chunk)

    def next(self) -> tuple[int, bytes]:
        """(status, body) of the next answer; (0, b"") when the server closed without one."""
        while b"\r\n\r\n" not in self.buffer:
            if not self._fill():
                return 0, b""
        end = self.buffer.index(b"\r\n\r\n")
        head = bytes(self.buffer[:end])
        del self.buffer[: end + 4]
        lines = head.decode("latin-1").split("\r\n")
        length = next(int(v) for k, _, v in (line.partition(":") for line in lines[1:])
                      if k.strip().lower() == "content-length")  # fmt: skip
        while len(self.buffer) < length and self._fill():
            pass
        body = bytes(self.buffer[:length])
        del self.buffer[:length]
        return int(lines[0].split()[1]), body


def read_answer(sock: socket.socket) -> tuple[int, bytes]:
    """The one answer expected on ``sock`` now (nothing pipelined after it)."""
    return Answers(sock).next()


def exchange(port: int, request: bytes) -> int:
    """Send one request on a new connection; the status of the answer, 0 for none."""
    with connect(port) as sock:
        with contextlib.suppress(OSError):  # closed while sending: the answer says why
            sock.sendall(request)
        return read_answer(sock)[0]


def closed_by_peer(sock: socket.socket, within: float) -> bool:
    """True once the other end has closed (EOF or reset) within ``within`` seconds; the bytes
    that come meanwhile are read and dropped."""
    deadline = time.monotonic() + within
    while (left := deadline - time.monotonic()) > 0:
        readable, _, _ = select.select([sock], [], [], left)
        if not readable:
            return False
        try:
            if not sock.recv(65536):
                return True
        except (ConnectionResetError, BrokenPipeError):
            return True
        except ssl.SSLError:
            return True
    return False


def get(path: str, host: str = "127.0.0.1", extra: str = "") -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra}\r\n".encode()


def timed_get(url: str, **kwargs: Any) -> tuple[int, float]:
    start = time.monotonic()
    response = requests.get(url, timeout=10, **kwargs)
    return response.status_code, time.monotonic() - start


# -- the exporters -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ExporterProcess]:
    exporter = ExporterProcess(tmp_path_factory.mktemp("demo"), None, "--demo")
    exporter.wait_healthy()
    yield exporter
    exporter.stop()


# -- request heads -------------------------------------------------------------------------


@pytest.mark.process
def test_a_header_flood_gets_431_and_costs_kilobytes_a_connection(demo: ExporterProcess) -> None:
    # 99 header lines of 64 KB, then a 100th that never ends: http.client alone would keep
    # about 6 MiB for each such connection.
    line = b"X-Flood: " + b"a" * 64_000 + b"\r\n"

    def flood() -> tuple[socket.socket, int]:
        sock = connect(demo.port)
        try:
            sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
            for _ in range(99):
                sock.sendall(line)
            sock.sendall(b"X-Last: never finish")
        except OSError:
            pass  # cut off mid-flood
        try:
            return sock, read_answer(sock)[0]
        except TimeoutError:
            return sock, -1  # neither answered nor closed: still held

    before = rss_bytes(demo.process.pid)
    with PeakRss(demo.process.pid) as rss, ThreadPoolExecutor(20) as pool:
        outcomes = list(pool.map(lambda _: flood(), range(100)))
        status, seconds = timed_get(demo.url + "/metrics")
    for sock, _ in outcomes:
        sock.close()
    print(f"server limits: 100 header floods, answers {sorted({a for _, a in outcomes})}, RSS "
          f"{before / MiB:.0f} -> at most {rss.peak / MiB:.0f} MiB, a scrape meanwhile "
          f"{seconds * 1000:.0f} ms")  # fmt: skip
    assert {answer for _, answer in outcomes} <= {431, 0}  # 431, or closed before it is read
    assert rss.peak - before < 40 * MiB, f"RSS {before / MiB:.0f} -> {rss.peak / MiB:.0f} MiB"
    assert status == 200 and seconds < 2.0


@pytest.mark.process
def test_a_request_line_of_8_kib_is_served_and_a_longer_one_gets_414(demo: ExporterProcess) -> None:
    def request_line_of(size: int) -> bytes:
        fixed = len("GET /-/healthy?pad= HTTP/1.1")
        return f"GET /-/healthy?pad={'x' * (size - fixed)} HTTP/1.1\r\nHost: x\r\n\r\n".encode()

    assert MAX_REQUEST_LINE_BYTES == 8192
    assert exchange(demo.port, request_line_of(MAX_REQUEST_LINE_BYTES)) == 200
    assert exchange(demo.port, request_line_of(MAX_REQUEST_LINE_BYTES + 1)) == 414


@pytest.mark.process
def test_100_header_lines_are_served_and_101_get_431(demo: ExporterProcess) -> None:
    def with_headers(count: int) -> bytes:
        lines = "".join(f"X-Header-{n}: {n}\r\n" for n in range(count - 1))
        return f"GET /-/healthy HTTP/1.1\r\nHost: x\r\n{lines}\r\n".encode()

    assert MAX_HEADER_LINES == 100
    assert exchange(demo.port, with_headers(MAX_HEADER_LINES)) == 200
    assert exchange(demo.port, with_headers(MAX_HEADER_LINES + 1)) == 431


@pytest.mark.process
def test_64_kib_of_head_is_served_and_one_byte_more_gets_431(demo: ExporterProcess) -> None:
    def head_of(size: int) -> bytes:
        start = b"GET /-/healthy HTTP/1.1\r\nHost: x\r\n"
        filler = size - len(start) - len(b"X-Pad: \r\n\r\n")
        lines = [b"X-Pad: " + b"p" * 4000 + b"\r\n"] * (filler // 4009)
        last = filler - 4009 * len(lines)
        head = start + b"".join(lines) + b"X-Pad: " + b"p" * last + b"\r\n\r\n"
        assert len(head) == size
        return head

    assert MAX_HEADER_BYTES == 65536
    assert exchange(demo.port, head_of(MAX_HEADER_BYTES)) == 200
    assert exchange(demo.port, head_of(MAX_HEADER_BYTES + 1)) == 431


# -- deadlines -----------------------------------------------------------------------------


@pytest.mark.process
def test_a_request_trickled_a_byte_every_3s_is_cut_off_at_its_deadline(
    demo: ExporterProcess,
) -> None:
    sock = connect(demo.port, timeout=1)
    start = time.monotonic()
    sock.sendall(b"GET /-/healthy HTTP/1.1\r\n")
    closed_after = None
    try:
        while time.monotonic() - start < REQUEST_DEADLINE + 5:
            if closed_by_peer(sock, within=3.0):
                closed_after = time.monotonic() - start
                break
            sock.sendall(b"X")  # a steady trickle: never silent for long
    except OSError:
        closed_after = time.monotonic() - start
    finally:
        sock.close()
    assert closed_after is not None, "still open after the request deadline"
    assert REQUEST_DEADLINE - 0.5 < closed_after < REQUEST_DEADLINE + 5


@pytest.mark.process
def test_200_trickling_connections_hold_no_thread_and_a_scrape_answers_within_2s(
    demo: ExporterProcess,
) -> None:
    pid = demo.process.pid
    threads_before, descriptors_before, rss_before = threads(pid), descriptors(pid), rss_bytes(pid)
    held = [connect(demo.port) for _ in range(200)]
    try:
        for sock in held:
            sock.sendall(b"GET /metrics HTTP/1.1\r\nX-Slow: ")
        time.sleep(0.5)
        for sock in held:
            sock.sendall(b"x")
        status, seconds = timed_get(demo.url + "/metrics", headers={"Accept": PROMETHEUS_ACCEPT})
        threads_during, descriptors_during = threads(pid), descriptors(pid)
        rss_during = rss_bytes(pid)
    finally:
        for sock in held:
            sock.close()
    assert status == 200 and seconds < 2.0
    print(f"server limits: 200 trickling connections, threads {threads_before} -> "
          f"{threads_during}, descriptors {descriptors_before} -> {descriptors_during}, RSS +"
          f"{(rss_during - rss_before) / MiB:.1f} MiB")  # fmt: skip
    # Every connection is a descriptor; none is a thread (the demo's simulator may start one).
    assert threads_during <= threads_before + 3, (threads_before, threads_during)
    assert descriptors_during <= descriptors_before + 200 + 10
    assert rss_during - rss_before < 20 * MiB


@pytest.mark.process
def test_prometheus_like_scrapes_reuse_one_kept_alive_connection(demo: ExporterProcess) -> None:
    sock = connect(demo.port)
    scrape = get("/metrics", extra=f"Accept: {PROMETHEUS_ACCEPT}\r\nAccept-Encoding: gzip\r\n")
    try:
        for _ in range(3):
            sock.sendall(scrape)
            status, body = read_answer(sock)
            assert status == 200 and body
            time.sleep(0.5)
    finally:
        sock.close()


@pytest.mark.process
def test_a_skipped_body_and_pipelined_requests_are_answered_in_order(
    demo: ExporterProcess,
) -> None:
    with connect(demo.port) as sock:
        sock.sendall(b"POST /nowhere HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
                     + get("/-/healthy") + get("/nowhere"))  # fmt: skip
        answers = Answers(sock)
        assert [answers.next()[0] for _ in range(3)] == [404, 200, 404]


# -- connections and descriptors -----------------------------------------------------------


FILE_LIMIT = 256


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ExporterProcess]:
    """An exporter polling a simulator every second, its file limit lowered to 256."""
    simulator = Simulator(instances=3, seed=11)
    simulator.start()
    exporter = ExporterProcess(tmp_path_factory.mktemp("limited"),
                               simulator.exporter_config(poll_interval="1s"))  # fmt: skip
    try:
        exporter.wait_ready()
        _, hard = resource.prlimit(exporter.process.pid, resource.RLIMIT_NOFILE)
        resource.prlimit(exporter.process.pid, resource.RLIMIT_NOFILE, (FILE_LIMIT, hard))
        yield exporter
    finally:
        exporter.stop()
        simulator.stop()


def successful_polls(exporter: ExporterProcess) -> float:
    samples = exporter.scrape()
    return sum(v for (name, labels), v in samples.items()
               if name == "greenapi_polls_total" and ("result", "success") in labels)  # fmt: skip


def open_sockets(port: int, count: int) -> list[socket.socket]:
    return [connect(port) for _ in range(count)]


@pytest.mark.process
def test_at_the_connection_limit_the_polls_keep_their_descriptors(limited: ExporterProcess) -> None:
    pid = limited.process.pid
    limit = connection_limit(FILE_LIMIT, concurrency=8)
    assert limit == 48  # 256 - (18 * 8 + 64)
    polls_before, descriptors_before = successful_polls(limited), descriptors(pid)
    held = open_sockets(limited.port, 600)
    try:
        time.sleep(2.0)  # two polls of each instance
        descriptors_during = descriptors(pid)
        status, seconds = timed_get(limited.url + "/metrics")
        samples = parse_samples(requests.get(limited.url + "/metrics", timeout=10).text)
    finally:
        for sock in held:
            sock.close()
    print(f"server limits: 600 silent sockets at a file limit of {FILE_LIMIT}, descriptors "
          f"{descriptors_before} -> {descriptors_during}, a scrape {seconds * 1000:.0f} ms, "
          f"polls {polls_before:.0f} -> {successful_polls(limited):.0f}")  # fmt: skip
    assert descriptors_during <= descriptors_before + limit + 8 < FILE_LIMIT
    assert status == 200 and seconds < 2.0
    assert successful_polls(limited) > polls_before + 3
    for name in ("sim-1", "sim-2", "sim-3"):
        assert value(samples, "greenapi_up", name=name) == 1
    assert "Too many open files" not in limited.log()


@pytest.mark.process
def test_connections_beyond_the_limit_are_closed_at_once_without_spinning(
    limited: ExporterProcess,
) -> None:
    pid = limited.process.pid
    threads_before = threads(pid)
    held = open_sockets(limited.port, 600)
    try:
        cpu_start = cpu_seconds(pid)
        time.sleep(2.0)
        cpu = cpu_seconds(pid) - cpu_start
        closed = sum(closed_by_peer(sock, within=0.01) for sock in held)
        threads_during = threads(pid)
    finally:
        for sock in held:
            sock.close()
    limit = connection_limit(FILE_LIMIT, concurrency=8)
    print(f"server limits: 600 silent sockets at a file limit of {FILE_LIMIT}, {closed} closed at "
          f"once, CPU {cpu:.2f} s in 2 s, threads {threads_before} -> {threads_during}")  # fmt: skip
    assert closed >= len(held) - limit, f"{closed} of {len(held)} closed"
    assert cpu < 0.5, f"{cpu:.2f} s of CPU in 2 s with {len(held) - closed} connections held"
    assert threads_during <= threads_before + 2


# -- TLS and basic auth ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "server.crt", directory / "server.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


PASSWORD = "scrape-me"


def basic(password: str, user: str = "prometheus") -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def tls_and_auth(directory: Path, certificate: tuple[Path, Path], cost: int) -> Path:
    cert, key = certificate
    path = directory / "web.yml"
    path.write_text(yaml.safe_dump({
        "tls_server_config": {"cert_file": str(cert), "key_file": str(key)},
        "basic_auth_users": {"prometheus": bcrypt.hashpw(PASSWORD.encode(),
                                                         bcrypt.gensalt(cost)).decode()},
    }))  # fmt: skip
    return path


class Guarded:
    """An exporter behind TLS and basic auth (a cost-12 hash: 0.1-0.3 s a check), against a
    simulator."""

    def __init__(self, exporter: ExporterProcess, cert: Path, simulator: Simulator) -> None:
        self.exporter, self.cert, self.simulator = exporter, cert, simulator
        self.url = exporter.url.replace("http://", "https://")
        self.port = exporter.port

    def get(self, path: str, password: str | None = PASSWORD) -> requests.Response:
        headers = {"Authorization": basic(password)} if password is not None else {}
        return requests.get(self.url + path, headers=headers, verify=str(self.cert), timeout=10)

    def tls(self, timeout: float = 5.0) -> ssl.SSLSocket:
        context = ssl.create_default_context(cafile=str(self.cert))
        return context.wrap_socket(connect(self.port, timeout), server_hostname="127.0.0.1")


@pytest.fixture(scope="module")
def guarded(
    tmp_path_factory: pytest.TempPathFactory, certificate: tuple[Path, Path]
) -> Iterator[Guarded]:
    directory = tmp_path_factory.mktemp("guarded")
    simulator = Simulator(instances=2, seed=5)
    simulator.start()
    exporter = ExporterProcess(directory, simulator.exporter_config(poll_interval="1s"),
                               "--web.config.file",
                               str(tls_and_auth(directory, certificate, cost=12)))  # fmt: skip
    try:
        server = Guarded(exporter, certificate[0], simulator)
        wait_until(lambda: server.get("/-/ready").status_code == 200, timeout=30)
        yield server
    finally:
        exporter.stop()
        simulator.stop()


@pytest.mark.process
def test_the_401_is_sent_before_the_body_is_read(guarded: Guarded) -> None:
    with guarded.tls(timeout=3) as sock:
        sock.sendall(b"POST /-/reload HTTP/1.1\r\nHost: x\r\nContent-Length: 60000\r\n\r\n")
        assert read_answer(sock)[0] == 401  # the 60,000 bytes were never sent


@pytest.mark.process
def test_a_reload_without_valid_credentials_reloads_nothing(guarded: Guarded) -> None:
    config = guarded.simulator.exporter_config(poll_interval="1s")
    config["instances"] = config["instances"][:1]
    guarded.exporter.write_config(config)
    try:
        for password in (None, "wrong"):
            headers = {"Authorization": basic(password)} if password else {}
            answer = requests.post(guarded.url + "/-/reload", headers=headers,
                                   verify=str(guarded.cert), timeout=10)  # fmt: skip
            assert answer.status_code == 401
        samples = parse_samples(guarded.get("/metrics").text)
        assert value(samples, "greenapi_up", name="sim-2") is not None  # still configured
        assert "configuration reloaded" not in guarded.exporter.log()
    finally:
        guarded.exporter.write_config(guarded.simulator.exporter_config(poll_interval="1s"))


@pytest.mark.process
def test_password_guesses_do_not_delay_a_scraper_whose_password_has_passed(
    guarded: Guarded,
) -> None:
    assert guarded.get("/metrics").status_code == 200  # checked once, then remembered
    stop = threading.Event()
    guessed: list[int] = []

    def guess(worker: int) -> None:
        attempt = 0
        while not stop.is_set():
            attempt += 1
            answer = guarded.get("/metrics", password=f"guess-{worker}-{attempt}")
            guessed.append(answer.status_code)

    with ThreadPoolExecutor(12) as pool:
        for worker in range(12):
            pool.submit(guess, worker)
        try:
            time.sleep(0.5)
            timings = []
            for _ in range(5):
                status, seconds = timed_get(guarded.url + "/metrics", verify=str(guarded.cert),
                                            headers={"Authorization": basic(PASSWORD)})  # fmt: skip
                timings.append((status, seconds))
        finally:
            stop.set()
    assert all(status == 200 and seconds < 2.0 for status, seconds in timings), timings
    assert set(guessed) <= {401, 503} and 503 in guessed  # guesses beyond two wait for none


@pytest.mark.process
def test_connections_stuck_in_the_tls_handshake_hold_no_thread(guarded: Guarded) -> None:
    pid = guarded.exporter.process.pid
    threads_before = threads(pid)
    held = open_sockets(guarded.port, 100)
    try:
        for sock in held:
            sock.sendall(b"\x16\x03\x01")  # the first bytes of a ClientHello, and no more
        time.sleep(0.3)
        threads_during = threads(pid)
        status, seconds = timed_get(guarded.url + "/-/healthy", verify=str(guarded.cert),
                                    headers={"Authorization": basic(PASSWORD)})  # fmt: skip
    finally:
        for sock in held:
            sock.close()
    assert status == 200 and seconds < 2.0
    assert threads_during <= threads_before + 2


# -- in this process, with an injected clock -------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        time.sleep(0.1)  # what has come so far is seen at the time before, in a few turns of
        self.now += seconds  # the server's loop (it looks every 10 ms),
        time.sleep(0.1)  # and then what is due at the time after


def config_of(instances: int) -> Config:
    document = {"instances": [
        {"name": f"bot-{n}", "id_instance": str(1101000000 + n), "api_token": "t" * 40,
         "api_url": "http://127.0.0.1:9"}
        for n in range(instances)
    ]}  # fmt: skip
    return parse_config(document, "config.yaml", {})


Serve = Callable[..., ExporterServer]


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def serve(clock: Clock) -> Iterator[Serve]:
    """Start an ExporterServer on loopback for an exporter that never polls."""
    started: list[tuple[ExporterServer, threading.Thread]] = []

    def start(limits: ServerLimits = DEFAULT_LIMITS, web: WebConfig | None = None,
              instances: int = 2, load: Callable[[], Config] | None = None) -> ExporterServer:  # fmt: skip
        exporter = Exporter(load or (lambda: config_of(instances)))
        server = ExporterServer(("127.0.0.1", 0), exporter, Secrets(), web=web, limits=limits,
                                clock=clock)  # fmt: skip
        thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
        thread.start()
        started.append((server, thread))
        return server

    yield start
    for server, thread in started:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_the_connection_limit_is_what_the_file_limit_leaves_after_the_polls() -> None:
    assert descriptors_for_polls(8) == 208
    assert connection_limit(1024, 8) == MAX_CONNECTIONS == 512  # 816 left: the cap
    assert connection_limit(1024, 32) == 1024 - (18 * 32 + 64)
    assert connection_limit(256, 8) == 48
    assert connection_limit(100, 8) == MIN_CONNECTIONS
    assert connection_limit(None, 8) == MAX_CONNECTIONS


def test_an_idle_kept_alive_connection_is_closed_after_the_idle_timeout(
    serve: Serve, clock: Clock
) -> None:
    server = serve()
    with connect(server.port) as sock:
        sock.sendall(get("/-/healthy"))
        assert read_answer(sock)[0] == 200
        clock.advance(IDLE_TIMEOUT - 1)
        sock.sendall(get("/-/healthy"))  # idle, but not for long enough
        assert read_answer(sock)[0] == 200
        clock.advance(IDLE_TIMEOUT + 1)
        assert closed_by_peer(sock, within=2.0)


def test_the_body_must_arrive_within_the_request_deadline(serve: Serve, clock: Clock) -> None:
    server = serve()
    with connect(server.port) as sock:
        sock.sendall(b"POST /nowhere HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789")
        assert read_answer(sock)[0] == 404  # answered at once; the body is skipped after
        clock.advance(REQUEST_DEADLINE - 1)
        assert not closed_by_peer(sock, within=0.2)
        clock.advance(2)
        assert closed_by_peer(sock, within=2.0)


def test_a_body_over_the_limit_gets_413_and_the_connection_closes(serve: Serve) -> None:
    server = serve()
    with connect(server.port) as sock:
        sock.sendall(f"POST /-/reload HTTP/1.1\r\nHost: x\r\nContent-Length: {64 * 1024 + 1}"
                     "\r\n\r\n".encode())  # fmt: skip
        assert read_answer(sock)[0] == 413
        assert closed_by_peer(sock, within=2.0)


@pytest.mark.process  # openssl makes the certificate
def test_a_tls_handshake_is_cut_off_after_its_timeout(
    serve: Serve, clock: Clock, certificate: tuple[Path, Path], tmp_path: Path
) -> None:
    cert, key = certificate
    path = tmp_path / "web.yml"
    path.write_text(yaml.safe_dump({"tls_server_config": {"cert_file": str(cert),
                                                          "key_file": str(key)}}))  # fmt: skip
    server = serve(web=load_web_config(str(path)))
    with connect(server.port) as silent:
        clock.advance(HANDSHAKE_TIMEOUT - 1)
        assert not closed_by_peer(silent, within=0.2)
        clock.advance(2)
        assert closed_by_peer(silent, within=2.0)


SLOW_INSTANCES = 2000  # /metrics of that many (never polled) instances: about 11 MB


def slow_reader(port: int) -> socket.socket:
    """A connection that asks for /metrics and takes almost none of it (a 4 KiB receive
    buffer, never read), once the answer has begun to come. The kernel holds up to 4 MiB of
    an answer (``tcp_wmem``); the rest stays with the server."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(10)
    sock.connect(("127.0.0.1", port))
    sock.sendall(get("/metrics"))
    assert select.select([sock], [], [], 10)[0], "no answer within 10 s"
    return sock


def received_until_closed(sock: socket.socket) -> int:
    total = 0
    while chunk := sock.recv(65536):
        total += len(chunk)
    return total


def test_an_answer_the_client_does_not_read_is_dropped_after_its_deadline(
    serve: Serve, clock: Clock
) -> None:
    server = serve(instances=SLOW_INSTANCES)
    with slow_reader(server.port) as sock:
        clock.advance(ANSWER_DEADLINE + 1)
        assert received_until_closed(sock) < 6 * MiB  # what the kernel held, then the end


def test_slow_readers_over_the_answer_budget_lose_the_oldest_answer(serve: Serve) -> None:
    server = serve(instances=SLOW_INSTANCES, limits=ServerLimits(answer_bytes=1 * MiB))
    with slow_reader(server.port) as oldest, slow_reader(server.port) as newest:
        assert received_until_closed(oldest) < 6 * MiB  # dropped for the newer one
        status, exposition = read_answer(newest)
        assert status == 200 and len(exposition) > 10 * MiB  # kept whole


def test_at_the_connection_limit_the_longest_waiting_stranger_makes_room(serve: Serve) -> None:
    server = serve(limits=ServerLimits(connections=4))
    with connect(server.port) as scraper:
        scraper.sendall(get("/-/healthy"))
        assert read_answer(scraper)[0] == 200  # an answer below 400: evicted last
        strangers = []
        for _ in range(5):
            strangers.append(connect(server.port))
            time.sleep(0.1)
        try:
            # Room for 4: the scraper and the 3 newest strangers; the 2 oldest were closed.
            assert [closed_by_peer(s, within=0.3) for s in strangers] == [True, True] + [False] * 3
            scraper.sendall(get("/-/healthy"))
            assert read_answer(scraper)[0] == 200
        finally:
            for stranger in strangers:
                stranger.close()


def test_requests_beyond_the_workers_and_their_queue_get_503_at_once(serve: Serve) -> None:
    release = threading.Event()
    loads = iter([False, True])

    def load() -> Config:  # the first call is the start's; the reload's waits for release
        if next(loads, True):
            release.wait(10)
        return config_of(2)

    server = serve(limits=ServerLimits(workers=1, queued_requests=0), load=load)
    with connect(server.port) as reloading, connect(server.port) as other:
        reloading.sendall(b"POST /-/reload HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(0.3)  # the only worker is in the reload
        other.sendall(get("/-/healthy"))
        assert read_answer(other)[0] == 503
        release.set()
        assert read_answer(reloading)[0] == 200
