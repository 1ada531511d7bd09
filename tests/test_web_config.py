"""--web.config.file: what each key of the exporter-toolkit format does here, file by file.

tests/test_web_config_conformance.py feeds the same kind of files to node_exporter and compares
what both answer over the network; this file pins the details one behaviour at a time, with
certificates made here by the openssl command-line tool.
"""

from __future__ import annotations

import base64
import ssl
import statistics
import subprocess
import sys
import time
from pathlib import Path

import bcrypt
import pytest
import requests
import yaml

from exporter.simulator import Simulator
from exporter.web_config import (
    CONFIGURABLE_HEADERS,
    WebConfig,
    WebConfigError,
    basic_credentials,
    load_web_config,
)
from tests.conftest import ExporterProcess, self_signed_certificate, wait_until


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return self_signed_certificate(tmp_path_factory.mktemp("tls"))


def write(tmp_path: Path, document: object) -> Path:
    path = tmp_path / "web.yml"
    path.write_text(document if isinstance(document, str) else yaml.safe_dump(document))
    return path


def load(tmp_path: Path, document: object) -> WebConfig:
    return load_web_config(str(write(tmp_path, document)))


def refusal(tmp_path: Path, document: object) -> str:
    with pytest.raises(WebConfigError) as caught:
        load(tmp_path, document)
    return str(caught.value)


def tls(certificate: tuple[Path, Path], **keys: object) -> dict[str, object]:
    cert, key = certificate
    return {"tls_server_config": {"cert_file": str(cert), "key_file": str(key), **keys}}


def hashed(password: str, cost: int = 4) -> str:
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=cost)).decode()


def basic(user: str, password: str, scheme: str = "Basic") -> str:
    return f"{scheme} " + base64.b64encode(f"{user}:{password}".encode()).decode()


# -- accepted and refused ------------------------------------------------------------------


def test_an_empty_web_config_changes_nothing(tmp_path: Path) -> None:
    web = load(tmp_path, "")
    assert web.ssl_context is None and web.authorized(None) and not web.warnings


