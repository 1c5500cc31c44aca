"""100,000 fuzzed Kafka records through a live `lifelong serve` on the real broker (issue 16):
well-formed, malformed, extreme values, huge and deeply nested JSON (up to 1 MiB, parsed, and
of several MB, refused unparsed as `oversized`), 100,000 keys, unknown content types, protobuf
garbage. Zero crashes; every refused record in the dead-letter topic once, with a reason among
`REASONS`; learned + dead-lettered = produced. The service's resident memory after the hostile
batch, idle again, stays within `RSS_BOUND_MB` of what it was before (finding 7: it rose ~210 MB
and stayed there); beyond, the failure names the mappings that grew.

Nothing is mocked: the session's real broker, the service as a subprocess (driven like
tests/integration/test_service_kafka.py), kafka-python as the independent producer and consumer.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

import pytest
from fuzz.hostile import HostileStream
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from lifelong.samples import REASONS
from services import Service
from testsupport import wait_for

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

PRODUCED = 100_000
MB = 1024 * 1024
TOPIC_MAX_BYTES = 16 * MB  # the topics take the several-MB records (the broker's default: 1 MB)
# Resident memory after the hostile batch, once the service is idle again, may exceed what it
# was before by at most this much: the model grows meanwhile (features up to 200). Before the
# fixes of finding 7, runs measured +66 to +366 MiB after the batch (rejected polls kept alive
# in reference cycles, freed blocks kept by malloc, several-MB records parsed).
RSS_BOUND_MB = 100


@pytest.fixture
def service(tmp_path: Path, kafka_bootstrap: str):
    made: list[Service] = []

    def make(topic: str, **settings: object) -> Service:
        made.append(Service(tmp_path, kafka_bootstrap, topic, **settings))
        return made[-1]

    yield make
    for s in made:
        s.close()


def rss_mb(pid: int) -> float:
    """Resident set size of process `pid`, in MiB (psutil if installed, else /proc)."""
    try:
        import psutil
    except ImportError:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise AssertionError(f"no VmRSS for process {pid}") from None
    return psutil.Process(pid).memory_info().rss / MB


def mappings(pid: int) -> dict[str, tuple[int, int]]:
    """Resident KiB of each mapping of process `pid` ("start-end name" -> (size, rss))."""
    out, key, size = {}, None, 0
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        first = line.split()
        if "-" in first[0] and not first[0].endswith(":"):
            key = f"{first[0]} {first[5] if len(first) > 5 else '[anon]'}"
            lo, hi = (int(x, 16) for x in first[0].split("-"))
            size = (hi - lo) // 1024
        elif first[0] == "Rss:":
            out[key] = (size, int(first[1]))
    return out


def grown(before: dict, after: dict, n: int = 8) -> str:
    """The mappings that grew most: where the memory went."""
    deltas = sorted(
        ((rss - before.get(k, (0, 0))[1], k, size) for k, (size, rss) in after.items()),
        reverse=True,
    )[:n]
    return "; ".join(f"{k} size {size} KiB: +{d} KiB" for d, k, size in deltas)


# Records of more than max_record_bytes: refused unparsed, as `oversized`.
ABOVE_LIMIT = {
    "deep_array", "deep_object", "deep_closed", "keys_100k", "keys_250k", "dense_400k",
    "label_3mb", "pad_3mb", "number_1mb", "nested_values", "oversized", "garbage_3mb",
    "protobuf_3mb",
}  # fmt: skip


def base36(i: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    return digits[i] if i < 36 else base36(i // 36) + digits[i % 36]


def monsters() -> list[tuple[str, bytes, list]]:
    """The largest records: those within `max_record_bytes` (1 MiB) parsed, the several-MB ones
    refused before parsing (`ABOVE_LIMIT`)."""
    x = b'{"features": {"x0": 0.1, "x1": 0.2, "x2": 0.3}, "label": '
    protobuf = [("content-type", b"application/x-protobuf")]
    compact = {"separators": (",", ":")}
    return [
        ("keys_100k_compact", json.dumps({"features": {base36(i): 1 for i in range(100_000)},
                                          "label": "above"}, **compact).encode(), []),
        ("deep_1mb", b"[" * (MB - 1), []),
        ("nested_1mb", json.dumps({"features": {"x0": [[[[1]]]] * 90_000}, "label": "a"},
                                  **compact).encode(), []),
        ("dense_200k", json.dumps({"dense": [0.5] * 200_000, "label": "above"}, **compact).encode(),
         []),
        ("deep_array", b"[" * (3 * MB), []),
        ("deep_object", b'{"a":' * (MB // 2), []),
        ("deep_closed", b"[" * (2 * MB) + b"]" * (2 * MB), []),
        ("keys_100k", json.dumps({"features": {f"k{i}": 1.0 for i in range(100_000)},
                                  "label": "above"}).encode(), []),
        ("keys_250k", json.dumps({"features": {f"key{i}": i for i in range(250_000)},
                                  "label": "above"}).encode(), []),
        ("dense_400k", json.dumps({"dense": [0.5] * 400_000, "label": "above"}).encode(), []),
        ("label_3mb", x + b'"' + b"a" * 3 * MB + b'"}', []),
        ("pad_3mb", x + b'"b", "pad": "' + b"z" * 3 * MB + b'"}', []),
        ("number_1mb", b'{"features": {"x0": 1' + b"0" * MB + b', "x1": 1}, "label": "a"}', []),
        ("nested_values", json.dumps({"features": {"x0": [[[[1]]]] * 200_000},
                                      "label": "a"}).encode(), []),
        ("oversized", x + b'"a", "pad": "' + b"y" * (5 * MB) + b'"}', []),
        ("garbage_3mb", bytes(range(256)) * (3 * MB // 256), [("content-type", b"text/csv")]),
        ("protobuf_3mb", b"\x0a" + b"\xff" * (3 * MB), protobuf),
    ]  # fmt: skip


class Produced:
    """What was sent, by offset (one partition: offsets are the sending order)."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.topic = topic
        self.kinds: list[str] = []
        self.producer = KafkaProducer(
            bootstrap_servers=bootstrap,
            max_request_size=TOPIC_MAX_BYTES,
            batch_size=512 * 1024,
            linger_ms=20,
        )

    def send(self, records) -> None:
        for kind, value, headers in records:
            key = str(len(self.kinds)).encode()  # a tombstone (no value) needs a key
            self.producer.send(self.topic, key=key, value=value, headers=headers)
            self.kinds.append(kind)
        self.producer.flush()

    def close(self) -> None:
        self.producer.close()


