"""gRPC Learn while the model learns from Kafka (issue 16, finding 1): an acknowledged sample
is in the topic, so a SIGKILL cannot lose it and a restart cannot learn it twice."""

from __future__ import annotations

import itertools

import pytest
from integration.test_service_kafka import read_topic
from kafka import KafkaProducer
from lifelong.ingest.codecs import encode_json
from lifelong.ingest.produce import samples_from_stream
from lifelong.v1 import lifelong_pb2 as pb

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


def test_a_sample_acknowledged_over_grpc_survives_a_sigkill_and_is_learned_once(
    kafka_bootstrap, kafka_topic, service
):
    topic = kafka_topic(partitions=1)
    stream = samples_from_stream("agrawal", seed=4, count=101)
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, linger_ms=1)
    for features, label in itertools.islice(stream, 100):
        producer.send(topic, value=encode_json(features, label))
    producer.flush()
    producer.close()
    # No checkpoint before the kill: everything must come back from the topic.
    svc = service(topic, checkpoint_every_samples=10**6, checkpoint_every_seconds=3600)
    svc.start()
    svc.wait_learned(100)

    features, label = next(stream)
    learned = svc.client.learn(features, label)  # acknowledged: the broker has it
    assert learned in (100, 101)  # learned by the loop, maybe not yet
    svc.wait_learned(101)
    svc.kill()

    forwarded = read_topic(kafka_bootstrap, topic, 101)[-1]
    assert dict(forwarded.headers)["content-type"] == b"application/x-protobuf"
    sample = pb.Sample.FromString(forwarded.value)
    assert dict(sample.features.named) == pytest.approx(features)

    svc.start()
    svc.wait_learned(101)  # not 100 (lost), and wait_learned asserts not 102 (twice)
