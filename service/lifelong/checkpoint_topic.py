"""Checkpoints in a compacted Kafka topic, so that a learner on another machine can resume: the
active learner of a model with standbys (`kafka_standby`) writes each checkpoint (the learner's
state and the offsets it reflects, `lifelong.checkpoint`'s encoding with its SHA-256) to
`checkpoint_topic` inside its Kafka transaction, together with the group's offsets
(`send_offsets_to_transaction`): the stored state and the committed offsets never disagree, and
a fenced learner (a zombie) can write neither.

The records are the snapshot topic's (`lifelong.snapshot_topic`): chunks, then a manifest keyed
so that compaction keeps the latest; `version` is the samples learned. Readers read committed
records only, so a checkpoint whose transaction was aborted (its writer fenced mid-way) is never
seen.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from lifelong.checkpoint import Checkpoint, decode, encode
from lifelong.snapshot_topic import Assembler, Refused, ensure_topic
from lifelong.snapshot_topic import encode as records_of

log = logging.getLogger(__name__)


class TopicCheckpoints:
    """`CheckpointStore`'s `save` and `load_latest`, on a topic. `producer` (transactional, in
    an open transaction) is set by whoever owns the transaction: the active learner."""

    def __init__(self, settings: Any, topic: str) -> None:
        ensure_topic(settings, topic)
        self.settings = settings
        self.topic = topic
        self.model = settings.kafka_group
        self.producer = None

    def save(self, learner_state: bytes, offsets: dict[str, int], samples_learned: int) -> Path:
        if self.producer is None:
            raise RuntimeError("checkpoints to a topic are written by the active learner only")
        data = encode(learner_state, offsets, samples_learned)
        for key, value, headers in records_of(
            data,
            model=self.model,
            task=self.settings.task,
            version=samples_learned,
            chunk_bytes=self.settings.snapshot_chunk_bytes,
        ):
            while True:
                try:
                    self.producer.produce(self.topic, value, key, headers=headers)
                    break
                except BufferError:
                    self.producer.poll(0.1)
        # Named as a file checkpoint is; its sequence is the records' version, samples learned.
        return Path(f"kafka:{self.topic}") / f"checkpoint-{samples_learned:012d}.ckpt"

    def load_latest(self, timeout: float = 30.0) -> Checkpoint | None:
        """The newest committed checkpoint that reads back intact, or None (an empty topic)."""
        from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

        consumer = Consumer(
            {
                "bootstrap.servers": self.settings.kafka_bootstrap,
                "group.id": f"{self.model}.checkpoint-readers",  # never joined or committed
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
                "logger": log,
            }
        )
        try:
            partition = TopicPartition(self.topic, 0, OFFSET_BEGINNING)
            _, end = consumer.get_watermark_offsets(partition, timeout=timeout)
            consumer.assign([partition])
            assembler = Assembler(model=self.model, task=self.settings.task)
            latest, position = None, 0
            quiet_until = time.monotonic() + timeout
            while position < end:
                records = consumer.consume(num_messages=500, timeout=1.0)
                if not records:  # the end is a transaction marker, or aborted records
                    if consumer.position([partition])[0].offset >= end:
                        break
                    if time.monotonic() > quiet_until:
                        raise TimeoutError(f"{self.topic}: nothing read for {timeout} s")
                    continue
                quiet_until = time.monotonic() + timeout
                for record in records:
                    if record.error() is not None:
                        continue
                    position = record.offset() + 1
                    try:
                        assembled = assembler.add(record.key(), record.value(), record.headers())
                    except Refused as e:
                        log.warning("skipping a checkpoint in %s: %s", self.topic, e)
                        continue
                    if assembled is not None:
                        latest = assembled
            if latest is None:
                return None
            path = Path(f"kafka:{self.topic}")
            return decode(latest.payload, path, sequence=latest.manifest.version)
        finally:
            consumer.close()
