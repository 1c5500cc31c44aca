"""Exactly once across partitions, by recorded identities: `lifelong serve` hosting the test
learner `recording:RecordingLearner` (tests/recording.py) learns a 3-partition topic whose every
record carries a unique id, and is SIGKILLed and restarted at random moments while the stream is
produced. Its final state, the record of ids it learned, must hold every id exactly once (no
loss, no duplicate), each partition's in the order produced.

Real broker, real subprocesses; no assertion depends on timing.
"""

from __future__ import annotations

import random

import pytest
from confluent_kafka import Producer
from lifelong.checkpoint import CheckpointStore
from lifelong.ingest.codecs import encode_json
from lifelong.model import load
from testsupport import wait_for

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

N = 6000
PARTITIONS = 3


def test_every_sample_is_learned_exactly_once_across_partitions_and_kills(
    kafka_bootstrap, kafka_topic, service
):
    import recording  # noqa: F401  (registers its kinds, for `load` here)

    topic = kafka_topic(partitions=PARTITIONS)
    rng = random.Random(15)
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "linger.ms": 1})
    produced = 0

    def feed(k: int) -> None:
        nonlocal produced
        for i in range(produced, min(N, produced + k)):
            value = encode_json({"id": i, "x": rng.uniform(-1, 1)}, rng.choice("ab"))
            producer.produce(topic, value, partition=i % PARTITIONS)
        produced = min(N, produced + k)
        producer.flush(10)

    svc = service(
        topic,
        model="recording:RecordingLearner",
        kafka_group_instance_id="recorder",
        checkpoint_every_samples=250,
        kafka_poll_max_records=40,
    )
    kills = 0
    for _ in range(4):
        svc.start()
        wait_for(lambda: svc.samples_learned() is not None, "the server to answer")
        resumed = svc.samples_learned()
        point = resumed + rng.randrange(100, 900)

        def fed_past(point: int = point) -> bool:
            feed(30)  # a live stream: the service is consuming when it is killed
            return (svc.samples_learned() or 0) >= point or produced == N

        wait_for(fed_past, f"{point} samples learned")
        svc.kill()
        kills += 1
    feed(N - produced)
    svc.start()
    svc.wait_learned(N)
    assert svc.stop() == 0  # a final checkpoint

    checkpoint = CheckpointStore(svc.checkpoint_dir).load_latest()
    learner = load(checkpoint.learner_state)
    ids = learner.ids
    assert len(ids) == N and sorted(ids) == list(range(N)), (
        f"lost {sorted(set(range(N)) - set(ids))[:10]}..., "
        f"duplicated {sorted(i for i in set(ids) if ids.count(i) > 1)[:10]}..."
    )
    for p in range(PARTITIONS):  # each partition in its order
        mine = [i for i in ids if i % PARTITIONS == p]
        assert mine == sorted(mine)
    assert checkpoint.offsets == {f"{topic}:{p}": N // PARTITIONS for p in range(PARTITIONS)}
    print(f"\n{N} samples over {PARTITIONS} partitions, {kills} SIGKILLs: each learned once")