def test_a_file_using_every_key_of_the_toolkit_is_accepted(
    tmp_path: Path, certificate: tuple[Path, Path]
) -> None:
    cert, _ = certificate
    web = load(tmp_path, {
        **tls(certificate, client_auth_type="RequireAndVerifyClientCert",
              client_ca_file=str(cert), min_version="TLS12", max_version="TLS13",
              cipher_suites=["TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "TLS_AES_128_GCM_SHA256"],
              prefer_server_cipher_suites=True, curve_preferences=["X25519"]),
        "http_server_config": {"http2": False, "headers": {"X-Frame-Options": "deny"}},
        "basic_auth_users": {"prometheus": hashed("scrape-me")},
    })  # fmt: skip
    assert web.ssl_context is not None and web.ssl_context.verify_mode == ssl.CERT_REQUIRED
    assert web.http2 is False and web.headers == {"X-Frame-Options": "deny"}
    assert web.authorized(basic("prometheus", "scrape-me"))


def test_an_empty_tls_server_config_serves_plain_http_and_says_so(tmp_path: Path) -> None:
    web = load(tmp_path, "tls_server_config: {}\n")
    assert web.ssl_context is None
    assert web.warnings == (f"{tmp_path / 'web.yml'}: tls_server_config: no cert_file, key_file, "
                            "client_auth_type or client_ca_file: TLS is off, as node_exporter has it",)  # fmt: skip


def test_unknown_and_repeated_keys_are_refused_with_their_paths(tmp_path: Path) -> None:
    text = refusal(tmp_path, "extra: 1\ntls_server_config: {cert_file: x.crt, colour: 1}\n"
                             "http_server_config: {http2: true}\nhttp_server_config: {}\n")  # fmt: skip
    assert "web.yml: extra: unknown key" in text
    assert "web.yml: tls_server_config.colour: unknown key" in text
    assert "web.yml: http_server_config: given twice" in text


def test_values_of_the_wrong_type_are_refused_as_go_refuses_them(tmp_path: Path) -> None:
    text = refusal(tmp_path, "http_server_config: {http2: 'true'}\n"
                             "tls_server_config: {cert_file: [a.crt], cipher_suites: TLS_AES_128_GCM_SHA256}\n")  # fmt: skip
    assert "http_server_config.http2: expected true or false, not str 'true'" in text
    assert "tls_server_config.cert_file: expected a string, not a list" in text
    assert "tls_server_config.cipher_suites: expected a list, not str" in text


def test_a_scalar_where_a_string_is_expected_is_read_as_its_text(tmp_path: Path) -> None:
    web = load(tmp_path, "http_server_config: {headers: {X-XSS-Protection: 0}}\n"
                         f"basic_auth_users: {{123: '{hashed('pw')}'}}\n")  # fmt: skip
    assert web.headers == {"X-XSS-Protection": "0"}
    assert web.authorized(basic("123", "pw"))


def test_yes_and_y_are_booleans_as_in_yaml_1_1(tmp_path: Path) -> None:
    assert load(tmp_path, "http_server_config: {http2: no}\n").http2 is False
    assert load(tmp_path, "http_server_config: {http2: n}\n").http2 is False
    assert load(tmp_path, "http_server_config: {http2: Y}\n").http2 is True


def test_an_empty_min_version_offers_tls10_as_go_does_and_warns(
    tmp_path: Path, certificate: tuple[Path, Path]
) -> None:
    web = load(tmp_path, tls(certificate, min_version=None))
    assert web.ssl_context is not None
    assert web.ssl_context.minimum_version == ssl.TLSVersion.TLSv1
    assert any("min_version: empty, so TLS 1.0 and newer" in line for line in web.warnings)


def test_versions_are_the_toolkit_names_only(
    tmp_path: Path, certificate: tuple[Path, Path]
) -> None:
    text = refusal(tmp_path, tls(certificate, min_version="tls12", max_version="TLS1.3"))
    assert "min_version: expected one of TLS10, TLS11, TLS12, TLS13, not 'tls12'" in text
    assert "max_version: expected one of TLS10, TLS11, TLS12, TLS13, not 'TLS1.3'" in text


def test_cert_and_key_are_both_required_once_any_tls_key_names_a_file_or_mode(
    tmp_path: Path,
) -> None:
    text = refusal(tmp_path, {"tls_server_config": {"client_auth_type": "RequestClientCert"}})
    assert "tls_server_config.cert_file: missing" in text
    assert "tls_server_config.key_file: missing" in text


def test_relative_paths_are_relative_to_the_web_config_file(
    tmp_path: Path, certificate: tuple[Path, Path]
) -> None:
    cert, key = certificate
    (tmp_path / "server.crt").write_bytes(cert.read_bytes())
    (tmp_path / "server.key").write_bytes(key.read_bytes())
    web = load(
        tmp_path, {"tls_server_config": {"cert_file": "server.crt", "key_file": "server.key"}}
    )
    assert web.ssl_context is not None


def test_unusable_certificates_are_refused_with_a_reason(
    tmp_path: Path, certificate: tuple[Path, Path]
) -> None:
    cert, key = certificate
    swapped = {"tls_server_config": {"cert_file": str(key), "key_file": str(cert)}}
    assert "are the two files swapped?" in refusal(tmp_path, swapped)
    missing = {"tls_server_config": {"cert_file": "nowhere.crt", "key_file": str(key)}}
    assert "nowhere.crt: No such file or directory" in refusal(tmp_path, missing)


def test_an_encrypted_key_is_refused_without_asking_for_a_passphrase(
    tmp_path: Path, certificate: tuple[Path, Path]
) -> None:
    cert, key = certificate
    encrypted = tmp_path / "encrypted.key"
    subprocess.run(["openssl", "pkey", "-in", str(key), "-aes256", "-passout", "pass:x",
                    "-out", str(encrypted)], check=True, capture_output=True)  # fmt: skip
    document = {"tls_server_config": {"cert_file": str(cert), "key_file": str(encrypted)}}
    assert "is encrypted; node_exporter cannot read it either" in refusal(tmp_path, document)


# -- client certificates -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("client_auth_type", "verify_mode"),
    [
        ("NoClientCert", ssl.CERT_NONE),
        # Go asks for a certificate and accepts any or none: not asking accepts the same set.
        ("RequestClientCert", ssl.CERT_NONE),
        # Go accepts any certificate; the ssl module can only verify: the stricter answer.
        ("RequireAnyClientCert", ssl.CERT_REQUIRED),
        ("RequireClientCert", ssl.CERT_REQUIRED),  # the toolkit's old name of the above
        ("VerifyClientCertIfGiven", ssl.CERT_OPTIONAL),
        ("RequireAndVerifyClientCert", ssl.CERT_REQUIRED),
    ],
)
def test_each_client_auth_type_has_its_verify_mode(
    tmp_path: Path, certificate: tuple[Path, Path], client_auth_type: str, verify_mode: int
) -> None:
    ca = str(certificate[0]) if client_auth_type != "NoClientCert" else None
    web = load(tmp_path, tls(certificate, client_auth_type=client_auth_type, client_ca_file=ca))
    assert web.ssl_context is not None and web.ssl_context.verify_mode == verify_mode


