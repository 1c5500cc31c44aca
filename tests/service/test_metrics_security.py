"""/metrics behind TLS, client certificates and basic auth, with real certificates: what a scraper
without them gets, and a real Prometheus scraping it with the documented scrape configuration."""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import socket
import ssl
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from lifelong.config import ConfigError, Settings
from lifelong.http import serve_http
from lifelong.metrics import PredictionMetrics
from testsupport import CertificateAuthority, free_port, wait_for

PASSWORD = "scrape-secret"


@pytest.fixture
def ca(tmp_path) -> CertificateAuthority:
    return CertificateAuthority(tmp_path)


@pytest.fixture
def metrics_server(ca, tmp_path) -> Iterator:
    """`start(**settings)`: /metrics on 127.0.0.1 with those settings; the server's URL."""
    servers = []

    def start(**settings) -> str:
        port = free_port()
        settings = Settings(metrics_address="127.0.0.1", metrics_port=port, **settings)
        metrics = PredictionMetrics()
        metrics.predictions["predict"].inc(3)
        servers.extend(serve_http(settings, metrics, None))
        scheme = "https" if settings.metrics_tls_cert_file else "http"
        return f"{scheme}://127.0.0.1:{port}/metrics"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def users_file(tmp_path):
    path = tmp_path / "metrics-users"
    path.write_text(f"prometheus {hashlib.sha256(PASSWORD.encode()).hexdigest()}\n")
    return path


def get(url: str, context: ssl.SSLContext | None = None, auth: tuple[str, str] | None = None):
    request = urllib.request.Request(url)
    if auth is not None:
        credentials = base64.b64encode(":".join(auth).encode()).decode()
        request.add_header("Authorization", f"Basic {credentials}")
    return urllib.request.urlopen(request, timeout=10, context=context)


def client_context(ca: CertificateAuthority, certificate=None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=ca.cert_file)
    if certificate is not None:
        context.load_cert_chain(*certificate)
    return context


def test_https_and_basic_auth(metrics_server, ca, tmp_path):
    cert, key = ca.issue("localhost")
    url = metrics_server(
        metrics_tls_cert_file=cert,
        metrics_tls_key_file=key,
        metrics_auth_file=users_file(tmp_path),
    )
    with get(url, client_context(ca), ("prometheus", PASSWORD)) as answer:
        assert b'lifelong_predictions_total{rpc="predict"} 3.0' in answer.read()
    for auth in (None, ("prometheus", "guess"), ("someone", PASSWORD)):
        with pytest.raises(urllib.error.HTTPError) as refused:
            get(url, client_context(ca), auth)
        assert refused.value.code == 401
        assert refused.value.headers["WWW-Authenticate"] == 'Basic realm="lifelong"'
    with pytest.raises(OSError):  # plain HTTP to the TLS port: reset, or refused as not HTTP
        get(url.replace("https:", "http:"), auth=("prometheus", PASSWORD))


def test_client_certificates(metrics_server, ca, tmp_path):
    cert, key = ca.issue("localhost")
    scrapers = CertificateAuthority(tmp_path, "scrapers")
    url = metrics_server(
        metrics_tls_cert_file=cert,
        metrics_tls_key_file=key,
        metrics_tls_client_ca_file=scrapers.cert_file,
    )
    context = client_context(ca, scrapers.issue("prometheus", client=True))
    with get(url, context) as answer:
        assert answer.status == 200
    with pytest.raises(OSError):  # no client certificate: the handshake fails (TLS 1.3: on read)
        get(url, client_context(ca)).read()
    with get(url, context) as answer:  # and the server goes on
        assert answer.status == 200


def test_a_client_that_never_speaks_stalls_nobody(metrics_server, ca):
    cert, key = ca.issue("localhost")
    url = metrics_server(metrics_tls_cert_file=cert, metrics_tls_key_file=key)
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    silent = socket.create_connection(("127.0.0.1", port))  # connected, no handshake
    with silent, get(url, client_context(ca)) as answer:
        assert answer.status == 200


def test_the_bind_address(metrics_server):
    url = metrics_server()
    with get(url) as answer:
        assert answer.status == 200
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    with pytest.raises(urllib.error.URLError):  # 127.0.0.1 only: not on another address
        urllib.request.urlopen(f"http://127.0.0.2:{port}/metrics", timeout=5)


def test_bad_settings_say_what_is_wrong(metrics_server, ca, tmp_path):
    with pytest.raises(ConfigError, match="metrics_tls_cert_file and metrics_tls_key_file"):
        Settings(metrics_tls_cert_file=tmp_path / "c.pem")
    cert, _ = ca.issue("localhost")
    _, other_key = ca.issue("other")
    with pytest.raises(ConfigError, match="metrics TLS"):
        metrics_server(metrics_tls_cert_file=cert, metrics_tls_key_file=other_key)
    (tmp_path / "users").write_text("prometheus plain-password\n")
    with pytest.raises(ConfigError, match="line 1 should be 'USER SHA256HEX'"):
        metrics_server(metrics_auth_file=tmp_path / "users")


@pytest.mark.slow
def test_a_real_prometheus_scrapes_it_with_the_documented_configuration(
    metrics_server, ca, tmp_path
):
    prometheus = shutil.which("prometheus")
    if prometheus is None:
        pytest.skip("prometheus is not installed (scripts/dev.sh test installs it)")
    cert, key = ca.issue("localhost")
    url = metrics_server(
        metrics_tls_cert_file=cert,
        metrics_tls_key_file=key,
        metrics_auth_file=users_file(tmp_path),
    )
    (tmp_path / "password").write_text(PASSWORD)
    target = url.removeprefix("https://").removesuffix("/metrics")
    job = {  # docs/security.md, "Prometheus"
        "job_name": "lifelong",
        "scheme": "https",
        "tls_config": {"ca_file": str(ca.cert_file)},
        "basic_auth": {"username": "prometheus", "password_file": str(tmp_path / "password")},
        "static_configs": [{"targets": [target]}],
    }
    config = tmp_path / "prometheus.yml"
    config.write_text(json.dumps({"global": {"scrape_interval": "1s"}, "scrape_configs": [job]}))
    port = free_port()
    log = (tmp_path / "prometheus.log").open("wb")
    process = subprocess.Popen(
        [prometheus, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{port}"],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:

        def scraped() -> float | None:
            query = f"http://127.0.0.1:{port}/api/v1/query?query=lifelong_predictions_total"
            with urllib.request.urlopen(query, timeout=5) as answer:
                result = json.load(answer)["data"]["result"]
            return result and float(result[0]["value"][1])

        assert wait_for(scraped, "Prometheus to scrape /metrics over TLS with basic auth", 60) == 3
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()
