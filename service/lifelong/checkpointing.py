"""`Checkpointer`: when to save the learner's state with its offsets, and saving it. The one
rule for "due": the state changed since the last checkpoint (samples learned or offsets moved)
and `every_changes` changes or `every_seconds` seconds passed since it.

>>> import tempfile
>>> from lifelong.checkpoint import CheckpointStore, sequence_of
>>> from lifelong.learning import Learning
>>> from lifelong.model import LifelongRegressor, LearnerConfig
>>> from lifelong.samples import Sample
>>> learning = Learning(LifelongRegressor(LearnerConfig(hidden=(4,))))
>>> checkpointer = Checkpointer(learning, CheckpointStore(tempfile.mkdtemp()))
>>> checkpointer.due(1, float("inf"))
False
>>> _ = learning.learn([Sample({"x": 1.0}, None, 2.0)], offsets={"samples:0": 1})
>>> checkpointer.due(1, float("inf")), checkpointer.checkpoint().offsets
(True, {'samples:0': 1})

"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from lifelong.checkpoint import CheckpointStore, sequence_of
from lifelong.learning import Learning

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CheckpointInfo:
    """A checkpoint written: `lifelong.checkpoint.Checkpoint` without the state."""

    sequence: int
    path: Path
    samples_learned: int
    offsets: dict[str, int]
    created: float  # Unix time the state was taken


class Checkpointer:
    def __init__(self, learning: Learning, store: CheckpointStore) -> None:
        self.learning = learning
        self.store = store
        self._lock = threading.Lock()  # checkpoint files in the order states were taken
        self._changes = learning.changes  # at the last checkpoint
        self._at = time.monotonic()

    def resumed(self) -> None:
        """The learner was replaced by a checkpoint's: that is the last checkpoint now."""
        self._changes, self._at = self.learning.changes, time.monotonic()

    def due(self, every_changes: int, every_seconds: float) -> bool:
        """Whether the state changed since the last checkpoint and `every_changes` changes or
        `every_seconds` seconds passed since it."""
        behind = self.learning.changes - self._changes
        return behind > 0 and (
            behind >= every_changes or time.monotonic() - self._at >= every_seconds
        )

    def checkpoint(self) -> CheckpointInfo:
        """Save the learner's state and offsets. The state is taken between learning steps;
        the file is written after, so learning goes on while the disk works."""
        with self._lock:
            state, offsets, samples_learned, changes = self.learning.state()
            taken_at, timestamp = time.monotonic(), time.time()
            path = self.store.save(state, offsets, samples_learned)
            self._at, self._changes = taken_at, changes
        log.info("checkpoint %s: %d samples learned, offsets %s", path, samples_learned, offsets)
        return CheckpointInfo(sequence_of(path), path, samples_learned, offsets, timestamp)
