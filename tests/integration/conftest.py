"""Fixtures of the integration tests: `lifelong serve` subprocesses on the session's broker."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import pytest
from integration.test_service_kafka import Service


@pytest.fixture
def service(tmp_path: Path, kafka_bootstrap: str) -> Iterable[Callable[..., Service]]:
    """`service(topic, **settings)`: a `Service` (not started); all are killed at the end."""
    made: list[Service] = []

    def make(topic: str, **settings: object) -> Service:
        made.append(Service(tmp_path, kafka_bootstrap, topic, **settings))
        return made[-1]

    yield make
    for s in made:
        s.close()
