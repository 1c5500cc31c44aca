"""`Publisher`: the serving snapshot. Predictions read `publisher.predictor`, an immutable
snapshot swapped in by reference, so they never wait for learning. A new one is taken when
`every_samples` samples or `every_seconds` seconds have gone unpublished (the seconds bound
needs `refresh()` to be called periodically when learning pauses), and written to the snapshot
file for replicas at most once every `every_seconds`.

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
from pathlib import Path

from lifelong import snapshot_file
from lifelong.learning import Learning
from lifelong.model import Learner, Predictor

log = logging.getLogger(__name__)


class Publisher:
    def __init__(
        self,
        learning: Learning,
        *,
        every_samples: int = 100,
        every_seconds: float = 1.0,
        snapshot_path: Path | None = None,
    ) -> None:
        self.learning = learning
        self.every_samples = every_samples
        self.every_seconds = every_seconds
        self.snapshot_path = snapshot_path
        self._lock = threading.Lock()  # one publisher at a time
        self._file_lock = threading.Lock()  # one writer of the file, newest snapshot last
        self._written: Predictor | None = None  # the snapshot in the file
        self._written_at = -math.inf
        self._predictor = learning.read(_snapshot)
        self._published_at = time.monotonic()
        self._unpublished = 0
        self._write_file()  # a resumed model serves from the start

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
        self._write_file()
        return due

    def refresh(self) -> bool:
        """Publish if unpublished samples are older than the seconds bound; write the file if
        it is behind. Whether it published."""
        published = False
        if self._seconds_due():
            with self._lock:
                if self._seconds_due():
                    self._publish()
                    published = True
        self._write_file()
        return published

    def publish(self) -> None:
        """Publish the learner as it is now (after it was replaced, say)."""
        with self._lock:
            self._publish()
        self._written_at = -math.inf  # replicas see it at once
        self._write_file()

    def _seconds_due(self) -> bool:
        return self._unpublished > 0 and time.monotonic() - self._published_at >= self.every_seconds

    def _publish(self) -> None:
        self._predictor = self.learning.read(_snapshot)
        self._published_at = time.monotonic()
        self._unpublished = 0

    def _write_file(self) -> None:
        """Write the current snapshot to `snapshot_path` if it is not there yet, at most once
        every `every_seconds` (publishing can be hundreds of times a second; `refresh()` writes
        the last one). Under its own lock, so a slower writer of an older snapshot cannot
        replace a newer one."""
        if self.snapshot_path is None or self._written is self._predictor:
            return
        if time.monotonic() - self._written_at < self.every_seconds:
            return
        with self._file_lock:
            predictor = self._predictor
            if predictor is self._written:
                return
            self._written_at = time.monotonic()
            try:
                snapshot_file.write(self.snapshot_path, predictor)
            except OSError as e:  # e.g. a full tmpfs: replicas keep the previous one; retried
                log.error("cannot write the snapshot file %s: %s", self.snapshot_path, e)
                return
            self._written = predictor


def _snapshot(learner: Learner) -> Predictor:
    return learner.snapshot()
