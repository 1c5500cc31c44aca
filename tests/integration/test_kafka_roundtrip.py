"""A real round trip through a real Kafka broker, and the dev broker's lifecycle.

Nothing here is mocked: the broker is Apache Kafka started by
deploy/kafka/kafka-dev.sh (see tests/conftest.py, Kafka section).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import uuid
from collections import Counter, defaultdict
from pathlib import Path

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition

KEYS = [f"learner-{i}" for i in range(8)]
PER_KEY = 25


def _expected_headers(run: str, key: str, seq: int) -> list[tuple[str, bytes]]:
    # Two "trace" headers on purpose: Kafka keeps repeated header keys, in order.
    return [
        ("run", run.encode()),
        ("key", key.encode()),
        ("seq", str(seq).encode()),
        ("trace", f"{key}/{seq}/a".encode()),
        ("trace", f"{key}/{seq}/b".encode()),
        ("empty", b""),
    ]


@pytest.mark.kafka
def test_keyed_messages_with_headers_round_trip_exactly_once_in_order(
    kafka_bootstrap: str, kafka_topic
) -> None:
    topic = kafka_topic(partitions=3)
    run = uuid.uuid4().hex

    producer = KafkaProducer(
        bootstrap_servers=kafka_bootstrap,
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
        client_id="roundtrip-producer",
    )
    try:
        futures = {}
        for seq in range(PER_KEY):
            for key in KEYS:
                value = json.dumps({"key": key, "seq": seq}).encode()
                futures[key, seq] = producer.send(
                    topic,
                    key=key.encode(),
                    value=value,
                    headers=_expected_headers(run, key, seq),
                )
        producer.flush(timeout=30)
        written = {ks: future.get(timeout=30) for ks, future in futures.items()}
    finally:
        producer.close(timeout=10)

    # The broker placed every key in exactly one partition, and the keys spread.
    partition_of = {key: {written[key, seq].partition for seq in range(PER_KEY)} for key in KEYS}
    assert all(len(parts) == 1 for parts in partition_of.values()), partition_of
    assert len({next(iter(parts)) for parts in partition_of.values()}) > 1, partition_of

    group = f"roundtrip-{run}"
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=kafka_bootstrap,
        group_id=group,
        client_id="roundtrip-consumer",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    received = []
    try:
        deadline = time.monotonic() + 60
        while len(received) < len(written) and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                received.extend(records)
        # Nothing more arrives: no duplicates and no strays.
        quiet_until = time.monotonic() + 1.0
        while time.monotonic() < quiet_until:
            for records in consumer.poll(timeout_ms=200).values():
                received.extend(records)
        consumer.commit()

        partitions = {TopicPartition(topic, p) for p in range(3)}
        assert consumer.assignment() == partitions
        end_offsets = consumer.end_offsets(list(partitions))
        committed_by_consumer = {tp: consumer.committed(tp) for tp in partitions}
    finally:
        consumer.close()

    # Exactly once: every (key, seq) arrived, none twice.
    seen = Counter((r.key.decode(), json.loads(r.value)["seq"]) for r in received)
    assert set(seen) == set(written)
    assert max(seen.values()) == 1
    assert len(received) == len(written) == len(KEYS) * PER_KEY

    per_partition_offsets = defaultdict(list)
    per_key_seqs = defaultdict(list)
    for record in received:
        key = record.key.decode()
        seq = json.loads(record.value)["seq"]
        # Key, headers (order, repeats, empty value) and placement survive the trip.
        assert record.topic == topic
        assert list(record.headers) == _expected_headers(run, key, seq)
        assert (record.partition, record.offset) == (
            written[key, seq].partition,
            written[key, seq].offset,
        )
        per_partition_offsets[record.partition].append(record.offset)
        per_key_seqs[key].append(seq)

    # Per-partition order: offsets delivered in order; each key's messages in send order.
    for offsets in per_partition_offsets.values():
        assert offsets == sorted(offsets)
        assert offsets == list(range(len(offsets)))
    assert all(seqs == list(range(PER_KEY)) for seqs in per_key_seqs.values()), per_key_seqs

    # Committed offsets equal the end offsets, seen by the consumer and by the broker.
    count_per_partition = {
        TopicPartition(topic, p): len(offsets) for p, offsets in per_partition_offsets.items()
    }
    for tp in partitions:
        assert end_offsets[tp] == count_per_partition.get(tp, 0)
    assert committed_by_consumer == end_offsets

    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap, client_id="roundtrip-admin")
    try:
        group_offsets = admin.list_group_offsets(group)[group]
    finally:
        admin.close()
    assert {tp: meta.offset for tp, meta in group_offsets.items()} == end_offsets


# -----------------------------------------------------------------------------
# kafka-dev.sh lifecycle: a second broker, independent of the session's one.


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _read_info(run_dir: Path) -> dict[str, str]:
    lines = (run_dir / "broker.info").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if "=" in line)


def _running(pid: int) -> bool:
    """pid exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def _processes_mentioning(text: str) -> list[tuple[int, str]]:
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline and _running(int(proc.name)):
            found.append((int(proc.name), cmdline))
    return found


