"""The dashboard and the alerts against a real Prometheus scraping live, learning services.

Nothing is mocked. Started here:
  * `lifelong serve --demo --challenger --remediations ...`: classification, the embedded drifting
    stream, checkpoints, a challenger after its drifts, a remediation rule (its counter);
  * `lifelong serve --task regression` learning from a topic of the session's real Kafka broker
    (tests/conftest.py), fed by `lifelong produce --stream friedman`: consumer lag, MAE, Kafka
    source;
  * prediction traffic (Predict, PredictBatch, PredictStream) on both, for the latency histogram;
  * Debian's `prometheus` binary: scrape interval 1 s, temporary storage, the real alerts.yml.

Then every dashboard query and every alert expression is evaluated through Prometheus's HTTP API
(`/api/v1/query`): it must run, and each of its sub-expressions free of comparisons and set
operators (`x > 0.5` -> `x`) must return at least one series with a finite value. A query naming
a metric the service does not export returns nothing and fails. Grafana variables are
substituted as deploy_support.GRAFANA_VARIABLES says; `offset` modifiers are dropped from
sub-expressions (the test's Prometheus is a minute old), nothing else changes.
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from deploy_support import (
    ALERTS,
    DOCKERFILE,
    alert_rules_from_text,
    dashboard_queries,
    load_dashboard,
    metric_names,
    missing,
    pure_subexpressions,
    substitute,
    variable_queries,
    without_offsets,
)
from lifelong.model.fast.build import CACHE_ENV
from testsupport import free_port, wait_for

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

LIFELONG = str(Path(sys.executable).with_name("lifelong"))
DEADLINE = 180.0  # seconds before a wait gives up: a hang, not a slow machine
SCRAPES = 25  # scrapes of each service before the queries run (1 s apart)
DASHBOARD_QUERIES = dashboard_queries(load_dashboard())
ALERT_NAMES = sorted(alert_rules_from_text(ALERTS.read_text()))
# The demo's remediation rule: its counter is served (and charted) from the start.
REMEDIATIONS = '{"dead_fraction": {"threshold": 0.9, "windows": 3, "action": "redo"}}'


@dataclass
class Process:
    """A subprocess with its output in a log file; stopped with SIGTERM, then SIGKILL."""

    name: str
    argv: list[str]
    log: Path
    env: dict[str, str] = field(default_factory=dict)
    popen: subprocess.Popen | None = None

    def start(self) -> Process:
        with self.log.open("ab") as log:
            self.popen = subprocess.Popen(
                self.argv, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **self.env}
            )
        return self

    def check_alive(self) -> None:
        if self.popen.poll() is not None:
            tail = self.log.read_text(errors="replace")[-3000:]
            raise AssertionError(f"{self.name} exited with {self.popen.returncode}:\n{tail}")

    def stop(self) -> None:
        if self.popen is None or self.popen.poll() is not None:
            return
        self.popen.send_signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()


class Prometheus:
    """Queries through the HTTP API."""

    def __init__(self, url: str) -> None:
        self.url = url

    def get(self, path: str, **params: str) -> dict:
        query = urllib.parse.urlencode(params)
        with urllib.request.urlopen(f"{self.url}{path}?{query}", timeout=30) as response:
            body = json.load(response)
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[float]:
        """The values of an instant query (a scalar is one value); fails on a query error."""
        try:
            data = self.get("/api/v1/query", query=expr)
        except urllib.error.HTTPError as e:
            if e.code == 503:  # starting, not ready: an OSError, so waits try again
                raise
            raise AssertionError(f"{expr!r}: {e.read().decode()}") from None
        if data["resultType"] in ("scalar", "string"):
            return [float(data["result"][1])]
        if data["resultType"] == "matrix":
            return [float(v) for series in data["result"] for _t, v in series["values"]]
        return [float(series["value"][1]) for series in data["result"]]


def check_returns_data(prometheus: Prometheus, expr: str, where: str) -> list[str]:
    """`expr` runs, and each of its comparison-free sub-expressions returns at least one series
    with a finite value. Returns the sub-expressions checked."""
    prometheus.query(expr)  # runs; a filtered result may well be empty on healthy services
    subexpressions = [without_offsets(s) for s in pure_subexpressions(expr)]
    assert subexpressions, f"{where}: nothing to check in {expr!r}"
    covered = set().union(*(metric_names(s) for s in subexpressions))
    assert metric_names(expr) <= covered, f"{where}: sub-expressions miss a metric of {expr!r}"
    for sub in subexpressions:
        values = prometheus.query(sub)
        assert values, f"{where}: {sub!r} returns no series (a metric the service lacks?)"
        assert any(math.isfinite(v) for v in values), f"{where}: {sub!r} returns only {values}"
    return subexpressions


@dataclass
class Stack:
    prometheus: Prometheus
    demo_grpc: str
    kafka_grpc: str
    kernel_cache: Path
    processes: list[Process] = field(default_factory=list)


def predict_traffic(targets: dict[str, Callable[[random.Random], dict]], stop: threading.Event):
    """Predict, PredictBatch and PredictStream calls on every target until `stop`."""
    from lifelong.client import LifelongClient, LifelongError

    rng = random.Random(0)
    clients = {target: LifelongClient(target, timeout=5.0) for target in targets}
    try:
        while not stop.is_set():
            for target, client in clients.items():
                row = targets[target]
                try:
                    client.predict(row(rng))
                    client.predict_batch([row(rng) for _ in range(8)])
                    for _answer in client.predict_stream([[row(rng)] for _ in range(3)], timeout=5):
                        pass
                except LifelongError:
                    pass  # e.g. nothing learned yet; the next round asks again
            stop.wait(0.05)
    finally:
        for client in clients.values():
            client.close()


def topic_with_samples(bootstrap: str, name: str, count: int, log: Path) -> None:
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="lifelong-tests-deploy")
    try:
        spec = {"num_partitions": 1, "replication_factor": 1, "configs": {}}
        admin.create_topics({name: spec}, wait_for_metadata=True)
    finally:
        admin.close()
    produce(bootstrap, name, count, seed=1, log=log)


def produce(bootstrap: str, topic: str, count: int, *, seed: int, log: Path) -> None:
    argv = [LIFELONG, "produce", "--bootstrap", bootstrap, "--topic", topic]
    argv += ["--stream", "friedman", "--count", str(count), "--seed", str(seed)]
    with log.open("ab") as out:
        subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, check=True, timeout=300)


@pytest.fixture(scope="module")
def stack(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    prometheus_bin = shutil.which("prometheus")
    if prometheus_bin is None:
        missing("prometheus is not installed (Debian: apt-get install prometheus)")
    tmp = tmp_path_factory.mktemp("live")
    topic = f"test-deploy-live-{os.getpid()}-{int(time.time())}"
    topic_with_samples(kafka_bootstrap, topic, 20_000, tmp / "produce.log")

    demo_grpc, demo_metrics = f"127.0.0.1:{free_port()}", free_port()
    kafka_grpc, kafka_metrics = f"127.0.0.1:{free_port()}", free_port()
    common = ["--checkpoint-every-seconds", "2", "--log-format", "json"]
    # Where the image keeps the learner's compiled kernel (Dockerfile: LIFELONG_KERNEL_CACHE).
    kernels = {CACHE_ENV: str(tmp / "kernel-cache")}
    demo = Process(
        "lifelong serve --demo",
        [LIFELONG, "serve", "--demo", "--challenger", "--remediations", REMEDIATIONS,
         "--grpc-address", demo_grpc,
         "--metrics-port", str(demo_metrics), "--checkpoint-dir", str(tmp / "demo"), *common],
        tmp / "demo.log",
        kernels,
    )  # fmt: skip
    learner = Process(
        "lifelong serve (Kafka, regression)",
        [LIFELONG, "serve", "--task", "regression", "--kafka-bootstrap", kafka_bootstrap,
         "--kafka-topic", topic, "--kafka-group", f"{topic}-service",
         "--grpc-address", kafka_grpc, "--metrics-port", str(kafka_metrics),
         "--checkpoint-dir", str(tmp / "kafka"), *common],
        tmp / "kafka.log",
        kernels,
    )  # fmt: skip

    config = tmp / "prometheus.yml"
    shutil.copy(ALERTS, tmp / "alerts.yml")
    config.write_text(
        json.dumps(  # JSON is YAML
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "rule_files": ["alerts.yml"],
                "scrape_configs": [
                    {
                        "job_name": "lifelong",  # as deploy/prometheus/prometheus.yml
                        "static_configs": [
                            {"targets": [f"127.0.0.1:{demo_metrics}", f"127.0.0.1:{kafka_metrics}"]}
                        ],
                    }
                ],
            }
        )
    )
    prometheus_port = free_port()
    prometheus = Process(
        "prometheus",
        [prometheus_bin, f"--config.file={config}", f"--storage.tsdb.path={tmp / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{prometheus_port}"],
        tmp / "prometheus.log",
    )  # fmt: skip
    processes = [demo, learner, prometheus]
    stop = threading.Event()
    traffic = None
    try:
        for process in processes:
            process.start()
        api = Prometheus(f"http://127.0.0.1:{prometheus_port}")

        def all_up() -> bool:
            for process in processes:
                process.check_alive()
            up = api.query('up{job="lifelong"}')
            return len(up) == 2 and all(v == 1 for v in up)

        wait_for(all_up, "Prometheus to scrape both services", DEADLINE)
        rows = {
            demo_grpc: lambda rng: {f"x{i}": rng.random() for i in range(4)},
            kafka_grpc: lambda rng: {f"x{i}": rng.random() for i in range(10)},
        }
        traffic = threading.Thread(target=predict_traffic, args=(rows, stop), daemon=True)
        traffic.start()
        # More records while being scraped: the lag moves (and stays far below the alert's).
        produce(kafka_bootstrap, topic, 5_000, seed=2, log=tmp / "produce.log")

        def scraped_enough() -> bool:
            for process in processes:
                process.check_alive()
            counts = api.query(f'count_over_time(up{{job="lifelong"}}[{SCRAPES * 2}s])')
            lag = api.query("lifelong_kafka_consumer_lag")
            predicted = api.query("sum by (instance) (lifelong_predictions_total) > 0")
            return len(counts) == 2 and min(counts) >= SCRAPES and lag and len(predicted) == 2

        wait_for(
            scraped_enough, f"{SCRAPES} scrapes of each service, lag and predictions", DEADLINE
        )
        yield Stack(api, demo_grpc, kafka_grpc, tmp / "kernel-cache", processes)
    finally:
        stop.set()
        if traffic is not None:
            traffic.join(timeout=30)
        for process in reversed(processes):
            process.stop()


# -- the dashboard ------------------------------------------------------------------------------


@pytest.mark.parametrize("query", DASHBOARD_QUERIES, ids=[q.where for q in DASHBOARD_QUERIES])
def test_dashboard_query_returns_data(stack, query):
    check_returns_data(stack.prometheus, substitute(query.expr), query.where)


@pytest.mark.parametrize(
    ("variable", "label", "selector"),
    variable_queries(load_dashboard()),
    ids=[v[0] for v in variable_queries(load_dashboard())],
)
def test_dashboard_variable_has_values(stack, variable, label, selector):
    """What Grafana's `label_values(selector, label)` asks Prometheus (the series API)."""
    series = stack.prometheus.get("/api/v1/series", **{"match[]": substitute(selector)})
    values = {s[label] for s in series if label in s}
    assert values, f"${variable}: no values of {label} on {selector}"
    if variable == "layer":
        assert values == {"0", "1"}  # the default learner's two hidden layers


