"""The command line: flags, environment variables, exit codes and messages."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from exporter import __version__
from exporter.cli import UsageError, env_name, parse_listen_address
from tests.conftest import ROOT, ExporterProcess, value

TOKEN = "a1b2c3d4e5f6a1b2c3d4e5f6a1b2c3d4e5f6a1b2c3d4e5f6zz"


def run(
    *args: str, env: dict[str, str] | None = None, timeout: float = 20
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "exporter", *args],
        capture_output=True, text=True, cwd=ROOT, timeout=timeout,
        env={**os.environ, **(env or {})},
    )  # fmt: skip


def write_config(tmp_path: Path, document: object) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(document))
    path.chmod(0o600)
    return path


def valid_document() -> dict[str, object]:
    return {"instances": [{"name": "sales-bot", "id_instance": 1101000001, "api_token": TOKEN}]}


@pytest.mark.process
def test_version_prints_the_version() -> None:
    result = run("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"greenapi-exporter {__version__}"


@pytest.mark.process
def test_check_config_prints_a_summary_without_the_token(tmp_path: Path) -> None:
    result = run("--check-config", "--config.file", str(write_config(tmp_path, valid_document())))
    assert result.returncode == 0, result.stderr
    assert "sales-bot" in result.stdout and "1101000001" in result.stdout
    assert TOKEN not in result.stdout + result.stderr


@pytest.mark.process
def test_check_config_refuses_a_bad_file_with_its_key_path_and_no_traceback(tmp_path: Path) -> None:
    document = valid_document()
    document["instances"][0]["poll_interval"] = "soon"  # type: ignore[index]
    path = write_config(tmp_path, document)
    result = run("--check-config", "--config.file", str(path))
    assert result.returncode == 1
    assert str(path) in result.stderr and "instances[0].poll_interval" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.process
def test_a_missing_config_file_exits_1_with_one_clear_line(tmp_path: Path) -> None:
    result = run("--config.file", str(tmp_path / "absent.yaml"))
    assert result.returncode == 1
    assert "absent.yaml" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.process
def test_a_bad_flag_value_exits_1(tmp_path: Path) -> None:
    result = run("--log.level", "loud")
    assert result.returncode == 1 and "log.level" in result.stderr


@pytest.mark.process
def test_a_listen_address_that_cannot_be_bound_exits_2(tmp_path: Path) -> None:
    path = write_config(tmp_path, valid_document())
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run("--config.file", str(path), "--web.listen-address", f"127.0.0.1:{port}")
    assert result.returncode == 2
    assert "cannot listen" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.process
def test_flags_can_come_from_environment_variables(tmp_path: Path) -> None:
    path = write_config(tmp_path, valid_document())
    result = run("--check-config", env={"GREENAPI_EXPORTER_CONFIG_FILE": str(path)})
    assert result.returncode == 0, result.stderr


@pytest.mark.process
def test_a_flag_wins_over_its_environment_variable(tmp_path: Path) -> None:
    path = write_config(tmp_path, valid_document())
    result = run("--check-config", "--config.file", str(path),
                 env={"GREENAPI_EXPORTER_CONFIG_FILE": str(tmp_path / "absent.yaml")})  # fmt: skip
    assert result.returncode == 0, result.stderr


@pytest.mark.process
def test_a_boolean_environment_variable_switches_a_flag_on(tmp_path: Path) -> None:
    path = write_config(tmp_path, {"instances": "wrong"})
    result = run(
        env={"GREENAPI_EXPORTER_CHECK_CONFIG": "true", "GREENAPI_EXPORTER_CONFIG_FILE": str(path)}
    )
    assert result.returncode == 1 and "instances" in result.stderr


def test_env_names_use_underscores_for_dots_and_dashes() -> None:
    assert env_name("--web.listen-address") == "GREENAPI_EXPORTER_WEB_LISTEN_ADDRESS"
    assert env_name("--config.file") == "GREENAPI_EXPORTER_CONFIG_FILE"


@pytest.mark.parametrize(
    ("text", "host", "port"),
    [(":9935", None, 9935), ("127.0.0.1:80", "127.0.0.1", 80), ("[::1]:9935", "::1", 9935)],
)
def test_listen_addresses_in_prometheus_style(text: str, host: str | None, port: int) -> None:
    address = parse_listen_address(text)
    assert address.port == port
    if host is not None:
        assert address.host == host


@pytest.mark.parametrize("text", ["9935", "host:", "host:port", ":70000"])
def test_bad_listen_addresses_are_refused(text: str) -> None:
    with pytest.raises(UsageError):
        parse_listen_address(text)


@pytest.mark.process
def test_demo_serves_metrics_of_the_embedded_simulator(tmp_path: Path) -> None:
    exporter = ExporterProcess(tmp_path, None, "--demo")
    try:
        exporter.wait_ready(timeout=30)
        samples = exporter.scrape()
        names = {dict(labels).get("name") for (n, labels) in samples if n == "greenapi_up"}
        assert {"shop-bot", "support-bot", "stuck-bot", "max-channel"} <= names
        assert value(samples, "greenapi_outgoing_undelivered_messages", name="shop-bot") is not None
        assert f"demo: open {exporter.url}/ and" in exporter.log()  # what to look at
    finally:
        exporter.stop()


@pytest.mark.process
def test_json_logs_are_one_object_per_line_with_instance_fields(tmp_path: Path) -> None:
    exporter = ExporterProcess(tmp_path, None, "--demo", "--log.format", "json")
    try:
        exporter.wait_ready(timeout=30)
    finally:
        exporter.stop()
    records = [json.loads(line) for line in exporter.log().splitlines() if line.strip()]
    assert records and all({"ts", "level", "logger", "msg"} <= set(r) for r in records)
    assert any(
        r["msg"] == "first poll succeeded" and r.get("instance") == "shop-bot" for r in records
    )


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("9935", "has no port"),
        ("0.0.0.0:99999", "port 99999 is out of range (0 to 65535)"),
        ("host:port", "port 'port' is not a number"),
    ],
)
def test_a_bad_listen_address_is_refused_saying_what_is_wrong(text: str, says: str) -> None:
    with pytest.raises(UsageError, match=re.escape(says)):
        parse_listen_address(text)


@pytest.mark.process
def test_a_missing_configuration_file_suggests_the_example_and_the_demo(
    tmp_path: Path,
) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "exporter"], cwd=tmp_path, capture_output=True, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=30,
    )  # fmt: skip
    assert result.returncode == 1
    assert "config.yaml: cannot read the configuration file: no such file" in result.stderr
    assert "config.example.yaml" in result.stderr and "--demo" in result.stderr
    assert "--config.file" in result.stderr


def test_warn_is_accepted_as_the_warning_level() -> None:
    from exporter.cli import build_parser

    args = build_parser({}).parse_args(["--log.level=warn"])
    assert args.log_level == "warn"  # main maps it to "warning"


@pytest.mark.process
def test_a_log_level_from_the_environment_is_checked_like_the_flag(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "exporter", "--check-config"], cwd=tmp_path, capture_output=True,
        text=True, env={**os.environ, "PYTHONPATH": str(ROOT),
                        "GREENAPI_EXPORTER_LOG_LEVEL": "loud"}, timeout=30,
    )  # fmt: skip
    assert result.returncode == 1
    assert "--log.level: 'loud' is not one of" in result.stderr
