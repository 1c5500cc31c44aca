"""The embedded demo stream: a first run with no broker (`lifelong serve --demo`).

A rotating hyperplane (river's `synth.Hyperplane`, drifting gradually) whose concept also changes
abruptly every `period` samples (`synth.ConceptDriftStream`). Features are named `x0`..`x3`,
labels are 0 and 1. Learned through the host at a modest rate, as a Kafka topic would be.

>>> from itertools import islice
>>> [(sorted(x), y) for x, y in islice(drifting_stream(seed=0), 1)]
[(['x0', 'x1', 'x2', 'x3'], 1)]

"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from itertools import islice

from lifelong.host import ModelHost
from lifelong.samples import Sample
from river.datasets import synth

log = logging.getLogger(__name__)

SOURCE = "demo"
N_FEATURES = 4


def _hyperplane(seed: int) -> synth.Hyperplane:
    return synth.Hyperplane(seed=seed, n_features=N_FEATURES, n_drift_features=2, mag_change=1e-3)


def drifting_stream(seed: int, period: int = 20_000) -> Iterator[tuple[dict[str, float], int]]:
    """An endless stream; concept k turns into concept k + 1 around the middle of block k."""
    for k in range(seed, seed + 2**31):
        block = synth.ConceptDriftStream(
            stream=_hyperplane(k),
            drift_stream=_hyperplane(k + 1),
            position=period // 2,
            width=period // 20,
            seed=k,
        )
        for x, y in islice(block, period):
            yield {f"x{i}": v for i, v in x.items()}, y


def run(host: ModelHost, rate: float, stop: threading.Event, *, seed: int = 42) -> None:
    """Learn the demo stream at about `rate` samples per second (0: flat out) until `stop`."""
    tick = 0.05  # small batches, 20 a second: the snapshot stays fresh and the lock is short
    per_tick = max(1, round(rate * tick)) if rate else 50
    stream = drifting_stream(seed)
    log.info("demo: learning a drifting hyperplane stream (x0..x3 -> 0/1) at %g samples/s", rate)
    next_at = time.monotonic()
    while not stop.is_set():
        if not host.paused:
            host.learn([Sample(x, None, y) for x, y in islice(stream, per_tick)], source=SOURCE)
        if rate:
            next_at += per_tick / rate
            stop.wait(max(0.0, next_at - time.monotonic()))
