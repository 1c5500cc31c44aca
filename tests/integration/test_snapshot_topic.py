"""Snapshots through Kafka: a learner publishes its serving snapshots to the compacted snapshot
topic and prediction replicas (`lifelong serve-predictions --snapshot-topic`) follow it, refusing
corrupt and foreign ones; a ~100 MB snapshot goes in chunks.

Real broker, real subprocesses; nothing asserted depends on timing (the measured times of the
large snapshot are printed: benchmarks/kafka/README.md).
"""

from __future__ import annotations

import itertools
import json
import time

import grpc
import numpy as np
import pytest
from confluent_kafka import Producer
from grpc_health.v1 import health_pb2, health_pb2_grpc
from lifelong.config import Settings
from lifelong.ingest.produce import produce, samples_from_stream
from lifelong.model import MLPPredictor
from lifelong.snapshot_topic import MANIFEST_HEADER, TopicSink, encode
from testsupport import wait_for

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def health(target: str) -> int | None:
    with grpc.insecure_channel(target) as channel:
        request = health_pb2.HealthCheckRequest(service="")
        try:
            return health_pb2_grpc.HealthStub(channel).Check(request, timeout=5).status
        except grpc.RpcError:  # not listening yet
            return None


def replica(service, topic: str, snapshots: str, name: str, **settings):
    return service(
        topic,
        command="serve-predictions",
        name=name,
        snapshot_topic=snapshots,
        **settings,
    )


def test_replicas_follow_the_learner_through_the_topic_and_refuse_bad_snapshots(
    kafka_bootstrap, kafka_topic, service
):
    topic = kafka_topic(partitions=2)
    snapshots = f"{topic}.model"  # the default
    replicas = [replica(service, topic, snapshots, f"replica{i}") for i in range(2)]
    for r in replicas:
        r.start()
    for r in replicas:  # nothing published yet
        wait_for(lambda r=r: health(r.grpc) == NOT_SERVING, "a replica to answer health")
    learner = service(topic)
    learner.start()
    stream = samples_from_stream("agrawal", seed=1, count=None)
    produce(itertools.islice(stream, 1000), bootstrap=kafka_bootstrap, topic=topic, progress=False)
    learner.wait_learned(1000)
    learner.wait_served(1000)
    x = {f"x{i}": 0.5 for i in range(9)}
    for r in replicas:
        wait_for(lambda r=r: r.metric("lifelong_model_version") == 1000, "replica at 1000")
        assert health(r.grpc) == SERVING
        assert r.client.predict(x).model_version == 1000
        assert r.client.predict(x).label == learner.client.predict(x).label
        assert r.metric("lifelong_model_version") == 1000
        assert 0 <= r.metric("lifelong_model_staleness_seconds") < 3600

    # A corrupt snapshot (a chunk's bytes changed), a foreign one (another model's), and a
    # manifest that is none.
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    corrupt = encode(b"x" * 3000, model=f"{topic}-service", task="classification", version=5,
                     chunk_bytes=1024)  # fmt: skip
    key, value, headers = corrupt[1]
    corrupt[1] = (key, b"z" + value[1:], headers)
    (foreign,) = encode(b"y", model="another-model", task="classification", version=9,
                        chunk_bytes=1024)  # fmt: skip
    malformed = (b"manifest", b"", [(MANIFEST_HEADER, json.dumps({"format": 1}).encode())])
    for key, value, headers in [*corrupt, foreign, malformed]:
        producer.produce(snapshots, value, key, headers=headers)
    assert producer.flush(10) == 0
    for r in replicas:
        for reason in ("digest", "foreign", "malformed"):
            wait_for(lambda r=r, reason=reason: r.metric(
                "lifelong_snapshots_refused_total", reason=reason) == 1, reason)  # fmt: skip
        assert r.client.predict(x).model_version == 1000  # the previous one stays
        assert health(r.grpc) == SERVING

    produce(itertools.islice(stream, 500), bootstrap=kafka_bootstrap, topic=topic, progress=False)
    learner.wait_learned(1500)
    for r in replicas:  # and they go on following
        wait_for(lambda r=r: r.metric("lifelong_model_version") == 1500, "replica at 1500")
    assert learner.stop() == 0
    for r in replicas:
        assert r.stop() == 0


def big_predictor(hidden: int) -> MLPPredictor:
    """A synthetic snapshot of hidden x hidden float32 weights (hidden=5000: 100 MB)."""
    rng = np.random.default_rng(0)
    weights = [
        rng.standard_normal((hidden, 2), dtype=np.float32),
        rng.standard_normal((hidden, hidden), dtype=np.float32) / hidden,
        rng.standard_normal((2, hidden), dtype=np.float32),
    ]
    biases = [np.zeros(len(w), np.float32) for w in weights]
    names = ("x0", "x1")
    index = {n: i for i, n in enumerate(names)}
    return MLPPredictor("classification", weights, biases, index, names, ("a", "b"), None, None,
                        version=12345)  # fmt: skip


def test_a_100_mb_snapshot_goes_in_chunks_and_a_replica_loads_it(
    kafka_bootstrap, kafka_topic, service, tmp_path
):
    topic = kafka_topic(partitions=1)
    snapshots = f"{topic}.model"
    group = "big-model"
    follower = replica(service, topic, snapshots, "replica", kafka_group=group)
    settings = Settings(
        kafka_bootstrap=kafka_bootstrap,
        kafka_group=group,
        snapshot_chunk_bytes=512 * 1024,
        checkpoint_dir=tmp_path,  # the learner's settings; nothing is learned here
    )
    sink = TopicSink(settings, snapshots)  # creates the compacted topic
    follower.start()
    wait_for(lambda: health(follower.grpc) == NOT_SERVING, "the replica to answer health")
    predictor = big_predictor(5000)
    started = time.monotonic()
    data = predictor.to_bytes()
    serialised = time.monotonic()
    assert sink.write(predictor, data)
    assert sink.flush(120) == 0 and sink.published == 1
    published = time.monotonic()
    wait_for(lambda: follower.metric("lifelong_model_version") == 12345, "the replica to load it")
    loaded = time.monotonic()
    sink.close()
    chunks = -(-len(data) // settings.snapshot_chunk_bytes)
    print(f"\nsnapshot {len(data) / 1e6:.1f} MB in {chunks} chunks: to_bytes "
          f"{serialised - started:.2f} s, published (all acknowledged) {published - serialised:.2f}"
          f" s, replica serving it {loaded - published:.2f} s later")  # fmt: skip
    assert len(data) > 100e6
    assert follower.client.predict({"x0": 0.1, "x1": 0.2}).model_version == 12345
    assert health(follower.grpc) == SERVING
    assert follower.stop() == 0
