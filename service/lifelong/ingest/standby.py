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

- **Everything it writes** goes through that producer (`Transaction`): checkpoints, serving
  snapshots and dead letters. A transaction is open whenever one of them is pending; it commits
  with a checkpoint's offsets, and between checkpoints as soon as what it holds is delivered, so
  a replica (reading committed records only) sees a snapshot soon after it is sent. A zombie's
  sends are refused by the broker (its epoch is old) and its open transaction never commits:
  nothing it wrote after the takeover is read by a replica, a standby or a `read_committed`
  consumer of dead letters. Dead letters stay at least once (a crash between a commit and the
  checkpoint that passes their records sends them again).

Takeover time after an active learner's death: its leader-group session timeout, plus the
standby's rebalance, `init_transactions` and checkpoint load (benchmarks/kafka/README.md).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
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
from lifelong.snapshot_topic import TopicSink, ensure_topic

log = logging.getLogger(__name__)

TRANSACTION_TIMEOUT_SECONDS = 30.0
# Between checkpoints a transaction commits once what it holds is delivered and it is this old
# (fewer commits on a stream of dead letters), or, delivered or not, a third of the timeout.
COMMIT_AFTER_SECONDS = 0.25
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
        # A snapshot or checkpoint chunk with its headers, or a dead letter.
        "message.max.bytes": max(
            settings.snapshot_chunk_bytes + 64 * 1024, dead_letter_bytes(settings)
        ),
        "logger": log,
        **librdkafka_security(settings),
    }