def read_dead_letters(bootstrap: str, topic: str, n: int) -> list:
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        max_partition_fetch_bytes=TOPIC_MAX_BYTES,
        fetch_max_bytes=4 * TOPIC_MAX_BYTES,
    )
    tp = TopicPartition(topic, 0)
    consumer.assign([tp])
    consumer.seek_to_beginning(tp)
    records: list = []
    try:
        wait_for(
            lambda: records.extend(consumer.poll(timeout_ms=500).get(tp, [])) or len(records) >= n,
            f"{n} dead letters",
            deadline=300,
        )
        time.sleep(1)  # and no more than that
        records.extend(consumer.poll(timeout_ms=1000).get(tp, []))
    finally:
        consumer.close()
    return records


def test_100k_fuzzed_records_through_a_live_service(kafka_bootstrap, kafka_topic, service):
    big = {"max.message.bytes": str(TOPIC_MAX_BYTES)}
    topic, dead = kafka_topic(partitions=1, configs=big), kafka_topic(partitions=1, configs=big)
    # 200: records bringing hundreds of new features are refused, so learning stays fast.
    svc = service(topic, dead_letter_topic=dead, max_model_features=200)
    svc.start()
    wait_for(lambda: svc.samples_learned() is not None, "the server to answer")
    pid = svc.process.pid
    produced = Produced(kafka_bootstrap, topic)
    stream = HostileStream(seed=16, huge=20_000, hostile_fraction=0.4)

    def processed() -> int:
        metrics = svc.metrics()
        kafka = [
            value
            for (name, labels), value in metrics.items()
            if name in ("lifelong_samples_learned_total", "lifelong_samples_rejected_total")
            and dict(labels).get("source") == "kafka"
        ]
        return int(sum(kafka))

    def settle(n: int) -> float:
        """Wait until all `n` records sent are learned or dead-lettered; RSS then, idle."""
        assert svc.process.poll() is None, f"lifelong serve exited; see {svc.log}"
        wait_for(lambda: processed() >= n, f"{n} records processed", deadline=600)
        time.sleep(2)
        return rss_mb(pid)

    started = time.monotonic()
    # Warm-up: the stream, hostile records of ordinary size among its samples.
    produced.send(stream.records(20_000))
    before = settle(len(produced.kinds))
    maps_before = mappings(pid)
    # The hostile batch: the several-MB records among 60,000 more, then the rest.
    peak = before
    big_ones = monsters()
    for i in range(30):
        produced.send(stream.records(2000 - 1))
        produced.send([big_ones[i % len(big_ones)]])
        peak = max(peak, rss_mb(pid))
    after = settle(len(produced.kinds))
    maps_after = mappings(pid)
    produced.send(stream.records(PRODUCED - len(produced.kinds)))
    final = settle(PRODUCED)
    produced.close()
    assert len(produced.kinds) == PRODUCED
    elapsed = time.monotonic() - started

    learned = svc.samples_learned()
    print(
        f"\n{PRODUCED} records in {elapsed:.0f} s, {learned} learned; RSS (MiB): {before:.0f} "
        f"before the hostile batch, peak {peak:.0f}, {after:.0f} after it, {final:.0f} at the end"
    )
    copies = read_dead_letters(kafka_bootstrap, dead, PRODUCED - learned)
    assert svc.process.poll() is None, f"lifelong serve exited; see {svc.log}"
    assert len(copies) == PRODUCED - learned  # learned + dead-lettered = produced
    offsets = Counter(int(dict(c.headers)["lifelong-source-offset"]) for c in copies)
    assert max(offsets.values()) == 1  # each once
    reasons = Counter()
    for copy in copies:
        headers = dict(copy.headers)
        assert headers["lifelong-error-reason"].decode() in REASONS
        assert headers["lifelong-error-message"]
        kind = produced.kinds[int(headers["lifelong-source-offset"])]
        reasons[kind, headers["lifelong-error-reason"].decode()] += 1
    assert {r for k, r in reasons if k == "valid"} <= {"unlearnable"}, reasons
    # Every monster refused: the several-MB ones unparsed, the others parsed and found wrong.
    kinds = {k for k, *_ in big_ones}
    assert {k for k, _ in reasons} >= kinds
    for kind, reason in reasons:
        if kind in kinds:
            assert (reason == "oversized") == (kind in ABOVE_LIMIT), (kind, reason)
    metrics = svc.metrics()
    assert metrics["lifelong_samples_learned_total", (("source", "kafka"),)] == learned
    assert svc.stop() == 0  # and it stops cleanly: no crash along the way
    print(f"dead letters: {dict(Counter(r for _, r in reasons.elements()))}")
    assert max(after, final) - before <= RSS_BOUND_MB, (
        f"RSS {before:.0f} MiB before the hostile batch, {after:.0f} after it, {final:.0f} at the "
        f"end, more than {RSS_BOUND_MB} MiB over; grown most: " + grown(maps_before, maps_after)
    )
