"""The Kafka source: learn each record of a topic once, in partition order, across restarts.

The checkpoint is the source of truth, not Kafka's committed offsets. The host records, with each
learned batch and under the same lock, the next offset of every partition it came from; a
checkpoint saves learner state and those offsets together. On assignment a partition is sought
to the model's own offset (from the checkpoint it started from, or learned since), or to the
beginning if the model never saw it. After a crash the records learned since the last checkpoint
are read again and learned again from the checkpoint's state: no gap, no repeat, and, on one
partition, the same model as an uninterrupted run.

Invalid records advance the offsets too: they go to the dead-letter topic, which is flushed before
each checkpoint. Offsets are committed to Kafka only after a checkpoint, for lag monitoring.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)
from lifelong.config import Settings
from lifelong.host import LearningHalted, ModelHost
from lifelong.ingest.codecs import decode_poll
from lifelong.ingest.deadletter import DeadLetters
from lifelong.samples import InvalidSample, Sample

__all__ = ["consumer_config", "run"]

log = logging.getLogger(__name__)

POLL_TIMEOUT_SECONDS = 0.25  # the longest `stop` waits for an idle poll
LAG_EVERY_SECONDS = 5.0  # the log end offsets are a broker round trip: not on every poll
BROKER_TIMEOUT_SECONDS = 10.0  # for the lag's end offsets and the commit


def partition_key(topic: str, partition: int) -> str:
    """How offsets are keyed in the host and in checkpoints: "topic:partition"."""
    return f"{topic}:{partition}"


def consumer_config(settings: Settings) -> dict[str, Any]:
    """librdkafka's configuration of the learn loop's consumer."""
    return {
        "bootstrap.servers": settings.kafka_bootstrap,
        "group.id": settings.kafka_group,
        "client.id": "lifelong",
        # Offsets are the checkpoint's; Kafka's are committed after it, for lag only.
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        # Used only when the model's offset is no longer in the log (retention passed it).
        "auto.offset.reset": "earliest",
        "isolation.level": "read_committed",  # never learn records of aborted transactions
        "logger": log,  # librdkafka's logs through ours (text or JSON), served by each poll
        "error_cb": _on_error,
    }


def _on_error(error: KafkaError) -> None:
    # librdkafka retries transient errors (a broker down, a connection refused) by itself.
    if error.fatal():
        raise KafkaException(error)
    log.warning("kafka: %s", error)


class KafkaSource:
    """One consumer's learn loop; `run` drives it."""

    def __init__(
        self,
        host: ModelHost,
        settings: Settings,
        consumer: Consumer,
        dead_letters: DeadLetters,
    ) -> None:
        self.host = host
        self.settings = settings
        self.consumer = consumer
        self.dead_letters = dead_letters
        self.uncheckpointed = 0  # records consumed (learned or dead-lettered) since the checkpoint
        self._checkpointed_at = time.monotonic()
        self._lag_due = 0.0

    def on_assign(self, consumer: Consumer, assigned: list[TopicPartition]) -> None:
        """Start each assigned partition at the offset the model's state reflects."""
        offsets = self.host.offsets
        for tp in assigned:
            offset = offsets.get(partition_key(tp.topic, tp.partition))
            tp.offset = OFFSET_BEGINNING if offset is None else offset
            log.info(
                "assigned %s:%d, resuming at %s",
                tp.topic, tp.partition, "the beginning" if offset is None else offset,
            )  # fmt: skip
        consumer.assign(assigned)

    def on_revoke(self, consumer: Consumer, revoked: list[TopicPartition]) -> None:
        for tp in revoked:  # another consumer reports their lag now
            self.host.metrics.kafka_consumer_lag.remove(str(tp.partition))
        consumer.unassign()

    def poll_once(self) -> None:
        """Poll, learn, and checkpoint or refresh the lag gauge when due."""
        batch = self.consumer.consume(
            num_messages=self.settings.kafka_poll_max_records, timeout=POLL_TIMEOUT_SECONDS
        )
        if batch:
            self.learn(batch)
        settings, now = self.settings, time.monotonic()
        if self.uncheckpointed and (
            self.uncheckpointed >= settings.checkpoint_every_samples
            or now - self._checkpointed_at >= settings.checkpoint_every_seconds
        ):
            self.checkpoint()
        elif now >= self._lag_due:
            self.update_lag()

    def learn(self, batch: list[Message]) -> None:
        """Learn a poll's valid records in order; dead-letter and count the others."""
        model_offsets = self.host.offsets
        records: list[Message] = []
        offsets: dict[str, int] = {}
        dropped: dict[str, int] = {}
        for record in batch:
            error = record.error()
            if error is not None:  # an event, not a record: e.g. an unknown topic
                log.warning("kafka: %s", error)
                continue
            key = partition_key(record.topic(), record.partition())
            offset = record.offset()
            start = model_offsets.get(key)
            if start is not None and offset < start:
                # Already in the model (a fetch raced a rebalance): learning it again would repeat.
                dropped[key] = dropped.get(key, 0) + 1
                continue
            records.append(record)
            offsets[key] = offset + 1
        for key, count in dropped.items():
            log.warning("dropped %d record(s) of %s before %d, already learned", count, key,
                        model_offsets[key])  # fmt: skip
        if not offsets:
            return
        decoded = decode_poll(
            records,
            default=self.settings.value_format,
            task=self.host.task,
            max_features=self.settings.max_features,
            max_bytes=self.settings.max_request_bytes,
            names=self.host.feature_names,
        )
        for record, error in decoded.rejected:
            self.reject(record, error)

        def rejected_by_host(sample: Sample, error: InvalidSample) -> None:
            # Rare (checks only the model can make at the sample's turn, e.g. its width): find
            # the record by identity.
            self.dead_letters.send(decoded.record_of(sample), error)  # the host counted it

        self.host.learn(
            decoded.items, source="kafka", offsets=offsets, on_rejected=rejected_by_host
        )
        self.uncheckpointed += len(records)

    def reject(self, record: Message, error: InvalidSample) -> None:
        self.dead_letters.send(record, error)
        self.host.metrics.rejected("kafka", error.reason).inc()

    def checkpoint(self) -> None:
        """Dead letters first, then the checkpoint, then (for lag monitoring) the commit."""
        self.dead_letters.flush()
        info = self.host.checkpoint()
        self.uncheckpointed = 0
        self._checkpointed_at = time.monotonic()
        commit = []
        for tp in self.consumer.assignment():
            offset = info.offsets.get(partition_key(tp.topic, tp.partition))
            if offset is not None:
                commit.append(TopicPartition(tp.topic, tp.partition, offset))
        if commit:
            try:
                self.consumer.commit(offsets=commit, asynchronous=False)
            except KafkaException as e:  # e.g. a rebalance moved a partition; the checkpoint holds
                log.warning("offset commit failed (used for lag monitoring only): %s", e)
        self.update_lag()

    def idle_while_halted(self, stop: threading.Event) -> None:
        """Stay in the group with every partition paused and keep the lag gauge true: records
        that pile up then raise the lag alert beside the halt alert."""
        while not stop.is_set():
            self.consumer.pause(self.consumer.assignment())  # again: a rebalance may add some
            # Serves rebalances; anything fetched before the pause is dropped, never learned.
            self.consumer.consume(num_messages=1, timeout=POLL_TIMEOUT_SECONDS)
            if time.monotonic() >= self._lag_due:
                self.update_lag()

    def update_lag(self) -> None:
        """Set the lag gauge of each assigned partition: log end minus the model's offset."""
        self._lag_due = time.monotonic() + LAG_EVERY_SECONDS
        model_offsets = self.host.offsets
        for tp in self.consumer.assignment():
            try:
                ends = self.consumer.get_watermark_offsets(tp, timeout=BROKER_TIMEOUT_SECONDS)
            except KafkaException as e:
                ends = None
                log.warning("cannot read the end offset of %s:%d: %s", tp.topic, tp.partition, e)
            if ends is None:  # a timeout; the gauge keeps its last value
                continue
            lag = ends[1] - model_offsets.get(partition_key(tp.topic, tp.partition), 0)
            self.host.metrics.set_consumer_lag(tp.partition, max(lag, 0))


def run(host: ModelHost, settings: Settings, stop: threading.Event) -> None:
    """Learn `settings.kafka_topic` until `stop` is set, then checkpoint and commit.

    An exception (a broker or dead-letter failure) ends the loop without a checkpoint: the last
    checkpoint stays the truth and a restart resumes from it. When learning halts (the model
    diverged), the consumer stays in its group, paused, reporting lag until `stop`.
    """
    consumer = Consumer(consumer_config(settings))
    dead_letters = DeadLetters(settings.kafka_bootstrap, settings.dead_letter)
    source = KafkaSource(host, settings, consumer, dead_letters)
    try:
        consumer.subscribe(
            [settings.kafka_topic], on_assign=source.on_assign, on_revoke=source.on_revoke
        )
        try:
            while not stop.is_set():
                source.poll_once()
        except LearningHalted:
            source.idle_while_halted(stop)
            raise
        if source.uncheckpointed:
            source.checkpoint()
    finally:
        consumer.close()  # leaves the group; commits nothing (auto-commit is off)
        dead_letters.close()
