"""``--web.config.file``: TLS and basic auth in the exporter-toolkit's ``web-config.yml`` format.

A file means here what it means to node_exporter 1.5 (exporter-toolkit 0.8, Go 1.19), key for
key: the same keys and defaults, the same files accepted and refused at start, the same TLS
versions, cipher suites and client-certificate answers, the same headers and auth answers::

    tls_server_config:
      cert_file: server.crt            # relative paths are relative to this file
      key_file: server.key
      client_auth_type: NoClientCert   # RequestClientCert, RequireAnyClientCert,
                                       # VerifyClientCertIfGiven, RequireAndVerifyClientCert
      client_ca_file: ca.crt
      min_version: TLS12               # TLS10 … TLS13
      max_version: TLS13
      cipher_suites: [TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256]   # Go names; TLS 1.2 and older
      prefer_server_cipher_suites: true
      curve_preferences: [X25519]      # CurveP256, CurveP384, CurveP521, X25519
    http_server_config:
      http2: true
      headers: {X-Frame-Options: deny}
    basic_auth_users:
      prometheus: $2y$10$…             # bcrypt hash (htpasswd -nBC 10 "" | tr -d ':\\n')

How it is built:

- **Decoding** follows Go's ``yaml.v2`` ``UnmarshalStrict`` rather than PyYAML's Python objects:
  the node tree is walked, unknown and repeated keys are refused, a scalar where a string is
  expected is read as its text (``X-XSS-Protection: 0`` is ``"0"``), and an empty value leaves
  Go's zero value (``http2:`` is false, ``min_version:`` is TLS 1.0).
- **Validation** reports every problem, one line each, naming the file and the key path, where
  Go stops at the first.
- **TLS** is a standard-library ``ssl.SSLContext``. Where the ``ssl`` module cannot do what Go
  does (accept a client certificate without verifying it, narrow the curves to more than one),
  the context does the closest thing that never admits a client node_exporter would refuse;
  ``docs/security.md`` lists each difference, and ``WebConfig.warnings`` names the ones a file
  relies on.
- **Basic auth** checks bcrypt hashes, one check at a time as the toolkit does, caches answers
  by a keyed digest (never the password), and makes an unknown user cost what a wrong password
  costs: the check then runs against a fixed hash of the highest configured cost.

Basic auth needs the optional ``bcrypt`` package (``pip install 'greenapi-exporter[bcrypt]'``):
the standard library has no bcrypt, and plain-text passwords in a file are what the format
exists to avoid.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import secrets
import ssl
import threading
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import yaml

# Go's tls.CipherSuites() (Go 1.19), the only names the toolkit accepts, in Go's own order of
# preference, with their OpenSSL names. TLS 1.3 suites are accepted and, as in Go, not
# configurable (None): both stacks always offer the same three.
GO_CIPHER_SUITES: dict[str, str | None] = {
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": "ECDHE-RSA-AES128-GCM-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": "ECDHE-ECDSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": "ECDHE-RSA-AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-ECDSA-CHACHA20-POLY1305",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA": "ECDHE-ECDSA-AES128-SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA": "ECDHE-RSA-AES128-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA": "ECDHE-ECDSA-AES256-SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA": "ECDHE-RSA-AES256-SHA",
    "TLS_RSA_WITH_AES_128_GCM_SHA256": "AES128-GCM-SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384": "AES256-GCM-SHA384",
    "TLS_RSA_WITH_AES_128_CBC_SHA": "AES128-SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA": "AES256-SHA",
    "TLS_AES_128_GCM_SHA256": None,
    "TLS_AES_256_GCM_SHA384": None,
    "TLS_CHACHA20_POLY1305_SHA256": None,
}
# Go refuses an HTTP/2 server whose TLS 1.2 suites lack both of these (RFC 7540, 9.2.2).
HTTP2_REQUIRED_SUITES = (
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
)
CURVES = {
    "CurveP256": "prime256v1",
    "CurveP384": "secp384r1",
    "CurveP521": "secp521r1",
    "X25519": "X25519",
}
TLS_VERSIONS = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}
CLIENT_AUTH_TYPES = (
    "NoClientCert",
    "RequestClientCert",
    "RequireAnyClientCert",
    "VerifyClientCertIfGiven",
    "RequireAndVerifyClientCert",
)
_CLIENT_AUTH_ALIASES = {"": "NoClientCert", "RequireClientCert": "RequireAnyClientCert"}
# The only headers the toolkit lets a file set, with the values it allows (None: any). None of
# them is one the server sets itself, so a configured header never doubles one of the server's.
CONFIGURABLE_HEADERS: dict[str, tuple[str, ...] | None] = {
    "Strict-Transport-Security": None,
    "X-Content-Type-Options": ("nosniff",),
    "X-Frame-Options": ("deny", "sameorigin"),
    "X-XSS-Protection": None,
    "Content-Security-Policy": None,
}
REALM = "greenapi-exporter"
BCRYPT_MAX_PASSWORD = 72  # bytes bcrypt reads; Go's bcrypt ignores the rest, so do we

_TOP_KEYS = ("tls_server_config", "http_server_config", "basic_auth_users")
_TLS_KEYS = (
    "cert_file",
    "key_file",
    "client_auth_type",
    "client_ca_file",
    "cipher_suites",
    "curve_preferences",
    "min_version",
    "max_version",
    "prefer_server_cipher_suites",
)
_HTTP_KEYS = ("http2", "headers")
_PEM_CERTIFICATE = re.compile(
    r"-----BEGIN CERTIFICATE-----\r?\n.*?-----END CERTIFICATE-----", re.DOTALL
)
_YAML = "tag:yaml.org,2002:"
_YAML_1_1_SHORT_BOOLEANS = {"y": True, "Y": True, "n": False, "N": False}  # yaml.v2 has them


class WebConfigError(Exception):
    """The web configuration is refused; one line per problem, naming the key path."""


class _PasswordChecks:
    """bcrypt checks one at a time, as the toolkit runs them (each holds a core for 0.1-0.3 s),
    and a bounded cache of answers keyed by an HMAC under a key of this process: neither a
    password nor a plain digest of one is ever held."""

    LIMIT = 1000

    def __init__(self) -> None:
        self._key = secrets.token_bytes(32)
        self._answers: dict[bytes, bool] = {}
        self._cache_lock = threading.Lock()
        self._bcrypt_lock = threading.Lock()

    def check(self, password: bytes, hashed: bytes, known_user: bool) -> bool:
        digest = hmac.new(
            self._key, b"%d\0%s\0%s" % (known_user, hashed, password), hashlib.sha256
        ).digest()
        with self._cache_lock:
            answer = self._answers.get(digest)
        if answer is not None:
            return answer
        import bcrypt  # present: load_web_config refuses users without it

        with self._bcrypt_lock:
            try:
                matches = bcrypt.checkpw(password[:BCRYPT_MAX_PASSWORD], hashed)
            except ValueError:  # a hash bcrypt cannot read (warned about at load)
                matches = False
        answer = matches and known_user
        with self._cache_lock:
            if len(self._answers) >= self.LIMIT:
                self._answers.clear()
            self._answers[digest] = answer
        return answer


@dataclass(frozen=True)
class WebConfig:
    """A validated web configuration: what the HTTP server applies to every connection."""

    ssl_context: ssl.SSLContext | None = None
    users: Mapping[str, bytes] = field(default_factory=dict)  # user → bcrypt hash
    headers: Mapping[str, str] = field(default_factory=dict)  # on every reply, 401 included
    http2: bool = True  # accepted as node_exporter accepts it; replies are HTTP/1.1 here
    warnings: tuple[str, ...] = ()  # one line each, for the log at start
    _checks: _PasswordChecks = field(default_factory=_PasswordChecks, repr=False, compare=False)

    @property
    def unauthorized_headers(self) -> Mapping[str, str]:
        """Headers of a 401 reply, besides ``headers``: the challenge (RFC 7617) and
        ``nosniff``, as the toolkit's 401 replies carry it."""
        return {
            "WWW-Authenticate": f'Basic realm="{REALM}", charset="UTF-8"',
            "X-Content-Type-Options": "nosniff",
        }

    @cached_property
    def _unknown_user_hash(self) -> bytes:
        """A fixed hash of the highest configured cost: an unknown user costs what a wrong
        password costs, so answers do not tell which user names exist."""
        cost = max((_bcrypt_cost_at(hashed)[1] for hashed in self.users.values()), default=10)
        return b"$2b$%02d$%s" % (cost, b"." * 53)

    def authorized(self, header: str | None) -> bool:
        """Check an ``Authorization`` header against ``basic_auth_users`` (True when unset)."""
        if not self.users:
            return True
        credentials = basic_credentials(header)
        if credentials is None:
            return False
        user, password = credentials
        try:
            hashed = self.users.get(user.decode("utf-8"))
        except UnicodeDecodeError:  # YAML names are text: no configured user is this one
            hashed = None
        if hashed is None:
            return self._checks.check(password, self._unknown_user_hash, known_user=False)
        return self._checks.check(password, hashed, known_user=True)


