"""Rolling back on a real broker: the restored model reads the stream again from its
checkpoint's offsets, so what came after is learned once more, by it, exactly once."""

from __future__ import annotations

import threading
import uuid

import pytest
from kafka import KafkaProducer
from lifelong.checkpoint import CheckpointStore
from lifelong.config import Settings
from lifelong.host import ModelHost
from lifelong.ingest import run
from lifelong.ingest.codecs import encode_json
from lifelong.ingest.produce import samples_from_stream
from lifelong.samples import Sample
from numerics import assert_same_learned_state
from testsupport import small_learner, wait_for

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


def test_roll_back_relearns_what_came_after_the_checkpoint_once(
    kafka_bootstrap, kafka_topic, tmp_path
):
    topic = kafka_topic(partitions=1)
    stream = list(samples_from_stream("agrawal", seed=5, count=500))
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, linger_ms=1)

    def feed(part: list) -> None:
        for features, label in part:
            producer.send(topic, value=encode_json(features, label))
        producer.flush()

    settings = Settings(
        kafka_bootstrap=kafka_bootstrap,
        kafka_topic=topic,
        kafka_group=f"rollback-{uuid.uuid4().hex[:8]}",
        checkpoint_every_samples=10**9,
        checkpoint_every_seconds=10**9,
        checkpoint_dir=tmp_path,
    )
    host = ModelHost(small_learner(), checkpoints=CheckpointStore(tmp_path), fresh=small_learner)
    stop = threading.Event()
    loop = threading.Thread(target=run, args=(host, settings, stop), daemon=True)
    loop.start()
    try:
        feed(stream[:300])
        wait_for(lambda: host.samples_learned == 300, "300 samples learned")
        first = host.checkpoint()
        assert first.offsets == {f"{topic}:0": 300}
        feed(stream[300:])
        wait_for(lambda: host.samples_learned == 500, "500 samples learned")
        host.roll_back(first.sequence)
        assert host.offsets == {f"{topic}:0": 300}
        wait_for(
            lambda: host.samples_learned == 500 and host.offsets[f"{topic}:0"] == 500,
            "the 200 after the checkpoint learned again",
        )
    finally:
        stop.set()
        loop.join(timeout=60)
        producer.close()

    reference = small_learner()
    ModelHost(reference).learn([Sample(x, None, y) for x, y in stream], source="kafka")
    assert_same_learned_state(host.learning.read(lambda learner: learner.to_bytes()),
                              reference.to_bytes())  # fmt: skip
