"""The simulator over HTTP: :class:`Simulator` (a Fleet with a server) and its handler.

``GET /waInstance{id}/{method}/{token}`` (and the same under ``/v3``) is answered like the
real API: an unknown id is 403, a wrong token 401, an unknown method 404, more than one
request a second per instance and method 429 (unless the rate limit is off), a
non-integer ``minutes`` 400; then the instance's fault, if it has one for this method
(:mod:`exporter.simulator.faults`), or the normal answer. Every answered request is logged
with the token hidden. Everything under ``/_sim/`` goes to the control API
(:mod:`exporter.simulator.control`).
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import struct
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import SplitResult, parse_qs, urlsplit

from exporter.simulator.control import handle
from exporter.simulator.faults import FAULTS, METHODS
from exporter.simulator.fleet import Fleet
from exporter.simulator.traffic import SimulatedInstance

_PATH = re.compile(r"^(?:/v3)?/waInstance(\d+)/([A-Za-z]+)/([^/]+)/?$")
_POLL_INTERVAL = 0.05  # how soon serve_forever notices stop(): tests stop simulators often


class Simulator(Fleet):
    """A fake GREEN-API. ``start()`` serves it on ``url``; ``stop()`` ends it."""

    _server: _Server | None = None

    def start(self) -> None:
        server = _Server((self.host, self.port), self)
        self._server = server
        self.port = int(server.server_address[1])
        threading.Thread(target=server.serve_forever, args=(_POLL_INTERVAL,), name="simulator",
                         daemon=True).start()  # fmt: skip

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.stopping.set()  # ends the hanging and delayed answers
            server.shutdown()
            server.server_close()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], fleet: Fleet) -> None:
        self.fleet = fleet
        self.stopping = threading.Event()
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients that hang up (timeouts are the point of some faults) are normal here


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    server_version = "GreenApiSimulator/1.0"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    @property
    def fleet(self) -> Fleet:
        return self.server.fleet

    # --- the fake API -------------------------------------------------------------------

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if url.path.startswith("/_sim/"):
            self._control("GET", url.path)
            return
        match = _PATH.match(url.path)
        if match is None:
            self.send_json(404, {"message": "not found"})
            return
        id_instance, method, token = match.groups()
        instance = next((i for i in self.fleet.instances if i.id_instance == id_instance), None)
        if instance is None:
            self.send_json(403, {"message": "instance not found or access denied"})
            return
        minutes = parse_qs(url.query).get("minutes", [None])[0]
        request = _Request(self, instance, method, url, minutes)
        if token != instance.token:
            request.refuse(401, "Unauthorized")
        elif method not in METHODS:
            request.refuse(404, f"method {method} not found")
        elif self.fleet.rate_limit and not self._within_rate(instance, method):
            request.refuse(429, "Too Many Requests")
        elif request.minutes_raw is not None and not request.minutes_raw.isdigit():
            request.refuse(400, "minutes must be an integer")
        else:
            self._answer(request)

    def _answer(self, request: _Request) -> None:
        instance = request.instance
        with instance.lock:
            fault = instance.fault
        if fault is not None and fault[2] in (None, request.method):
            mode, params, _ = fault
            if FAULTS[mode].answer(request, params):
                return
        request.record(200)
        self.send_json(200, self.normal_body(instance, request.method, self.fleet.clock(),
                                             request.minutes))  # fmt: skip

    def normal_body(
        self, instance: SimulatedInstance, method: str, now: float, minutes: int
    ) -> Any:
        """The normal answer of ``method`` at ``now``."""
        depth = self.fleet.depth
        with instance.lock:
            if method == "lastOutgoingMessages":
                return instance.journal(now, minutes, depth)
            if method == "lastIncomingMessages":
                return instance.incoming(now, minutes, depth)
            if method == "getStateInstance":
                state = instance.effective_state(now)
                return None if state is None else {"stateInstance": state}
            count = instance.queue_length(now, depth)
            return {"\u0441ount" if instance.queue_cyrillic else "count": count}

    def _within_rate(self, instance: SimulatedInstance, method: str) -> bool:
        now = time.monotonic()
        with instance.lock:
            last = instance.last_request.get(method)
            if last is not None and now - last < 1.0:
                return False
            instance.last_request[method] = now
            return True

    # --- control API ----------------------------------------------------------------------

    def do_PUT(self) -> None:
        self._control("PUT", urlsplit(self.path).path)

    def do_DELETE(self) -> None:
        self._control("DELETE", urlsplit(self.path).path)

    def _control(self, verb: str, path: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None  # read even when refused
        status, reply = handle(self.fleet, verb, path, body)
        self.send_json(status, reply)

    # --- answers ----------------------------------------------------------------------

    def send_json(self, status: int, body: Any, headers: Mapping[str, str] | None = None) -> None:
        self.send(status, json.dumps(body, ensure_ascii=False).encode("utf-8"),
                  "application/json", headers)  # fmt: skip

    def send(self, status: int, body: bytes, content_type: str = "application/json",
             headers: Mapping[str, str] | None = None) -> None:  # fmt: skip
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        try:
            self.wfile.write(body)
        except OSError:
            self.close_connection = True

    def stream(self, length: int, chunks: Iterable[bytes]) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(length))
        self.end_headers()
        try:
            for chunk in chunks:
                self.wfile.write(chunk)
        except OSError:
            self.close_connection = True

    def finish(self) -> None:
        # The connection may have been reset on purpose, or the client gave up.
        with contextlib.suppress(OSError):
            super().finish()


@dataclass
class _Request:
    """One request to the fake API, as logged and as a fault answers it (an Exchange)."""

    handler: _Handler
    instance: SimulatedInstance
    method: str
    url: SplitResult
    minutes_raw: str | None
    now: float = field(init=False)  # faults answer as of the moment the request came

    def __post_init__(self) -> None:
        self.now = self.handler.fleet.clock()

    @property
    def minutes(self) -> int:
        return 1440 if self.minutes_raw is None else int(self.minutes_raw)

    def refuse(self, status: int, message: str) -> None:
        self.record(status)
        self.handler.send_json(status, {"message": message})

    def record(self, status: int) -> None:
        instance = self.instance
        path = self.url.path.replace(f"/{instance.token}", "/<token>")
        if instance.token not in self.handler.path:  # a wrong token is hidden as well
            path = re.sub(r"(/waInstance\d+/[A-Za-z]+/)[^/]+", r"\1<token>", self.url.path)
        with instance.lock:
            instance.log.append({"time": time.time(), "method": self.method, "path": path,
                                 "minutes": self.minutes_raw, "status": status})  # fmt: skip

    def normal_body(self) -> Any:
        return self.handler.normal_body(self.instance, self.method, self.now, self.minutes)

    def send(self, status: int, body: bytes, content_type: str = "application/json",
             headers: Mapping[str, str] | None = None) -> None:  # fmt: skip
        self.handler.send(status, body, content_type, headers)

    def send_json(self, status: int, body: Any, headers: Mapping[str, str] | None = None) -> None:
        self.handler.send_json(status, body, headers)

    def stream(self, length: int, chunks: Iterable[bytes]) -> None:
        self.handler.stream(length, chunks)

    def wait(self, seconds: float | None) -> bool:
        return self.handler.server.stopping.wait(seconds)

    def close(self) -> None:
        self.handler.close_connection = True

    def reset(self) -> None:
        connection = self.handler.connection
        connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        connection.close()
        self.handler.close_connection = True
