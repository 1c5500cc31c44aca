"""Transport security of the gRPC port: TLS from certificate files, reloaded when they change;
mTLS with a client CA; and the rule that decides whether a server may listen at all.

The rule: a server reachable from other machines (any address but loopback) must be asked to
be so. Without TLS it needs `grpc_insecure = true`; without tokens, `auth_disabled = true`.
On loopback (`localhost`, 127.0.0.0/8, ::1, a Unix socket) both default to open: the developer's
machine, the demo and the tests, where plaintext crosses no network.

Reloading: grpc asks `CertificateFiles.fetch` for the configuration at every new connection's
handshake; it stats the files (inode, modification time, size: cert-manager and Kubernetes
Secret volumes replace them) and, when they changed, checks the new pair with Python's ssl
(the key matches the certificate, every file parses) before handing it over. A pair that does
not check (a half-written replacement) is logged and the previous one kept; connections already
open keep the certificate they were made with.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import ssl
from pathlib import Path

import grpc
from lifelong.config import ConfigError, Settings

log = logging.getLogger(__name__)


def is_loopback(address: str) -> bool:
    """Whether a gRPC listening address reaches this machine only.

    >>> [is_loopback(a) for a in ("localhost:50051", "127.0.0.1:0", "[::1]:1", "unix:/run/s")]
    [True, True, True, True]
    >>> [is_loopback(a) for a in ("[::]:50051", "0.0.0.0:1", "10.0.0.5:1", "lifelong:1")]
    [False, False, False, False]
    """
    if address.startswith(("unix:", "unix-abstract:")):
        return True
    host = address.rsplit(":", 1)[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: it may resolve to anything
        return False


def check_listening(settings: Settings, address: str) -> None:
    """Raise `ConfigError`, saying what to set, if `settings` would expose `address` without TLS
    or without tokens and were not told to."""
    if is_loopback(address):
        return
    if settings.tls_cert_file is None and not settings.grpc_insecure:
        raise ConfigError(
            f"gRPC address {address} is reachable from other machines and TLS is off: set "
            "tls_cert_file and tls_key_file (docs/security.md), or grpc_insecure = true "
            "(LIFELONG_GRPC_INSECURE=true) to accept plaintext, or listen on localhost"
        )
    if not settings.auth_enabled and not settings.auth_disabled:
        raise ConfigError(
            f"gRPC address {address} is reachable from other machines and no tokens are "
            "configured: set auth_tokens_file or auth_tokens (docs/security.md), or "
            "auth_disabled = true (LIFELONG_AUTH_DISABLED=true) to let anyone learn and "
            "checkpoint, or listen on localhost"
        )


def _identity(paths: tuple[Path, ...]) -> tuple[tuple[int, int, int], ...]:
    stats = (os.stat(p) for p in paths)
    return tuple((s.st_ino, s.st_mtime_ns, s.st_size) for s in stats)


class CertificateFiles:
    """The server's certificate chain and key (and the client CA, for mTLS) as files, read
    again when they change. `credentials()` for the server; grpc calls `fetch` itself."""

    def __init__(self, cert_file: Path, key_file: Path, client_ca_file: Path | None) -> None:
        self.paths = (cert_file, key_file) + ((client_ca_file,) if client_ca_file else ())
        self.client_ca_file = client_ca_file
        try:
            self._seen = _identity(self.paths)
            self._config = self._load()
        except (OSError, ssl.SSLError) as e:
            raise ConfigError(f"TLS: cannot use {', '.join(map(str, self.paths))}: {e}") from None
        self._refused: str | None = None  # the last error reading changed files

    def _load(self) -> grpc.ServerCertificateConfiguration:
        """The configuration from the files as they are, checked first by Python's ssl."""
        cert_file, key_file = self.paths[:2]
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert_file, key_file)  # raises if the key does not match
        if self.client_ca_file:
            context.load_verify_locations(self.client_ca_file)
        return grpc.ssl_server_certificate_configuration(
            [(key_file.read_bytes(), cert_file.read_bytes())],
            root_certificates=self.client_ca_file.read_bytes() if self.client_ca_file else None,
        )

    def credentials(self) -> grpc.ServerCredentials:
        return grpc.dynamic_ssl_server_credentials(
            self._config, self.fetch, require_client_authentication=self.client_ca_file is not None
        )

    def fetch(self) -> grpc.ServerCertificateConfiguration | None:
        """A new configuration if the files changed since the last look, else None (grpc keeps
        the one it has)."""
        try:
            seen = _identity(self.paths)
            if seen == self._seen:
                return None
            config = self._load()
            if _identity(self.paths) != seen:  # replaced while being read: next handshake
                return None
        except (OSError, ssl.SSLError) as e:
            if str(e) != self._refused:  # said once, tried again at every handshake
                self._refused = str(e)
                log.error("TLS files changed but cannot be used, keeping the previous: %s", e)
            return None
        self._refused = None
        self._seen, self._config = seen, config
        log.info("TLS certificate reloaded from %s", self.paths[0])
        return config


def server_credentials(settings: Settings) -> grpc.ServerCredentials | None:
    """TLS credentials from `settings`' files, reloaded when they change; None: plaintext."""
    if settings.tls_cert_file is None:
        return None
    assert settings.tls_key_file is not None  # Settings checks they come together
    return CertificateFiles(
        settings.tls_cert_file, settings.tls_key_file, settings.tls_client_ca_file
    ).credentials()
