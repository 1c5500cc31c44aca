"""`lifelong serve` learning from a real Kafka broker, end to end.

Nothing is mocked: the broker is the session's real Kafka (tests/conftest.py), the service a real
`lifelong serve` subprocess, asked over gRPC and scraped over HTTP. Waits poll a condition with a
deadline that only turns a hang into a failure; no assertion depends on timing.
"""

from __future__ import annotations

import itertools
import json
import random
from collections import Counter
from pathlib import Path

import pytest
from confluent_kafka import Message
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from lifelong.checkpoint import CheckpointStore, decode
from lifelong.client import LifelongClient
from lifelong.config import Settings
from lifelong.ingest.codecs import decode_records, encode_json, encode_protobuf
from lifelong.ingest.produce import produce, samples_from_stream
from numerics import assert_same_learned_state
from services import LEARNER
from testsupport import wait_for

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


def read_topic(bootstrap: str, topic: str, n: int) -> list:
    """The first `n` records of a single-partition topic, in offset order."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    tp = TopicPartition(topic, 0)
    consumer.assign([tp])
    consumer.seek_to_beginning(tp)
    records: list = []
    try:
        wait_for(
            lambda: records.extend(consumer.poll(timeout_ms=200).get(tp, [])) or len(records) >= n,
            f"{n} records from {topic}",
        )
    finally:
        consumer.close()
    return records[:n]


def as_message(record) -> Message:
    """A kafka-python record (the tests' own, independent client) as the service's consumer
    (confluent-kafka) hands it over."""
    return Message(
        topic=record.topic, partition=record.partition, offset=record.offset, key=record.key,
        value=record.value, headers=record.headers or None,
    )  # fmt: skip


def accuracy(client: LifelongClient, holdout: list[tuple[dict, object]]) -> float:
    predictions = client.predict_batch([x for x, _ in holdout]).predictions
    right = sum(p.label == y for p, (_, y) in zip(predictions, holdout, strict=True))
    return right / len(holdout)


def test_learns_the_stream_and_predictions_improve(kafka_bootstrap, kafka_topic, service):
    topic = kafka_topic(partitions=2)
    svc = service(topic, checkpoint_every_samples=1000)
    svc.start()
    stream = samples_from_stream("agrawal", seed=1, count=None)
    holdout = list(itertools.islice(samples_from_stream("agrawal", seed=2, count=None), 400))
    majority = max(Counter(y for _, y in holdout).values()) / len(holdout)

    produce(itertools.islice(stream, 100), bootstrap=kafka_bootstrap, topic=topic, progress=False)
    svc.wait_learned(100)
    svc.wait_served(100)
    early = accuracy(svc.client, holdout)

    produce(itertools.islice(stream, 3900), bootstrap=kafka_bootstrap, topic=topic, progress=False)
    svc.wait_learned(4000)
    svc.wait_served(4000)
    late = accuracy(svc.client, holdout)
    assert late > max(early, majority) + 0.1, (early, late, majority)

    metrics = svc.metrics()
    assert metrics["lifelong_samples_learned_total", (("source", "kafka"),)] == 4000
    for name in ("lifelong_dead_units_ratio", "lifelong_effective_rank", "lifelong_layer_width"):
        assert (name, (("layer", "0"),)) in metrics, name
    assert metrics["lifelong_layer_width", (("layer", "0"),)] == 32

    def lags() -> list:
        metrics = svc.metrics()
        return [metrics.get(("lifelong_kafka_consumer_lag", (("partition", p),))) for p in "01"]

    wait_for(lambda: lags() == [0, 0], "the lag of both partitions to read 0")

    assert svc.stop() == 0
    final = CheckpointStore(svc.checkpoint_dir).load_latest()
    assert final.samples_learned == 4000
    assert sum(final.offsets.values()) == 4000  # every record consumed, none twice
    group = KafkaConsumer(bootstrap_servers=kafka_bootstrap, group_id=svc.settings["kafka_group"])
    try:  # committed after the final checkpoint, for lag monitoring: the same offsets
        assert {f"{topic}:{p}": group.committed(TopicPartition(topic, p)) for p in (0, 1)} == (
            final.offsets
        )
    finally:
        group.close()


def test_sigkilled_service_resumes_from_its_checkpoint_exactly_once(
    kafka_bootstrap, kafka_topic, service
):
    n = 3000
    topic = kafka_topic(partitions=1)  # one partition: the stream's order is total
    stream = samples_from_stream("agrawal", seed=3, count=n)
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, linger_ms=1)
    produced = 0

    def feed(k: int) -> None:
        nonlocal produced
        for features, label in itertools.islice(stream, k):
            producer.send(topic, value=encode_json(features, label))
            produced += 1
        producer.flush()

    svc = service(topic, checkpoint_every_samples=200, kafka_poll_max_records=50)
    rng = random.Random(11)
    lost = []  # samples learned by a killed process but not in the checkpoint it resumed from
    learned = 0
    for run in range(4):
        resumed = getattr(CheckpointStore(svc.checkpoint_dir).load_latest(), "samples_learned", 0)
        if run:
            lost.append(learned - resumed)
        point = rng.randrange(resumed + 1, resumed + 600)
        # A fresh group per run: a SIGKILLed member keeps its partition until its session times
        # out (45 s). The group never decides where to resume; the checkpoint does.
        svc.start(kafka_group=f"{topic}-run{run}")
        wait_for(lambda: svc.samples_learned() is not None, "the server to answer")

        def fed_past(point: int = point) -> bool:
            # A live stream, fed in small steps: the service is consuming when it is killed.
            nonlocal learned
            feed(20)
            learned = svc.samples_learned() or 0
            return learned >= point

        wait_for(fed_past, f"{point} samples learned")
        svc.kill()
    lost.append(learned - CheckpointStore(svc.checkpoint_dir).load_latest().samples_learned)
    assert any(lost), lost  # some restarts had to learn again what their predecessor had learned

    feed(n - produced)
    producer.close()
    svc.start(kafka_group=f"{topic}-final")
    svc.wait_learned(n)
    written = svc.client.checkpoint()
    assert written.samples_learned == n
    assert svc.stop() == 0
    path = Path(written.path)
    checkpoint = decode(path.read_bytes(), path, sequence=0)
    assert checkpoint.offsets == {f"{topic}:0": n}

    from lifelong.model import LifelongClassifier, load

    defaults = Settings()
    reference = LifelongClassifier(Settings(learner=LEARNER).learner_config())
    decoded = decode_records(
        map(as_message, read_topic(kafka_bootstrap, topic, n)),
        default="json",
        task="classification",
        max_features=defaults.max_features,
        max_bytes=defaults.max_record_bytes,
    )
    for sample in decoded.samples:
        reference.learn_one(sample.features, sample.label)
    restored = load(checkpoint.learner_state)
    assert restored.samples_learned == reference.samples_learned == n
    # Bit for bit, but the last telemetry window's effective rank: LAPACK derives it, in the
    # service on its threads, here on this process's (docs/kafka.md).
    assert_same_learned_state(checkpoint.learner_state, reference.to_bytes())


PROTOBUF = [("content-type", b"application/x-protobuf")]


def malformed_records() -> list[tuple[bytes | None, bytes | None, list, str]]:
    """(key, value, headers, reason) of records no model can learn; `max_features` is 4, the
    model has 2 features (x0, x1), `max_record_bytes` is 1024."""
    return [
        (b"k1", b'{"features": {"x0": 0.1, "x1": ', [], "undecodable"),
        (b"k2", b"\xff\xfe\x00garbage", [], "undecodable"),
        (b"k3", None, [], "undecodable"),  # a tombstone
        (b"k4", b'{"features": {"x0": 1}, "label": 1}', [("content-type", b"text/csv")],
         "undecodable"),
        (b"k5", b"\x0a\xff\xff\xff", PROTOBUF, "undecodable"),
        (None, b"[0.1, 0.2]", [], "invalid_schema"),
        (None, b'{"features": {"x0": "high", "x1": 1}, "label": 1}', [], "invalid_schema"),
        (None, b'{"features": {"x0": 1, "x1": 2}}', [], "invalid_schema"),
        (None, b'{"features": {"x0": NaN, "x1": 1}, "label": 0}', [], "non_finite"),
        (None, b'{"dense": [Infinity, 1], "label": 0}', [], "non_finite"),
        (None, encode_protobuf({"x0": float("nan"), "x1": 1.0}, 1), PROTOBUF, "non_finite"),
        (None, b'{"features": {}, "label": 1}', [], "empty_features"),
        (None, b'{"label": 1}', [], "empty_features"),
        (None, b'{"features": {"x0": 1, "x1": 2}, "label": 0.5}', [], "wrong_label_type"),
        (None, b'{"features": {"x0": 1, "x1": 2}, "label": [1]}', [], "wrong_label_type"),
        (None, encode_json({f"f{i}": 1.0 for i in range(5)}, 1), [], "too_many_features"),
        (None, b'{"dense": [1], "label": 1}', [], "dense_size_mismatch"),
        (None, encode_json({"x0": 1.0, "x1": 2.0}, "a" * 1100), [], "oversized"),
    ]  # fmt: skip


def test_malformed_records_go_to_the_dead_letter_topic(kafka_bootstrap, kafka_topic, service):
    topic, dead_letters = kafka_topic(partitions=1), kafka_topic(partitions=1)
    valid = [
        (None, encode_json(x, y), []) for x, y in samples_from_stream("sine", seed=5, count=300)
    ]
    valid += [
        (None, b'{"dense": [0.5, 0.25], "label": 1}', []),
        (None, encode_protobuf({"x0": 0.5, "x1": 0.25}, 0), PROTOBUF),
    ]
    bad = malformed_records()
    # Every malformed record after some valid ones (the model has its 2 features by then).
    records = [(key, value, headers, None) for key, value, headers in valid[:50]]
    rest = [(key, value, headers, None) for key, value, headers in valid[50:]]
    rest += bad
    random.Random(3).shuffle(rest)
    records += rest

    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap)
    for key, value, headers, _ in records:
        producer.send(topic, key=key, value=value, headers=headers)
    producer.flush()
    producer.close()

    svc = service(topic, dead_letter_topic=dead_letters, max_features=4, max_record_bytes=1024)
    svc.start()
    svc.wait_learned(len(valid))
    copies = read_topic(kafka_bootstrap, dead_letters, len(bad))

    expected = {offset: r for offset, r in enumerate(records) if r[3] is not None}
    assert len(expected) == len(bad)
    for copy in copies:
        headers = dict(copy.headers)
        assert headers["lifelong-source-topic"] == topic.encode()
        assert headers["lifelong-source-partition"] == b"0"
        key, value, original_headers, reason = expected.pop(int(headers["lifelong-source-offset"]))
        assert headers["lifelong-error-reason"] == reason.encode(), headers
        assert headers["lifelong-error-message"]
        assert (copy.key, copy.value) == (key, value)
        assert copy.headers[: len(original_headers)] == original_headers
    assert expected == {}  # each malformed record once

    def rejected() -> Counter:
        return Counter(
            {
                dict(labels)["reason"]: value
                for (name, labels), value in svc.metrics().items()
                if name == "lifelong_samples_rejected_total"
                and dict(labels)["source"] == "kafka"
                and value
            }
        )

    wait_for(lambda: sum(rejected().values()) == len(bad), "every rejection counted")
    assert rejected() == Counter(reason for *_, reason in bad)
    assert svc.metrics()["lifelong_samples_learned_total", (("source", "kafka"),)] == len(valid)
    assert svc.stop() == 0


def test_a_poison_record_is_dead_lettered_as_unlearnable_and_never_sticks_the_stream(
    kafka_bootstrap, kafka_topic, service
):
    """A record whose step cannot be made finite (unstandardised inputs: a value of 1e30, which
    nothing clips, puts the gradient past the learner's bound) among valid ones: every valid one
    is learned, the poison one dead-lettered as unlearnable; killed before any checkpoint, the
    restarted service reads it again, refuses it again and goes on."""
    topic = kafka_topic(partitions=1)
    learner = {"hidden": [8], "standardize": False, "seed": 7}
    svc = service(
        topic,
        task="regression",
        learner=json.dumps(learner),
        checkpoint_every_samples=10**6,
        checkpoint_every_seconds=3600,
    )
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap)

    def send(n: int, seed: int, scale: float = 1.0) -> None:
        rng = random.Random(seed)
        for _ in range(n):
            x = rng.uniform(-1, 1)
            producer.send(topic, encode_json({"x": x * scale}, 2.0 * x))
        producer.flush()

    send(20, seed=1)
    send(1, seed=2, scale=1e30)  # offset 20
    send(20, seed=3)
    svc.start()
    svc.wait_learned(40)
    dead = read_topic(kafka_bootstrap, f"{topic}.dlq", 1)[0]
    headers = dict(dead.headers)
    assert headers["lifelong-error-reason"] == b"unlearnable"
    assert headers["lifelong-source-offset"] == b"20"
    refused = svc.metrics()["lifelong_updates_refused_total", (("reason", "gradient_limit"),)]
    assert refused == 1
    wait_for(lambda: ":0@20; dead-lettered as unlearnable" in svc.log.read_text(), "the warning")

    svc.kill()  # no checkpoint yet: the restart reads the poison record again
    assert not CheckpointStore(svc.checkpoint_dir).load_latest()
    svc.start()
    svc.wait_learned(40)
    send(10, seed=4)
    svc.wait_learned(50)  # past it again: not stuck
    # Served within refresh_every_seconds (a restart now learns at once, under its static group
    # id, so the first snapshot may still be due when the 50th sample is learned).
    svc.wait_served(50)
    assert svc.client.predict({"x": 0.5}).model_version == 50
    assert svc.stop() == 0  # SIGTERM: a final checkpoint of all 51 records
    latest = CheckpointStore(svc.checkpoint_dir).load_latest()
    assert latest.samples_learned == 50 and latest.offsets == {f"{topic}:0": 51}
    svc.start()
    svc.wait_learned(50)  # from the checkpoint: nothing again
    assert len(read_topic(kafka_bootstrap, f"{topic}.dlq", 2)) == 2  # refused once per run
    assert svc.stop() == 0
    producer.close()
