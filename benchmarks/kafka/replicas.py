"""Prediction replicas following the snapshot topic: staleness and costs as replicas are added.

For each replica count (1, 2, 4 by default) on a running broker: one `lifelong serve` learning a
stream fed at a steady rate and publishing snapshots to `<topic>.model`, N `lifelong
serve-predictions --snapshot-topic` replicas, and a client calling each replica's Predict at a
steady rate. Over the measured window it samples every replica's
`lifelong_model_staleness_seconds` (now minus the served snapshot's publication time) and reads
the CPU time of the learner and of each replica (/proc), so:

- staleness p50/p99/max per replica count (issue 15: p99 <= publish interval + 1 s);
- the learner's CPU seconds per second (it publishes once, whatever the number of readers);
- each replica's CPU per prediction call.

    deploy/kafka/kafka-dev.sh start --port 9092
    .venv/bin/python benchmarks/kafka/replicas.py --bootstrap 127.0.0.1:9092 --seconds 30

The machine's cores are shared by everything here: on 2 cores, 4 replicas, a learner, a broker
and the client compete, so the numbers show whether a cost grows with the replica count, not
what each would cost on a machine of its own.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from pathlib import Path

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic
from lifelong.client import LifelongClient, LifelongError
from lifelong.ingest.codecs import encode_json
from lifelong.ingest.produce import samples_from_stream
from prometheus_client.parser import text_string_to_metric_families

TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def metric(port: int, name: str) -> float | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
            text = response.read().decode()
    except OSError:
        return None
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                return sample.value
    return None


class Process:
    def __init__(self, command: str, log: Path, **settings: object) -> None:
        self.grpc = f"127.0.0.1:{free_port()}"
        self.metrics_port = free_port()
        flags = []
        settings = {"grpc_address": self.grpc, "metrics_port": self.metrics_port, **settings}
        for key, value in settings.items():
            flags += ["--" + key.replace("_", "-"), str(value)]
        with log.open("a") as out:
            self.popen = subprocess.Popen(
                [sys.executable, "-m", "lifelong", command, *flags], stdout=out, stderr=out
            )

    def stop(self) -> None:
        self.popen.terminate()
        self.popen.wait(60)


def wait(condition, what: str, deadline: float = 300.0) -> None:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if condition():
            return
        time.sleep(0.2)
    raise SystemExit(f"gave up waiting for {what}")


def run(bootstrap: str, replicas: int, seconds: float, rate: float, calls: float, work: Path):
    topic = f"bench-replicas-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})  # kept until the topic exists
    admin.create_topics([NewTopic(topic, 1)])[topic].result(30)
    common = {"kafka_bootstrap": bootstrap, "kafka_topic": topic, "kafka_group": topic}
    learner = Process(
        "serve", work / f"learner-{replicas}.log", checkpoint_dir=work / f"ckpt-{topic}",
        learner=json.dumps({"hidden": [64, 64]}), **common,
    )  # fmt: skip
    followers = [
        Process(
            "serve-predictions",
            work / f"replica-{replicas}-{i}.log",
            snapshot_topic=f"{topic}.model",
            **common,
        )
        for i in range(replicas)
    ]
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    stream = (encode_json(x, y) for x, y in samples_from_stream("agrawal", seed=1, count=None))
    done = threading.Event()

    def feed() -> None:
        while not done.wait(0.05):
            for value in itertools.islice(stream, max(1, round(rate * 0.05))):
                producer.produce(topic, value)
            producer.poll(0)

    x = {"salary": 50000.0, "age": 30.0}
    answered = [0] * replicas
    clients = [LifelongClient(f.grpc, timeout=5) for f in followers]

    def ask() -> None:
        period = 1 / calls
        while not done.wait(period):
            for i, client in enumerate(clients):
                try:
                    client.predict(x)
                    answered[i] += 1
                except LifelongError:
                    pass

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    try:
        wait(lambda: all(metric(f.metrics_port, "lifelong_model_version") for f in followers),
             "every replica to serve")  # fmt: skip
        asker = threading.Thread(target=ask, daemon=True)
        asker.start()
        time.sleep(2)
        cpu0 = [cpu_seconds(p.popen.pid) for p in [learner, *followers]]
        asked0 = list(answered)
        start, staleness = time.monotonic(), []
        while time.monotonic() - start < seconds:
            for f in followers:
                value = metric(f.metrics_port, "lifelong_model_staleness_seconds")
                if value is not None:
                    staleness.append(value)
            time.sleep(0.1)
        elapsed = time.monotonic() - start
        cpu1 = [cpu_seconds(p.popen.pid) for p in [learner, *followers]]
        calls_made = [a - b for a, b in zip(answered, asked0, strict=True)]
    finally:
        done.set()
        for p in [*followers, learner]:
            p.stop()
        producer.flush(10)
    used = [b - a for a, b in zip(cpu0, cpu1, strict=True)]
    staleness.sort()
    return {
        "replicas": replicas,
        "staleness_p50_s": round(statistics.median(staleness), 3),
        "staleness_p99_s": round(staleness[int(0.99 * (len(staleness) - 1))], 3),
        "staleness_max_s": round(staleness[-1], 3),
        "staleness_samples": len(staleness),
        "learner_cpu_s_per_s": round(used[0] / elapsed, 3),
        "replica_cpu_ms_per_call": [
            round(1000 * u / max(1, c), 3) for u, c in zip(used[1:], calls_made, strict=True)
        ],
        "calls_per_replica": calls_made,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bootstrap", default=os.environ.get("LIFELONG_KAFKA_BOOTSTRAP"))
    parser.add_argument("--replicas", default="1,2,4")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--rate", type=float, default=500.0, help="records/s fed to the learner")
    parser.add_argument("--calls", type=float, default=20.0, help="Predict calls/s per replica")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    if not args.bootstrap:
        raise SystemExit("--bootstrap (or LIFELONG_KAFKA_BOOTSTRAP): a running broker")
    args.out.mkdir(parents=True, exist_ok=True)
    results = []
    with tempfile.TemporaryDirectory() as work:
        for n in map(int, args.replicas.split(",")):
            result = run(args.bootstrap, n, args.seconds, args.rate, args.calls, Path(work))
            print(json.dumps(result), flush=True)
            results.append(result)
    (args.out / "replicas.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
