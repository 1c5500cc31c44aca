"""Issue 16's findings on a live `lifelong serve` learning from a real Kafka broker: each test
reproduces what an operator saw and failed before its fix.

Nothing is mocked: the broker is the session's real Kafka (tests/conftest.py), the service a real
subprocess (`Service`, from test_service_kafka), asked over gRPC and scraped over HTTP.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import pytest
from test_service_kafka import Service
from testsupport import wait_for

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


@pytest.fixture
def service(tmp_path: Path, kafka_bootstrap: str) -> Iterable[Callable[..., Service]]:
    made: list[Service] = []

    def make(topic: str, **settings: object) -> Service:
        made.append(Service(tmp_path, kafka_bootstrap, topic, **settings))
        return made[-1]

    yield make
    for s in made:
        s.close()


def wait_serving(service: Service) -> None:
    wait_for(lambda: service.samples_learned() is not None, "the service answering")


def test_sigterm_checkpoints_samples_learned_over_grpc_in_kafka_mode(kafka_topic, service):
    """Finding 1: a sample learned over gRPC while Kafka mode is on was lost at SIGTERM (the Kafka
    loop checkpointed only when it had consumed records since its last checkpoint)."""
    svc: Service = service(kafka_topic(partitions=1))
    svc.start()
    wait_serving(svc)
    assert svc.client.learn({"x0": 0.5, "x1": -0.5}, "learned-over-grpc") == 1
    assert svc.stop() == 0
    svc.start()
    wait_serving(svc)
    info = svc.client.model_info()
    assert info.samples_learned == 1
    assert info.classes == ("learned-over-grpc",)
