"""Fixtures of the tests on the real broker with `lifelong` subprocesses."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import pytest
from services import Service


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
