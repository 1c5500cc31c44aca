"""Shared pieces of the service benchmarks (kafka_e2e.py, predict_latency.py, memory.py).

A real `lifelong serve` subprocess on 127.0.0.1, a dev Kafka broker (`deploy/kafka/kafka-dev.sh`),
the 20-feature Hyperplane stream of run.py, /proc readers (RSS, CPU seconds) and machine info.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
RESULTS = Path(__file__).resolve().parent / "results"
VENV_BIN = Path(sys.executable).parent
LIFELONG = str(VENV_BIN / "lifelong")
KAFKA_DEV = str(REPO / "deploy" / "kafka" / "kafka-dev.sh")
CLK_TCK = os.sysconf("SC_CLK_TCK")


def hyperplane(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The stream of run.py: river's Hyperplane, 20 features, 2 classes."""
    from river.datasets import synth

    X = np.empty((n, 20))
    y = np.empty(n, dtype=np.int64)
    for i, (x, label) in enumerate(synth.Hyperplane(seed=seed, n_features=20).take(n)):
        X[i] = list(x.values())
        y[i] = label
    return X, y


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid: int | str) -> float:
    """utime + stime of a process (all its threads), or of one thread ("pid/task/tid"), from
    /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_bytes(pid: int | str = "self") -> int:
    m = re.search(r"VmRSS:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text())
    return int(m.group(1)) * 1024 if m else 0


def loadavg() -> list[float]:
    return list(os.getloadavg())


def machine_info() -> dict:
    import confluent_kafka
    import grpc
    import torch

    info: dict = {"platform": platform.platform(), "python": platform.python_version()}
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        keep = ("CPU(s)", "Model name", "L1d cache", "L2 cache", "L3 cache")
        info["cpu"] = {
            k.strip(): v.strip()
            for k, _, v in (line.partition(":") for line in lscpu.splitlines())
            if k.strip() in keep
        }
    except OSError:
        pass
    from importlib.metadata import version

    info.update(
        lifelong=version("lifelong"),
        torch=torch.__version__,
        numpy=np.__version__,
        grpcio=grpc.__version__,
        confluent_kafka=version("confluent-kafka"),
        librdkafka=confluent_kafka.libversion()[0],
        kafka_python=version("kafka-python"),  # the benchmarks' producer
        git_commit=subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True
        ).stdout.strip(),
    )
    return info


# -- Kafka ------------------------------------------------------------------------------------


class Broker:
    """The dev broker: an existing one (`--bootstrap`) or one started here and stopped after."""

    def __init__(self, bootstrap: str | None) -> None:
        self.bootstrap = bootstrap
        self.dir: str | None = None
        self.pid: int | None = None

    def __enter__(self) -> Broker:
        if self.bootstrap is None:
            self.dir = tempfile.mkdtemp(prefix="lifelong-bench-kafka-")
            port = free_port()
            out = subprocess.run(
                [KAFKA_DEV, "start", "--port", str(port), "--dir", self.dir],
                capture_output=True,
                text=True,
                check=True,
            )
            self.bootstrap = f"127.0.0.1:{port}"
            m = re.search(r"^pid=(\d+)", out.stdout, re.M)
            self.pid = int(m.group(1)) if m else None
        else:
            self.pid = _broker_pid(self.bootstrap)
        return self

    def __exit__(self, *exc) -> None:
        if self.dir is not None:
            subprocess.run([KAFKA_DEV, "stop", "--dir", self.dir], capture_output=True)
            shutil.rmtree(self.dir, ignore_errors=True)

    def cpu_seconds(self) -> float:
        try:
            return cpu_seconds(self.pid) if self.pid else float("nan")
        except OSError:
            return float("nan")


def _broker_pid(bootstrap: str) -> int | None:
    """The pid of the java process listening on the bootstrap port (for its CPU time)."""
    port = bootstrap.rsplit(":", 1)[1]
    out = subprocess.run(["ss", "-ltnpH", f"sport = :{port}"], capture_output=True, text=True)
    m = re.search(r"pid=(\d+)", out.stdout)
    return int(m.group(1)) if m else None


def produce_json(bootstrap: str, topic: str, X: np.ndarray, y: np.ndarray) -> float:
    """Write rows as the JSON records `lifelong produce` writes (named features x0..x19, the
    content-type header), to a new one-partition topic; return records/s of the producer."""
    from kafka import KafkaProducer
    from kafka.admin import KafkaAdminClient, NewTopic
    from lifelong.ingest.codecs import encode_json

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    admin.close()
    names = [f"x{j}" for j in range(X.shape[1])]
    producer = KafkaProducer(
        bootstrap_servers=bootstrap,
        linger_ms=20,
        batch_size=1 << 20,
        acks=1,
        max_request_size=8 << 20,
    )
    headers = [("content-type", b"application/json")]
    start = time.perf_counter()
    for row, label in zip(X.tolist(), y.tolist(), strict=True):
        producer.send(
            topic, encode_json(dict(zip(names, row, strict=True)), label), headers=headers
        )
    producer.flush()
    seconds = time.perf_counter() - start
    producer.close()
    return len(X) / seconds


# -- the service ------------------------------------------------------------------------------


class Service:
    """`lifelong serve` as a subprocess on free 127.0.0.1 ports; stopped with SIGTERM."""

    def __init__(self, *flags: str) -> None:
        self.grpc_port, self.metrics_port = free_port(), free_port()
        self.dir = tempfile.mkdtemp(prefix="lifelong-bench-service-")
        self.log = open(Path(self.dir) / "service.log", "w")  # noqa: SIM115
        cmd = [
            LIFELONG,
            "serve",
            "--grpc-address",
            f"127.0.0.1:{self.grpc_port}",
            "--metrics-port",
            str(self.metrics_port),
            "--checkpoint-dir",
            str(Path(self.dir) / "checkpoints"),
            "--log-level",
            "WARNING",
            *flags,
        ]
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT)
        self.target = f"127.0.0.1:{self.grpc_port}"

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"service exited: {self.log_text()}")
            try:
                self.metrics()
                return
            except OSError:
                time.sleep(0.1)
        raise TimeoutError("service not ready")

    def metrics(self) -> dict[str, float]:
        """The /metrics samples, `name{labels}` -> value."""
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as r:
            text = r.read().decode()
        out = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                key, _, value = line.rpartition(" ")
                out[key] = float(value)
        return out

    def learned(self, source: str = "kafka") -> int:
        return int(self.metrics().get(f'lifelong_samples_learned_total{{source="{source}"}}', 0))

    def log_text(self) -> str:
        self.log.flush()
        return Path(self.log.name).read_text()[-3000:]  # a subclass may name its log otherwise

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> Service:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def write_json(name: str, data: dict) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / name
    path.write_text(json.dumps(data, indent=2) + "\n")
    return path
