"""Issue 16's findings on a live `lifelong serve` learning from a real Kafka broker: each test
reproduces what an operator saw and failed before its fix.

Nothing is mocked: the broker is the session's real Kafka (tests/conftest.py), the service a real
subprocess (`Service`, from test_service_kafka), asked over gRPC and scraped over HTTP.
"""

from __future__ import annotations

import json
import random

import grpc
import pytest
from integration.test_service_kafka import PROTOBUF, read_topic
from kafka import KafkaProducer
from lifelong.client import LifelongError
from lifelong.ingest.codecs import encode_json, encode_protobuf
from lifelong.v1 import lifelong_pb2 as pb
from services import Service
from testsupport import wait_for

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


def wait_serving(service: Service) -> None:
    wait_for(lambda: service.samples_learned() is not None, "the service answering")


def test_sigterm_checkpoints_samples_learned_over_grpc_in_kafka_mode(kafka_topic, service):
    """Finding 1: a sample learned over gRPC while Kafka mode is on was lost at SIGTERM (the Kafka
    loop checkpointed only when it had consumed records since its last checkpoint). Now Learn
    goes through the topic: after SIGTERM and a restart it is learned, once."""
    svc: Service = service(kafka_topic(partitions=1))
    svc.start()
    wait_serving(svc)
    assert svc.client.learn({"x0": 0.5, "x1": -0.5}, "learned-over-grpc") in (0, 1)
    assert svc.stop() == 0
    svc.start()
    svc.wait_learned(1)  # and not 2
    assert svc.client.model_info().classes == ("learned-over-grpc",)


def boolean_record(x0: float, label: bool) -> bytes:
    """A protobuf record with a boolean label (`Label.boolean`)."""
    sample = pb.Sample(features=pb.Features(named={"x0": x0, "x1": -x0}), label=pb.Label())
    sample.label.boolean = label
    return sample.SerializeToString()


def test_a_models_label_type_is_decided_once_and_one_record_cannot_grow_it_80_fold(
    kafka_bootstrap, kafka_topic, service
):
    """Finding 2: 20 records labelled `true`, then records labelled with integers: some were
    learned as new classes, others dead-lettered as "equal to class True of another type", and the
    class True showed over gRPC as the integer 1, which no client could send. Now the first class
    decides: every integer label is refused, over both codecs and gRPC, and True is a boolean on
    the wire. Finding 3: one record with 9,990 new feature names grew the input layer from 2 to
    9,992; now it is refused (`max_new_features_per_sample`)."""
    topic, dead_letters = kafka_topic(partitions=1), kafka_topic(partitions=1)
    rng = random.Random(2)
    records: list[tuple[bytes, list, str | None]] = []  # value, headers, reason refused
    for _ in range(20):
        x = rng.uniform(-1, 1)
        records.append((json.dumps({"features": {"x0": x, "x1": -x}, "label": True}).encode(),
                        [], None))  # fmt: skip
    for i in range(40):
        x = rng.uniform(-1, 1)
        if i % 4 == 0:
            records.append((encode_protobuf({"x0": x, "x1": -x}, i % 3), PROTOBUF,
                            "wrong_label_type"))  # fmt: skip
        elif i % 4 == 1:
            records.append((boolean_record(x, x > 0), PROTOBUF, None))
        else:
            records.append((encode_json({"x0": x, "x1": -x}, i % 3), [], "wrong_label_type"))
    wide = {"x0": 0.5, "x1": -0.5, **{f"new{i}": 1.0 for i in range(9_990)}}
    records.append((json.dumps({"features": wide, "label": True}).encode(), [],
                    "too_many_new_features"))  # fmt: skip
    records.append((json.dumps({"features": {"x0": 0.1, "x1": 0.2}, "label": "true"}).encode(),
                    [], "wrong_label_type"))  # fmt: skip
    records.append((json.dumps({"features": {"x0": 0.3, "x1": 0.2}, "label": False}).encode(),
                    [], None))  # fmt: skip
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap)
    for value, headers, _ in records:
        producer.send(topic, value=value, headers=headers)
    producer.flush()
    producer.close()

    svc: Service = service(topic, dead_letter_topic=dead_letters)
    svc.start()
    valid = sum(reason is None for *_, reason in records)
    svc.wait_learned(valid)
    bad = {offset: reason for offset, (*_, reason) in enumerate(records) if reason is not None}
    copies = read_topic(kafka_bootstrap, dead_letters, len(bad))
    reasons = {
        int(dict(c.headers)["lifelong-source-offset"]): dict(c.headers)["lifelong-error-reason"]
        for c in copies
    }
    assert reasons == {offset: reason.encode() for offset, reason in bad.items()}

    svc.wait_served(valid)  # the serving snapshot trails learning by up to a second
    info = svc.client.model_info()
    assert info.feature_names == ("x0", "x1")
    assert set(info.classes) == {True, False}
    assert {type(c) for c in info.classes} == {bool}
    assert type(svc.client.predict({"x0": 0.5, "x1": -0.5}).label) is bool
    with pytest.raises(LifelongError) as error:
        svc.client.learn({"x0": 0.5, "x1": -0.5}, 1)
    assert error.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "wrong_label_type" in str(error.value)
    # Kafka mode: acknowledged once the topic has it, learned by the loop.
    assert svc.client.learn({"x0": 0.5, "x1": -0.5}, True) in (valid, valid + 1)
    svc.wait_learned(valid + 1)
    assert svc.stop() == 0


