"""`ModelHost`: owns the learner, serialises learning, publishes snapshots for serving.

One writer at a time learns under the host's lock; predictions read `host.predictor`, an immutable
snapshot swapped in by reference, so they never wait for learning. A snapshot is published when
`refresh_every_samples` samples or `refresh_every_seconds` seconds have gone unpublished (the
seconds bound needs `refresh()` to be called periodically when learning pauses; the app does).

>>> from lifelong.model import LifelongClassifier, LearnerConfig
>>> from lifelong.samples import Sample
>>> host = ModelHost(LifelongClassifier(LearnerConfig(seed=0)), refresh_every_samples=2)
>>> host.learn([Sample({"x": 1.0}, None, "a"), Sample({"x": -1.0}, None, "b")], source="grpc")
2
>>> host.predictor.version
2

"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from itertools import islice, takewhile
from pathlib import Path
from typing import Any

import numpy as np
from lifelong.checkpoint import CheckpointStore
from lifelong.metrics import ServiceMetrics
from lifelong.samples import InvalidSample, Sample, Task, dense_size_mismatch
from river import base

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CheckpointInfo:
    path: Path
    samples_learned: int
    offsets: dict[str, int]
    timestamp: float  # Unix time the state was taken


class ModelHost:
    """The learner, its stream offsets and the serving snapshot.

    Parameters
    ----------
    learner
        A `LifelongClassifier` or `LifelongRegressor`, fresh or loaded from a checkpoint.
    checkpoints
        Where `checkpoint()` writes; None disables checkpoints.
    offsets
        Kafka offsets the learner's state reflects ("topic:partition" -> next offset to read).
    refresh_every_samples, refresh_every_seconds
        Staleness bound of the serving snapshot.
    metrics
        Updated as samples are learned and checkpoints written; the host's statistics are
        exported through it on scrape.
    """

    def __init__(
        self,
        learner: Any,
        *,
        checkpoints: CheckpointStore | None = None,
        offsets: Mapping[str, int] | None = None,
        refresh_every_samples: int = 100,
        refresh_every_seconds: float = 1.0,
        metrics: ServiceMetrics | None = None,
    ) -> None:
        self.task: Task = "classification" if isinstance(learner, base.Classifier) else "regression"
        self.checkpoints = checkpoints
        self.refresh_every_samples = refresh_every_samples
        self.refresh_every_seconds = refresh_every_seconds
        self.metrics = metrics if metrics is not None else ServiceMetrics()
        self._learner = learner
        self._offsets = dict(offsets or {})
        self._lock = threading.Lock()  # the single writer: learning, snapshots, state reads
        self._checkpoint_lock = threading.Lock()  # checkpoint files in the order states were taken
        self._predictor = learner.snapshot()
        self._published_at = time.monotonic()
        self._unpublished = 0
        self._offsets_version = 0  # bumped when offsets move, even if no sample was learned
        self._checkpointed_at = time.monotonic()
        self._checkpointed = (learner.samples_learned, 0)  # (samples, offsets version)
        self.metrics.watch(self)

    @property
    def predictor(self):
        """The current serving snapshot (a `Predictor`); a plain read, no lock."""
        return self._predictor

    @property
    def offsets(self) -> dict[str, int]:
        """A copy of the offsets the learner's state reflects."""
        with self._lock:
            return dict(self._offsets)

    @property
    def samples_learned(self) -> int:
        return self._learner.samples_learned

    def learn(
        self,
        samples: Sequence[Sample],
        *,
        source: str,
        offsets: Mapping[str, int] | None = None,
        on_rejected: Callable[[Sample, InvalidSample], None] | None = None,
    ) -> int:
        """Learn `samples` in order and record `offsets` with them; return how many were learned.

        Two checks need the model as it is at the sample's turn (the batch before it may have
        added features or classes), so only the writer can make them: a dense sample shorter than
        the feature list, and a label equal to a known class of another type (`True` and `1`).
        Such a sample is rejected (counted, and passed to `on_rejected`), never learned.
        """
        rejected: list[tuple[Sample, InvalidSample]] = []
        learned = 0
        with self._lock:
            start = time.perf_counter()
            try:
                learned = self._learn_in_order(samples, rejected)
                if offsets:  # only once the whole batch is in the state
                    self._offsets.update(offsets)
                    self._offsets_version += 1
            finally:
                elapsed = time.perf_counter() - start
                self._unpublished += learned
                if self._unpublished >= self.refresh_every_samples or self._publish_due():
                    self._publish()
        if learned:
            self.metrics.learned(source).inc(learned)
            self.metrics.learn_latency.observe(elapsed / learned)
        for sample, error in rejected:
            self.metrics.rejected(source, error.reason).inc()
            if on_rejected is not None:
                on_rejected(sample, error)
        return learned

    def _learn_in_order(
        self, samples: Sequence[Sample], rejected: list[tuple[Sample, InvalidSample]]
    ) -> int:
        """Learn under the lock; runs of rows with exactly the model's features go through
        `learn_many` (one compiled loop, same result), the rest one by one."""
        learner, learned, i = self._learner, 0, 0
        while i < len(samples):
            names = learner.feature_names
            rows = list(takewhile(_is_row, (_as_row(s, names) for s in islice(samples, i, None))))
            if len(rows) > 1:
                labels = [sample.label for sample in samples[i : i + len(rows)]]
                before = learner.samples_learned
                try:
                    learner.learn_many(np.stack(rows), labels)
                except TypeError as error:  # at row k; the rows before it are learned
                    k = learner.samples_learned - before
                    rejected.append((samples[i + k], _wrong_label_type(error)))
                    learned, i = learned + k, i + k + 1
                else:
                    learned, i = learned + len(rows), i + len(rows)
                continue
            sample, i = samples[i], i + 1
            try:
                if sample.features is not None:
                    learner.learn_one(sample.features, sample.label)
                elif len(sample.dense) >= len(names):  # longer: new features
                    learner.learn_dense(sample.dense, sample.label)
                else:
                    raise dense_size_mismatch(len(sample.dense), len(names))
            except InvalidSample as error:
                rejected.append((sample, error))
                continue
            except TypeError as error:  # the learner checks labels before any update
                rejected.append((sample, _wrong_label_type(error)))
                continue
            learned += 1
        return learned

    def refresh(self) -> bool:
        """Publish a snapshot if unpublished samples are older than the seconds bound."""
        if not self._publish_due():
            return False
        with self._lock:
            if not self._publish_due():
                return False
            self._publish()
        return True

    def _publish_due(self) -> bool:
        return (
            self._unpublished > 0
            and time.monotonic() - self._published_at >= self.refresh_every_seconds
        )

    def _publish(self) -> None:
        self._predictor = self._learner.snapshot()
        self._published_at = time.monotonic()
        self._unpublished = 0

    def stats(self):
        """The learner's `PlasticityStats`, read under the lock (between learning steps)."""
        with self._lock:
            return self._learner.stats()

    def config(self):
        """The learner's `LearnerConfig`."""
        return self._learner.config

    def checkpoint_due(self, every_samples: int, every_seconds: float) -> bool:
        """Whether the state changed since the last checkpoint and `every_samples` samples or
        `every_seconds` seconds passed since it."""
        samples, offsets_version = self._checkpointed
        behind = self._learner.samples_learned - samples
        changed = behind > 0 or self._offsets_version != offsets_version
        return changed and (
            behind >= every_samples or time.monotonic() - self._checkpointed_at >= every_seconds
        )

    def checkpoint(self) -> CheckpointInfo:
        """Write the learner's state and offsets to the checkpoint store.

        The state is taken under the learning lock; the file is written outside it, so learning
        goes on while the disk works.
        """
        if self.checkpoints is None:
            raise RuntimeError("no checkpoint directory configured (set checkpoint_dir)")
        with self._checkpoint_lock:
            with self._lock:
                state = self._learner.to_bytes()
                offsets = dict(self._offsets)
                samples_learned = self._learner.samples_learned
                taken = (samples_learned, self._offsets_version)
                taken_at = time.monotonic()
            timestamp = time.time()
            path = self.checkpoints.save(state, offsets, samples_learned)
            self._checkpointed_at = taken_at
            self._checkpointed = taken
        self.metrics.checkpoints.inc()
        self.metrics.last_checkpoint_timestamp.set(timestamp)
        log.info("checkpoint %s: %d samples learned, offsets %s", path, samples_learned, offsets)
        return CheckpointInfo(path, samples_learned, offsets, timestamp)


def _as_row(sample: Sample, names: tuple) -> np.ndarray | None:
    """`sample` as a vector of exactly the model's features `names`, or None if it is not one
    (it lacks some, or brings new ones)."""
    if sample.dense is not None:
        return sample.dense if len(sample.dense) == len(names) else None
    features = sample.features
    if len(features) != len(names):
        return None
    try:
        return np.array([features[name] for name in names], dtype=np.float64)
    except KeyError:
        return None


def _is_row(row: np.ndarray | None) -> bool:
    return row is not None


def _wrong_label_type(error: TypeError) -> InvalidSample:
    return InvalidSample("wrong_label_type", f"{error}; give each class one label type")
