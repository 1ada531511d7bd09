"""Shared helpers: run the exporter as a real process against a simulator on loopback; and how
the suite is split and spread.

Two kinds of tests. Those marked ``process`` start a program (the exporter, the simulator's
command, Prometheus, promtool, hadolint, openssl, node_exporter, pip, git): whole modules are
listed in PROCESS_MODULES, single tests of other modules carry ``@pytest.mark.process``. The
others are unit tests: no program, nothing beyond loopback servers inside the test's own
process; ``make test-fast`` runs only those (``-m "not process"``). An audit hook holds the
marker to the truth: a program started by a test without it fails that test.

``make test`` runs every test on several pytest-xdist workers (``--dist loadgroup``). Tests that
share a module- or class-scoped fixture (an exporter, a simulator, a Prometheus started once for
them all) are put in one group, which one worker runs, so that it is started once; every other
test goes to whichever worker is free. Nothing here binds a fixed port (``free_port``) or writes
outside its ``tmp_path``, so any two tests can run at the same time.
"""

from __future__ import annotations

import os
import random
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from prometheus_client.parser import text_string_to_metric_families

from exporter.simulator import Simulator

ROOT = Path(__file__).resolve().parent.parent

# Modules whose every test starts a program (see the module docstring).
PROCESS_MODULES = frozenset({
    "test_collectors.py", "test_dashboards_prometheus.py", "test_exporter_process.py",
    "test_faults.py", "test_poll_errors.py", "test_scrape_formats.py", "test_slow_upstream.py",
    "test_web_config.py", "test_web_config_conformance.py",
})  # fmt: skip

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the groups
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.name in PROCESS_MODULES:
            item.add_marker(pytest.mark.process)
        group = shared_fixture_scope(item)
        if group is not None:
            item.add_marker(pytest.mark.xdist_group(group))


def pytest_collection_finish(session: pytest.Session) -> None:
    # pytest-xdist writes a test's xdist_group into its node id ("...@group"), which pytest 9.2
    # no longer lets it do (pytest-xdist issue 1386): every test of a module with a shared
    # Prometheus would then start its own, on every worker. Those tests fail instead, at once.
    if getattr(session.config.option, "loadgroup", False):
        _UNGROUPED.update(i.nodeid for i in session.items
                          if i.get_closest_marker("xdist_group") and "@" not in i.nodeid)  # fmt: skip


_UNGROUPED: set[str] = set()


@pytest.hookimpl(tryfirst=True)  # before any fixture is set up
def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.nodeid in _UNGROUPED:
        pytest.fail("pytest-xdist did not keep this test in its group (--dist loadgroup): use "
                    "a pytest that pyproject.toml's test extras allow", pytrace=False)  # fmt: skip


def shared_fixture_scope(item: pytest.Item) -> str | None:
    """The node id of the module or class whose fixture ``item`` shares with its other tests
    (the broadest, if several), or None when every fixture of the suite it uses is its own."""
    if not isinstance(item, pytest.Function):
        return None
    definitions = item._fixtureinfo.name2fixturedefs
    scopes = {d.scope for name in item.fixturenames for d in definitions.get(name, ()) if d.baseid}
    for scope, kind in (("module", pytest.Module), ("class", pytest.Class)):
        node = item.getparent(kind)
        if scope in scopes and node is not None:
            return node.nodeid
    return None


class _ProgramGuard:
    """Refuses to start a program while a test without the ``process`` marker runs."""

    test: str | None = None  # the unmarked test running now
    # ctypes.util.find_library asks ldconfig where libc is (exporter.memory does, in-process).
    LOOKUPS = frozenset({"ldconfig"})

    @classmethod
    def audit(cls, event: str, args: tuple[Any, ...]) -> None:
        if cls.test is None or event not in ("subprocess.Popen", "os.system"):
            return
        program = os.fsdecode(args[0]).split()[0] if args[0] else ""
        if Path(program).name in cls.LOOKUPS:
            return
        raise AssertionError(
            f"{cls.test} starts {program}: mark it @pytest.mark.process "
            "(make test-fast runs only the tests that start no program)"
        )


sys.addaudithook(_ProgramGuard.audit)


@pytest.fixture(autouse=True)
def _programs_only_in_process_tests(request: pytest.FixtureRequest) -> Iterator[None]:
    # Function-scoped, so set up after the module- and class-scoped fixtures: what those start
    # is their module's business (a certificate made once by openssl), not the test's.
    if request.node.get_closest_marker("process") is None:
        _ProgramGuard.test = request.node.nodeid
    try:
        yield
    finally:
        _ProgramGuard.test = None


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """(certificate, key) for 127.0.0.1, made by openssl in ``directory``, valid for a day."""
    cert, key = directory / "server.crt", directory / "server.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


def free_port() -> int:
    """A loopback port that nothing listens on now, for a program that binds it later.

    Not one the kernel picks for port 0: that is in the range it gives outgoing connections,
    and a client socket of a test running in parallel can take it before the program binds it.
    A program that can report the port it got (the exporter) is better given port 0.
    """
    lowest_ephemeral = _lowest_ephemeral_port()
    while True:
        port = _random_ports.randrange(10000, lowest_ephemeral)
        if port in _handed_out:
            continue  # free now, but given to a program that may not have bound it yet
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue  # taken: another
        _handed_out.add(port)
        return port


