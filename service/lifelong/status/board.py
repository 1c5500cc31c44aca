"""`Board`: a probe read into a `History` every `interval` seconds, and the status document built
from both: what `GET /api/v1/status` answers and the page draws.

Learning pays nothing per sample: the board reads the model's aggregates on its own timer (one
`stats()` under the learning lock per tick) and answers readers from the ring.

>>> from lifelong.host import ModelHost
>>> from lifelong.model import LearnerConfig, LifelongClassifier
>>> from lifelong.status.probes import LearnerProbe
>>> board = Board(LearnerProbe(ModelHost(LifelongClassifier(LearnerConfig()))), 1.0, 600.0)
>>> board.record()
>>> document = board.document(since=0)
>>> document["history"]["seq"], len(document["history"]["time"]), document["horizon_seconds"]
(1, 1, 600.0)

"""

from __future__ import annotations

import dataclasses
import math
import threading
import time
from typing import Any

from lifelong.status.history import History
from lifelong.status.probes import Probe


class Board:
    """`probe` read every `interval` seconds (by `run`), the last `horizon` seconds kept."""

    def __init__(self, probe: Probe, interval: float, horizon: float) -> None:
        self.probe = probe
        self.interval = interval
        self.horizon = horizon
        self.history = History(math.ceil(horizon / interval), probe.markers)

    def record(self) -> None:
        """Read the probe once into the history."""
        self.history.record(self.probe.read(), time.time())

    def run(self, stop: threading.Event) -> None:
        """Record every `interval` seconds until `stop` is set."""
        self.record()
        while not stop.wait(self.interval):
            self.record()

    def document(self, since: int = 0) -> dict[str, Any]:
        """The model now, the chart layout and the history after sequence number `since`."""
        return {
            **self.probe.now(),
            "interval_seconds": self.interval,
            "horizon_seconds": self.horizon,
            "charts": [dataclasses.asdict(chart) for chart in self.probe.charts],
            "markers": self.probe.markers,
            "history": self.history.since(since),
        }
