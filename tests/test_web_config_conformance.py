"""The same web-config files, given to Debian's node_exporter and to this exporter.

node_exporter 1.5 embeds the exporter-toolkit 0.8 (Go 1.19): it is the reference for what a
``--web.config.file`` means. Each comparison here writes files, starts both programs on
loopback ports with them, and asks both the same questions: is the file accepted at start;
which TLS versions, TLS 1.2 cipher suites and key-exchange groups complete a handshake (Python
clients pinned to one of each); what a client with no certificate, with one from the
configured CA and with one from another CA gets in every ``client_auth_type``; which headers
every answer carries; what basic auth answers.

Where this exporter answers differently on purpose (what Python's ssl module cannot do as Go
does, or a choice documented in docs/security.md, "Compared with node_exporter"), the
difference is written next to the comparison it changes and asserted as it is: it is seen, and
the list stays true.

The test needs node_exporter; it fails, not skips, without it (CI's .ci/run installs it).
"""

from __future__ import annotations

import base64
import shutil
import socket
import ssl
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import bcrypt
import pytest

from tests.conftest import ROOT, free_port

NODE_EXPORTER = "prometheus-node-exporter"
INSTALL = (
    "DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "
    "prometheus-node-exporter"
)
GO, OURS = "node_exporter", "greenapi-exporter"
TLS_VERSIONS = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}
GROUPS = ("X25519", "prime256v1", "secp384r1", "secp521r1", "X448", "ffdhe2048")
NO_HTTP2 = "http_server_config: {http2: false}\n"
PASSWORD_HASH = bcrypt.hashpw(b"right", bcrypt.gensalt(rounds=4)).decode()


# -- the reference, the certificates, the two servers --------------------------------------