def basic_credentials(header: str | None) -> tuple[bytes, bytes] | None:
    """(user, password) of a ``Basic`` header, as Go's ``Request.BasicAuth`` reads it: the
    scheme in any case (RFC 7617), one space, strict base64, split at the first colon."""
    if header is None:
        return None
    value = header.strip(" \t")  # http.server keeps trailing blanks; Go's header reader drops them
    if len(value) < 6 or value[:6].lower() != "basic ":
        return None
    try:
        decoded = base64.b64decode(value[6:], validate=True)
    except ValueError:  # binascii.Error, or characters outside ASCII
        return None
    user, sep, password = decoded.partition(b":")
    return (user, password) if sep else None


# -- reading the file ------------------------------------------------------------------------


class _Problems:
    """Errors (the file is refused) and warnings (it is used), each ``PATH: KEY: text``."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.errors: list[str] = []
        self.warnings: list[str] = []

    def error(self, key: str, text: str) -> None:
        self.errors.append(f"{self.path}: {key}: {text}" if key else f"{self.path}: {text}")

    def warn(self, key: str, text: str) -> None:
        self.warnings.append(f"{self.path}: {key}: {text}")


class _Decoder:
    """Typed reads from PyYAML nodes, with yaml.v2's strict rules; problems go to ``problems``."""

    def __init__(self, problems: _Problems) -> None:
        self.problems = problems

    def fields(
        self, node: yaml.Node | None, key: str, known: tuple[str, ...]
    ) -> dict[str, yaml.Node]:
        found = self.mapping(node, key, "a mapping")
        for name in found:
            if name not in known:
                self.problems.error(_join(key, name), "unknown key")
        return {name: value for name, value in found.items() if name in known}

    def mapping(self, node: yaml.Node | None, key: str, expected: str) -> dict[str, yaml.Node]:
        if node is None or _is_null(node):
            return {}
        if not isinstance(node, yaml.MappingNode):
            self.problems.error(key, f"expected {expected}, not {_kind(node)}")
            return {}
        found: dict[str, yaml.Node] = {}
        for key_node, value in node.value:
            name = self.text(key_node, key)
            if name in found:
                self.problems.error(_join(key, name), "given twice")
            found[name] = value
        return found

    def text(self, node: yaml.Node | None, key: str) -> str:
        if node is None or _is_null(node):
            return ""
        if not isinstance(node, yaml.ScalarNode):
            self.problems.error(key, f"expected a string, not {_kind(node)}")
            return ""
        return str(node.value)

    def texts(self, node: yaml.Node | None, key: str) -> list[str]:
        if node is None or _is_null(node):
            return []
        if not isinstance(node, yaml.SequenceNode):
            self.problems.error(key, f"expected a list, not {_kind(node)}")
            return []
        return [self.text(item, f"{key}[{i}]") for i, item in enumerate(node.value)]

    def flag(self, node: yaml.Node | None, key: str, default: bool) -> bool:
        if node is None:
            return default
        if _is_null(node):
            return False  # yaml.v2 sets Go's zero value
        if isinstance(node, yaml.ScalarNode) and node.tag == _YAML + "bool":
            return bool(yaml.constructor.SafeConstructor.bool_values[node.value.lower()])
        if (
            isinstance(node, yaml.ScalarNode)
            and node.style is None
            and node.value in _YAML_1_1_SHORT_BOOLEANS
        ):
            return _YAML_1_1_SHORT_BOOLEANS[node.value]
        self.problems.error(key, f"expected true or false, not {_kind(node)}")
        return default