# -- the alerts ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def loaded_rules(stack) -> dict[str, dict]:
    """The alerting rules as the real Prometheus loaded them, after it has evaluated them."""

    def evaluated():
        groups = stack.prometheus.get("/api/v1/rules")["groups"]
        rules = {r["name"]: r for g in groups for r in g["rules"] if r["type"] == "alerting"}
        ready = rules and all(r.get("lastEvaluation", "").startswith("2") for r in rules.values())
        return rules if ready else None

    return wait_for(evaluated, "the alert rules to be evaluated", DEADLINE)


def test_prometheus_loaded_every_alert(loaded_rules):
    assert sorted(loaded_rules) == ALERT_NAMES


@pytest.mark.parametrize("name", ALERT_NAMES)
def test_alert_expression_returns_data(stack, loaded_rules, name):
    rule = loaded_rules[name]
    assert rule["health"] == "ok", rule.get("lastError")
    check_returns_data(stack.prometheus, rule["query"], f"alert {name}")


def test_no_alert_is_pending_or_firing_on_healthy_services(stack, loaded_rules):
    alerts = stack.prometheus.get("/api/v1/alerts")["alerts"]
    assert not alerts, alerts


def test_the_check_fails_a_metric_the_service_does_not_export(stack):
    """The check has teeth: a misspelt metric (dormant_unit_ratio) returns no series."""
    with pytest.raises(AssertionError, match="returns no series"):
        check_returns_data(stack.prometheus, "lifelong_dormant_unit_ratio > 0.5", "typo")
    with pytest.raises(AssertionError, match="returns no series"):
        check_returns_data(
            stack.prometheus,
            'sum by (job) (rate(lifelong_samples_learned_total{source="nope"}[15s]))',
            "no such label value",
        )


