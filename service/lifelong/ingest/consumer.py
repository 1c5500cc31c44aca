"""The Kafka source: learn each record of a topic once, in partition order, across restarts.

The checkpoint is the source of truth, not Kafka's committed offsets. The host records, with each
learned batch and under the same lock, the next offset of every partition it came from; a
checkpoint saves learner state and those offsets together. On assignment a partition starts at
the model's own offset (from the checkpoint it started from, or learned since, or read and about
to be learned), or at the beginning if the model never saw it. After a crash the records learned
since the last checkpoint are read again and learned again from the checkpoint's state: no gap,
no repeat, and, on one partition, the same model as an uninterrupted run.

Invalid records advance the offsets too: they go to the dead-letter topic, which is flushed before
each checkpoint. Offsets are committed to Kafka only after a checkpoint, for lag monitoring.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
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
from lifelong.host import ModelHost
from lifelong.ingest.codecs import Poll, decode_poll
from lifelong.ingest.deadletter import DeadLetters
from lifelong.ingest.security import librdkafka_security
from lifelong.samples import InvalidSample

__all__ = ["consumer_config", "run"]

log = logging.getLogger(__name__)

POLL_TIMEOUT_SECONDS = 0.25  # the longest `stop` waits for an idle poll
LAG_EVERY_SECONDS = 5.0  # not on every poll
UNLEARNABLE_LOG_SECONDS = 60.0  # at most one warning a minute about records the model refused


def partition_key(topic: str, partition: int) -> str:
    """How offsets are keyed in the host and in checkpoints: "topic:partition"."""
    return f"{topic}:{partition}"


def consumer_config(settings: Settings) -> dict[str, Any]:
    """librdkafka's configuration of the learn loop's consumer."""
    session_ms = round(settings.kafka_session_timeout_seconds * 1000)
    config = {
        "bootstrap.servers": settings.kafka_bootstrap,
        "group.id": settings.kafka_group,
        "client.id": "lifelong",
        # A member silent this long loses its partitions; heartbeats (librdkafka's thread) a
        # third of it apart, as its defaults (45 s, 3 s) are at most.
        "session.timeout.ms": session_ms,
        "heartbeat.interval.ms": min(3000, session_ms // 3),
        # Offsets are the checkpoint's; Kafka's are committed after it, for lag only.
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        # Used only when the model's offset is no longer in the log (retention passed it).
        "auto.offset.reset": "earliest",
        "isolation.level": "read_committed",  # never learn records of aborted transactions
        "logger": log,  # librdkafka's logs through ours (text or JSON), served by each poll
        "error_cb": _on_error,
        **librdkafka_security(settings),
    }
    instance = settings.group_instance_id
    if instance is not None:  # static membership: a restart gets its partitions back at once
        config["group.instance.id"] = instance
    return config


def dead_letter_bytes(settings: Settings) -> int:
    """The largest dead letter sent: room for every record decoded (up to `max_record_bytes`)
    with its headers, and for oversized ones up to twice the larger of `max_record_bytes` and
    `max_request_bytes` (librdkafka's range ends at 1e9); docs/kafka.md.

    >>> dead_letter_bytes(Settings()) == 8 * 1024 * 1024
    True

    """
    largest = max(settings.max_record_bytes, settings.max_request_bytes)
    return min(10**9, max(1_000_000, 2 * largest))


# librdkafka retries these forever, yet no retry fixes a wrong password or an untrusted certificate.
# (confluent-kafka's public names of librdkafka's local errors start with an underscore.)
NOT_RETRIED = frozenset((KafkaError._AUTHENTICATION, KafkaError._SSL))  # noqa: SLF001


def _on_error(error: KafkaError) -> None:
    # librdkafka retries transient errors (a broker down, a connection refused) by itself.
    if error.fatal():
        raise KafkaException(error)
    if error.code() in NOT_RETRIED:
        log.error(
            "kafka: %s; check the Kafka security settings (kafka_security_protocol, "
            "kafka_sasl_*, kafka_tls_*: docs/security.md)",
            error.str(),
        )
        raise KafkaException(error)
    log.warning("kafka: %s", error)


@dataclass(slots=True)
class Polled:
    """A poll, decoded: `offsets` are the next offset of each partition it came from."""

    decoded: Poll
    offsets: dict[str, int]


class KafkaSource:
    """One consumer's learn loop, in one thread; `run` drives it with `step`.

    Poll, decode, learn (dead-lettering the invalid records), checkpoint and commit, in turn. A
    reader thread decoding the next poll while a learner thread learns the one before was
    measured slower in the service: the two threads of one interpreter doubled each other's CPU
    per sample (benchmarks/speed/README.md, "Kafka → learned"). The consumer takes calls from
    one thread only anyway (a call from another waits for the running `consume` while holding
    the GIL: a deadlock).
    """

    def __init__(
        self,
        host: ModelHost,
        settings: Settings,
        consumer: Consumer,
        dead_letters: DeadLetters,
        on_waiting: Callable[[bool], None] | None = None,
    ) -> None:
        self.host = host
        self.on_waiting = on_waiting
        self.settings = settings
        self.consumer = consumer
        self.dead_letters = dead_letters
        # The next offset of each partition after the records read: where a partition assigned
        # again resumes (the model's offset, unless learning stopped midway).
        self._positions: dict[str, int] = {}
        self._lag_due = 0.0
        self._unlearnable = 0  # records refused since the last warning about them
        self._unlearnable_logged_at = -UNLEARNABLE_LOG_SECONDS
        self._epoch = host.learning.epoch  # of the learner the read positions are for
        self._paused = False  # the assignment paused because an operator paused learning

    # -- rebalance callbacks (run in `consume`)

    def on_assign(self, consumer: Consumer, assigned: list[TopicPartition]) -> None:
        """Start each assigned partition where the model will be once it has learned what was
        read: at the model's offset, or the beginning if it never saw the partition."""
        offsets = self.host.offsets
        for tp in assigned:
            key = partition_key(tp.topic, tp.partition)
            offset = self._positions.get(key, offsets.get(key))
            tp.offset = OFFSET_BEGINNING if offset is None else offset
            self._positions[key] = 0 if offset is None else offset
            log.info(
                "assigned %s, resuming at %s", key, "the beginning" if offset is None else offset
            )
        consumer.assign(assigned)
        if self._paused:
            consumer.pause(assigned)
        self.assigned(len(assigned))

    def on_revoke(self, consumer: Consumer, revoked: list[TopicPartition]) -> None:
        for tp in revoked:  # another consumer reports their lag now
            with contextlib.suppress(KeyError):  # KeyError: never reported
                self.host.metrics.kafka_consumer_lag.remove(str(tp.partition))
        consumer.unassign()
        self.assigned(0)

    def assigned(self, partitions: int) -> None:
        """Say how many partitions learning holds; with none it waits (a rebalance, a group
        still holding a dead member's partitions)."""
        self.host.metrics.partitions_assigned.set(partitions)
        self.host.metrics.learning_waiting.set(partitions == 0)
        if partitions == 0:
            log.info("no partition assigned: learning waits")
        if self.on_waiting is not None:
            self.on_waiting(partitions == 0)

    # -- the loop

    def step(self) -> None:
        """Poll, decode and learn; checkpoint and commit when due, else refresh the lag gauge
        when due. Follows an operator's pause (partitions paused, still polled: the consumer
        stays in its group) and replacement of the learner (partitions sought to its offsets)."""
        learning = self.host.learning
        if learning.epoch != self._epoch:
            self._seek_to_model(learning.epoch)
        if learning.paused != self._paused:
            self._paused = learning.paused
            assignment = self.consumer.assignment()
            (self.consumer.pause if self._paused else self.consumer.resume)(assignment)
            log.info("learning from Kafka %s", "paused" if self._paused else "resumed")
        batch = self.consumer.consume(
            num_messages=self.settings.kafka_poll_max_records, timeout=POLL_TIMEOUT_SECONDS
        )
        polled = self.decode(batch) if batch else None
        if polled is not None:  # read at the positions of `_epoch`'s learner
            self.learn(polled, self._epoch)
            self._positions.update(polled.offsets)
        settings = self.settings
        if self.host.checkpoint_due(
            settings.checkpoint_every_samples, settings.checkpoint_every_seconds
        ):
            self.checkpoint()
        elif time.monotonic() >= self._lag_due:
            self.update_lag()

    def decode(self, batch: list[Message]) -> Polled | None:
        """A poll's records decoded in order, past each partition's read position."""
        positions = self._positions
        topic = self.settings.kafka_topic  # the one subscribed: a partition number is enough
        keys: dict[int, str] = {}
        records: list[Message] = []
        offsets: dict[str, int] = {}
        dropped: dict[str, int] = {}
        for record in batch:
            error = record.error()
            if error is not None:  # an event, not a record: e.g. an unknown topic
                log.warning("kafka: %s", error)
                continue
            partition = record.partition()
            key = keys.get(partition)
            if key is None:
                key = keys[partition] = partition_key(topic, partition)
            offset = record.offset()
            if offset < positions.get(key, 0):
                # Already read (a fetch raced a rebalance): learning it again would repeat.
                dropped[key] = dropped.get(key, 0) + 1
                continue
            records.append(record)
            offsets[key] = offset + 1
        for key, count in dropped.items():
            log.warning("dropped %d record(s) of %s before %d, already read", count, key,
                        positions[key])  # fmt: skip
        if not offsets:
            return None
        decoded = decode_poll(
            records,
            default=self.settings.value_format,
            task=self.host.task,
            max_features=self.settings.max_features,
            max_bytes=self.settings.max_record_bytes,
            names=self.host.feature_names,
        )
        return Polled(decoded, offsets)

    def commit(self, offsets: dict[str, int]) -> None:
        """Commit a checkpoint's offsets (for lag monitoring only), then refresh the lag gauge."""
        commit = []
        for tp in self.consumer.assignment():
            offset = offsets.get(partition_key(tp.topic, tp.partition))
            if offset is not None:
                commit.append(TopicPartition(tp.topic, tp.partition, offset))
        if commit:
            try:
                self.consumer.commit(offsets=commit, asynchronous=False)
            except KafkaException as e:  # e.g. a rebalance moved a partition; the checkpoint holds
                log.warning("offset commit failed (used for lag monitoring only): %s", e)
        self.update_lag()

    def update_lag(self) -> None:
        """Set the lag gauge of each assigned partition: log end minus the model's offset.

        The log end is the one the last fetch response carried: asking the broker would queue
        behind the fetch it holds open (up to fetch.wait.max.ms)."""
        self._lag_due = time.monotonic() + LAG_EVERY_SECONDS
        model_offsets = self.host.offsets
        for tp in self.consumer.assignment():
            try:
                ends = self.consumer.get_watermark_offsets(tp, cached=True)
            except KafkaException as e:
                ends = None
                log.warning("cannot read the end offset of %s:%d: %s", tp.topic, tp.partition, e)
            if ends is None or ends[1] < 0:  # a timeout, or nothing fetched yet: as it was
                continue
            lag = ends[1] - model_offsets.get(partition_key(tp.topic, tp.partition), 0)
            self.host.metrics.set_consumer_lag(tp.partition, max(lag, 0))

    def _seek_to_model(self, epoch: int) -> None:
        """Read every assigned partition again from the (replaced) learner's offsets."""
        offsets = self.host.offsets
        self._positions = {}  # a partition assigned later starts at the model's offset too
        for tp in self.consumer.assignment():
            key = partition_key(tp.topic, tp.partition)
            offset = offsets.get(key)
            where = OFFSET_BEGINNING if offset is None else offset
            try:
                self.consumer.seek(TopicPartition(tp.topic, tp.partition, where))
            except KafkaException as e:  # not fetching yet: tried again at the next step
                log.warning("cannot seek %s to %s yet: %s", key, where, e)
                return
            self._positions[key] = 0 if offset is None else offset
        self._epoch = epoch
        log.info("the model was replaced: reading again from its offsets %s", offsets)

    def learn(self, polled: Polled, epoch: int | None = None) -> None:
        """Learn a poll's valid records in order; dead-letter and count the others. A poll read
        for another `epoch` than the learner's is dropped: the next step reads it again."""
        if epoch is not None and epoch != self.host.learning.epoch:
            return
        decoded = polled.decoded
        for record, error in decoded.rejected:
            self.reject(record, error)

        def rejected_by_host(position: int, error: InvalidSample) -> None:
            # Rare: checks only the model can make at the sample's turn, steps it refused.
            record = decoded.records[position]
            self.dead_letters.send(record, error)  # the host counted it
            if error.reason == "unlearnable":
                self._warn_unlearnable(record)

        self.host.learn(
            decoded.items,
            source="kafka",
            offsets=polled.offsets,
            on_rejected=rejected_by_host,
            epoch=epoch,
        )

    def _warn_unlearnable(self, record: Message) -> None:
        """A warning at most once a minute, naming the latest refused record and the count."""
        self._unlearnable += 1
        now = time.monotonic()
        if now - self._unlearnable_logged_at < UNLEARNABLE_LOG_SECONDS:
            return
        log.warning(
            "the model refused to learn %d record(s) since the last warning (their steps would "
            "have made it non-finite), the latest %s:%d@%d; dead-lettered as unlearnable, "
            "learning goes on",
            self._unlearnable, record.topic(), record.partition(), record.offset(),
        )  # fmt: skip
        self._unlearnable, self._unlearnable_logged_at = 0, now

    def reject(self, record: Message, error: InvalidSample) -> None:
        self.dead_letters.send(record, error)
        self.host.metrics.rejected("kafka", error.reason).inc()

    def checkpoint(self) -> None:
        """Dead letters first, then the checkpoint, then its offsets committed."""
        self.dead_letters.flush()
        info = self.host.checkpoint()
        self.commit(info.offsets)


def run(
    host: ModelHost,
    settings: Settings,
    stop: threading.Event,
    on_waiting: Callable[[bool], None] | None = None,
) -> None:
    """Learn `settings.kafka_topic` until `stop` is set, then checkpoint and commit (whatever
    was learned since the last checkpoint, from the topic or over gRPC).
    `on_waiting(True)` while no partition is assigned, `on_waiting(False)` once some are.

    An exception (a broker or dead-letter failure) ends the loop without a checkpoint: the last
    checkpoint stays the truth and a restart resumes from it.
    """
    consumer = Consumer(consumer_config(settings))
    dead_letters = DeadLetters(
        settings.kafka_bootstrap,
        settings.dead_letter,
        librdkafka_security(settings),
        max_record_bytes=dead_letter_bytes(settings),
    )
    source = KafkaSource(host, settings, consumer, dead_letters, on_waiting)
    source.assigned(0)  # until the group assigns partitions
    try:
        consumer.subscribe(
            [settings.kafka_topic], on_assign=source.on_assign, on_revoke=source.on_revoke
        )
        while not stop.is_set():
            source.step()
        if host.checkpoint_due(1, 0.0):  # whatever changed, over gRPC too
            source.checkpoint()
    finally:
        consumer.close()  # leaves the group; commits nothing (auto-commit is off)
        dead_letters.close()