@pytest.fixture(scope="module")
def node_exporter() -> str:
    binary = shutil.which(NODE_EXPORTER)
    if binary is None:
        pytest.fail(f"{NODE_EXPORTER} is not installed; install it with: {INSTALL}")
    return binary


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA with a server certificate (RSA, for the ECDHE-RSA suites) and a client
    certificate; another CA with a client certificate of its own (the stranger)."""
    directory = tmp_path_factory.mktemp("pki")
    for ca in ("ca", "other-ca"):
        _certificate(directory, ca, None, _EC_KEY,
                     "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign\n")  # fmt: skip
    _certificate(directory, "server", "ca", ["-newkey", "rsa:2048"],
                 "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")  # fmt: skip
    _certificate(directory, "client", "ca", _EC_KEY, "extendedKeyUsage=clientAuth\n")
    _certificate(directory, "stranger", "other-ca", _EC_KEY, "extendedKeyUsage=clientAuth\n")
    _openssl(directory, "pkey", "-in", "server.key", "-aes256", "-passout", "pass:secret",
             "-out", "encrypted.key")  # fmt: skip
    return directory


_EC_KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"]


def _openssl(directory: Path, *args: str) -> None:
    subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True)


def _certificate(
    directory: Path, name: str, ca: str | None, key: list[str], extensions: str
) -> None:
    """NAME.crt and NAME.key, signed by CA (self-signed when None), with exactly these
    extensions: a request, then ``x509 -req``, so that no configuration file adds any."""
    (directory / f"{name}.ext").write_text(extensions)
    _openssl(directory, "req", *key, "-nodes", "-subj", f"/CN={name}", "-keyout", f"{name}.key",
             "-out", f"{name}.csr")  # fmt: skip
    signer = ["-signkey", f"{name}.key"] if ca is None else [
        "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key", "-CAcreateserial"]  # fmt: skip
    _openssl(directory, "x509", "-req", "-in", f"{name}.csr", *signer, "-days", "2",
             "-extfile", f"{name}.ext", "-out", f"{name}.crt")  # fmt: skip


@dataclass
class Server:
    """One program serving one web-config file on a loopback port."""

    kind: str
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    def listening(self) -> bool:
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
        except OSError:
            return False
        return True

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def start(kind: str, config: Path, binary: str) -> Server:
    port = free_port()
    log = config.with_suffix(f".{kind}.log")
    if kind == GO:
        args = [binary, f"--web.listen-address=127.0.0.1:{port}", f"--web.config.file={config}",
                "--collector.disable-defaults", "--web.disable-exporter-metrics"]  # fmt: skip
    else:
        args = [sys.executable, "-m", "exporter", "--demo", "--web.listen-address",
                f"127.0.0.1:{port}", "--web.config.file", str(config)]  # fmt: skip
    with log.open("wb") as output:
        process = subprocess.Popen(args, stdout=output, stderr=subprocess.STDOUT, cwd=ROOT)
    return Server(kind, process, port, log)


def accepted(servers: list[Server], timeout: float = 40.0) -> list[bool]:
    """Whether each server accepted its file: listening, and still alive a moment later.
    node_exporter listens before it reads the file and exits at once if it refuses it; this
    exporter reads the file first and exits 1."""
    deadline = time.monotonic() + timeout
    waiting = list(servers)
    while waiting and time.monotonic() < deadline:
        waiting = [s for s in waiting if s.process.poll() is None and not s.listening()]
        time.sleep(0.05)
    if waiting:
        raise AssertionError(
            "neither listening nor exited:\n" + "\n".join(s.output() for s in waiting)
        )
    time.sleep(0.3)
    return [server.process.poll() is None for server in servers]


def stop(servers: list[Server]) -> None:
    """Killed, not stopped: how each stops is tested elsewhere, and a kill takes no time."""
    for server in servers:
        server.process.kill()
    for server in servers:
        server.process.wait()


@dataclass
class Pair:
    go: Server
    ours: Server


@contextmanager
def serving(binary: str, pki: Path, files: Mapping[str, str]) -> Iterator[dict[str, Pair]]:
    """Both programs on each file (written next to the certificates, so that relative names
    resolve there), all started at once, each required to accept its file; all stopped at the
    end. Every file served here is so also compared for acceptance."""
    pairs: dict[str, Pair] = {}
    for name, text in files.items():
        config = pki / f"{name}.yml"
        config.write_text(text)
        pairs[name] = Pair(start(GO, config, binary), start(OURS, config, binary))
    servers = [server for pair in pairs.values() for server in (pair.go, pair.ours)]
    try:
        refused = [s for s, ok in zip(servers, accepted(servers), strict=True) if not ok]
        assert not refused, "\n".join(f"{s.kind} refused {s.log}:\n{s.output()}" for s in refused)
        yield pairs
    finally:
        stop(servers)


# -- asking the servers --------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    """What a client got: an HTTP status when the server served it, else None."""

    status: int | None = None
    version: str | None = None
    cipher: str | None = None
    alpn: str | None = None
    headers: tuple[tuple[str, str], ...] = field(default=())  # names lower-cased, in order

    @property
    def served(self) -> bool:
        return self.status is not None

    def header(self, name: str) -> list[str]:
        return [value for key, value in self.headers if key == name.lower()]


def ask(
    port: int,
    *,
    path: str = "/",
    tls: bool = True,
    version: str | None = None,
    ciphers: str = "ALL",
    group: str | None = None,
    certificate: Path | None = None,
    alpn: list[str] | None = None,
    authorization: str | None = None,
) -> Answer:
    """One request, over TLS unless ``tls`` is false, by a client pinned as asked. A client
    certificate refused in TLS 1.3 shows only when reading, so every probe reads the answer."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    tls_facts = Answer()  # what the handshake told: version, cipher, ALPN
    try:
        if tls:
            sock = _client_context(version, ciphers, group, certificate, alpn).wrap_socket(sock)
            cipher = sock.cipher()
            tls_facts = Answer(version=sock.version(), cipher=cipher[0] if cipher else None,
                               alpn=sock.selected_alpn_protocol())  # fmt: skip
            if tls_facts.alpn == "h2":  # an HTTP/2 server: the TLS facts are the answer
                return tls_facts
        auth = f"Authorization: {authorization}\r\n" if authorization else ""
        sock.sendall(
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n{auth}\r\n".encode()
        )
        head = _read_head(sock)
    except (OSError, ssl.SSLError):
        return tls_facts
    finally:
        sock.close()
    if not head:
        return tls_facts
    status_line, *lines = head.split("\r\n")
    headers = tuple(
        (k.strip().lower(), v.strip()) for k, _, v in (line.partition(":") for line in lines)
    )
    return replace(tls_facts, status=int(status_line.split()[1]), headers=headers)


