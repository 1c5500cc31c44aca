"""Serving snapshots through a compacted Kafka topic, for prediction replicas on any machine.

A learner publishes each snapshot it would write to the snapshot file (at most once every
`refresh_every_seconds`) to `snapshot_topic` (default `<kafka_topic>.model`): one partition,
`cleanup.policy=compact`. A snapshot is `Predictor.to_bytes()` (the state codec: loading runs no
code from the data), sent as records keyed so that compaction keeps the latest:

    key "chunk-000000" ... "chunk-<n-1>"   the bytes in pieces of at most `snapshot_chunk_bytes`
                                           (below the broker's message limit), each with a
                                           `lifelong-chunk` header {"id", "index"}
    key "manifest"                         header `lifelong-snapshot`: JSON {"format", "id",
                                           "model", "task", "version", "published", "size",
                                           "sha256", "chunks"}; chunks 0: the bytes are its value

Chunks come before their manifest, so a reader that sees a manifest has seen its chunks (one
partition keeps the order). `id` is new for every publication: a chunk of another publication
(an interrupted one, or one compaction kept) never passes for this one's. A manifest whose
chunks are missing or whose bytes do not hash to `sha256` is corrupt; one of another `model`
(the learner's `kafka_group`) or `task` is foreign: a reader refuses both and keeps what it had.

>>> records = encode(b"x" * 10, model="m", task="regression", version=3, chunk_bytes=4)
>>> [key for key, _, _ in records]
[b'chunk-000000', b'chunk-000001', b'chunk-000002', b'manifest']
>>> assembler = Assembler(model="m", task="regression")
>>> [assembler.add(*record) for record in records][-1].payload
b'xxxxxxxxxx'

"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from lifelong.ingest.security import librdkafka_security

log = logging.getLogger(__name__)

FORMAT = 1
MANIFEST_KEY = b"manifest"
MANIFEST_HEADER = "lifelong-snapshot"
CHUNK_HEADER = "lifelong-chunk"
REFUSALS = ("malformed", "incomplete", "digest", "foreign", "invalid")

Record = tuple[bytes, bytes, list[tuple[str, bytes]]]  # key, value, headers


class Refused(ValueError):
    """A snapshot a reader must not serve: `reason` is one of `REFUSALS`."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Manifest:
    id: str
    model: str
    task: str
    version: int
    published: float  # Unix time the learner published it
    size: int
    sha256: str
    chunks: int  # 0: the bytes are the manifest record's value

    def header(self) -> bytes:
        return json.dumps({"format": FORMAT, **self.__dict__}).encode()

    @classmethod
    def parse(cls, header: bytes) -> Manifest:
        try:
            fields = json.loads(header)
            if fields.pop("format") != FORMAT:
                raise ValueError("unknown format")
            manifest = cls(**fields)
            if manifest.chunks < 0 or manifest.size < 0:
                raise ValueError("negative size")
            return manifest
        except (ValueError, TypeError, KeyError, AttributeError) as e:
            raise Refused("malformed", f"not a snapshot manifest: {e}") from None


@dataclass(frozen=True)
class Assembled:
    manifest: Manifest
    payload: bytes


def encode(
    payload: bytes,
    *,
    model: str,
    task: str,
    version: int,
    chunk_bytes: int,
    published: float | None = None,
) -> list[Record]:
    """The records of one publication of `payload`, in the order they must be sent."""
    snapshot_id = uuid.uuid4().hex
    inline = len(payload) <= chunk_bytes
    pieces = [] if inline else range(0, len(payload), chunk_bytes)
    records: list[Record] = []
    for index, start in enumerate(pieces):
        header = json.dumps({"id": snapshot_id, "index": index}).encode()
        key = b"chunk-%06d" % index
        records.append((key, payload[start : start + chunk_bytes], [(CHUNK_HEADER, header)]))
    manifest = Manifest(
        id=snapshot_id,
        model=model,
        task=task,
        version=version,
        published=time.time() if published is None else published,
        size=len(payload),
        sha256=hashlib.sha256(payload).hexdigest(),
        chunks=len(records),
    )
    records.append(
        (MANIFEST_KEY, payload if inline else b"", [(MANIFEST_HEADER, manifest.header())])
    )
    return records


class Assembler:
    """Records of the snapshot topic in offset order in, complete snapshots out. Keeps the
    latest chunk of each index only: at most one snapshot's worth of bytes."""

    def __init__(self, *, model: str, task: str) -> None:
        self.model = model
        self.task = task
        self._chunks: dict[int, tuple[str, bytes]] = {}

    def add(
        self, key: bytes | None, value: bytes | None, headers: Sequence[tuple[str, bytes]] | None
    ) -> Assembled | None:
        """The snapshot this record completes (a verified manifest), or None (a chunk, or a
        record that is no snapshot's). Refused: a manifest that is corrupt or foreign."""
        found = dict(headers or ())
        if CHUNK_HEADER in found:
            try:
                chunk = json.loads(found[CHUNK_HEADER])
                self._chunks[int(chunk["index"])] = (str(chunk["id"]), value or b"")
            except (ValueError, TypeError, KeyError):
                log.warning("ignoring a snapshot chunk with a malformed header (%r)", key)
            return None
        if key != MANIFEST_KEY:
            return None  # a tombstone, or a record of something else
        if MANIFEST_HEADER not in found:
            raise Refused("malformed", "a manifest record without its lifelong-snapshot header")
        manifest = Manifest.parse(found[MANIFEST_HEADER])
        if manifest.model != self.model or manifest.task != self.task:
            raise Refused(
                "foreign",
                f"snapshot of model {manifest.model!r} ({manifest.task}), this replica serves "
                f"{self.model!r} ({self.task}): set kafka_group and task as the learner's",
            )
        if manifest.chunks == 0:
            payload = value or b""
        else:
            parts = []
            for index in range(manifest.chunks):
                chunk = self._chunks.get(index)
                if chunk is None or chunk[0] != manifest.id:
                    raise Refused(
                        "incomplete", f"chunk {index} of {manifest.chunks} of {manifest.id} missing"
                    )
                parts.append(chunk[1])
            payload = b"".join(parts)
        if len(payload) != manifest.size or hashlib.sha256(payload).hexdigest() != manifest.sha256:
            raise Refused("digest", f"snapshot {manifest.id}: SHA-256 or size mismatch")
        return Assembled(manifest, payload)


