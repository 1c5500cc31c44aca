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
from typing import Any

from kafka import KafkaProducer
from kafka.errors import KafkaError, MessageSizeTooLargeError
from lifelong.samples import InvalidSample

__all__ = ["DeadLetters"]

log = logging.getLogger(__name__)

PREFIX = "lifelong-"
MAX_MESSAGE_CHARS = 1000  # a message quotes input; keep the header small


def error_headers(record: Any, error: InvalidSample) -> list[tuple[str, bytes]]:
    """The record's own headers (earlier `lifelong-*` ones dropped: a replayed dead letter
    gets fresh ones) and the error's.

    >>> from types import SimpleNamespace
    >>> record = SimpleNamespace(topic="t", partition=0, offset=7, headers=[("k", b"v")])
    >>> error_headers(record, InvalidSample("undecodable", "not JSON"))[:2]
    [('k', b'v'), ('lifelong-error-reason', b'undecodable')]

    """
    headers = [(k, v) for k, v in record.headers if not k.startswith(PREFIX)]
    headers += [
        ("lifelong-error-reason", error.reason.encode()),
        ("lifelong-error-message", error.message[:MAX_MESSAGE_CHARS].encode()),
        ("lifelong-source-topic", record.topic.encode()),
        ("lifelong-source-partition", str(record.partition).encode()),
        ("lifelong-source-offset", str(record.offset).encode()),
    ]
    return headers


class DeadLetters:
    """A producer of dead letters to `topic`."""

    def __init__(self, bootstrap_servers: str, topic: str, **producer_config: Any) -> None:
        self.topic = topic
        # Idempotent, acks=all (kafka-python's defaults): no loss and no duplicates from retries.
        self._producer = KafkaProducer(
            bootstrap_servers=bootstrap_servers,
            client_id="lifelong-dead-letters",
            **producer_config,
        )
        self._failures: list[Exception] = []  # appended by the producer's I/O thread

    def send(self, record: Any, error: InvalidSample) -> None:
        """Copy `record` (a kafka-python `ConsumerRecord`) to the topic, asynchronously."""
        # Kafka needs a key or a value; a record with neither is copied with an empty value.
        value = record.value if record.value is not None or record.key is not None else b""
        try:
            future = self._producer.send(
                self.topic, key=record.key, value=value, headers=error_headers(record, error)
            )
        except MessageSizeTooLargeError as e:
            # Retrying cannot help and stopping would stop the stream: say so and go on.
            log.error(
                "cannot dead-letter %s:%d@%d (%s): %s",
                record.topic, record.partition, record.offset, error.reason, e,
            )  # fmt: skip
            return
        future.add_errback(self._failures.append)

    def flush(self) -> None:
        """Wait until every dead letter sent so far is acknowledged; raise if one failed."""
        self._producer.flush()
        failed, self._failures = self._failures, []
        if failed:
            raise KafkaError(
                f"{len(failed)} dead letter(s) to {self.topic} failed, first: {failed[0]}"
            )

    def close(self) -> None:
        self._producer.close()