# -- the image's health check ------------------------------------------------------------------


def healthcheck_command() -> list[str]:
    for line in DOCKERFILE.read_text().splitlines():
        if line.strip().startswith('CMD ["python"'):
            return json.loads(line.strip()[len("CMD ") :])
    raise AssertionError("no HEALTHCHECK CMD in the Dockerfile")


def run_healthcheck(grpc_address: str) -> subprocess.CompletedProcess:
    command = healthcheck_command()
    command[0] = sys.executable  # the image's `python` is its virtual environment's
    env = {**os.environ, "LIFELONG_GRPC_ADDRESS": grpc_address}
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=30)


def test_dockerfile_healthcheck_passes_on_a_serving_server(stack):
    # The image binds [::]:50051 and checks localhost:<port>; here the port is the demo's.
    port = stack.demo_grpc.rsplit(":", 1)[1]
    result = run_healthcheck(f"[::]:{port}")
    assert result.returncode == 0, result.stderr


def test_dockerfile_healthcheck_fails_without_a_server():
    result = run_healthcheck(f"[::]:{free_port()}")
    assert result.returncode != 0


def test_the_services_learned_through_the_compiled_kernel(stack):
    """The learner's fast path ran (its kernel was compiled into LIFELONG_KERNEL_CACHE, the
    variable the image sets), and no service fell back to the reference path."""
    assert list(stack.kernel_cache.glob("kernel-*.so")), "no kernel compiled"
    for process in stack.processes[:2]:
        assert "learning through the reference path" not in process.log.read_text()
