"""Shared helpers: run the exporter as a real process against a simulator on loopback."""

from __future__ import annotations

import os
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

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(condition: Callable[[], Any], timeout: float = 20.0, interval: float = 0.1) -> Any:
    """Poll ``condition`` until it returns something truthy; fail with its last value."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = condition()
        except (requests.RequestException, ValueError, OSError) as exc:
            last = exc  # not there yet (no answer, a file half written): try again
        else:
            if last:
                return last
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s; last value: {last!r}")


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


class ExporterProcess:
    """``python -m exporter`` on a free loopback port, with its log kept in a file."""

    def __init__(self, tmp_path: Path, config: dict[str, Any] | None, *extra_args: str,
                 env: dict[str, str] | None = None) -> None:  # fmt: skip
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config_path = tmp_path / "config.yaml"
        if config is not None:
            self.write_config(config)
        self.log_path = tmp_path / "exporter.log"
        self._log = self.log_path.open("wb")
        args = [
            sys.executable, "-m", "exporter",
            "--config.file", str(self.config_path),
            "--web.listen-address", f"127.0.0.1:{self.port}",
            *extra_args,
        ]  # fmt: skip
        self.process = subprocess.Popen(
            args, stdout=self._log, stderr=subprocess.STDOUT, cwd=ROOT,
            env={**os.environ, **(env or {})},
        )  # fmt: skip

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

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        return self.process.returncode


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
    for exporter in started:
        exporter.stop()