def _client_context(
    version: str | None,
    ciphers: str,
    group: str | None,
    certificate: Path | None,
    alpn: list[str] | None,
) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    context.set_ciphers(f"{ciphers}:@SECLEVEL=0")  # TLS 1.0 and 1.1 need level 0 in OpenSSL 3
    if version is not None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            context.minimum_version = context.maximum_version = TLS_VERSIONS[version]
    if group is not None:
        context.set_ecdh_curve(group)
    if certificate is not None:
        context.load_cert_chain(certificate, certificate.with_suffix(".key"))
    if alpn is not None:
        context.set_alpn_protocols(alpn)
    return context


def _read_head(sock: socket.socket) -> str:
    data = b""
    while b"\r\n\r\n" not in data and len(data) < 65536:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data.partition(b"\r\n\r\n")[0].decode("latin-1")


def tls_file(*keys: str, after: str = "") -> str:
    """A web config serving server.crt with these further tls_server_config keys (one
    ``key: value`` each), then ``after`` (the file's other sections)."""
    lines = ("cert_file: server.crt", "key_file: server.key", *keys)
    return "tls_server_config:\n" + "".join(f"  {line}\n" for line in lines) + after


def basic(user: str, password: str, scheme: str = "Basic") -> str:
    return f"{scheme} " + base64.b64encode(f"{user}:{password}".encode()).decode()


def compare(
    pairs: Mapping[str, Pair],
    probe: Callable[[Answer], object],
    questions: Mapping[str, Mapping[str, Any]],
    differences: Mapping[tuple[str, str], object],
) -> None:
    """Ask every server every question; ``probe(answer)`` is what is compared. Where
    ``differences`` names (file, question), this exporter answers that value and node_exporter
    another; everywhere else both answer alike. All disagreements are reported at once."""
    found: list[str] = []
    for name, pair in pairs.items():
        for question, options in questions.items():
            go = probe(ask(pair.go.port, **options))
            ours = probe(ask(pair.ours.port, **options))
            if (name, question) in differences:
                expected = differences[name, question]
                if ours != expected or go == ours:
                    found.append(f"{name} / {question}: stated difference not seen: "
                                 f"{GO} {go!r}, {OURS} {ours!r} (stated {expected!r})")  # fmt: skip
            elif go != ours:
                found.append(f"{name} / {question}: {GO} {go!r}, {OURS} {ours!r}")
    assert not found, "\n".join(found)


def served(answer: Answer) -> bool:
    return answer.served


# -- accepted or refused -------------------------------------------------------------------

