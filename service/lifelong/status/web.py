"""The status page over HTTP: a WSGI application answering `/` (the page), `/static/<file>` (its
script, styles and the vendored chart library), `/api/v1/status` (the board's document as JSON,
for scripts too; `?since=N`: only history after sequence number N) and, if given, `/metrics` by
another application (prometheus_client's, so that endpoint stays exactly what it was).

`serve` runs any WSGI application on a port in threads of its own, as prometheus_client's
`start_http_server` does: one place for the bind address and TLS (`lifelong.metrics_http` makes
the context and the basic-auth wrapper).
"""

from __future__ import annotations

import logging
import socket
import ssl
import threading
from collections.abc import Callable, Iterable
from importlib.resources import files
from urllib.parse import parse_qs
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import orjson
from lifelong.status.board import Board
from prometheus_client.exposition import ThreadingWSGIServer

log = logging.getLogger(__name__)

WSGIApp = Callable[[dict, Callable], Iterable[bytes]]

STATIC = files("lifelong.status") / "static"
CONTENT_TYPES = {
    "html": "text/html; charset=utf-8",
    "js": "text/javascript; charset=utf-8",
    "css": "text/css; charset=utf-8",
    "txt": "text/plain; charset=utf-8",
}


class StatusApp:
    """WSGI: the page, its files and JSON from `board`, and `/metrics` by `metrics` if given."""

    def __init__(self, board: Board, metrics: WSGIApp | None = None) -> None:
        self.board = board
        self.metrics = metrics
        # Read once: a handful of small files, never changed while serving.
        self.files = {
            f"/static/{f.name}": (f.read_bytes(), CONTENT_TYPES[f.name.rsplit(".", 1)[-1]])
            for f in STATIC.iterdir()
            if f.is_file() and f.name.rsplit(".", 1)[-1] in CONTENT_TYPES
        }
        self.files["/"] = self.files.pop("/static/index.html")

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        path = environ.get("PATH_INFO") or "/"
        if path == "/metrics" and self.metrics is not None:
            return self.metrics(environ, start_response)
        if environ["REQUEST_METHOD"] != "GET":
            return _answer(start_response, "405 Method Not Allowed", b"GET only\n", "text/plain")
        if path == "/api/v1/status":
            since = parse_qs(environ.get("QUERY_STRING", "")).get("since", ["0"])[-1]
            if not since.isdigit():
                message = b"since: a sequence number\n"
                return _answer(start_response, "400 Bad Request", message, "text/plain")
            document = orjson.dumps(self.board.document(int(since)))  # NaN becomes null
            return _answer(start_response, "200 OK", document, "application/json")
        if path in self.files:
            body, content_type = self.files[path]
            return _answer(start_response, "200 OK", body, content_type)
        return _answer(start_response, "404 Not Found", b"not found\n", "text/plain")


def _answer(start_response: Callable, status: str, body: bytes, content_type: str) -> list[bytes]:
    start_response(
        status,
        [
            ("Content-Type", content_type),
            ("Content-Length", str(len(body))),
            ("Cache-Control", "no-store"),  # live numbers; the files are read once per page load
        ],
    )
    return [body]


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args) -> None:
        """A page polling every second would fill the log."""


def serve(
    app: WSGIApp, port: int, address: str = "0.0.0.0", context: ssl.SSLContext | None = None
) -> WSGIServer:
    """Serve `app` on `address`:`port` (HTTPS with `context`) from a daemon thread; `shutdown()`
    the result to stop."""

    class Server(ThreadingWSGIServer):
        address_family = socket.AF_INET6 if ":" in address else socket.AF_INET

    try:
        server = make_server(address, port, app, Server, handler_class=_QuietHandler)
    except OSError as e:
        raise OSError(f"cannot serve HTTP on {address} port {port}: {e}") from e
    if context is not None:
        # Handshakes on the first read, in the connection's own thread: done at accept (as
        # prometheus_client's server does), one client that never speaks would stall them all.
        server.socket = context.wrap_socket(
            server.socket, server_side=True, do_handshake_on_connect=False
        )
    threading.Thread(target=server.serve_forever, name=f"http-{port}", daemon=True).start()
    return server