_random_ports = random.Random()
# Ports free_port has returned in this process. A test that starts dozens of servers at once
# (tests/test_web_config_conformance.py) could otherwise draw one port twice: the second
# server then fails with "Address already in use".
_handed_out: set[int] = set()


def _lowest_ephemeral_port() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


def wait_until(condition: Callable[[], Any], timeout: float = 20.0, interval: float = 0.05) -> Any:
    """Poll ``condition`` until it returns something truthy; fail with its last value.

    The pause between tries grows from ``interval`` to half a second (or stays at a longer
    ``interval``): what comes at once is seen at once, and a wait of seconds for a poll does
    not parse the exposition ten times a second, which slows the tests running beside it.
    """
    deadline = time.monotonic() + timeout
    pause, longest = interval, max(interval, 0.5)
    last: Any = None
    while True:
        try:
            last = condition()
        except (requests.RequestException, ValueError, OSError) as exc:
            last = exc  # not there yet (no answer, a file half written): try again
        else:
            if last:
                return last
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"condition not met within {timeout}s; last value: {last!r}")
        time.sleep(min(pause, left))
        pause = min(pause * 1.5, longest)


def parse_samples(text: str) -> Samples:
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, metric: str, /, **labels: str) -> float | None:
    """The one sample of ``metric`` whose labels include ``labels``; None when absent."""
    wanted = set(labels.items())
    found = [v for (n, ls), v in samples.items() if n == metric and wanted <= ls]
    if len(found) > 1:
        raise AssertionError(f"{metric} {labels} matches {len(found)} samples")
    return found[0] if found else None


# The exporter's "listening" line, in logfmt and in JSON: the address it bound.
LISTENING = re.compile(r'msg=listening address=(\S+)|"msg": ?"listening".*?"address": ?"([^"]+)"')


class ExporterProcess:
    """``python -m exporter`` on loopback, with its log kept in a file.

    It listens on port 0: the kernel's choice, which no other test can take first, read from
    its ``listening`` log line (so at log level info, the default) when ``port`` or ``url`` is
    first asked for.
    """

    def __init__(self, tmp_path: Path, config: dict[str, Any] | None, *extra_args: str,
                 env: dict[str, str] | None = None) -> None:  # fmt: skip
        self._port: int | None = None
        self.config_path = tmp_path / "config.yaml"
        if config is not None:
            self.write_config(config)
        self.log_path = tmp_path / "exporter.log"
        self._log = self.log_path.open("wb")
        args = [
            sys.executable, "-m", "exporter",
            "--config.file", str(self.config_path),
            "--web.listen-address", "127.0.0.1:0",
            *extra_args,
        ]  # fmt: skip
        self.process = subprocess.Popen(
            args, stdout=self._log, stderr=subprocess.STDOUT, cwd=ROOT,
            env={**os.environ, **(env or {})},
        )  # fmt: skip

    @property
    def port(self) -> int:
        if self._port is None:
            self._port = int(wait_until(self._bound_port, timeout=20.0, interval=0.02))
        return self._port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _bound_port(self) -> int | None:
        found = LISTENING.search(self.log())
        if found is not None:
            return int((found.group(1) or found.group(2)).rpartition(":")[2])
        if self.process.poll() is not None:
            raise AssertionError(f"exporter exited {self.process.returncode}:\n{self.log()}")
        return None

    def write_config(self, config: dict[str, Any]) -> None:
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False))

    def wait_healthy(self, timeout: float = 20.0) -> None:
        def healthy() -> bool:
            if self.process.poll() is not None:
                raise AssertionError(f"exporter exited {self.process.returncode}:\n{self.log()}")
            return requests.get(self.url + "/-/healthy", timeout=2).status_code == 200

        wait_until(healthy, timeout)

    def wait_ready(self, timeout: float = 20.0) -> None:
        self.wait_healthy(timeout)
        wait_until(
            lambda: requests.get(self.url + "/-/ready", timeout=2).status_code == 200, timeout
        )

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return requests.get(self.url + path, timeout=5, **kwargs)

    def scrape(self, path: str = "/metrics") -> Samples:
        response = self.get(path)
        assert response.status_code == 200, response.text
        return parse_samples(response.text)

    def log(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 5.0) -> int:
        returncode = stop_process(self.process, sig, timeout)
        self._log.close()
        return returncode


def stop_process(
    process: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 5.0
) -> int:
    """Send ``sig``, wait up to ``timeout`` for the exit, then kill; the exit code."""
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


@pytest.fixture
def simulator() -> Iterator[Simulator]:
    sim = Simulator(instances=3, seed=7, history=3600, rate=1 / 60)
    sim.start()
    yield sim
    sim.stop()


@pytest.fixture
def run_exporter(tmp_path: Path) -> Iterator[Callable[..., ExporterProcess]]:
    started: list[ExporterProcess] = []

    def run(config: dict[str, Any] | None, *extra_args: str, **kwargs: Any) -> ExporterProcess:
        exporter = ExporterProcess(tmp_path, config, *extra_args, **kwargs)
        started.append(exporter)
        return exporter

    yield run
    for exporter in started:  # all stop at once, then each is waited for
        if exporter.process.poll() is None:
            exporter.process.terminate()
    for exporter in started:
        exporter.stop()
