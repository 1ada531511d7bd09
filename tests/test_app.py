"""The running exporter around its pollers: what each poll feeds, and what a reload says."""

from __future__ import annotations

import logging
import threading
import time

import pytest

from exporter.app import Exporter
from exporter.client import Fetch
from exporter.config import Config, parse_config

TOKEN = "a" * 50
T0 = int(time.time())


class JournalClient:
    """Answers every journal request with one message sent a while ago and delivered."""

    def __init__(self) -> None:
        self.polled = threading.Event()

    def get(self, url: str, params: dict[str, str], timeout: float, secret: str) -> Fetch:
        self.polled.set()
        body = b'[{"idMessage":"a","chatId":"1@c.us","statusMessage":"read","timestamp":%d}]' % (
            T0 - 10
        )
        return Fetch("success", status=200, body=body)

    def close(self) -> None:
        pass


def load(**settings: object) -> Config:
    entry = {"name": "sales-bot", "id_instance": "1101000001", "api_token": TOKEN, **settings}
    return parse_config({"instances": [entry]}, "test", {})


def test_every_poll_feeds_the_status_pages_history() -> None:
    client = JournalClient()
    exporter = Exporter(load, client=client)  # type: ignore[arg-type]
    exporter.start()
    try:
        assert client.polled.wait(5)
        deadline = time.monotonic() + 5
        [instance] = exporter.snapshot().instances
        while not exporter.delivery_history.samples(instance) and time.monotonic() < deadline:
            time.sleep(0.05)
            [instance] = exporter.snapshot().instances
        assert exporter.delivery_history.samples(instance)
    finally:
        exporter.stop()


def test_a_reload_logs_the_warnings_of_the_new_configuration(
    caplog: pytest.LogCaptureFixture,
) -> None:
    configs = [load(), load(monthly_quota=1000)]  # a minute's polls spend it in a day
    exporter = Exporter(lambda: configs[0], client=JournalClient())  # type: ignore[arg-type]
    configs.pop(0)
    with caplog.at_level(logging.WARNING, logger="exporter.app"):
        exporter.reload()
    assert any("over monthly_quota 1000" in r.getMessage() for r in caplog.records)
    exporter.stop()
