"""``greenapi-exporter``: flags, then configuration, exporter and HTTP server wired together.

Exit codes: 0 normal stop, 1 bad flags or configuration, 2 the address cannot be bound.
"""

from __future__ import annotations

import argparse
import logging
import os
import queue
import re
import signal
import socket
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import FrameType
from typing import NoReturn

from exporter import __version__
from exporter.app import Exporter
from exporter.config import COLLECTORS, Config, ConfigError, load_config, parse_config
from exporter.logs import FORMATS, LEVEL_ALIASES, LEVELS, Secrets, setup_logging
from exporter.memory import Allocator
from exporter.web_config import WebConfig, WebConfigError, load_web_config

log = logging.getLogger("exporter.cli")

ENV_PREFIX = "GREENAPI_EXPORTER_"
DEFAULT_PORT = 9935
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}
# How often the HTTP server's loop looks for a stop request: SIGTERM is answered within
# this (the standard library's 0.5 s default would hold every stop up by as much).
SHUTDOWN_POLL_INTERVAL = 0.05


class UsageError(Exception):
    """A bad flag or flag value: reported in one line, exit 1."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def env_name(flag: str) -> str:
    """``--web.listen-address`` → ``GREENAPI_EXPORTER_WEB_LISTEN_ADDRESS``."""
    return ENV_PREFIX + flag.lstrip("-").replace(".", "_").replace("-", "_").upper()


def build_parser(environ: Mapping[str, str]) -> argparse.ArgumentParser:
    parser = _Parser(
        prog="greenapi-exporter",
        description="Prometheus exporter for GREEN-API's outgoing message journal. "
        f"Every flag can also be set as {ENV_PREFIX}<FLAG> (dots and dashes as "
        "underscores); a flag wins over the variable.",
    )

    def value(
        flag: str, default: str, help_text: str, choices: Sequence[str] | None = None
    ) -> None:
        parser.add_argument(
            flag,
            dest=flag.lstrip("-").replace(".", "_").replace("-", "_"),
            default=environ.get(env_name(flag), default),
            choices=choices,
            metavar=None if choices else flag.rsplit(".", 1)[-1].upper().replace("-", "_"),
            help=f"{help_text} (env {env_name(flag)}; default {default or 'none'})",
        )

    def switch(flag: str, help_text: str) -> None:
        raw = environ.get(env_name(flag), "").strip().lower()
        if raw not in _TRUE | _FALSE:
            raise UsageError(f"{env_name(flag)}: expected true or false, got {raw!r}")
        parser.add_argument(
            flag,
            dest=flag.lstrip("-").replace(".", "_").replace("-", "_"),
            action="store_true",
            default=raw in _TRUE,
            help=f"{help_text} (env {env_name(flag)})",
        )

    value("--config.file", "config.yaml", "YAML configuration file")
    value("--web.listen-address", f":{DEFAULT_PORT}", "address to listen on, HOST:PORT")
    value("--web.telemetry-path", "/metrics", "path under which to expose metrics")
    value("--web.config.file", "", "TLS and basic-auth settings (exporter-toolkit web-config.yml)")
    value(
        "--shard.index",
        "0",
        "this replica's shard, 0-based; a name ending in -N (a StatefulSet pod name) means N",
    )
    value("--shard.count", "1", "replicas that split the instances by a hash of id_instance")
    value("--log.level", "info", "log level", choices=(*LEVELS, *LEVEL_ALIASES))
    value("--log.format", "logfmt", "log format", choices=FORMATS)
    switch("--web.disable-reload", "refuse POST /-/reload (SIGHUP still reloads)")
    switch("--demo", "run against an embedded GREEN-API simulator: no account needed")
    switch("--check-config", "validate the configuration, print a summary, exit 0 or 1")
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    return parser


@dataclass(frozen=True)
class ListenAddress:
    host: str
    port: int
    family: socket.AddressFamily

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def parse_listen_address(text: str) -> ListenAddress:
    """``:9935``, ``127.0.0.1:9935``, ``[::1]:9935`` or ``localhost:9935``."""
    host, sep, port_text = text.rpartition(":")
    if not sep:
        raise UsageError(
            f"--web.listen-address: {text!r} has no port: give HOST:PORT, e.g. :9935 or "
            "127.0.0.1:9935"
        )
    if not port_text.isascii() or not port_text.isdigit():
        raise UsageError(f"--web.listen-address: port {port_text!r} is not a number (e.g. :9935)")
    port = int(port_text)
    if port > 65535:
        raise UsageError(f"--web.listen-address: port {port} is out of range (0 to 65535)")
    if host.startswith("[") and host.endswith("]"):
        return ListenAddress(host[1:-1], port, socket.AF_INET6)
    if not host:
        if socket.has_dualstack_ipv6():
            return ListenAddress("::", port, socket.AF_INET6)
        return ListenAddress("0.0.0.0", port, socket.AF_INET)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise UsageError(f"--web.listen-address: cannot resolve {host!r}: {exc.strerror}") from None
    family, _, _, _, sockaddr = infos[0]
    return ListenAddress(str(sockaddr[0]), port, family)


def parse_shard(index_text: str, count_text: str) -> tuple[int, int]:
    """``--shard.index`` and ``--shard.count``; the index may be a pod name like ``exp-2``."""
    if not count_text.isdigit() or int(count_text) < 1:
        raise UsageError(f"--shard.count: expected a whole number >= 1, got {count_text!r}")
    match = re.fullmatch(r"(?:.+-)?(\d+)", index_text.strip())
    if match is None:
        raise UsageError(
            f"--shard.index: expected a number or a name ending in -N, got {index_text!r}"
        )
    index, count = int(match.group(1)), int(count_text)
    if index >= count:
        raise UsageError(f"--shard.index: {index} is not below --shard.count {count}")
    return index, count


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    environ = os.environ if environ is None else environ
    try:
        args = build_parser(environ).parse_args(argv)
        if args.version:
            print(f"greenapi-exporter {__version__}")
            return 0
        # Choices bind flags, not the environment variables that set their defaults.
        for flag, given, allowed in (
            ("--log.level", args.log_level, (*LEVELS, *LEVEL_ALIASES)),
            ("--log.format", args.log_format, FORMATS),
        ):
            if given not in allowed:
                raise UsageError(f"{flag}: {given!r} is not one of {', '.join(allowed)}")
        args.log_level = LEVEL_ALIASES.get(args.log_level, args.log_level)
        listen = parse_listen_address(args.web_listen_address)
        if not args.web_telemetry_path.startswith("/") or args.web_telemetry_path in {
            "/", "/probe", "/-/healthy", "/-/ready", "/-/reload",
        }:  # fmt: skip
            raise UsageError(
                f"--web.telemetry-path: {args.web_telemetry_path!r} must be a free path starting with '/'"
            )
        web = load_web_config(args.web_config_file) if args.web_config_file else None
        shard_index, shard_count = parse_shard(args.shard_index, args.shard_count)
    except UsageError as exc:
        print(f"greenapi-exporter: {exc}", file=sys.stderr)
        return 1
    except WebConfigError as exc:
        print(exc, file=sys.stderr)
        return 1

    secrets = Secrets()
    setup_logging(args.log_level, args.log_format, secrets)
    for warning in web.warnings if web is not None else ():
        log.warning(warning)
    allocator = Allocator(environ)
    allocator.configure()  # before any thread starts: arenas are made per thread

    stop_simulator: Callable[[], None] = lambda: None  # noqa: E731
    if args.demo:
        load_all, stop_simulator = _start_demo()
    else:
        path = args.config_file

        def load_all() -> Config:
            return load_config(path, environ)

    def load() -> Config:
        return load_all().for_shard(shard_index, shard_count)

    try:
        if args.check_config:
            return _check_config(load)
        try:
            exporter = Exporter(load, secrets, allocator=allocator)
        except ConfigError as exc:
            print(exc, file=sys.stderr)
            if not args.demo and not os.path.exists(args.config_file):
                print(_NO_CONFIG_HINT.format(path=args.config_file), file=sys.stderr)
            return 1
        for warning in exporter.config.warnings:
            log.warning(warning)
        return _serve(exporter, secrets, listen, args, web)
    finally:
        stop_simulator()


_NO_CONFIG_HINT = (
    "greenapi-exporter: no configuration file at {path}. Start from config.example.yaml (every "
    "line is commented), name another file with --config.file PATH, or try the exporter "
    "without an account: greenapi-exporter --demo"
)


def _check_config(load: Callable[[], Config]) -> int:
    try:
        config = load()
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 1
    print(config.summary())
    for warning in config.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return 0


DEMO_STORY = (
    "demo: open {url}/ and {url}/metrics. shop-bot delivers normally; support-bot loses its "
    "authorization 30 s after start for 10 minutes while its send queue grows; stuck-bot's "
    "deliveries stall from 1 minute after start, so its in-time share drops within minutes "
    "(GreenApiDeliveryStalled, with prometheus/alerts.yml loaded); max-channel's journal "
    "carries no statuses, so nothing is judged and nothing fires."
)


def _start_demo() -> tuple[Callable[[], Config], Callable[[], None]]:
    from exporter.simulator import DEMO_UNDELIVERED_AFTER, Simulator  # only the demo needs it

    simulator = Simulator.demo()
    simulator.start()
    # Every collector: the demo shows support-bot losing its authorization and its send
    # queue growing meanwhile, and stuck-bot's deliveries stalling (see Simulator.demo).
    # A shorter undelivered_after than the default lets the stall show within minutes.
    document = simulator.exporter_config(
        poll_interval="5s", collect=list(COLLECTORS), undelivered_after=DEMO_UNDELIVERED_AFTER
    )
    log.info("demo mode: polling an embedded GREEN-API simulator", extra={"url": simulator.url})

    def load() -> Config:
        return parse_config(document, source="demo", environ={})

    return load, simulator.stop


def _serve(
    exporter: Exporter,
    secrets: Secrets,
    listen: ListenAddress,
    args: argparse.Namespace,
    web: WebConfig | None,
) -> int:
    from exporter.server import ExporterServer

    try:
        server = ExporterServer(
            (listen.host, listen.port),
            exporter,
            secrets,
            telemetry_path=args.web_telemetry_path,
            family=listen.family,
            enable_reload=not args.web_disable_reload,
            web=web,
        )
    except OSError as exc:
        log.error(
            "cannot listen", extra={"address": str(listen), "error": exc.strerror or str(exc)}
        )
        return 2

    events: queue.Queue[str] = queue.Queue()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        events.put("reload" if signum == signal.SIGHUP else "stop")

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    if hasattr(signal, "SIGHUP"):
        signal.signal(signal.SIGHUP, on_signal)

    exporter.start()
    thread = threading.Thread(target=server.serve_forever, args=(SHUTDOWN_POLL_INTERVAL,),
                              name="http", daemon=True)  # fmt: skip
    thread.start()
    address = ListenAddress(listen.host, server.port, listen.family)
    log.info(
        "listening",
        extra={"address": str(address), "telemetry_path": args.web_telemetry_path,
               "instances": len(exporter.config.instances), "version": __version__},
    )  # fmt: skip
    if args.demo:  # one line for the person who just typed --demo, in the log's format
        host = "localhost" if listen.host in ("::", "0.0.0.0") else str(address).rsplit(":", 1)[0]
        scheme = "https" if web is not None and web.ssl_context is not None else "http"
        log.info(DEMO_STORY.format(url=f"{scheme}://{host}:{server.port}"))
    try:
        while True:
            try:
                event = events.get(timeout=1.0)
            except queue.Empty:
                continue
            if event == "stop":
                break
            try:
                exporter.reload()
            except ConfigError as exc:
                log.error("configuration reload refused", extra={"reason": secrets.scrub(str(exc))})
    finally:
        log.info("shutting down")
        server.shutdown()
        server.server_close()
        exporter.stop()
    return 0
