"""The HTTP ports of a service or a replica: `/metrics` (prometheus_client's exposition, as it
always was) on `metrics_port`, and the status page beside it or on `status_port` of its own.
Both ports listen on `metrics_address`, with the TLS and basic auth `lifelong.metrics_http`
builds from the `metrics_*` settings (docs/security.md).
"""

from __future__ import annotations

import logging
from wsgiref.simple_server import WSGIServer

from lifelong.config import Settings
from lifelong.metrics import PredictionMetrics
from lifelong.metrics_http import protect, tls_context
from lifelong.status import Board, StatusApp, serve
from lifelong.status.probes import Probe
from prometheus_client import disable_created_metrics, make_wsgi_app

log = logging.getLogger(__name__)


def serve_http(settings: Settings, metrics: PredictionMetrics, board: Board | None) -> list:
    """The HTTP servers (to `shutdown()`): `/metrics` on `metrics_port`, with `board`'s status
    page beside it, or on `status_port` of its own (`Settings.status_page_port`)."""
    disable_created_metrics()  # `_created` series only double the scrape
    prometheus = make_wsgi_app(metrics.registry)
    context = tls_context(settings)
    address, scheme = settings.metrics_address, "http" if context is None else "https"

    def guarded(app, port: int) -> WSGIServer:
        return serve(protect(app, settings), port, address, context)

    servers = []
    page_port = settings.status_page_port if board is not None else 0
    if settings.metrics_port:
        shared = page_port == settings.metrics_port
        app = StatusApp(board, prometheus) if shared else prometheus
        servers.append(guarded(app, settings.metrics_port))
        log.info("Prometheus metrics on %s://%s:%d/metrics", scheme, address, settings.metrics_port)
    if page_port and page_port != settings.metrics_port:
        servers.append(guarded(StatusApp(board), page_port))
    if page_port:
        log.info("status page on %s://%s:%d/", scheme, address, page_port)
    return servers


def status_board(settings: Settings, probe: Probe) -> Board | None:
    """The status page's board over `probe`, or None if no port serves the page."""
    if not settings.status_page_port:
        return None
    return Board(probe, settings.status_interval_seconds, settings.status_horizon_seconds)
