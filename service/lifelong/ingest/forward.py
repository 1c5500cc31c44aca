"""Learning over gRPC when the model learns from Kafka: a sample is not learned on the spot but
produced to the sample topic, and the call is acknowledged once the broker has it. The learn
loop then learns it like any other record, in stream order, and its offset is in the
checkpoints: acknowledged means learned exactly once, whatever crashes.

A sample learned on the spot instead would be in no offset: a crash before the next checkpoint
loses it, and nothing says so (issue 16's finding 1).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping

from confluent_kafka import KafkaError, KafkaException, Message, Producer
from lifelong.v1 import lifelong_pb2 as pb

__all__ = ["NotStored", "SampleForwarder"]

log = logging.getLogger(__name__)

HEADERS = [("content-type", b"application/x-protobuf")]  # whatever the topic's default format


class NotStored(Exception):
    """The broker did not acknowledge every sample in time: the caller may send them again
    (a sample acknowledged before the failure may then be learned twice)."""


class SampleForwarder:
    """Produces `lifelong.v1.Sample`s to `topic` and waits for the broker's acknowledgement;
    `security` is `librdkafka_security`'s."""

    def __init__(
        self,
        bootstrap_servers: str,
        topic: str,
        security: Mapping[str, str],
        *,
        timeout_seconds: float = 10.0,
    ) -> None:
        self.topic = topic
        self.timeout_seconds = timeout_seconds
        self._producer = Producer(
            {
                "bootstrap.servers": bootstrap_servers,
                "client.id": "lifelong-learn-forwarder",
                "enable.idempotence": True,  # acks=all, no loss and no duplicates from retries
                "linger.ms": 0,  # a caller waits for each call's acknowledgement
                "logger": log,
                **security,
            }
        )
        self._lock = threading.Lock()  # flush waits for all: one call's batch at a time

    def send(self, samples: Iterable[pb.Sample]) -> None:
        """Produce `samples` in order and return once the broker has every one; `NotStored`
        if it has not within the timeout or refused one."""
        failures: list[KafkaError] = []

        def delivered(error: KafkaError | None, _message: Message) -> None:
            if error is not None:
                failures.append(error)

        with self._lock:
            try:
                for sample in samples:
                    self._producer.produce(
                        self.topic,
                        sample.SerializeToString(),
                        headers=HEADERS,
                        on_delivery=delivered,
                    )
            except (BufferError, KafkaException) as e:
                self._producer.flush(self.timeout_seconds)
                raise NotStored(f"could not queue the sample for {self.topic}: {e}") from None
            left = self._producer.flush(self.timeout_seconds)
        if left:
            raise NotStored(f"{self.topic} did not acknowledge within {self.timeout_seconds:g} s")
        if failures:
            raise NotStored(f"{self.topic} refused the sample: {failures[0]}")

    def close(self) -> None:
        self._producer.flush(self.timeout_seconds)
