"""Standbys and fencing (`kafka_standby`): several `lifelong serve` processes for one model, one
active, the others waiting, coordinated through Kafka alone.

- **Election**: each process is a member of the group `<kafka_group>.leader` subscribed to the
  one-partition topic `<kafka_topic>.leader` (nothing is ever written to it): the member the
  group assigns partition 0 is the active learner. When it dies the group gives the partition to
  a standby once its session times out (`kafka_session_timeout_seconds`); with static
  membership a restarted active gets it back at once. The broker's group protocol is the only
  arbiter; no clock or lease of our own.
- **Fencing**: the active learner's transactional producer has a stable `transactional.id` per
  model (`kafka_transactional_id`). Becoming active it calls `init_transactions`, which bumps
  the id's epoch: any earlier holder (a zombie: paused, partitioned, not dead) fails its next
  transaction with a fencing error, is counted (`lifelong_fenced_total`), and steps down.
- **State**: each checkpoint is one transaction: the learner's state and offsets to the
  checkpoint topic (`lifelong.checkpoint_topic`) and the same offsets to the group
  (`send_offsets_to_transaction`). Becoming active a learner loads the newest committed
  checkpoint and consumes every partition from its offsets (assigned, not subscribed: the
  election decides who learns, and no second group session has to expire on a takeover).

Takeover time after an active learner's death: its leader-group session timeout, plus the
standby's rebalance, `init_transactions` and checkpoint load (benchmarks/kafka/README.md).
Dead letters and snapshots are not (yet) in the transaction: a zombie can still send those until
it steps down (dead letters are at least once anyway; a replica replaces a stale snapshot with
the active's next one, within `refresh_every_seconds`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from confluent_kafka import (
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)
from lifelong.config import Settings
from lifelong.host import ModelHost
from lifelong.ingest.consumer import KafkaSource, consumer_config, dead_letter_bytes
from lifelong.ingest.deadletter import DeadLetters
from lifelong.ingest.security import librdkafka_security
from lifelong.snapshot_topic import ensure_topic

log = logging.getLogger(__name__)

TRANSACTION_TIMEOUT_SECONDS = 30.0
FENCING = {
    KafkaError._FENCED,  # noqa: SLF001 (confluent-kafka's public name of librdkafka's error)
    KafkaError.PRODUCER_FENCED,
    KafkaError.INVALID_PRODUCER_EPOCH,
    KafkaError.TRANSACTION_COORDINATOR_FENCED,
}


class Fenced(Exception):
    """Another learner of this model became active: this one must commit nothing more."""


def leader_config(settings: Settings) -> dict[str, Any]:
    """librdkafka's configuration of the election's consumer."""
    config = consumer_config(settings)  # bootstrap, session, static membership, logs
    config.update(
        {
            "group.id": settings.leader_group,
            "client.id": "lifelong-leader",
            # Sticky: a member joining (a standby, a restart) leaves partition 0 where it is;
            # range or round-robin could hand it over at every join.
            "partition.assignment.strategy": "cooperative-sticky",
        }
    )
    return config


def learner_config(settings: Settings) -> dict[str, Any]:
    """librdkafka's configuration of the active learner's sample consumer: assigned by the
    active learner itself, so never a member of a group (its offsets go through the producer's
    transactions to `kafka_group`)."""
    config = consumer_config(settings)
    config.pop("group.instance.id", None)
    return config


def transactional_config(settings: Settings) -> dict[str, Any]:
    """librdkafka's configuration of the active learner's transactional producer."""
    return {
        "bootstrap.servers": settings.kafka_bootstrap,
        "client.id": "lifelong-active",
        "transactional.id": settings.transactional_id,
        "transaction.timeout.ms": round(TRANSACTION_TIMEOUT_SECONDS * 1000),
        "message.max.bytes": settings.snapshot_chunk_bytes + 64 * 1024,
        "logger": log,
        **librdkafka_security(settings),
    }


class Leadership:
    """This process's membership of the election group; `leading` once assigned partition 0.
    `poll` serves the group's callbacks: call it at least every few seconds."""

    def __init__(self, settings: Settings) -> None:
        self.topic = settings.leader_topic
        ensure_topic(settings, self.topic)
        self.leading = False
        self.consumer = Consumer(leader_config(settings))
        self.consumer.subscribe(
            [self.topic], on_assign=self._assigned, on_revoke=self._revoked, on_lost=self._revoked
        )

    # Cooperative rebalancing: the callbacks get what is added or taken away (often nothing).

    def _assigned(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        consumer.incremental_assign(partitions)
        if partitions and not self.leading:
            log.info("elected: this learner is the active one")
        self.leading = self.leading or bool(partitions)

    def _revoked(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        consumer.incremental_unassign(partitions)
        if partitions and self.leading:
            log.warning("leadership lost: stepping down to standby")
        self.leading = self.leading and not partitions

    def poll(self, timeout: float) -> None:
        self.consumer.consume(num_messages=1, timeout=timeout)  # nothing is ever written

    def close(self) -> None:
        self.consumer.close()


class TransactionalSource(KafkaSource):
    """The learn loop of the active learner: each checkpoint is one transaction."""

    def __init__(self, *args, producer: Producer, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.producer = producer

    def checkpoint(self) -> None:
        self.dead_letters.flush()
        try:
            self.producer.begin_transaction()
            info = self.host.checkpoint()  # its records, through `producer`, in the transaction
            offsets = []
            for key, offset in info.offsets.items():  # "topic:partition"
                topic, partition = key.rsplit(":", 1)
                offsets.append(TopicPartition(topic, int(partition), offset))
            self.producer.send_offsets_to_transaction(
                offsets, self.consumer.consumer_group_metadata(), TRANSACTION_TIMEOUT_SECONDS
            )
            self.producer.commit_transaction(TRANSACTION_TIMEOUT_SECONDS)
        except KafkaException as e:
            raise _fenced_or(e, self.producer) from None
        self.update_lag()


def _fenced_or(e: KafkaException, producer: Producer) -> Exception:
    """`Fenced` if `e` says so; otherwise abort the transaction (if it can be) and return `e`."""
    error = e.args[0]
    if error.code() in FENCING or error.fatal():
        return Fenced(str(error))
    if error.txn_requires_abort():
        try:
            producer.abort_transaction(TRANSACTION_TIMEOUT_SECONDS)
        except KafkaException as abort:
            if abort.args[0].code() in FENCING or abort.args[0].fatal():
                return Fenced(str(abort.args[0]))
    return e


def lead(
    host: ModelHost,
    settings: Settings,
    stop: threading.Event,
    leadership: Leadership,
    fresh: Callable[[], Any],
    on_waiting: Callable[[bool], None] | None,
) -> None:
    """Be the active learner until `stop` or the leadership is lost; `Fenced` if another took
    over meanwhile."""
    from lifelong.model import load

    producer = Producer(transactional_config(settings))
    try:
        producer.init_transactions(TRANSACTION_TIMEOUT_SECONDS)  # fences every earlier holder
    except KafkaException as e:
        raise _fenced_or(e, producer) from None
    store = host.checkpointer.store
    store.producer = producer
    _publishing(host, True)  # the model's snapshots are this learner's now
    checkpoint = store.load_latest()
    if checkpoint is None:
        host.take_over(fresh(), {})
        log.info("active: no checkpoint in %s, starting from a fresh model", store.topic)
    else:
        host.take_over(load(checkpoint.learner_state), checkpoint.offsets)
        log.info(
            "active: resuming from %s, %d samples learned, offsets %s",
            store.topic, checkpoint.samples_learned, checkpoint.offsets,
        )  # fmt: skip
    host.metrics.learner_active.set(1)
    consumer = Consumer(learner_config(settings))
    dead_letters = DeadLetters(
        settings.kafka_bootstrap,
        settings.dead_letter,
        librdkafka_security(settings),
        max_record_bytes=dead_letter_bytes(settings),
    )
    source = TransactionalSource(
        host, settings, consumer, dead_letters, on_waiting, producer=producer
    )
    fenced: Exception | None = None
    try:
        topic = settings.kafka_topic
        metadata = consumer.list_topics(topic, timeout=30).topics[topic]
        if metadata.error is not None:
            raise KafkaException(metadata.error)
        partitions = [TopicPartition(topic, p) for p in sorted(metadata.partitions)]
        source.on_assign(consumer, partitions)
        while not stop.is_set() and leadership.leading:
            source.step()
            leadership.poll(0)
        if leadership.leading and host.checkpoint_due(1, 0.0):
            source.checkpoint()  # stopping while active: the last state, committed
    except Fenced as e:
        fenced = e
    finally:
        host.metrics.learner_active.set(0)
        _publishing(host, False)
        store.producer = None
        consumer.close()
        dead_letters.close()
    if fenced is None:  # a producer known fenced is not flushed: it would only fail again
        # Fenced while stepping down for another reason: counted all the same.
        fenced = _flush(producer)
    if fenced is not None:
        raise fenced


def _publishing(host: ModelHost, on: bool) -> None:
    """Let the snapshot topic's sink publish (active) or not (standby)."""
    for sink in host.publisher.sinks:
        if hasattr(sink, "paused"):
            sink.paused = not on


def _flush(producer: Producer) -> Exception | None:
    """Flush the producer of a term that ends; the fencing it reports, if any (a zombie's
    producer learns it was fenced from its pending records)."""
    try:
        producer.flush(5)
    except KafkaException as e:
        error = _fenced_or(e, producer)
        if isinstance(error, Fenced):
            return error
        log.warning("the active learner's producer, stepping down: %s", e)
    return None


def run(
    host: ModelHost,
    settings: Settings,
    stop: threading.Event,
    on_waiting: Callable[[bool], None] | None = None,
    *,
    fresh: Callable[[], Any],
) -> None:
    """Wait as a standby, be active when elected, step down when fenced or no longer elected;
    until `stop`. `fresh()`: a new learner, for a model that has no checkpoint yet."""
    leadership = Leadership(settings)
    try:
        while not stop.is_set():
            host.metrics.learner_active.set(0)
            host.metrics.partitions_assigned.set(0)
            host.metrics.learning_waiting.set(1)
            if on_waiting is not None:
                on_waiting(True)
            while not stop.is_set() and not leadership.leading:
                leadership.poll(0.25)
            if stop.is_set():
                break
            try:
                lead(host, settings, stop, leadership, fresh, on_waiting)
            except Fenced as e:
                leadership.leading = False  # until the group elects this one again
                host.metrics.fenced.inc()
                log.warning(
                    "fenced: another learner of %s is active (%s); this one committed nothing "
                    "more and steps down to standby",
                    settings.kafka_group, e,
                )  # fmt: skip
    finally:
        leadership.close()


__all__ = ["Fenced", "Leadership", "run"]