class Transaction:
    """The active learner's transactional producer, shaped like a `Producer` for those that send
    through it (dead letters, the snapshot sink, the checkpoint topic): `produce` opens a
    transaction when none is; `commit` ends it, with a checkpoint's offsets. Safe from any
    thread. Once fenced it sends nothing more and `commit` raises `Fenced`."""

    def __init__(self, producer: Producer) -> None:
        self.producer = producer
        self.fenced: Fenced | None = None
        self._lock = threading.RLock()
        self._opened: float | None = None  # monotonic time the open transaction began

    def produce(
        self, topic: str, value: Any = None, key: Any = None, headers: Any = None,
        on_delivery: Callable[[KafkaError | None, Any], None] | None = None,
    ) -> None:  # fmt: skip
        def delivered(error: KafkaError | None, message: Any) -> None:
            if error is not None and (error.code() in FENCING or error.fatal()):
                self.fenced = self.fenced or Fenced(str(error))  # the broker refused its epoch
            if on_delivery is not None:
                on_delivery(error, message)

        with self._lock, self._noting_fencing():
            if self.fenced is not None:
                return  # a zombie writes nothing more; its loop steps down at its next commit
            self._begin()
            self.producer.produce(topic, value, key, headers=headers, on_delivery=delivered)

    def poll(self, timeout: float = 0) -> int:
        with self._noting_fencing():
            return self.producer.poll(timeout)
        return 0

    def flush(self, timeout: float | None = None) -> int:
        """Wait for deliveries, up to `timeout` seconds (None: all), but not once fenced:
        what a fenced producer holds is never delivered."""
        deadline = None if timeout is None else time.monotonic() + timeout
        left = len(self.producer)
        while self.fenced is None and left:
            with self._noting_fencing():
                left = self.producer.flush(0.1)
            if deadline is not None and time.monotonic() >= deadline:
                break
        return left

    @contextlib.contextmanager
    def _noting_fencing(self) -> Iterator[None]:
        """A fencing error, raised to whichever thread met it first, is noted, not raised: the
        learn loop steps down at its next commit."""
        try:
            yield
        except KafkaException as e:
            if not _fencing(e):
                raise
            self.fenced = self.fenced or Fenced(str(e.args[0]))

    def commit(self, offsets: list[TopicPartition] | None = None, group: Any = None) -> None:
        """Commit the open transaction, with `offsets` for `group`'s metadata if given (a
        transaction is opened for them if none is)."""
        with self._lock:
            if self.fenced is not None:
                raise self.fenced
            if self._opened is None and not offsets:
                return
            try:
                self._begin()
                if offsets:
                    self.producer.send_offsets_to_transaction(
                        offsets, group, TRANSACTION_TIMEOUT_SECONDS
                    )
                self.producer.commit_transaction(TRANSACTION_TIMEOUT_SECONDS)
            except KafkaException as e:
                error = _fenced_or(e, self.producer)
                if isinstance(error, Fenced):
                    self.fenced = error
                elif e.args[0].txn_requires_abort():
                    self._opened = None  # aborted by `_fenced_or`
                raise error from None
            self._opened = None

    def _begin(self) -> None:
        """Open a transaction unless one is open (under `_lock`)."""
        if self._opened is None:
            self.producer.begin_transaction()
            self._opened = time.monotonic()

    def commit_delivered(self) -> None:
        """Between checkpoints: commit what was sent once it is delivered (or has waited a third
        of the transaction timeout), so that readers of committed records see it."""
        with self._lock:
            opened = self._opened
            if opened is None:
                return
            age = time.monotonic() - opened
            if age >= TRANSACTION_TIMEOUT_SECONDS / 3 or (
                age >= COMMIT_AFTER_SECONDS and len(self.producer) == 0
            ):
                self.commit()


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

    def __init__(self, *args, transaction: Transaction, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.transaction = transaction

    def step(self) -> None:
        try:
            super().step()
            self.transaction.commit_delivered()
        except KafkaException as e:  # a send refused, say: fenced, or the error itself
            raise _fenced_or(e, self.transaction.producer) from None

    def checkpoint(self) -> None:
        self.dead_letters.flush()
        info = self.host.checkpoint()  # its records, through the transaction
        offsets = []
        for key, offset in info.offsets.items():  # "topic:partition"
            topic, partition = key.rsplit(":", 1)
            offsets.append(TopicPartition(topic, int(partition), offset))
        self.transaction.commit(offsets, self.consumer.consumer_group_metadata())
        self.update_lag()


def _fencing(e: KafkaException) -> bool:
    error = e.args[0]
    return isinstance(error, KafkaError) and (error.code() in FENCING or error.fatal())


def _fenced_or(e: KafkaException, producer: Producer) -> Exception:
    """`Fenced` if `e` says so; otherwise abort the transaction (if it can be) and return `e`."""
    error = e.args[0]
    if _fencing(e):
        return Fenced(str(error))
    if isinstance(error, KafkaError) and error.txn_requires_abort():
        try:
            producer.abort_transaction(TRANSACTION_TIMEOUT_SECONDS)
        except KafkaException as abort:
            if _fencing(abort):
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
    transaction = Transaction(producer)
    store = host.checkpointer.store
    store.producer = transaction
    _publish_through(host, transaction)  # the model's snapshots are this learner's now
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
        producer=transaction,
    )
    source = TransactionalSource(
        host, settings, consumer, dead_letters, on_waiting, transaction=transaction
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
        _publish_through(host, None)
        store.producer = None
        consumer.close()
        dead_letters.close()
    # Fenced while stepping down for another reason: counted all the same. A producer known
    # fenced is not flushed: it would only fail again.
    fenced = fenced or transaction.fenced or _flush(producer)
    if fenced is not None:
        raise fenced


def _publish_through(host: ModelHost, transaction: Transaction | None) -> None:
    """The snapshot topic's sink publishes through `transaction` (active) or not at all."""
    for sink in host.publisher.sinks:
        if isinstance(sink, TopicSink):
            sink.send_through(transaction)


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
                host.metrics.learner_active.set(0)  # after the reason is counted and logged
    finally:
        host.metrics.learner_active.set(0)
        leadership.close()


__all__ = ["Fenced", "Leadership", "run"]
