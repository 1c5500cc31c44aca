"""The dead-letter topic: invalid records, copied unchanged, with why they were rejected.

Each copy keeps the original key, value and headers, and adds::

    lifelong-error-reason      a bounded reason code (lifelong.samples.REASONS)
    lifelong-error-message     what is wrong and what to send instead
    lifelong-source-topic      where the record came from
    lifelong-source-partition
    lifelong-source-offset

Delivery is at least once: `flush` runs before each checkpoint, so a record is in the dead-letter
topic before the offsets that pass it are saved; after a crash it may be copied again.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from confluent_kafka import KafkaError, KafkaException, Message, Producer
from lifelong.samples import InvalidSample

__all__ = ["DeadLetters"]

log = logging.getLogger(__name__)

PREFIX = "lifelong-"
MAX_MESSAGE_CHARS = 1000  # a message quotes input; keep the header small


def error_headers(record: Message, error: InvalidSample) -> list[tuple[str, bytes]]:
    """The record's own headers (earlier `lifelong-*` ones dropped: a replayed dead letter
    gets fresh ones) and the error's.

    >>> record = Message(topic="t", partition=0, offset=7, headers=[("k", b"v")])
    >>> error_headers(record, InvalidSample("undecodable", "not JSON"))[:2]
    [('k', b'v'), ('lifelong-error-reason', b'undecodable')]

    """
    headers = [(k, v) for k, v in record.headers() or () if not k.startswith(PREFIX)]
    headers += [
        ("lifelong-error-reason", error.reason.encode()),
        ("lifelong-error-message", error.message[:MAX_MESSAGE_CHARS].encode()),
        ("lifelong-source-topic", record.topic().encode()),
        ("lifelong-source-partition", str(record.partition()).encode()),
        ("lifelong-source-offset", str(record.offset()).encode()),
    ]
    return headers


class DeadLetters:
    """A producer of dead letters to `topic`; `security` is `librdkafka_security`'s."""

    def __init__(
        self,
        bootstrap_servers: str,
        topic: str,
        security: Mapping[str, str],
        max_record_bytes: int = 1_000_000,
        producer: Producer | None = None,
    ) -> None:
        """`producer`: one to send through instead of its own (the active learner's
        transaction, `lifelong.ingest.standby`)."""
        self.topic = topic
        self._producer = producer or Producer(
            {
                "bootstrap.servers": bootstrap_servers,
                "client.id": "lifelong-dead-letters",
                "enable.idempotence": True,  # acks=all, no loss and no duplicates from retries
                # librdkafka refuses larger copies itself (its default: 1,000,000 bytes), before
                # the broker sees them: `send` logs those and goes on.
                "message.max.bytes": max_record_bytes,
                "logger": log,
                **security,
            }
        )
        self._failures: list[KafkaError] = []  # appended by delivery reports (poll, flush)

    def _delivered(self, error: KafkaError | None, _message: Message) -> None:
        if error is not None:
            self._failures.append(error)

    def send(self, record: Message, error: InvalidSample) -> None:
        """Copy `record` to the topic, asynchronously."""
        # Kafka needs a key or a value; a record with neither is copied with an empty value.
        key, value = record.key(), record.value()
        if key is None and value is None:
            value = b""
        headers = error_headers(record, error)
        while True:
            try:
                self._producer.produce(
                    self.topic, value, key, headers=headers, on_delivery=self._delivered
                )
                break
            except BufferError:  # the local queue is full: wait for deliveries, then again
                self._producer.poll(1.0)
            except KafkaException as e:
                if e.args[0].code() != KafkaError.MSG_SIZE_TOO_LARGE:
                    raise
                # Retrying cannot help and stopping would stop the stream: say so and go on.
                log.error(
                    "cannot dead-letter %s:%d@%d (%s): %s",
                    record.topic(), record.partition(), record.offset(), error.reason, e,
                )  # fmt: skip
                break
        self._producer.poll(0)  # serve delivery reports

    def flush(self) -> None:
        """Wait until every dead letter sent so far is acknowledged; raise if one failed."""
        self._producer.flush()
        failed, self._failures = self._failures, []
        if failed:
            raise KafkaException(
                f"{len(failed)} dead letter(s) to {self.topic} failed, first: {failed[0]}"
            )

    def close(self) -> None:
        # Dead letters past the last checkpoint are sent again after a restart: a bounded wait.
        self._producer.flush(10.0)