# Files for every key, valid and invalid; both programs must agree on every one. The files the
# comparisons below serve (TLS versions, suites, groups, client_auth_type in every mode, headers
# and users, tls_server_config without files) are accepted by both there, so are not repeated.
FILES = {
    # accepted
    "empty": "",
    "every-key": tls_file(
        "client_auth_type: RequireAndVerifyClientCert",
        "client_ca_file: ca.crt",
        "min_version: TLS12",
        "max_version: TLS13",
        "cipher_suites: [TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, TLS_AES_128_GCM_SHA256]",
        "prefer_server_cipher_suites: false",
        "curve_preferences: [CurveP256, X25519]",
        after="http_server_config:\n  http2: false\n  headers: {X-Frame-Options: deny}\n"
        f"basic_auth_users: {{prometheus: '{PASSWORD_HASH}'}}\n",
    ),
    "old-name-of-require-any": tls_file("client_auth_type: RequireClientCert"),
    "ca-file-without-certificates": tls_file(
        "client_auth_type: RequireAndVerifyClientCert", "client_ca_file: server.ext"
    ),
    "cbc-suite-without-http2": tls_file(
        "cipher_suites: [TLS_RSA_WITH_AES_128_CBC_SHA]", after=NO_HTTP2
    ),
    "cbc-suite-tls13-only": tls_file(
        "cipher_suites: [TLS_RSA_WITH_AES_128_CBC_SHA]", "min_version: TLS13"
    ),
    "headers-of-the-toolkit": (
        "http_server_config:\n  headers:\n    Strict-Transport-Security: max-age=1\n"
        "    X-Content-Type-Options: nosniff\n    X-Frame-Options: sameorigin\n"
        "    X-XSS-Protection: 0\n    Content-Security-Policy:\n"
    ),
    "hash-go-reads-but-cannot-match": "basic_auth_users: {alice: '$2x$10$" + "." * 53 + "'}\n",
    "yaml-1.1-boolean": "http_server_config: {http2: y}\n",
    "second-document-ignored": "basic_auth_users: {}\n---\nanything: 1\n",
    # refused
    "unknown-key": "colour: blue\n",
    "misspelt-tls-key": tls_file("cert_filse: server.crt"),
    "repeated-key": "http_server_config: {}\nhttp_server_config: {}\n",
    "key-file-only": "tls_server_config: {key_file: server.key}\n",
    "client-auth-type-only": "tls_server_config: {client_auth_type: RequireAndVerifyClientCert}\n",
    "ca-without-client-auth-type": tls_file("client_ca_file: ca.crt"),
    "unknown-client-auth-type": tls_file("client_auth_type: Yes"),
    "missing-cert-file": "tls_server_config: {cert_file: nowhere.crt, key_file: server.key}\n",
    "swapped-cert-and-key": "tls_server_config: {cert_file: server.key, key_file: server.crt}\n",
    "key-of-another-cert": "tls_server_config: {cert_file: server.crt, key_file: client.key}\n",
    "encrypted-key": "tls_server_config: {cert_file: server.crt, key_file: encrypted.key}\n",
    "missing-ca-file": tls_file(
        "client_auth_type: VerifyClientCertIfGiven", "client_ca_file: nowhere.crt"
    ),
    "lower-case-version": tls_file("min_version: tls12"),
    "unknown-suite": tls_file("cipher_suites: [TLS_AES_128_GCM_SHA2048]"),
    "insecure-suite": tls_file("cipher_suites: [TLS_RSA_WITH_3DES_EDE_CBC_SHA]"),
    "cbc-suite-with-http2": tls_file("cipher_suites: [TLS_RSA_WITH_AES_128_CBC_SHA]"),
    "unknown-curve": tls_file("curve_preferences: [CurveP257]"),
    "quoted-boolean": "http_server_config: {http2: 'yes'}\n",
    "header-of-the-server": "http_server_config: {headers: {Content-Length: '5'}}\n",
    "header-in-lower-case": "http_server_config: {headers: {x-frame-options: deny}}\n",
    "header-value-in-upper-case": "http_server_config: {headers: {X-Frame-Options: DENY}}\n",
    "header-value-not-allowed": "http_server_config: {headers: {X-Content-Type-Options: sniff}}\n",
    "plain-text-password": "basic_auth_users: {alice: secret}\n",
    "bcrypt-cost-too-low": "basic_auth_users: {alice: '$2y$03$" + "." * 53 + "'}\n",
    "users-as-a-list": "basic_auth_users: [alice]\n",
    "junk": "hWkNKCp3fvIx3jKnsaBI\nTuEjdwNS8A2vYdFbiKqr\n",
}


