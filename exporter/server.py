"""The exporter's HTTP endpoints (README, "Endpoints"). Every answer is built from snapshots: a scrape
never waits on GREEN-API."""

from __future__ import annotations

import gzip
import logging
import socket
import ssl
import threading
import time
import weakref
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
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
from exporter.pages import DeliveryHistory, config_page, status_page
from exporter.web_config import WebConfig

log = logging.getLogger("exporter.server")


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


class ExporterServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(
        self,
        address: tuple[str, int],
        exporter: Exporter,
        secrets: Secrets,
        telemetry_path: str = "/metrics",
        family: socket.AddressFamily = socket.AF_INET,
        enable_reload: bool = True,
        web: WebConfig | None = None,
    ) -> None:
        self.address_family = family
        self.web = web or WebConfig()
        self.exporter = exporter
        self.secrets = secrets
        self.telemetry_path = telemetry_path
        self.enable_reload = enable_reload
        self.registry, self.runtime_registry = build_registries(exporter)
        super().__init__(address, _Handler, bind_and_activate=False)
        if family == socket.AF_INET6:
            # ":9935" listens on IPv4 and IPv6 alike, as the Go exporters do.
            self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        try:
            self.server_bind()
            self.server_activate()
        except BaseException:
            self.server_close()
            raise
        if self.web.ssl_context is not None:
            # The handshake happens in the request's own thread (see _Handler.setup), so a
            # slow or broken client never holds up accepting others.
            self.socket = self.web.ssl_context.wrap_socket(
                self.socket, server_side=True, do_handshake_on_connect=False
            )

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Failed TLS handshakes, resets and timeouts of clients: not worth a traceback.
        log.debug("http connection failed", extra={"client": str(client_address[0])}, exc_info=True)

    @property
    def port(self) -> int:
        return int(self.server_address[1])


class _Handler(BaseHTTPRequestHandler):
    server: ExporterServer
    protocol_version = "HTTP/1.1"
    server_version = "greenapi-exporter"
    sys_version = ""
    timeout = 30  # seconds a client may stay silent; bounds threads held by idle clients

    def setup(self) -> None:
        super().setup()
        if isinstance(self.connection, ssl.SSLSocket):
            self.connection.do_handshake()

    def _authorized(self) -> bool:
        if self.server.web.authorized(self.headers.get("Authorization")):
            return True
        self._send_text(HTTPStatus.UNAUTHORIZED, "Unauthorized.\n",
                        extra_headers=dict(self.server.web.unauthorized_headers))  # fmt: skip
        return False

    def do_GET(self) -> None:
        if not self._authorized():
            return
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
        self._discard_body()
        if not self._authorized():
            return
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

    def _discard_body(self) -> None:
        length = self.headers.get("Content-Length")
        if length and length.isdigit():
            self.rfile.read(min(int(length), 1 << 20))

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
        history = _history_of(self.server)
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
        for key, value in {**self.server.web.headers, **(extra_headers or {})}.items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_HEAD(self) -> None:
        self.do_GET()

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("http request", extra={"client": self.client_address[0], "line": format % args})


# The status page's memory of each server's recent delivery outcomes (exporter.pages,
# "the recent span"), kept beside the server rather than in it.
_HISTORIES: weakref.WeakKeyDictionary[ExporterServer, DeliveryHistory] = weakref.WeakKeyDictionary()
_HISTORIES_LOCK = threading.Lock()


def _history_of(server: ExporterServer) -> DeliveryHistory:
    with _HISTORIES_LOCK:
        history = _HISTORIES.get(server)
        if history is None:
            history = _HISTORIES[server] = DeliveryHistory()
        return history