def test_class_and_growth_limits_from_settings_dead_letter_with_their_reasons(
    kafka_bootstrap, kafka_topic, service
):
    """`max_classes`, `max_label_length` and the feature growth allowance, set as flags of a live
    `lifelong serve`: over the limit, records are dead-lettered with their reason and counted."""
    topic, dead_letters = kafka_topic(partitions=1), kafka_topic(partitions=1)
    records: list[tuple[bytes, str | None]] = []
    for i in range(30):
        records.append((encode_json({"x0": i / 30, "x1": 1 - i / 30}, "ab"[i % 2]), None))
    records.append((encode_json({"x0": 0.5, "x1": 0.5}, "c"), None))  # the third class
    records.append((encode_json({"x0": 0.5, "x1": 0.5}, "d"), "too_many_classes"))
    records.append((encode_json({"x0": 0.5, "x1": 0.5}, "z" * 9), "label_too_long"))
    records.append((encode_json({"x0": 0.5, "x1": 0.5, "x2": 1.0}, "a"), None))  # 3: the burst
    records.append((encode_json({"x0": 0.5, "x3": 1.0}, "a"), "feature_growth_limited"))
    records.append((encode_json({"x0": 0.5, "x1": 0.5}, "b"), None))  # known: always learned
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap)
    for value, _ in records:
        producer.send(topic, value=value)
    producer.flush()
    producer.close()

    svc: Service = service(
        topic, dead_letter_topic=dead_letters, max_classes=3, max_label_length=8,
        feature_growth_burst=3, feature_growth_per_1000_samples=0,
    )  # fmt: skip
    svc.start()
    svc.wait_learned(sum(reason is None for _, reason in records))
    bad = {offset: reason for offset, (_, reason) in enumerate(records) if reason is not None}
    copies = read_topic(kafka_bootstrap, dead_letters, len(bad))
    reasons = {
        int(dict(c.headers)["lifelong-source-offset"]): dict(c.headers)["lifelong-error-reason"]
        for c in copies
    }
    assert reasons == {offset: reason.encode() for offset, reason in bad.items()}
    svc.wait_served(sum(reason is None for _, reason in records))
    info = svc.client.model_info()
    assert info.classes == ("a", "b", "c") and info.feature_names == ("x0", "x1", "x2")

    def rejected(reason: str) -> float:
        labels = (("reason", reason), ("source", "kafka"))
        return svc.metrics()[("lifelong_samples_rejected_total", labels)]

    wait_for(lambda: rejected("too_many_classes") == 1, "the refusals counted")
    assert rejected("label_too_long") == rejected("feature_growth_limited") == 1
    assert svc.stop() == 0