def test_the_same_files_are_accepted_and_refused_alike(node_exporter: str, pki: Path) -> None:
    disagreements = []
    names = list(FILES)
    for batch in (names[i : i + 20] for i in range(0, len(names), 20)):  # a few at a time
        servers: dict[tuple[str, str], Server] = {}
        for name in batch:
            config = pki / f"accept-{name}.yml"
            config.write_text(FILES[name])
            for kind in (GO, OURS):
                servers[name, kind] = start(kind, config, node_exporter)
        verdicts = dict(zip(servers, accepted(list(servers.values())), strict=True))
        stop(list(servers.values()))
        for name in batch:
            go, ours, server = verdicts[name, GO], verdicts[name, OURS], servers[name, OURS]
            if go != ours:
                disagreements.append(f"{name}: {GO} {'accepts' if go else 'refuses'}, {OURS} "
                                     f"{'accepts' if ours else 'refuses'}:\n{server.output()}")  # fmt: skip
            elif not ours:  # refused as it should be: exit 1, one line per problem, no traceback
                assert server.process.returncode == 1, f"{name}:\n{server.output()}"
                assert "Traceback" not in server.output() and "accept-" in server.output(), name
    assert not disagreements, "\n".join(disagreements)


# -- TLS: versions, suites, groups, ALPN ---------------------------------------------------


def test_the_same_tls_versions_complete_a_handshake(node_exporter: str, pki: Path) -> None:
    files = {
        "versions-default": tls_file(),
        "versions-min-tls10": tls_file("min_version: TLS10"),
        "versions-tls11-to-tls12": tls_file("min_version: TLS11", "max_version: TLS12"),
        "versions-min-above-max": tls_file("min_version: TLS13", "max_version: TLS12"),
        "versions-empty-min": tls_file("min_version:"),
        "versions-tls13-suites-only": tls_file(
            "cipher_suites: [TLS_AES_256_GCM_SHA384]", after=NO_HTTP2
        ),
    }
    with serving(node_exporter, pki, files) as pairs:
        compare(pairs, served, {v: {"version": v} for v in TLS_VERSIONS}, differences={})