def _start_second_broker(kafka_dev, run_dir: Path, *extra: str) -> dict[str, str]:
    port = _free_port()
    result = kafka_dev("start", "--port", str(port), "--dir", run_dir, *extra)
    assert result.returncode == 0, result.stderr
    info = _read_info(run_dir)
    assert info["bootstrap"] == f"127.0.0.1:{port}"
    assert f"Kafka {info['kafka_version']} broker ready at 127.0.0.1:{port}" in result.stdout
    return info


def _assert_answers(info: dict[str, str]) -> None:
    """It is a live broker of its own cluster, not the session's."""
    admin = KafkaAdminClient(bootstrap_servers=info["bootstrap"], client_id="lifecycle-admin")
    try:
        cluster = admin.describe_cluster()
    finally:
        admin.close()
    assert cluster["cluster_id"] == info["cluster_id"]
    assert [b["port"] for b in cluster["brokers"]] == [int(info["port"])]


@pytest.mark.kafka
@pytest.mark.slow
def test_kafka_dev_stop_leaves_no_process_behind(kafka_dev, tmp_path: Path) -> None:
    run_dir = tmp_path / "broker"
    info = _start_second_broker(kafka_dev, run_dir)
    pid = int(info["pid"])
    try:
        assert _running(pid)
        assert any(p == pid for p, _ in _processes_mentioning(f"kafka.Kafka {run_dir}/"))
        _assert_answers(info)
        status = kafka_dev("status", "--dir", run_dir)
        assert status.returncode == 0
        assert f"running (pid {pid})" in status.stdout
    finally:
        stop = kafka_dev("stop", "--dir", run_dir)
    assert stop.returncode == 0, stop.stderr

    assert not _running(pid)
    assert _processes_mentioning(str(run_dir)) == []
    assert not (run_dir / "kafka.pid").exists()
    status = kafka_dev("status", "--dir", run_dir)
    assert status.returncode == 3
    assert "not running" in status.stdout
    # The broker shut down cleanly rather than being killed.
    assert "[BrokerServer id=1] shut down completed" in (run_dir / "kafka.log").read_text()


@pytest.mark.kafka
@pytest.mark.slow
def test_kafka_dev_broker_stops_when_its_owner_dies(kafka_dev, tmp_path: Path) -> None:
    run_dir = tmp_path / "broker"
    owner = subprocess.Popen(["sleep", "300"])
    try:
        info = _start_second_broker(kafka_dev, run_dir, "--owner-pid", str(owner.pid))
        pid = int(info["pid"])
        _assert_answers(info)
        assert _running(pid)

        owner.send_signal(signal.SIGKILL)  # the owner dies without any teardown
        owner.wait(timeout=10)
        deadline = time.monotonic() + 60
        while _processes_mentioning(str(run_dir)) and time.monotonic() < deadline:
            time.sleep(0.2)

        assert not _running(pid)
        assert _processes_mentioning(str(run_dir)) == []
        assert "owner pid" in (run_dir / "watchdog.log").read_text()
    finally:
        if owner.poll() is None:
            owner.kill()
            owner.wait()
        kafka_dev("stop", "--dir", run_dir)
