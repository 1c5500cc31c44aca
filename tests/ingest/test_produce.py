import itertools
import subprocess
import sys

import pytest
from confluent_kafka import Message
from kafka import KafkaConsumer, TopicPartition
from lifelong.ingest.codecs import decode_records
from lifelong.ingest.produce import STREAMS, samples_from_csv, samples_from_stream
from testsupport import free_port


def test_csv_rows_become_samples(tmp_path):
    path = tmp_path / "data.csv"
    path.write_text("a,b,y\n1,2.5,spam\n-1,0,3\n0,1e3,0.5\n")
    assert list(samples_from_csv(path, target="y", count=None)) == [
        ({"a": 1.0, "b": 2.5}, "spam"),
        ({"a": -1.0, "b": 0.0}, 3),
        ({"a": 0.0, "b": 1000.0}, 0.5),
    ]
    assert len(list(samples_from_csv(path, target="y", count=2))) == 2


def test_csv_features_must_be_numbers(tmp_path):
    path = tmp_path / "data.csv"
    path.write_text("a,y\n1,x\nred,y\n")
    with pytest.raises(SystemExit, match=r"data\.csv:3"):
        list(samples_from_csv(path, target="y", count=None))


@pytest.mark.parametrize("name", STREAMS)
def test_synthetic_streams_are_seeded_with_string_feature_names(name):
    first = list(samples_from_stream(name, seed=3, count=5))
    assert first == list(samples_from_stream(name, seed=3, count=5))
    assert len(first) == 5
    assert all(isinstance(k, str) for x, _ in first for k in x)


def test_endless_without_count():
    assert len(list(itertools.islice(samples_from_stream("sine", seed=0, count=None), 20))) == 20


@pytest.mark.slow
def test_produce_command_says_when_no_broker_answers():
    command = [sys.executable, "-m", "lifelong", "produce", "--count", "5"]
    bootstrap = f"127.0.0.1:{free_port()}"  # nothing listens there
    command += ["--bootstrap", bootstrap]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode != 0
    assert f"lifelong produce: {bootstrap}: Failed to get metadata" in result.stderr
    assert "produced" not in result.stdout


@pytest.mark.kafka
def test_produce_command_writes_decodable_records(kafka_bootstrap, kafka_topic):
    topic = kafka_topic(partitions=1)
    command = [sys.executable, "-m", "lifelong", "produce", "--bootstrap", kafka_bootstrap]
    command += ["--topic", topic, "--stream", "sea", "--count", "50", "--format", "protobuf"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"produced 50 samples to {topic} (protobuf)"

    consumer = KafkaConsumer(bootstrap_servers=kafka_bootstrap, consumer_timeout_ms=5000)
    consumer.assign([TopicPartition(topic, 0)])
    consumer.seek_to_beginning()
    records = list(itertools.islice(consumer, 50))
    consumer.close()
    assert {tuple(r.headers) for r in records} == {(("content-type", b"application/x-protobuf"),)}
    # Read by kafka-python, an independent client, handed over as the service's consumer would.
    messages = [
        Message(topic=topic, partition=0, offset=r.offset, value=r.value, headers=r.headers)
        for r in records
    ]
    decoded = decode_records(
        messages, default="json", task="classification", max_features=10, max_bytes=1024
    )
    expected = list(samples_from_stream("sea", seed=42, count=50))
    assert [s.features for s in decoded.samples] == [x for x, _ in expected]
    assert [s.label for s in decoded.samples] == [int(y) for _, y in expected]
