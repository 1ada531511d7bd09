"""``greenapi-simulator``: flags, and a help made from the route table and the fault table.

The epilog of ``--help`` lists every control route (:data:`exporter.simulator.control.ROUTES`)
with its body and effect, and every fault mode (:data:`exporter.simulator.faults.FAULTS`) with
its parameters: both come from the declarations the server runs on, so they cannot drift.

Exit codes: 0 normal stop, 1 bad flags, 2 the address cannot be bound.
"""

from __future__ import annotations

import argparse
import signal
import sys
import textwrap
import threading

from exporter.simulator.control import ROUTES_IN_ORDER
from exporter.simulator.faults import FAULTS, METHODS
from exporter.simulator.fleet import DEMO_UNDELIVERED_AFTER
from exporter.simulator.http import Simulator
from exporter.simulator.traffic import MINUTES_BY

_WIDTH = 79
_EXAMPLES = """\
examples, against a simulator on the default --listen:
  # sim-1 answers lastOutgoingMessages with 429 and Retry-After: 30
  curl -X PUT 127.0.0.1:8080/_sim/instances/sim-1/fault \\
       -d '{"mode": "status", "code": 429, "retry_after": 30, "method": "lastOutgoingMessages"}'
  # sim-2 loses its authorization now, for ten minutes; then look at it
  curl -X PUT 127.0.0.1:8080/_sim/instances/sim-2/outages -d '{"start_in": 0, "duration": 600}'
  curl 127.0.0.1:8080/_sim/instances/sim-2
"""


def _wrapped(text: str, indent: int) -> str:
    return textwrap.fill(text, _WIDTH, initial_indent=" " * indent,
                         subsequent_indent=" " * indent)  # fmt: skip


def control_api_help() -> str:
    """Every control route: verb and path, its body, what it does."""
    lines = [
        "control API ({x}: an instance's name or id; bodies are JSON; a route or an",
        "instance that does not exist is 404, a body that does not fit 400, saying what",
        "was expected):",
    ]
    for route in ROUTES_IN_ORDER:
        lines.append(f"  {route.verb:<6} {route.path}")
        if route.body is not None:
            lines.append(_wrapped(f"body: {route.body.shape}", 9))
        lines.append(_wrapped(route.effect, 9))
    return "\n".join(lines) + "\n"


def fault_modes_help() -> str:
    """Every fault mode: what it does, and each parameter with its kind and default."""
    lines = [
        'fault modes (PUT /_sim/instances/{x}/fault {"mode": m, "method": name, params};',
        "with method, only that method's requests, else every method's):",
    ]
    for mode in FAULTS.values():
        lines.append(textwrap.fill(mode.effect, _WIDTH, initial_indent=f"  {mode.name:<18} ",
                                   subsequent_indent=" " * 21))  # fmt: skip
        for param in mode.params:
            default = "" if param.default is None else f" (default {param.default})"
            lines.append(_wrapped(f"{param.name}: {param.kind.name}{default}, {param.help}", 21))
    lines.append(_wrapped("methods: " + ", ".join(METHODS), 2))
    return "\n".join(lines) + "\n"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="greenapi-simulator",
        description="A realistic fake GREEN-API on loopback, for demos and tests.",
        epilog="\n".join((control_api_help(), fault_modes_help(), _EXAMPLES)),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--listen", default="127.0.0.1:8080", help="HOST:PORT (default 127.0.0.1:8080)"
    )
    parser.add_argument("--instances", type=int, default=3, help="number of instances (default 3)")
    parser.add_argument("--seed", type=int, default=1, help="traffic seed (default 1)")
    parser.add_argument("--depth", type=int, default=5000, help="journal depth cap (default 5000)")
    parser.add_argument(
        "--rate", type=float, default=1.0, help="messages per minute per instance (default 1)"
    )
    parser.add_argument(
        "--no-rate-limit", action="store_true", help="do not answer 429 to fast clients"
    )
    parser.add_argument(
        "--demo", action="store_true", help="the four instances of greenapi-exporter --demo"
    )
    parser.add_argument(
        "--print-config",
        action="store_true",
        help="print a matching exporter configuration and exit",
    )
    parser.add_argument("--minutes-by", choices=MINUTES_BY, default=MINUTES_BY[0],
                        help="what ?minutes= of lastOutgoingMessages counts back from "
                             "(default last_action)")  # fmt: skip
    parser.add_argument("--first-instance", type=int, default=1,
                        help="number of the first instance (ids and names count on from it)")  # fmt: skip
    parser.add_argument(
        "--allow-remote", action="store_true", help="allow listening on a non-loopback address"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    host, sep, port_text = args.listen.rpartition(":")
    host = host.strip("[]")
    if not sep or not port_text.isdigit():
        print(f"greenapi-simulator: --listen: {args.listen!r} is not HOST:PORT", file=sys.stderr)
        return 1
    if (
        not args.allow_remote
        and host not in ("127.0.0.1", "localhost", "::1")
        and not host.startswith("127.")
    ):
        print(f"greenapi-simulator: --listen: {host!r} is not a loopback address; add --allow-remote",
              file=sys.stderr)  # fmt: skip
        return 1
    if args.demo:
        simulator = Simulator.demo(seed=args.seed, host=host, port=int(port_text))
    else:
        simulator = Simulator(instances=args.instances, seed=args.seed, host=host, port=int(port_text),
                              depth=args.depth, rate_limit=not args.no_rate_limit, rate=args.rate / 60,
                              first_index=args.first_instance)  # fmt: skip
    for instance in simulator.instances:
        simulator.set_minutes_by(instance.name, args.minutes_by)
    if not args.no_rate_limit:
        simulator.rate_limit = True
    if args.print_config:
        import yaml

        demo = {"undelivered_after": DEMO_UNDELIVERED_AFTER} if args.demo else {}
        print(yaml.safe_dump(simulator.exporter_config(**demo), sort_keys=False), end="")
        return 0
    return _serve(simulator, args.listen)


def _serve(simulator: Simulator, listen: str) -> int:
    """Serve until SIGTERM or SIGINT."""
    try:
        simulator.start()
    except OSError as exc:
        print(f"greenapi-simulator: cannot listen on {listen}: {exc.strerror or exc}",
              file=sys.stderr)  # fmt: skip
        return 2
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    print(f"greenapi-simulator: serving {len(simulator.instances)} instances on {simulator.url}",
          file=sys.stderr)  # fmt: skip
    stop.wait()
    simulator.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
