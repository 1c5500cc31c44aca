"""What guards the HTTP port of `/metrics`: TLS (and client certificates), as prometheus_client's
`start_http_server` would set them up, and HTTP basic auth, which it lacks, as a WSGI wrapper.
Two functions any WSGI server can use (`lifelong.http.serve_http` applies them to the metrics and
status page ports):

    context = tls_context(settings)      # None: plain HTTP
    app = protect(app, settings)          # 401 without the right user and password

Basic auth users are `USER SHA256HEX` lines (`metrics_auth_file`), the SHA-256 of the password:
the file never holds a password. Each request's password is hashed and compared with every
entry in constant time (`hmac.compare_digest`).

>>> import hashlib, base64
>>> users = parse_users("prometheus " + hashlib.sha256(b"pw").hexdigest())
>>> header = "Basic " + base64.b64encode(b"prometheus:pw").decode()
>>> allowed(users, header), allowed(users, "Basic " + base64.b64encode(b"prometheus:no").decode())
(True, False)
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ssl
from collections.abc import Callable, Iterable

from lifelong.config import ConfigError, Settings

WSGIApp = Callable[[dict, Callable], Iterable[bytes]]
Users = tuple[tuple[bytes, bytes], ...]  # (user, sha256 of the password)


def tls_context(settings: Settings) -> ssl.SSLContext | None:
    """The server-side TLS context `metrics_tls_*` ask for, as prometheus_client's
    `start_http_server(certfile=, keyfile=, client_cafile=, client_auth_required=)` builds it
    (its builder is private; basic auth needs a server of our own), or None: plain HTTP."""
    if settings.metrics_tls_cert_file is None:
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(settings.metrics_tls_cert_file, settings.metrics_tls_key_file)
        if settings.metrics_tls_client_ca_file is not None:
            context.load_verify_locations(settings.metrics_tls_client_ca_file)
            context.verify_mode = ssl.CERT_REQUIRED
    except (OSError, ssl.SSLError) as e:
        raise ConfigError(f"metrics TLS: {e}") from None
    return context


def parse_users(text: str) -> Users:
    """`USER SHA256HEX` lines (`#` comments) as (user, digest) pairs."""
    users = []
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split("#", 1)[0].split()
        if not fields:
            continue
        if len(fields) != 2 or len(fields[1]) != 64:
            raise ConfigError(f"metrics_auth_file: line {number} should be 'USER SHA256HEX'")
        try:
            users.append((fields[0].encode(), bytes.fromhex(fields[1])))
        except ValueError:
            raise ConfigError(f"metrics_auth_file: line {number}: not hex") from None
    if not users:
        raise ConfigError("metrics_auth_file: no users; add lines 'USER SHA256HEX'")
    return tuple(users)


def allowed(users: Users, authorization: str | None) -> bool:
    """Whether an `Authorization` header carries one of `users` and its password."""
    if not authorization or not authorization.startswith("Basic "):
        return False
    try:
        decoded = base64.b64decode(authorization[6:], validate=True)
    except binascii.Error:
        return False
    user, _, password = decoded.partition(b":")
    digest = hashlib.sha256(password).digest()
    found = False
    for name, stored in users:  # every entry, every time: the time tells nothing
        found |= hmac.compare_digest(name, user) & hmac.compare_digest(stored, digest)
    return found


def protect(app: WSGIApp, settings: Settings) -> WSGIApp:
    """`app` behind basic auth if `metrics_auth_file` is set, else `app` itself."""
    if settings.metrics_auth_file is None:
        return app
    try:
        users = parse_users(settings.metrics_auth_file.read_text())
    except OSError as e:
        raise ConfigError(f"metrics_auth_file: {e}") from None

    def guarded(environ: dict, start_response: Callable) -> Iterable[bytes]:
        if allowed(users, environ.get("HTTP_AUTHORIZATION")):
            return app(environ, start_response)
        start_response(
            "401 Unauthorized",
            [("WWW-Authenticate", 'Basic realm="lifelong"'), ("Content-Type", "text/plain")],
        )
        return [b"basic auth needed: metrics_auth_file lists who may scrape\n"]

    return guarded