def _tls12_suites_a_client_can_offer() -> list[str]:
    """OpenSSL's TLS 1.2-and-older suites for an RSA server certificate."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.set_ciphers("ALL:@SECLEVEL=0")
    return [c["name"] for c in context.get_ciphers() if c["protocol"] != "TLSv1.3"
            and c["auth"] == "auth-rsa" and c["kea"] in ("kx-rsa", "kx-ecdhe", "kx-dhe")]  # fmt: skip


def test_the_same_tls12_cipher_suites_complete_a_handshake(node_exporter: str, pki: Path) -> None:
    # TLS 1.3 suites are not configurable in either (both offer the same three); Python
    # clients cannot pin one, so TLS 1.3 is compared by version above.
    files = {
        "suites-default": tls_file(),
        "suites-listed": tls_file(
            "cipher_suites: [TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, TLS_RSA_WITH_AES_128_CBC_SHA,"
            " TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256]"
        ),
        "suites-tls13-only": tls_file(
            "cipher_suites: [TLS_CHACHA20_POLY1305_SHA256]", after=NO_HTTP2
        ),
    }
    questions = {
        suite: {"version": "TLS12", "ciphers": suite}
        for suite in _tls12_suites_a_client_can_offer()
    }
    with serving(node_exporter, pki, files) as pairs:
        compare(pairs, served, questions, differences={})


def test_the_same_key_exchange_groups_complete_a_handshake(node_exporter: str, pki: Path) -> None:
    files = {
        "groups-default": tls_file(),
        "groups-one-curve": tls_file("curve_preferences: [CurveP384]"),
        "groups-two-curves": tls_file("curve_preferences: [CurveP521, X25519]"),
    }
    differences = {
        # Without curve_preferences OpenSSL's default groups are offered; the ssl module cannot
        # narrow them to Go's four (X25519, P-256, P-384, P-521).
        ("groups-default", "X448"): True,
        ("groups-default", "ffdhe2048"): True,
        # The ssl module sets one curve: the first of the list, never one that is not listed.
        ("groups-two-curves", "X25519"): False,
    }
    questions = {group: {"version": "TLS13", "group": group} for group in GROUPS}
    with serving(node_exporter, pki, files) as pairs:
        compare(pairs, served, questions, differences)


def test_the_order_of_cipher_suites_is_applied_as_the_toolkit_documents_it(
    node_exporter: str, pki: Path
) -> None:
    # The toolkit documents prefer_server_cipher_suites (and so the order of cipher_suites);
    # Go 1.17 and newer ignore both and use their own order: a stated difference.
    listed = (
        "max_version: TLS12",
        "cipher_suites: [TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384, TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256]",
    )
    files = {
        "order-server-preferred": tls_file(*listed, "prefer_server_cipher_suites: true"),
        "order-client-preferred": tls_file(*listed, "prefer_server_cipher_suites: false"),
    }
    client = {
        "version": "TLS12",
        "ciphers": "ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384",
    }
    differences = {("order-server-preferred", "AES-128 first"): "ECDHE-RSA-AES256-GCM-SHA384"}
    with serving(node_exporter, pki, files) as pairs:
        compare(pairs, lambda answer: answer.cipher, {"AES-128 first": client}, differences)


def test_http2_is_accepted_and_http_1_1_is_what_is_served(node_exporter: str, pki: Path) -> None:
    files = {
        "alpn-http2-default": tls_file(),
        "alpn-http2-off": tls_file(after=NO_HTTP2),
    }
    # node_exporter speaks HTTP/2 when a client offers it; this exporter's server is HTTP/1.1
    # only and negotiates no protocol, which every client reads as HTTP/1.1.
    differences = {("alpn-http2-default", "h2 or http/1.1"): None}
    questions = {"h2 or http/1.1": {"alpn": ["h2", "http/1.1"]}}
    with serving(node_exporter, pki, files) as pairs:
        compare(pairs, lambda answer: answer.alpn, questions, differences)


# -- client certificates -------------------------------------------------------------------

CLIENT_AUTH = [
    ("NoClientCert", False),
    ("RequestClientCert", False),
    ("RequestClientCert", True),
    ("RequireAnyClientCert", False),
    ("RequireAnyClientCert", True),
    ("VerifyClientCertIfGiven", False),
    ("VerifyClientCertIfGiven", True),
    ("RequireAndVerifyClientCert", False),
    ("RequireAndVerifyClientCert", True),
]
# Go accepts any certificate in RequireAnyClientCert; the ssl module cannot accept a
# certificate without verifying it, so this exporter verifies it: the stricter answer.
CLIENT_AUTH_DIFFERENCES = {
    ("RequireAnyClientCert-without-ca", "TLS12 certificate from the CA"): False,
    ("RequireAnyClientCert-without-ca", "TLS13 certificate from the CA"): False,
    ("RequireAnyClientCert-without-ca", "TLS12 certificate from another CA"): False,
    ("RequireAnyClientCert-without-ca", "TLS13 certificate from another CA"): False,
    ("RequireAnyClientCert-with-ca", "TLS12 certificate from another CA"): False,
    ("RequireAnyClientCert-with-ca", "TLS13 certificate from another CA"): False,
}


@pytest.fixture(scope="module")
def client_auth_servers(node_exporter: str, pki: Path) -> Iterator[dict[str, Pair]]:
    files = {
        f"{mode}-{'with' if ca else 'without'}-ca": tls_file(
            f"client_auth_type: {mode}", *(["client_ca_file: ca.crt"] if ca else [])
        )
        for mode, ca in CLIENT_AUTH
    }
    with serving(node_exporter, pki, files) as pairs:
        yield pairs


@pytest.mark.parametrize(("mode", "ca"), CLIENT_AUTH)
def test_each_client_auth_type_admits_the_same_clients(
    client_auth_servers: dict[str, Pair], pki: Path, mode: str, ca: bool
) -> None:
    name = f"{mode}-{'with' if ca else 'without'}-ca"
    questions = {
        f"{version} {who}": {"version": version, "certificate": certificate}
        for version in ("TLS12", "TLS13")
        for who, certificate in (("no certificate", None),
                                 ("certificate from the CA", pki / "client.crt"),
                                 ("certificate from another CA", pki / "stranger.crt"))
    }  # fmt: skip
    compare({name: client_auth_servers[name]}, served, questions, CLIENT_AUTH_DIFFERENCES)


# -- headers and basic auth ----------------------------------------------------------------


@pytest.fixture(scope="module")
def auth_servers(node_exporter: str, pki: Path) -> Iterator[Pair]:
    text = (
        "http_server_config:\n  headers:\n    Strict-Transport-Security: max-age=31536000\n"
        "    X-Frame-Options: deny\n    X-XSS-Protection: 0\n"
        "    Content-Security-Policy: \"default-src 'self'\\nSet-Cookie: injected=1\"\n"
        f"basic_auth_users:\n  alice: '{PASSWORD_HASH}'\n"
    )
    with serving(node_exporter, pki, {"auth": text}) as pairs:
        yield pairs["auth"]


CONFIGURED = ("Strict-Transport-Security", "X-Frame-Options", "X-XSS-Protection",
              "Content-Security-Policy", "X-Content-Type-Options")  # fmt: skip


def configured_headers(answer: Answer) -> dict[str, list[str]]:
    return {name: answer.header(name) for name in CONFIGURED}


def test_configured_headers_are_on_every_answer_once(auth_servers: Pair) -> None:
    # X-Content-Type-Options is not configured here: node_exporter's 401 carries it anyway.
    questions = {
        "unauthorized": {"tls": False, "path": "/metrics"},
        "authorized": {"tls": False, "path": "/metrics", "authorization": basic("alice", "right")},
    }
    compare({"auth": auth_servers}, configured_headers, questions, differences={})


AUTH_QUESTIONS = {
    "no credentials": None,
    "right password": basic("alice", "right"),
    "wrong password": basic("alice", "wrong"),
    "unknown user": basic("mallory", "right"),
    "empty password": basic("alice", ""),
    "scheme in lower case": basic("alice", "right", "basic"),
    "scheme in upper case": basic("alice", "right", "BASIC"),
    "two spaces after the scheme": basic("alice", "right", "Basic "),
    "no colon": "Basic " + base64.b64encode(b"aliceright").decode(),
    "not base64": "Basic alice:right",
    "another scheme": "Bearer " + base64.b64encode(b"alice:right").decode(),
}


def test_basic_auth_answers_with_the_same_status(auth_servers: Pair) -> None:
    questions = {question: {"tls": False, "path": "/metrics", "authorization": authorization}
                 for question, authorization in AUTH_QUESTIONS.items()}  # fmt: skip
    compare({"auth": auth_servers}, lambda answer: answer.status, questions, differences={})


def test_a_401_challenges_for_basic_auth_with_a_realm(auth_servers: Pair) -> None:
    # RFC 7617 requires the realm that node_exporter leaves out: a stated difference.
    def challenge(answer: Answer) -> list[str]:
        return answer.header("WWW-Authenticate")

    refused = ("no credentials", "wrong password", "unknown user")
    ours = ['Basic realm="greenapi-exporter", charset="UTF-8"']
    differences = {("auth", question): ours for question in refused}
    questions = {
        question: {"tls": False, "path": "/metrics", "authorization": AUTH_QUESTIONS[question]}
        for question in refused
    }
    compare({"auth": auth_servers}, challenge, questions, differences)
    assert challenge(ask(auth_servers.go.port, tls=False, path="/metrics")) == ["Basic"]


def test_tls_server_config_without_files_serves_plain_http(node_exporter: str, pki: Path) -> None:
    files = {
        "plain-empty-section": "tls_server_config: {}\n",
        "plain-versions-only": "tls_server_config: {min_version: TLS13, max_version: TLS13}\n",
    }
    with serving(node_exporter, pki, files) as pairs:
        compare(pairs, served, {"plain HTTP": {"tls": False}, "TLS": {}}, differences={})