def producer_config(settings: Any) -> dict[str, Any]:
    """librdkafka's configuration of the snapshot producer (the learner's)."""
    return {
        "bootstrap.servers": settings.kafka_bootstrap,
        "client.id": "lifelong-snapshots",
        "enable.idempotence": True,  # acks=all; retries neither lose nor repeat a chunk
        "linger.ms": 5,
        # A chunk and its headers must fit (the broker's own limit is the topic's).
        "message.max.bytes": settings.snapshot_chunk_bytes + 64 * 1024,
        "logger": log,
        **librdkafka_security(settings),
    }


def consumer_config(settings: Any) -> dict[str, Any]:
    """librdkafka's configuration of a replica's snapshot reader: assigned, never in a group."""
    return {
        "bootstrap.servers": settings.kafka_bootstrap,
        "group.id": f"{settings.kafka_group}.replicas",  # required; never joined or committed
        "client.id": "lifelong-replica",
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "isolation.level": "read_committed",
        "logger": log,
        **librdkafka_security(settings),
    }


TOPIC_CONFIG = {
    "cleanup.policy": "compact",
    # Compaction works on closed segments: roll one a minute so old snapshots go soon.
    "segment.ms": "60000",
    "min.cleanable.dirty.ratio": "0.1",
}


def ensure_topic(settings: Any, topic: str, *, timeout: float = 10.0) -> None:
    """Create `topic` compacted with one partition unless it exists. Errors are logged: the
    topic may have been made by an operator, and a producer without rights to create it can
    still write to it."""
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import AdminClient, NewTopic

    config = {"bootstrap.servers": settings.kafka_bootstrap, "logger": log}
    admin = AdminClient({**config, **librdkafka_security(settings)})
    future = admin.create_topics([NewTopic(topic, 1, config=TOPIC_CONFIG)])[topic]
    try:
        future.result(timeout)
        log.info("created the compacted snapshot topic %s", topic)
    except KafkaException as e:
        if e.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
            log.warning("cannot create the snapshot topic %s: %s", topic, e)
    except Exception as e:  # a timeout
        log.warning("cannot create the snapshot topic %s: %s", topic, e)


class TopicSink:
    """The learner's side: publishes snapshots to `topic` (a `publishing.Sink`). Sending is
    asynchronous; while one publication is in flight the next waits for the next turn, so a
    slow broker delays snapshots rather than piling them up."""

    name = "snapshot topic"

    def __init__(self, settings: Any, topic: str) -> None:
        from confluent_kafka import Producer

        ensure_topic(settings, topic)
        self.topic = topic
        self.model = settings.kafka_group
        self.chunk_bytes = settings.snapshot_chunk_bytes
        # A standby publishes nothing (its model is not the model's): no producer until
        # elected, then the active learner's transaction (`send_through`).
        standby = bool(getattr(settings, "kafka_standby", False))
        self._producer: Any = None if standby else Producer(producer_config(settings))
        self._lock = threading.Lock()
        self._in_flight = 0
        self._failed = 0
        self.published = 0  # publications fully acknowledged

    def _delivered(self, error, _message) -> None:
        with self._lock:
            self._in_flight -= 1
            if error is not None:
                self._failed += 1
                log.error("a snapshot record to %s failed: %s", self.topic, error)
            elif self._in_flight == 0 and not self._failed:
                self.published += 1
            if self._in_flight == 0:
                self._failed = 0

    def send_through(self, producer: Any) -> None:
        """Publish through `producer` from now on (a `Producer`, or the active learner's
        `standby.Transaction`); None: publish nothing (a standby's sink)."""
        if self._producer is not None:
            self._producer.flush(5.0)  # its delivery reports settle the publication in flight
        with self._lock:
            self._producer = producer
            self._in_flight = self._failed = 0

    def write(self, predictor: Any, data: bytes) -> bool:
        """Send `data` (`predictor`'s bytes); False if the previous publication is still in
        flight (call again later). Taken without a word while there is no producer."""
        producer = self._producer  # one producer for the whole publication
        if producer is None:
            return True
        producer.poll(0)
        if self._in_flight:
            return False
        records = encode(
            data,
            model=self.model,
            task=predictor.task,
            version=predictor.version,
            chunk_bytes=self.chunk_bytes,
        )
        with self._lock:
            self._in_flight = len(records)
        for key, value, headers in records:
            while True:
                try:
                    producer.produce(
                        self.topic, value, key, headers=headers, on_delivery=self._delivered
                    )
                    break
                except BufferError:  # librdkafka's queue is full: let it drain
                    producer.poll(0.1)
        producer.poll(0)
        return True

    def flush(self, timeout: float = 30.0) -> int:
        """Wait for what was sent; the number of records still unacknowledged."""
        producer = self._producer
        return 0 if producer is None else producer.flush(timeout)

    def close(self) -> None:
        self.flush(10.0)