def test_require_any_client_cert_warns_that_certificates_are_verified(
    tmp_path: Path, certificate: tuple[Path, Path]
) -> None:
    web = load(tmp_path, tls(certificate, client_auth_type="RequireAnyClientCert"))
    assert any("unlike node_exporter, verified" in line for line in web.warnings)


def test_a_client_ca_file_without_a_client_auth_type_is_refused(
    tmp_path: Path, certificate: tuple[Path, Path]
) -> None:
    text = refusal(tmp_path, tls(certificate, client_ca_file=str(certificate[0])))
    assert "client_ca_file: set, but client_auth_type is NoClientCert" in text


def test_a_client_ca_file_without_certificates_refuses_every_client_certificate(
    tmp_path: Path, certificate: tuple[Path, Path]
) -> None:
    web = load(tmp_path, tls(certificate, client_auth_type="RequireAndVerifyClientCert",
                             client_ca_file="/dev/null"))  # fmt: skip
    assert web.ssl_context is not None and web.ssl_context.cert_store_stats()["x509_ca"] == 0
    assert any("holds no certificate" in line for line in web.warnings)


def test_a_client_ca_file_that_cannot_be_read_is_refused(
    tmp_path: Path, certificate: tuple[Path, Path]
) -> None:
    text = refusal(tmp_path, tls(certificate, client_auth_type="VerifyClientCertIfGiven",
                                 client_ca_file="nowhere.pem"))  # fmt: skip
    assert "client_ca_file: cannot read" in text and "No such file or directory" in text


# -- cipher suites, curves, http2 ----------------------------------------------------------


def tls12_suites(web: WebConfig) -> list[str]:
    assert web.ssl_context is not None
    return [c["name"] for c in web.ssl_context.get_ciphers() if c["protocol"] != "TLSv1.3"]


def test_cipher_suites_become_their_openssl_names_in_the_configured_order(
    tmp_path: Path, certificate: tuple[Path, Path]
) -> None:
    web = load(tmp_path, tls(certificate, cipher_suites=[
        "TLS_RSA_WITH_AES_128_CBC_SHA", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        "TLS_CHACHA20_POLY1305_SHA256",
    ]))  # fmt: skip
    assert tls12_suites(web) == ["AES128-SHA", "ECDHE-RSA-AES128-GCM-SHA256"]


def test_without_cipher_suites_go_s_default_suites_are_offered(
    tmp_path: Path, certificate: tuple[Path, Path]
) -> None:
    suites = tls12_suites(load(tmp_path, tls(certificate)))
    assert suites[:2] == ["ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256"]
    assert len(suites) == 14 and not any("SHA256" in s and "CBC" in s for s in suites)


@pytest.mark.parametrize(
    "name",
    [
        "TLS_RSA_WITH_3DES_EDE_CBC_SHA",  # Go knows it, as insecure: the toolkit refuses it
        "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256",
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305",  # Go's old constant name, not a suite name
        "ECDHE-RSA-AES128-GCM-SHA256",  # OpenSSL's name
    ],
)
def test_suites_outside_go_s_secure_list_are_refused(
    tmp_path: Path, certificate: tuple[Path, Path], name: str
) -> None:
    text = refusal(tmp_path, tls(certificate, cipher_suites=[name]))
    assert f"tls_server_config.cipher_suites[0]: unknown {name!r}" in text


def test_http2_needs_an_aes_128_gcm_ecdhe_suite_in_a_configured_list(
    tmp_path: Path, certificate: tuple[Path, Path]
) -> None:
    cbc_only = tls(certificate, cipher_suites=["TLS_RSA_WITH_AES_128_CBC_SHA"])
    assert "with http_server_config.http2 (true unless set) the list needs" in refusal(
        tmp_path, cbc_only
    )
    assert load(tmp_path, {**cbc_only, "http_server_config": {"http2": False}}).http2 is False
    tls13 = tls(certificate, cipher_suites=["TLS_RSA_WITH_AES_128_CBC_SHA"], min_version="TLS13")
    assert load(tmp_path, tls13).ssl_context is not None  # no TLS 1.2: the rule does not apply


def test_only_tls13_suites_listed_leave_only_tls13(
    tmp_path: Path, certificate: tuple[Path, Path]
) -> None:
    web = load(tmp_path, {**tls(certificate, cipher_suites=["TLS_AES_256_GCM_SHA384"]),
                          "http_server_config": {"http2": False}})  # fmt: skip
    assert web.ssl_context is not None
    assert web.ssl_context.minimum_version == ssl.TLSVersion.TLSv1_3
    assert any("TLS 1.3 suites only" in line for line in web.warnings)


