"""``--web.config.file``: TLS and basic auth in the exporter-toolkit ``web-config.yml`` format.

Supported keys (the same meaning as in node_exporter)::

    tls_server_config:
      cert_file: server.crt
      key_file: server.key
      client_auth_type: NoClientCert   # or RequireAndVerifyClientCert, VerifyClientCertIfGiven, …
      client_ca_file: ca.crt
      min_version: TLS12               # TLS10 … TLS13
    http_server_config:
      headers: {X-Frame-Options: deny}
    basic_auth_users:
      prometheus: $2y$10$…             # bcrypt hash (htpasswd -nBC 10 "" | tr -d ':\\n')

Basic auth needs the optional ``bcrypt`` package (``pip install 'greenapi-exporter[bcrypt]'``):
the standard library has no bcrypt, and plain-text passwords in a file are what the format
exists to avoid.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import ssl
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

_CLIENT_AUTH = {
    "NoClientCert": ssl.CERT_NONE,
    "RequestClientCert": ssl.CERT_OPTIONAL,
    "RequireAnyClientCert": ssl.CERT_REQUIRED,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
_TLS_VERSIONS = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}
_TOP_KEYS = {"tls_server_config", "http_server_config", "basic_auth_users"}
_TLS_KEYS = {"cert_file", "key_file", "client_auth_type", "client_ca_file", "min_version"}
_HTTP_KEYS = {"headers"}


class WebConfigError(Exception):
    """The web configuration is refused; one line per problem, naming the key path."""


@dataclass(frozen=True)
class WebConfig:
    ssl_context: ssl.SSLContext | None = None
    users: Mapping[str, bytes] = field(default_factory=dict)  # user → bcrypt hash
    headers: Mapping[str, str] = field(default_factory=dict)
    _verified: dict[str, bool] = field(default_factory=dict, repr=False, compare=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def authorized(self, header: str | None) -> bool:
        """Check an ``Authorization`` header against ``basic_auth_users`` (True when unset)."""
        if not self.users:
            return True
        if not header or not header.startswith("Basic "):
            return False
        try:
            decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return False
        user, sep, password = decoded.partition(":")
        if not sep:
            return False
        hashed = self.users.get(user)
        # bcrypt costs ~0.1 s by design; remember verified pairs (by a salted digest, never
        # the password itself) so that a 1 s scrape interval does not keep a core busy.
        cache_key = hashlib.sha256(
            b"%s\0%s\0%s" % (user.encode(), password.encode(), hashed or b"")
        ).hexdigest()
        with self._lock:
            cached = self._verified.get(cache_key)
        if cached is not None:
            return cached
        import bcrypt  # checked at load time

        dummy = b"$2b$10$" + b"." * 53  # compare against something even for unknown users
        try:
            ok = bcrypt.checkpw(password.encode("utf-8"), hashed or dummy) and hashed is not None
        except ValueError:
            ok = False
        with self._lock:
            if len(self._verified) > 1000:
                self._verified.clear()
            self._verified[cache_key] = ok
        return ok


def load_web_config(path: str) -> WebConfig:
    """Read and validate ``path``; raise WebConfigError with every problem found."""
    try:
        with open(path, encoding="utf-8") as handle:
            document = yaml.safe_load(handle)
    except OSError as exc:
        raise WebConfigError(f"{path}: cannot read: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1} column {mark.column + 1}" if mark else ""
        raise WebConfigError(f"{path}: invalid YAML{where}") from None
    if document is None:
        return WebConfig()
    errors: list[str] = []
    if not isinstance(document, dict):
        raise WebConfigError(f"{path}: expected a mapping at the top level")
    base = os.path.dirname(os.path.abspath(path))
    for key in sorted(set(document) - _TOP_KEYS, key=str):
        errors.append(f"{path}: {key}: unknown key")
    context = _tls(path, base, document.get("tls_server_config"), errors)
    users = _users(path, document.get("basic_auth_users"), errors)
    headers = _headers(path, document.get("http_server_config"), errors)
    if errors:
        raise WebConfigError("\n".join(errors))
    return WebConfig(ssl_context=context, users=users, headers=headers)


def _tls(path: str, base: str, section: Any, errors: list[str]) -> ssl.SSLContext | None:
    if section is None:
        return None
    if not isinstance(section, dict):
        errors.append(f"{path}: tls_server_config: expected a mapping")
        return None
    for key in sorted(set(section) - _TLS_KEYS, key=str):
        errors.append(f"{path}: tls_server_config.{key}: unknown key")
    cert, key = section.get("cert_file"), section.get("key_file")
    if not isinstance(cert, str) or not isinstance(key, str) or not cert or not key:
        errors.append(f"{path}: tls_server_config: cert_file and key_file are both required")
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    version = section.get("min_version", "TLS12")
    if version not in _TLS_VERSIONS:
        errors.append(
            f"{path}: tls_server_config.min_version: expected one of {', '.join(_TLS_VERSIONS)}"
        )
    else:
        context.minimum_version = _TLS_VERSIONS[version]
    try:
        context.load_cert_chain(os.path.join(base, cert), os.path.join(base, key))
    except (OSError, ssl.SSLError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        errors.append(f"{path}: tls_server_config: cannot load cert_file/key_file: {reason}")
    auth_type = section.get("client_auth_type", "NoClientCert")
    if auth_type not in _CLIENT_AUTH:
        errors.append(
            f"{path}: tls_server_config.client_auth_type: expected one of {', '.join(_CLIENT_AUTH)}"
        )
        return context
    context.verify_mode = _CLIENT_AUTH[auth_type]
    ca_file = section.get("client_ca_file")
    if context.verify_mode != ssl.CERT_NONE:
        if not isinstance(ca_file, str) or not ca_file:
            errors.append(f"{path}: tls_server_config.client_ca_file: required with {auth_type}")
        else:
            try:
                context.load_verify_locations(os.path.join(base, ca_file))
            except (OSError, ssl.SSLError) as exc:
                errors.append(f"{path}: tls_server_config.client_ca_file: cannot load: {exc}")
    return context


def _users(path: str, section: Any, errors: list[str]) -> dict[str, bytes]:
    if section is None:
        return {}
    if not isinstance(section, dict):
        errors.append(f"{path}: basic_auth_users: expected a mapping of user to bcrypt hash")
        return {}
    users: dict[str, bytes] = {}
    for user, hashed in section.items():
        if not isinstance(user, str) or not isinstance(hashed, str) or not hashed.startswith("$2"):
            errors.append(
                f"{path}: basic_auth_users.{user}: expected a bcrypt hash ($2a$/$2b$/$2y$…)"
            )
            continue
        users[user] = hashed.encode("ascii", "replace")
    if users:
        try:
            import bcrypt  # noqa: F401
        except ImportError:
            errors.append(
                f"{path}: basic_auth_users: needs the bcrypt package: "
                "pip install 'greenapi-exporter[bcrypt]'"
            )
    return users


def _headers(path: str, section: Any, errors: list[str]) -> dict[str, str]:
    if section is None:
        return {}
    if not isinstance(section, dict):
        errors.append(f"{path}: http_server_config: expected a mapping")
        return {}
    for key in sorted(set(section) - _HTTP_KEYS, key=str):
        errors.append(f"{path}: http_server_config.{key}: unknown key")
    headers = section.get("headers") or {}
    if not isinstance(headers, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and "\n" not in k + v for k, v in headers.items()
    ):
        errors.append(f"{path}: http_server_config.headers: expected a mapping of strings")
        return {}
    return dict(headers)
