"""`Publisher`: the serving snapshot. Predictions read `publisher.predictor`, an immutable
snapshot swapped in by reference, so they never wait for learning. A new one is taken when
`every_samples` samples or `every_seconds` seconds have gone unpublished (the seconds bound
needs `refresh()` to be called periodically when learning pauses), and written to each sink for
replicas (the snapshot file, the snapshot topic) at most once every `every_seconds`.

>>> from lifelong.learning import Learning
>>> from lifelong.model import LifelongClassifier, LearnerConfig
>>> from lifelong.samples import Sample
>>> learning = Learning(LifelongClassifier(LearnerConfig(seed=0)))
>>> publisher = Publisher(learning, every_samples=2)
>>> publisher.learned(learning.learn([Sample({"x": 1.0}, None, "a")] * 2).learned)
True
>>> publisher.predictor.version
2

"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from lifelong import snapshot_file
from lifelong.learning import Learning
from lifelong.model import Learner, Predictor

log = logging.getLogger(__name__)


class Sink(Protocol):
    """Where snapshots go for replicas: `write` takes a snapshot and its bytes, and says whether
    it took them (False: try again at the next turn)."""

    name: str

    def write(self, predictor: Predictor, data: bytes) -> bool: ...


class FileSink:
    """The snapshot file (`lifelong.snapshot_file`)."""

    name = "snapshot file"

    def __init__(self, path: Path) -> None:
        self.path = path

    def write(self, predictor: Predictor, data: bytes) -> bool:
        try:
            snapshot_file.write(self.path, predictor, data)
        except OSError as e:  # e.g. a full tmpfs: replicas keep the previous one; retried
            log.error("cannot write the snapshot file %s: %s", self.path, e)
            return False
        return True


class Publisher:
    def __init__(
        self,
        learning: Learning,
        *,
        every_samples: int = 100,
        every_seconds: float = 1.0,
        snapshot_path: Path | None = None,
        sinks: Sequence[Sink] = (),
    ) -> None:
        self.learning = learning
        self.every_samples = every_samples
        self.every_seconds = every_seconds
        self.snapshot_path = snapshot_path
        self.sinks = ([FileSink(snapshot_path)] if snapshot_path else []) + list(sinks)
        self._lock = threading.Lock()  # one publisher at a time
        self._sink_lock = threading.Lock()  # one writer of the sinks, newest snapshot last
        self._written: dict[int, Predictor] = {}  # sink's position -> the snapshot it holds
        self._written_at = -math.inf
        self._predictor = learning.read(_snapshot)
        self._published_at = time.monotonic()
        self._unpublished = 0
        self._write_sinks()  # a resumed model serves from the start

    @property
    def predictor(self) -> Predictor:
        """The current serving snapshot; a plain read, no lock."""
        return self._predictor

    def learned(self, samples: int) -> bool:
        """Count `samples` just learned; publish if due. Whether it published."""
        with self._lock:
            self._unpublished += samples
            due = self._unpublished >= self.every_samples or self._seconds_due()
            if due:
                self._publish()
        self._write_sinks()
        return due

    def refresh(self) -> bool:
        """Publish if unpublished samples are older than the seconds bound; write the sinks if
        they are behind. Whether it published."""
        published = False
        if self._seconds_due():
            with self._lock:
                if self._seconds_due():
                    self._publish()
                    published = True
        self._write_sinks()
        return published

    def publish(self) -> None:
        """Publish the learner as it is now (after it was replaced, say) and write the sinks."""
        with self._lock:
            self._publish()
        self._written_at = -math.inf  # replicas see it at once
        self._write_sinks()

    def _seconds_due(self) -> bool:
        return self._unpublished > 0 and time.monotonic() - self._published_at >= self.every_seconds

    def _publish(self) -> None:
        self._predictor = self.learning.read(_snapshot)
        self._published_at = time.monotonic()
        self._unpublished = 0

    def _behind(self, predictor: Predictor) -> list[int]:
        return [i for i in range(len(self.sinks)) if self._written.get(i) is not predictor]

    def _write_sinks(self) -> None:
        """Write the current snapshot to the sinks that do not hold it yet, at most once every
        `every_seconds` (publishing can be hundreds of times a second; `refresh()` writes the
        last one). Under its own lock, so a slower writer of an older snapshot cannot replace a
        newer one. The bytes are taken once for all sinks."""
        if not self.sinks or not self._behind(self._predictor):
            return
        if time.monotonic() - self._written_at < self.every_seconds:
            return
        with self._sink_lock:
            predictor = self._predictor
            behind = self._behind(predictor)
            if not behind:
                return
            self._written_at = time.monotonic()
            data = predictor.to_bytes()
            for i in behind:
                if self.sinks[i].write(predictor, data):
                    self._written[i] = predictor


def _snapshot(learner: Learner) -> Predictor:
    return learner.snapshot()