def test_prefer_server_cipher_suites_decides_whose_order_wins(
    tmp_path: Path, certificate: tuple[Path, Path]
) -> None:
    for prefer in (True, False):
        context = load(tmp_path, tls(certificate, prefer_server_cipher_suites=prefer)).ssl_context
        assert context is not None
        assert bool(context.options & ssl.OP_CIPHER_SERVER_PREFERENCE) is prefer


def test_curves_are_the_toolkit_names_and_several_warn_that_one_is_used(
    tmp_path: Path, certificate: tuple[Path, Path]
) -> None:
    text = refusal(tmp_path, tls(certificate, curve_preferences=["P256", "x25519"]))
    assert "curve_preferences[0]: unknown 'P256'; expected one of CurveP256" in text
    assert "curve_preferences[1]: unknown 'x25519'" in text
    web = load(tmp_path, tls(certificate, curve_preferences=["CurveP384", "X25519"]))
    assert any("only CurveP384, the first, is offered here" in line for line in web.warnings)


def test_renegotiation_is_refused_as_go_refuses_it(
    tmp_path: Path, certificate: tuple[Path, Path]
) -> None:
    context = load(tmp_path, tls(certificate)).ssl_context
    assert context is not None and context.options & ssl.OP_NO_RENEGOTIATION


# -- headers -------------------------------------------------------------------------------


def test_only_the_toolkit_s_headers_can_be_configured(tmp_path: Path) -> None:
    text = refusal(tmp_path, {"http_server_config": {"headers": {
        "Content-Length": "5", "x-frame-options": "deny", "Server": "x",
    }}})  # fmt: skip
    assert "headers.Content-Length: cannot be configured; the headers that can are " in text
    assert "headers.Server: cannot be configured" in text
    assert "headers.x-frame-options: cannot be configured" in text
    assert "(names are case-sensitive: X-Frame-Options?)" in text


def test_enumerated_header_values_are_matched_exactly(tmp_path: Path) -> None:
    text = refusal(tmp_path, {"http_server_config": {"headers": {
        "X-Frame-Options": "DENY", "X-Content-Type-Options": "sniff",
    }}})  # fmt: skip
    assert "headers.X-Frame-Options: expected one of deny, sameorigin, not 'DENY'" in text
    assert "headers.X-Content-Type-Options: expected one of nosniff, not 'sniff'" in text


def test_every_configurable_header_is_served_with_its_value(tmp_path: Path) -> None:
    values = {"Strict-Transport-Security": "max-age=31536000", "X-Content-Type-Options": "nosniff",
              "X-Frame-Options": "sameorigin", "X-XSS-Protection": "1; mode=block",
              "Content-Security-Policy": "default-src 'self'"}  # fmt: skip
    assert set(values) == set(CONFIGURABLE_HEADERS)
    assert load(tmp_path, {"http_server_config": {"headers": values}}).headers == values


def test_line_breaks_in_a_header_value_become_spaces_as_go_writes_them(tmp_path: Path) -> None:
    web = load(tmp_path, {"http_server_config": {"headers": {
        "Content-Security-Policy": "default-src 'self'\r\nSet-Cookie: injected=1",
    }}})  # fmt: skip
    assert web.headers == {"Content-Security-Policy": "default-src 'self'  Set-Cookie: injected=1"}


# -- basic auth ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("plain-text", "too short"),
        ("x" * 60, "it must start with $"),
        ("$3a$10$" + "." * 53, "bcrypt version '3' is too new"),
        ("$2y$03$" + "." * 53, "cost 3 is outside 4..31"),
        ("$2y$32$" + "." * 53, "cost 32 is outside 4..31"),
        ("$2y$1x$" + "." * 53, "cost '1x' is not a number"),
    ],
)
def test_a_password_that_go_s_bcrypt_cannot_read_is_refused(
    tmp_path: Path, value: str, reason: str
) -> None:
    text = refusal(tmp_path, {"basic_auth_users": {"alice": value}})
    assert f"basic_auth_users.alice: expected a bcrypt hash ($2y$10$…): {reason}" in text


def test_a_hash_go_accepts_but_bcrypt_cannot_check_is_accepted_with_a_warning(
    tmp_path: Path,
) -> None:
    web = load(tmp_path, {"basic_auth_users": {"alice": "$2y$10$" + "!" * 53}})
    assert any("bcrypt cannot check this hash" in line for line in web.warnings)
    assert not web.authorized(basic("alice", ""))