def _is_null(node: yaml.Node) -> bool:
    return isinstance(node, yaml.ScalarNode) and node.tag == _YAML + "null"


def _kind(node: yaml.Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    return f"{node.tag.removeprefix(_YAML)} {str(node.value)[:40]!r}"


def _join(key: str, name: str) -> str:
    return f"{key}.{name}" if key else name


def _read_yaml(path: str) -> yaml.Node | None:
    """The first document's node tree (yaml.v2 reads only the first), or None when empty."""
    try:
        with open(path, encoding="utf-8") as handle:
            return next(iter(yaml.compose_all(handle, Loader=yaml.SafeLoader)), None)
    except OSError as exc:
        raise WebConfigError(f"{path}: cannot read: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise WebConfigError(f"{path}: not UTF-8 text") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1} column {mark.column + 1}" if mark else ""
        raise WebConfigError(f"{path}: invalid YAML{where}") from None


def load_web_config(path: str) -> WebConfig:
    """Read and validate ``path``; raise WebConfigError with every problem found."""
    root = _read_yaml(path)
    problems = _Problems(path)
    decoder = _Decoder(problems)
    top = decoder.fields(root, "", _TOP_KEYS)
    tls = _decode_tls(decoder, top.get("tls_server_config"))
    http = decoder.fields(top.get("http_server_config"), "http_server_config", _HTTP_KEYS)
    http2 = decoder.flag(http.get("http2"), "http_server_config.http2", default=True)
    headers = _headers(decoder, http.get("headers"))
    users = _users(decoder, top.get("basic_auth_users"))
    base = os.path.dirname(os.path.abspath(path))
    context = _server_context(tls, base, http2, problems) if tls.enabled else None
    if not tls.enabled and "tls_server_config" in top and not _is_null(top["tls_server_config"]):
        problems.warn(
            "tls_server_config",
            "no cert_file, key_file, client_auth_type or client_ca_file: TLS is off, "
            "as node_exporter has it",
        )
    if problems.errors:
        raise WebConfigError("\n".join(problems.errors))
    return WebConfig(
        ssl_context=context,
        users=users,
        headers=headers,
        http2=http2,
        warnings=tuple(problems.warnings),
    )


# -- tls_server_config -----------------------------------------------------------------------


@dataclass
class _TLSSettings:
    """``tls_server_config`` as the toolkit's Go struct holds it, names checked."""

    cert_file: str = ""
    key_file: str = ""
    client_auth_type: str = "NoClientCert"
    client_ca_file: str = ""
    cipher_suites: list[str] = field(default_factory=list)
    curve_preferences: list[str] = field(default_factory=list)
    min_version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_2
    max_version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_3
    prefer_server_cipher_suites: bool = True
    client_auth_given: bool = False

    @property
    def enabled(self) -> bool:
        """The toolkit serves TLS when any of these four is set, plain HTTP otherwise."""
        return bool(
            self.cert_file or self.key_file or self.client_ca_file or self.client_auth_given
        )


def _decode_tls(decoder: _Decoder, node: yaml.Node | None) -> _TLSSettings:
    key = "tls_server_config"
    section = decoder.fields(node, key, _TLS_KEYS)
    auth_type = decoder.text(section.get("client_auth_type"), f"{key}.client_auth_type")
    return _TLSSettings(
        cert_file=decoder.text(section.get("cert_file"), f"{key}.cert_file"),
        key_file=decoder.text(section.get("key_file"), f"{key}.key_file"),
        client_auth_type=_client_auth_type(auth_type, decoder.problems),
        client_auth_given=bool(auth_type),
        client_ca_file=decoder.text(section.get("client_ca_file"), f"{key}.client_ca_file"),
        cipher_suites=_names(decoder, section, "cipher_suites", GO_CIPHER_SUITES),
        curve_preferences=_names(decoder, section, "curve_preferences", CURVES),
        min_version=_tls_version(decoder, section, "min_version", ssl.TLSVersion.TLSv1_2),
        max_version=_tls_version(decoder, section, "max_version", ssl.TLSVersion.TLSv1_3),
        prefer_server_cipher_suites=decoder.flag(
            section.get("prefer_server_cipher_suites"), f"{key}.prefer_server_cipher_suites", True
        ),
    )


def _client_auth_type(text: str, problems: _Problems) -> str:
    mode = _CLIENT_AUTH_ALIASES.get(text, text)
    if mode not in CLIENT_AUTH_TYPES:
        expected = ", ".join(CLIENT_AUTH_TYPES)
        problems.error(
            "tls_server_config.client_auth_type", f"expected one of {expected}, not {text!r}"
        )
    return mode


def _tls_version(
    decoder: _Decoder, section: dict[str, yaml.Node], bound: str, default: ssl.TLSVersion
) -> ssl.TLSVersion:
    key = f"tls_server_config.{bound}"
    if bound not in section:
        return default
    text = decoder.text(section[bound], key)
    if text in TLS_VERSIONS:
        return TLS_VERSIONS[text]
    if text:
        decoder.problems.error(key, f"expected one of {', '.join(TLS_VERSIONS)}, not {text!r}")
        return default
    # Empty: Go's zero value, which for a Go 1.19 server means TLS 1.0 to TLS 1.3.
    if bound == "max_version":
        return ssl.TLSVersion.TLSv1_3
    decoder.problems.warn(
        key,
        "empty, so TLS 1.0 and newer are offered, as node_exporter does; "
        "write TLS12 for the default",
    )
    return ssl.TLSVersion.TLSv1


def _names(
    decoder: _Decoder, section: dict[str, yaml.Node], name: str, known: Mapping[str, object]
) -> list[str]:
    key = f"tls_server_config.{name}"
    names = decoder.texts(section.get(name), key)
    for i, value in enumerate(names):
        if value not in known:
            decoder.problems.error(f"{key}[{i}]", f"unknown {value!r}; {_EXPECTED_NAMES[name]}")
    return [value for value in names if value in known]


_EXPECTED_NAMES = {
    "cipher_suites": "expected a Go name of a secure suite (crypto/tls CipherSuites()), "
    "e.g. TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    "curve_preferences": f"expected one of {', '.join(CURVES)}",
}


def _server_context(
    tls: _TLSSettings, base: str, http2: bool, problems: _Problems
) -> ssl.SSLContext:
    key = "tls_server_config"
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.options |= ssl.OP_NO_RENEGOTIATION  # Go's server never renegotiates either
    with warnings.catch_warnings():  # TLS 1.0 and 1.1 are deprecated; the file asks for them
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version, context.maximum_version = tls.min_version, tls.max_version
    if tls.min_version > tls.max_version:
        problems.warn(
            key,
            "min_version is above max_version: no client can connect "
            "(node_exporter starts the same way)",
        )
    _apply_cipher_suites(context, tls, problems)
    _apply_curves(context, tls, problems)
    for name in ("cert_file", "key_file"):
        if not getattr(tls, name):
            problems.error(
                f"{key}.{name}", "missing; cert_file and key_file are both required for TLS"
            )
    if tls.cert_file and tls.key_file:
        _load_key_pair(context, _path(base, tls.cert_file), _path(base, tls.key_file), problems)
    _apply_client_auth(context, tls, base, problems)
    if (
        http2
        and tls.cipher_suites
        and tls.min_version < ssl.TLSVersion.TLSv1_3
        and not set(HTTP2_REQUIRED_SUITES) & set(tls.cipher_suites)
    ):
        problems.error(
            f"{key}.cipher_suites",
            "with http_server_config.http2 (true unless set) the list needs "
            f"{' or '.join(HTTP2_REQUIRED_SUITES)}, "
            "as HTTP/2 requires and node_exporter refuses otherwise; add one or set http2: false",
        )
    return context


def _path(base: str, name: str) -> str:
    return os.path.join(base, name)  # an absolute name stays as it is


def _apply_cipher_suites(context: ssl.SSLContext, tls: _TLSSettings, problems: _Problems) -> None:
    """TLS 1.2 and older: the configured suites (Go's defaults when none) in the configured
    order; the server's order wins unless prefer_server_cipher_suites is false."""
    names = tls.cipher_suites or list(GO_CIPHER_SUITES)
    openssl_names = [openssl for name in names if (openssl := GO_CIPHER_SUITES[name])]
    if not openssl_names:
        # Only TLS 1.3 suites listed: Go then has nothing to offer to older clients.
        context.set_ciphers("DEFAULT:@SECLEVEL=1")  # the level of every other case
        problems.warn(
            "tls_server_config.cipher_suites",
            "lists TLS 1.3 suites only, which are not configurable: only TLS 1.3 can be negotiated",
        )
        context.minimum_version = ssl.TLSVersion.TLSv1_3
        return
    # OpenSSL 3 refuses TLS 1.0 and 1.1 above security level 0 (their handshake signs with
    # SHA-1); level 1 otherwise, which like Go refuses SHA-1 signatures and keeps RSA-1024.
    level = 0 if tls.min_version < ssl.TLSVersion.TLSv1_2 else 1
    context.set_ciphers(":".join(openssl_names) + f":@SECLEVEL={level}")
    if tls.prefer_server_cipher_suites:
        context.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    else:
        context.options &= ~ssl.OP_CIPHER_SERVER_PREFERENCE


def _apply_curves(context: ssl.SSLContext, tls: _TLSSettings, problems: _Problems) -> None:
    """The ssl module sets one curve: the first, Go's most preferred. Without the key,
    OpenSSL's defaults (Go's four, X448 and the FFDHE groups)."""
    if not tls.curve_preferences:
        return
    first = tls.curve_preferences[0]
    context.set_ecdh_curve(CURVES[first])
    if len(tls.curve_preferences) > 1:
        problems.warn(
            "tls_server_config.curve_preferences",
            f"only {first}, the first, is offered here; node_exporter offers the whole list",
        )


class _EncryptedKey(Exception):
    pass


def _no_passphrase() -> str:
    raise _EncryptedKey  # never prompt on a terminal: Go cannot read encrypted keys either


def _load_key_pair(context: ssl.SSLContext, cert: str, key: str, problems: _Problems) -> None:
    section = "tls_server_config"
    for name, path in (("cert_file", cert), ("key_file", key)):
        try:
            with open(path, "rb"):
                pass
        except OSError as exc:
            problems.error(f"{section}.{name}", f"cannot read {path}: {exc.strerror}")
            return
    try:
        context.load_cert_chain(cert, key, password=_no_passphrase)
    except _EncryptedKey:
        problems.error(
            f"{section}.key_file",
            f"{key} is encrypted; node_exporter cannot read it either: "
            "store it decrypted, readable by this user only",
        )
    except ssl.SSLError as exc:
        problems.error(section, f"cannot use cert_file {cert} with key_file {key}: {_reason(exc)}")


def _reason(exc: ssl.SSLError) -> str:
    # load_cert_chain reports a file without the expected PEM block as "[SSL] PEM lib".
    code = exc.reason or ("PEM_LIB" if "PEM lib" in str(exc) else "")
    return _SSL_REASONS.get(code, code.lower().replace("_", " ") or str(exc))


_SSL_REASONS = {
    "PEM_LIB": "no PEM certificate or key where one is expected (are the two files swapped?)",
    "KEY_VALUES_MISMATCH": "the key does not belong to the certificate",
    "EE_KEY_TOO_SMALL": "the key is too small",
    "CA_MD_TOO_WEAK": "the certificate is signed with a broken digest (MD5 or SHA-1)",
}


def _apply_client_auth(
    context: ssl.SSLContext, tls: _TLSSettings, base: str, problems: _Problems
) -> None:
    """The five modes of Go's tls.ClientAuthType; see docs/security.md for the two that the
    ssl module can only approach."""
    key = "tls_server_config"
    mode = tls.client_auth_type
    ca_path = _path(base, tls.client_ca_file) if tls.client_ca_file else ""
    ca_pem = _read_ca_file(ca_path, problems) if ca_path else None
    if ca_path and mode == "NoClientCert":
        problems.error(
            f"{key}.client_ca_file",
            "set, but client_auth_type is NoClientCert: choose how client certificates are checked",
        )
    if mode in ("NoClientCert", "RequestClientCert"):
        # Go accepts every client in both; not asking for a certificate accepts the same set.
        context.verify_mode = ssl.CERT_NONE
        return
    if mode == "VerifyClientCertIfGiven":
        context.verify_mode = ssl.CERT_OPTIONAL
    else:
        context.verify_mode = ssl.CERT_REQUIRED
    if mode == "RequireAnyClientCert":
        problems.warn(
            f"{key}.client_auth_type",
            "RequireAnyClientCert: a certificate is required and, unlike node_exporter, "
            "verified (against client_ca_file, or the system's CAs without it)",
        )
    if ca_pem is None:
        # Go verifies against the system's roots when no client_ca_file is given.
        context.load_default_certs(ssl.Purpose.CLIENT_AUTH)
        problems.warn(
            f"{key}.client_ca_file",
            "not set: client certificates are verified against the system's CAs, "
            "as node_exporter does; give the CA that signs your clients",
        )
        return
    if _load_certificates(context, ca_pem) == 0:
        problems.warn(
            f"{key}.client_ca_file",
            f"{ca_path} holds no certificate: every client certificate is refused, "
            "as node_exporter refuses them",
        )


def _read_ca_file(path: str, problems: _Problems) -> str | None:
    try:
        with open(path, "rb") as handle:
            return handle.read().decode("ascii", "replace")
    except OSError as exc:
        problems.error("tls_server_config.client_ca_file", f"cannot read {path}: {exc.strerror}")
        return None


def _load_certificates(context: ssl.SSLContext, pem: str) -> int:
    """Every PEM certificate that parses, others skipped, as Go's AppendCertsFromPEM does."""
    loaded = 0
    for block in _PEM_CERTIFICATE.findall(pem):
        try:
            context.load_verify_locations(cadata=block)
        except ssl.SSLError:
            continue
        loaded += 1
    return loaded


# -- http_server_config.headers and basic_auth_users -----------------------------------------


def _headers(decoder: _Decoder, node: yaml.Node | None) -> dict[str, str]:
    key = "http_server_config.headers"
    headers: dict[str, str] = {}
    for name, value_node in decoder.mapping(node, key, "a mapping of header to value").items():
        value = decoder.text(value_node, f"{key}.{name}")
        if name not in CONFIGURABLE_HEADERS:
            decoder.problems.error(f"{key}.{name}", _not_configurable(name))
            continue
        allowed = CONFIGURABLE_HEADERS[name]
        if allowed is not None and value not in allowed:
            decoder.problems.error(
                f"{key}.{name}", f"expected one of {', '.join(allowed)}, not {value!r}"
            )
            continue
        headers[name] = _wire_text(value)
    return headers


def _not_configurable(name: str) -> str:
    text = f"cannot be configured; the headers that can are {', '.join(CONFIGURABLE_HEADERS)}"
    spelled = [known for known in CONFIGURABLE_HEADERS if known.lower() == name.lower()]
    return f"{text} (names are case-sensitive: {spelled[0]}?)" if spelled else text


def _wire_text(value: str) -> str:
    """The value as Go writes it: line breaks become spaces (no header injection), and the
    UTF-8 bytes are kept as http.server's latin-1 encoding will send them."""
    return value.replace("\r", " ").replace("\n", " ").encode("utf-8").decode("latin-1")


def _users(decoder: _Decoder, node: yaml.Node | None) -> dict[str, bytes]:
    key = "basic_auth_users"
    users: dict[str, bytes] = {}
    for user, hash_node in decoder.mapping(node, key, "a mapping of user to bcrypt hash").items():
        hashed = decoder.text(hash_node, f"{key}.{user}")
        try:
            _bcrypt_cost(hashed)
        except ValueError as exc:
            decoder.problems.error(f"{key}.{user}", f"expected a bcrypt hash ($2y$10$…): {exc}")
            continue
        users[user] = hashed.encode("utf-8")
    if not users:
        return users
    try:
        import bcrypt
    except ImportError:
        decoder.problems.error(
            key, "needs the bcrypt package: pip install 'greenapi-exporter[bcrypt]'"
        )
        return users
    for user, stored in users.items():
        if not _bcrypt_can_read(bcrypt, stored):
            decoder.problems.warn(
                f"{key}.{user}",
                "bcrypt cannot check this hash: no password matches it "
                "(node_exporter accepts it the same way)",
            )
    costs = sorted({_bcrypt_cost_at(hashed)[1] for hashed in users.values()})
    if len(costs) > 1:
        decoder.problems.warn(
            key,
            f"hashes of different costs ({', '.join(map(str, costs))}): an answer's time "
            f"tells a user's cost; unknown users cost {costs[-1]}",
        )
    return users


def _bcrypt_cost(hashed: str) -> int:
    """The cost of a hash, refusing what Go's ``bcrypt.Cost`` refuses (and nothing more)."""
    return _bcrypt_cost_at(hashed.encode("utf-8"))[1]


def _bcrypt_cost_at(raw: bytes) -> tuple[int, int]:
    """(where the two digits of the cost start, the cost), read as Go's bcrypt reads them."""
    if len(raw) < 59:
        raise ValueError("too short")
    if raw[0:1] != b"$":
        raise ValueError("it must start with $")
    if raw[1] > ord("2"):
        raise ValueError(f"bcrypt version {chr(raw[1])!r} is too new")
    start = 3 if raw[2:3] == b"$" else 4
    digits = raw[start : start + 2]
    if not re.fullmatch(rb"[+-]?[0-9]+", digits):
        raise ValueError(f"cost {digits.decode('ascii', 'replace')!r} is not a number")
    cost = int(digits)
    if not 4 <= cost <= 31:
        raise ValueError(f"cost {cost} is outside 4..31")
    return start, cost


def _bcrypt_can_read(bcrypt: Any, hashed: bytes) -> bool:
    """Whether bcrypt can check ``hashed``, asked cheaply: the same hash at cost 4."""
    start, _ = _bcrypt_cost_at(hashed)
    try:
        bcrypt.checkpw(b"", hashed[:start] + b"04" + hashed[start + 2 :])
    except ValueError:
        return False
    return True
