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

from kafka import ConsumerRebalanceListener, KafkaConsumer, OffsetAndMetadata, TopicPartition
from kafka.errors import KafkaError
from lifelong.config import Settings
from lifelong.host import LearningHalted, ModelHost
from lifelong.ingest.codecs import decode_poll
from lifelong.ingest.deadletter import DeadLetters
from lifelong.samples import InvalidSample, Sample

__all__ = ["run"]

log = logging.getLogger(__name__)

POLL_TIMEOUT_MS = 250  # the longest `stop` waits for an idle poll
LAG_EVERY_SECONDS = 5.0  # end_offsets is a broker round trip: not on every poll


def partition_key(tp: TopicPartition) -> str:
    """How offsets are keyed in the host and in checkpoints: "topic:partition"."""
    return f"{tp.topic}:{tp.partition}"


class ResumeWhereTheModelIs(ConsumerRebalanceListener):
    """Seeks each assigned partition to the offset the model's state reflects."""

    def __init__(self, consumer: KafkaConsumer, host: ModelHost) -> None:
        self.consumer = consumer
        self.host = host

    def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        offsets = self.host.offsets
        for tp in assigned:
            offset = offsets.get(partition_key(tp))
            if offset is None:
                self.consumer.seek_to_beginning(tp)
            else:
                self.consumer.seek(tp, offset)
            log.info(
                "assigned %s, resuming at %s", tp, "the beginning" if offset is None else offset
            )

    def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        for tp in revoked:  # another consumer reports their lag now
            self.host.metrics.kafka_consumer_lag.remove(str(tp.partition))


class KafkaSource:
    """One consumer's learn loop; `run` drives it."""

    def __init__(
        self,
        host: ModelHost,
        settings: Settings,
        consumer: KafkaConsumer,
        dead_letters: DeadLetters,
    ) -> None:
        self.host = host
        self.settings = settings
        self.consumer = consumer
        self.dead_letters = dead_letters
        self.uncheckpointed = 0  # records consumed (learned or dead-lettered) since the checkpoint
        self._checkpointed_at = time.monotonic()
        self._lag_due = 0.0

    def poll_once(self) -> None:
        """Poll, learn, and checkpoint or refresh the lag gauge when due."""
        batch = self.consumer.poll(
            timeout_ms=POLL_TIMEOUT_MS, max_records=self.settings.kafka_poll_max_records
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

    def learn(self, batch: dict[TopicPartition, list[Any]]) -> None:
        """Learn a poll's valid records in order; dead-letter and count the others."""
        model_offsets = self.host.offsets
        records: list[Any] = []
        offsets: dict[str, int] = {}
        for tp, part in batch.items():
            key = partition_key(tp)
            start = model_offsets.get(key)
            if start is not None and part[0].offset < start:
                # Already in the model (a fetch raced a seek): learning them again would repeat.
                log.warning("dropping records %s@%d..%d", key, part[0].offset, start - 1)
                part = [r for r in part if r.offset >= start]
                if not part:
                    continue
            records += part
            offsets[key] = part[-1].offset + 1
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

    def reject(self, record: Any, error: InvalidSample) -> None:
        self.dead_letters.send(record, error)
        self.host.metrics.rejected("kafka", error.reason).inc()

    def checkpoint(self) -> None:
        """Dead letters first, then the checkpoint, then (for lag monitoring) the commit."""
        self.dead_letters.flush()
        info = self.host.checkpoint()
        self.uncheckpointed = 0
        self._checkpointed_at = time.monotonic()
        commit = {
            tp: OffsetAndMetadata(info.offsets[partition_key(tp)], "", -1)
            for tp in self.consumer.assignment()
            if partition_key(tp) in info.offsets
        }
        if commit:
            try:
                self.consumer.commit(commit)
            except KafkaError as e:  # e.g. a rebalance moved a partition; the checkpoint holds
                log.warning("offset commit failed (used for lag monitoring only): %s", e)
        self.update_lag()

    def idle_while_halted(self, stop: threading.Event) -> None:
        """Stay in the group with every partition paused and keep the lag gauge true: records
        that pile up then raise the lag alert beside the halt alert."""
        while not stop.is_set():
            self.consumer.pause(*self.consumer.assignment())  # again: a rebalance may add some
            self.consumer.poll(timeout_ms=POLL_TIMEOUT_MS)  # heartbeats; paused, returns nothing
            if time.monotonic() >= self._lag_due:
                self.update_lag()

    def update_lag(self) -> None:
        """Set the lag gauge of each assigned partition: log end minus the model's offset."""
        self._lag_due = time.monotonic() + LAG_EVERY_SECONDS
        assigned = list(self.consumer.assignment())
        if not assigned:
            return
        try:
            ends = self.consumer.end_offsets(assigned)
        except KafkaError as e:
            log.warning("cannot read end offsets for the lag gauge: %s", e)
            return
        model_offsets = self.host.offsets
        for tp, end in ends.items():
            lag = end - model_offsets.get(partition_key(tp), 0)
            self.host.metrics.set_consumer_lag(tp.partition, max(lag, 0))


def run(host: ModelHost, settings: Settings, stop: threading.Event) -> None:
    """Learn `settings.kafka_topic` until `stop` is set, then checkpoint and commit.

    An exception (a broker or dead-letter failure) ends the loop without a checkpoint: the last
    checkpoint stays the truth and a restart resumes from it. When learning halts (the model
    diverged), the consumer stays in its group, paused, reporting lag until `stop`.
    """
    consumer = KafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=settings.kafka_group,
        client_id="lifelong",
        enable_auto_commit=False,
        # Used only when the model's offset is no longer in the log (retention passed it).
        auto_offset_reset="earliest",
        isolation_level="read_committed",  # never learn records of aborted transactions
        max_poll_records=settings.kafka_poll_max_records,
    )
    dead_letters = DeadLetters(settings.kafka_bootstrap, settings.dead_letter)
    source = KafkaSource(host, settings, consumer, dead_letters)
    try:
        consumer.subscribe([settings.kafka_topic], listener=ResumeWhereTheModelIs(consumer, host))
        try:
            while not stop.is_set():
                source.poll_once()
        except LearningHalted:
            source.idle_while_halted(stop)
            raise
        if source.uncheckpointed:
            source.checkpoint()
    finally:
        consumer.close(autocommit=False)
        dead_letters.close()