def test_basic_auth_accepts_the_right_password_only(tmp_path: Path) -> None:
    web = load(tmp_path, {"basic_auth_users": {"alice": hashed("s3cret")}})
    assert web.authorized(basic("alice", "s3cret"))
    assert web.authorized(basic("alice", "s3cret"))  # the cached answer
    assert not web.authorized(basic("alice", "wrong"))
    assert not web.authorized(basic("bob", "s3cret"))
    assert not web.authorized(None)
    assert not web.authorized("Basic !!!notbase64")


def test_the_basic_scheme_is_matched_in_any_case(tmp_path: Path) -> None:
    web = load(tmp_path, {"basic_auth_users": {"alice": hashed("s3cret")}})
    for scheme in ("basic", "BASIC", "bAsIc"):
        assert web.authorized(basic("alice", "s3cret", scheme))


@pytest.mark.parametrize(
    ("header", "credentials"),
    [
        ("Basic YWxpY2U6cHc=", (b"alice", b"pw")),
        ("Basic YWxpY2U6cHc=  ", (b"alice", b"pw")),  # trailing blanks are not the value's
        ("Basic  YWxpY2U6cHc=", None),  # one space, as Go reads it
        ("Basic YWxpY2U6cHc", None),  # padding is required
        ("Basic YWxpY2Vwdw==", None),  # no colon
        ("Basic OmE6Yg==", (b"", b"a:b")),  # split at the first colon; an empty user
        ("Bearer YWxpY2U6cHc=", None),
        ("Basic", None),
        ("Basic 4pyTOsOp", ("✓".encode(), "é".encode())),  # UTF-8, kept as bytes
    ],
)
def test_credentials_are_read_as_go_reads_them(
    header: str, credentials: tuple[bytes, bytes] | None
) -> None:
    assert basic_credentials(header) == credentials


def test_passwords_longer_than_72_bytes_match_on_their_first_72_as_in_go(tmp_path: Path) -> None:
    web = load(tmp_path, {"basic_auth_users": {"alice": hashed("p" * 72)}})
    assert web.authorized(basic("alice", "p" * 72 + "ignored by bcrypt"))


def test_an_unknown_user_costs_as_much_as_a_wrong_password(tmp_path: Path) -> None:
    # A cost-12 hash takes ~0.25 s to check; a cheaper fixed hash for unknown users would
    # tell user names apart by the time of the answer. Interleaved attempts, distinct
    # passwords (no cached answer), medians: robust on a busy machine.
    web = load(tmp_path, {"basic_auth_users": {"alice": hashed("right", cost=12)}})

    def seconds(header: str) -> float:
        start = time.perf_counter()
        assert not web.authorized(header)
        return time.perf_counter() - start

    wrong, unknown = [], []
    for attempt in range(5):
        wrong.append(seconds(basic("alice", f"wrong-{attempt}")))
        unknown.append(seconds(basic(f"mallory-{attempt}", f"wrong-{attempt}")))
    ratio = statistics.median(unknown) / statistics.median(wrong)
    print(f"basic auth, cost 12: wrong password {statistics.median(wrong) * 1000:.0f} ms, "
          f"unknown user {statistics.median(unknown) * 1000:.0f} ms (medians of 5)")  # fmt: skip
    assert 0.5 < ratio < 2.0, f"unknown users {unknown}, wrong passwords {wrong}"


def test_users_with_different_costs_are_warned_about(tmp_path: Path) -> None:
    web = load(tmp_path, {"basic_auth_users": {"a": hashed("x", 4), "b": hashed("y", 5)}})
    assert any("hashes of different costs (4, 5)" in line for line in web.warnings)


def test_a_401_carries_a_basic_challenge_and_nosniff() -> None:
    headers = WebConfig().unauthorized_headers
    assert headers["WWW-Authenticate"].startswith("Basic realm=")
    assert headers["X-Content-Type-Options"] == "nosniff"


# -- the exporter process ------------------------------------------------------------------


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


def test_a_bad_web_config_file_exits_1_with_one_line_per_problem(tmp_path: Path) -> None:
    web = write(tmp_path, {
        "tls_server_config": {"cert_file": "missing.crt", "key_file": "missing.key"},
        "http_server_config": {"headers": {"Content-Length": "5"}},
    })  # fmt: skip
    result = subprocess.run(
        [sys.executable, "-m", "exporter", "--demo", "--web.config.file", str(web)],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert result.returncode == 1 and "Traceback" not in result.stderr
    lines = sorted(result.stderr.strip().splitlines())
    assert len(lines) == 2, lines
    assert "http_server_config.headers.Content-Length: cannot be configured" in lines[0]
    assert "tls_server_config.cert_file: cannot read" in lines[1]
