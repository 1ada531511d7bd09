"""--web.config.file: TLS with a self-signed certificate made here, and bcrypt basic auth."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import bcrypt
import pytest
import requests
import yaml

from exporter.simulator import Simulator
from exporter.web_config import WebConfigError, load_web_config
from tests.conftest import ExporterProcess, wait_until


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "server.crt", directory / "server.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


def write(tmp_path: Path, document: object) -> Path:
    path = tmp_path / "web.yml"
    path.write_text(yaml.safe_dump(document))
    return path


def hashed(password: str) -> str:
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()


def test_an_empty_web_config_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "web.yml"
    path.write_text("")
    web = load_web_config(str(path))
    assert web.ssl_context is None and web.authorized(None)


def test_unknown_keys_and_a_missing_key_file_are_refused_with_their_paths(tmp_path: Path) -> None:
    path = write(tmp_path, {"tls_server_config": {"cert_file": "x.crt", "colour": 1}, "extra": 1})
    with pytest.raises(WebConfigError) as caught:
        load_web_config(str(path))
    text = str(caught.value)
    assert "extra: unknown key" in text and "tls_server_config.colour: unknown key" in text
    assert "cert_file and key_file are both required" in text


def test_a_password_that_is_not_a_bcrypt_hash_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, {"basic_auth_users": {"alice": "plain-text"}})
    with pytest.raises(WebConfigError, match=r"basic_auth_users\.alice"):
        load_web_config(str(path))


def test_basic_auth_accepts_the_right_password_only(tmp_path: Path) -> None:
    web = load_web_config(str(write(tmp_path, {"basic_auth_users": {"alice": hashed("s3cret")}})))
    import base64

    def header(user: str, password: str) -> str:
        return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()

    assert web.authorized(header("alice", "s3cret"))
    assert web.authorized(header("alice", "s3cret"))  # cached path
    assert not web.authorized(header("alice", "wrong"))
    assert not web.authorized(header("bob", "s3cret"))
    assert not web.authorized(None)
    assert not web.authorized("Basic !!!notbase64")


def test_the_exporter_serves_tls_and_requires_basic_auth(
    tmp_path: Path, certificate: tuple[Path, Path]
) -> None:
    cert, key = certificate
    web = write(tmp_path, {
        "tls_server_config": {"cert_file": str(cert), "key_file": str(key)},
        "basic_auth_users": {"prometheus": hashed("scrape-me")},
        "http_server_config": {"headers": {"X-Frame-Options": "deny"}},
    })  # fmt: skip
    sim = Simulator(instances=1, seed=2)
    sim.start()
    exporter = ExporterProcess(tmp_path, sim.exporter_config(poll_interval="1s"),
                               "--web.config.file", str(web))  # fmt: skip
    https = exporter.url.replace("http://", "https://")
    try:

        def answer(auth: tuple[str, str] | None) -> requests.Response:
            return requests.get(https + "/metrics", verify=str(cert), auth=auth, timeout=5)

        wait_until(lambda: answer(("prometheus", "scrape-me")).status_code == 200)
        good = answer(("prometheus", "scrape-me"))
        assert "greenapi_exporter_build_info" in good.text
        assert good.headers["X-Frame-Options"] == "deny"
        unauthorised = answer(None)
        assert unauthorised.status_code == 401
        assert unauthorised.headers["WWW-Authenticate"].startswith("Basic")
        assert answer(("prometheus", "nope")).status_code == 401
        with pytest.raises(requests.exceptions.ConnectionError):
            requests.get(exporter.url + "/metrics", timeout=5)  # plain HTTP on a TLS port
        assert answer(("prometheus", "scrape-me")).status_code == 200  # still serving
    finally:
        exporter.stop()
        sim.stop()


def test_a_bad_web_config_file_exits_1(tmp_path: Path) -> None:
    web = write(
        tmp_path, {"tls_server_config": {"cert_file": "missing.crt", "key_file": "missing.key"}}
    )
    result = subprocess.run(
        [sys.executable, "-m", "exporter", "--demo", "--web.config.file", str(web)],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert result.returncode == 1
    assert "cannot load cert_file/key_file" in result.stderr and "Traceback" not in result.stderr
