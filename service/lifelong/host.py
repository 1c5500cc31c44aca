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
import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from itertools import islice, takewhile
from pathlib import Path
from typing import Any

import numpy as np
from lifelong import snapshot_file as snapshots
from lifelong.admission import Admission, Limits
from lifelong.checkpoint import CheckpointStore
from lifelong.ingest.codecs import Rows
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
    max_model_features
        Most features the model may grow to: a sample bringing new features beyond it is
        rejected (`too_many_features`), so clients cannot grow the input layer forever.
    limits
        What one sample may add to the model (`lifelong.admission`); default: `Limits` with
        `max_model_features`.
    metrics
        Updated as samples are learned and checkpoints written; the host's statistics are
        exported through it on scrape.
    snapshot_file
        Where every published snapshot is also written (`lifelong.snapshot_file`), for prediction
        replicas; None writes none.
    """

    def __init__(
        self,
        learner: Any,
        *,
        checkpoints: CheckpointStore | None = None,
        offsets: Mapping[str, int] | None = None,
        refresh_every_samples: int = 100,
        refresh_every_seconds: float = 1.0,
        max_model_features: int = 10_000,
        metrics: ServiceMetrics | None = None,
        snapshot_file: Path | None = None,
        limits: Limits | None = None,
    ) -> None:
        self.task: Task = "classification" if isinstance(learner, base.Classifier) else "regression"
        self.checkpoints = checkpoints
        self.refresh_every_samples = refresh_every_samples
        self.refresh_every_seconds = refresh_every_seconds
        self.max_model_features = max_model_features
        self.admission = Admission(
            limits or Limits(max_model_features=max_model_features),
            classification=self.task == "classification",
        )
        self.metrics = metrics if metrics is not None else ServiceMetrics()
        self.snapshot_file = snapshot_file
        self._file_lock = threading.Lock()  # one writer of the file, newest snapshot last
        self._written = None  # the snapshot in the file
        self._written_at = -math.inf
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
        self._recoveries = learner.recoveries  # seen so far: a new one is logged
        self.metrics.watch(self)
        self._write_snapshot()  # a resumed model serves from the start

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
    def feature_names(self) -> tuple:
        """The model's features, in the order of its input (a plain read, no lock: `Rows` built
        for names that changed meanwhile are learned sample by sample)."""
        return self._learner.feature_names

    @property
    def samples_learned(self) -> int:
        return self._learner.samples_learned

    def learn(
        self,
        samples: Sequence[Sample | Rows],
        *,
        source: str,
        offsets: Mapping[str, int] | None = None,
        on_rejected: Callable[[Sample, InvalidSample], None] | None = None,
    ) -> int:
        """Learn `samples` in order and record `offsets` with them; return how many were learned.

        `samples` may hold `Rows` (a poll's records decoded in bulk, `lifelong.ingest.codecs`):
        learned as one matrix when their names are still the model's, else sample by sample;
        the same result either way.

        Some checks need the model as it is at the sample's turn (the batch before it may have
        added features or classes), so only the writer can make them: a dense sample shorter than
        the feature list, and `lifelong.admission`'s rules (the label's type, new classes, new
        features). Such a sample is rejected (counted, and passed to `on_rejected`), never
        learned. So is a sample whose step the learner refuses
        (`unlearnable`: it would have made the network non-finite); learning goes on with the
        next, and repeated refusals make the learner recover by itself (logged here).
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
                self._log_recoveries()
            finally:
                elapsed = time.perf_counter() - start
                self._unpublished += learned
                if self._unpublished >= self.refresh_every_samples or self._publish_due():
                    self._publish()
        self._write_snapshot()
        if learned:
            self.metrics.learned(source).inc(learned)
            self.metrics.learn_latency.observe(elapsed / learned)
        for sample, error in rejected:
            self.metrics.rejected(source, error.reason).inc()
            if on_rejected is not None:
                on_rejected(sample, error)
        return learned

    def _learn_in_order(
        self, items: Sequence[Sample | Rows], rejected: list[tuple[Sample, InvalidSample]]
    ) -> int:
        """Learn under the lock: `Rows` straight through `learn_many`, runs of `Sample`s by
        `_learn_samples`."""
        learned, i, n = 0, 0, len(items)
        while i < n:
            item = items[i]
            if type(item) is Rows:
                if item.names == self._learner.feature_names:
                    learned += self._learn_rows(item, rejected)
                else:  # a sample before it changed the features: the per-sample checks apply
                    learned += self._learn_samples(item.samples(), rejected)
                i += 1
                continue
            j = i + 1
            while j < n and type(items[j]) is not Rows:
                j += 1
            learned += self._learn_samples(items[i:j], rejected)
            i = j
        return learned

    def _learn_rows(self, rows: Rows, rejected: list[tuple[Sample, InvalidSample]]) -> int:
        """`rows` (exactly the model's features) in one compiled loop, as `_learn_samples` learns
        a run of such samples."""
        learner, start, n = self._learner, 0, len(rows)
        before = learner.samples_learned
        while start < n:
            start += self._learn_many(
                rows.matrix[start:], rows.labels[start:], lambda i, s=start: rows.sample(s + i),
                rejected,
            )  # fmt: skip
        return learner.samples_learned - before

    def _learn_many(
        self,
        X: np.ndarray,
        labels: Sequence[Any],
        sample: Callable[[int], Sample],
        rejected: list[tuple[Sample, InvalidSample]],
    ) -> int:
        """`learn_many` up to the first bad label: how many rows it went through (learned,
        refused, or the bad one); `sample(i)` is row i's sample, for the rejected ones."""
        learner, refused = self._learner, []
        if self.admission.classification:  # up to a new class, admitted (or not) on its own
            try:
                known = self.admission.admit_labels(labels, learner.classes)
            except InvalidSample as error:
                rejected.append((sample(0), error))
                return 1
            X, labels = X[:known], labels[:known]
        before = learner.samples_learned
        try:
            learner.learn_many(X, labels, refused=refused)
        except TypeError as error:  # the rows before it are learned or refused
            bad = len(refused) + learner.samples_learned - before
            rejected.extend((sample(i), _unlearnable()) for i in refused)
            rejected.append((sample(bad), _wrong_label_type(error)))
            return bad + 1
        rejected.extend((sample(i), _unlearnable()) for i in refused)
        return len(X)

    def _learn_samples(
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
                i += self._learn_many(
                    np.stack(rows), labels, lambda k, i=i: samples[i + k], rejected
                )
                learned += learner.samples_learned - before
                continue
            sample, i = samples[i], i + 1
            before = learner.samples_learned
            try:
                self.admission.check(
                    sample, feature_names=names, classes=learner.classes,
                    samples_learned=learner.samples_learned,
                )  # fmt: skip
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
            if learner.samples_learned == before:  # its step was refused
                rejected.append((sample, _unlearnable()))
                continue
            learned += 1
        return learned

    def _log_recoveries(self) -> None:
        """Log each recovery the learner took since the last call (they are rare)."""
        recoveries = self._learner.recoveries
        for action, count in recoveries.items():
            if count > self._recoveries.get(action, 0):
                log.warning(
                    "the learner recovered by itself (%s, %d time(s) since the start) after "
                    "repeated refused steps; step scale now %s, %d samples learned",
                    action, count, self._learner.step_scale, self._learner.samples_learned,
                )  # fmt: skip
        self._recoveries = recoveries

    def refresh(self) -> bool:
        """Publish a snapshot if unpublished samples are older than the seconds bound; write the
        snapshot file if it is behind. Whether it published."""
        published = False
        if self._publish_due():
            with self._lock:
                if self._publish_due():
                    self._publish()
                    published = True
        self._write_snapshot()
        return published

    def _publish_due(self) -> bool:
        return (
            self._unpublished > 0
            and time.monotonic() - self._published_at >= self.refresh_every_seconds
        )

    def _publish(self) -> None:
        self._predictor = self._learner.snapshot()
        self._published_at = time.monotonic()
        self._unpublished = 0

    def _write_snapshot(self) -> None:
        """Write the current snapshot to `snapshot_file` if it is not there yet, at most once
        every `refresh_every_seconds` (publishing after `refresh_every_samples` can be hundreds
        of times a second; `refresh()` writes the last one). Outside the learning lock, so
        learning goes on meanwhile; under its own, so a slower writer of an older snapshot
        cannot replace a newer one."""
        if self.snapshot_file is None or self._written is self._predictor:
            return
        if time.monotonic() - self._written_at < self.refresh_every_seconds:
            return
        with self._file_lock:
            predictor = self._predictor
            if predictor is self._written:
                return
            self._written_at = time.monotonic()
            try:
                snapshots.write(self.snapshot_file, predictor)
            except OSError as e:  # e.g. a full tmpfs: replicas keep the previous one; retried
                log.error("cannot write the snapshot file %s: %s", self.snapshot_file, e)
                return
            self._written = predictor

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


def _unlearnable() -> InvalidSample:
    return InvalidSample(
        "unlearnable",
        "the model refused to learn this sample: its step would have made the network's output "
        "or gradient non-finite; nothing was learned from it and learning goes on",
    )


def _wrong_label_type(error: TypeError) -> InvalidSample:
    return InvalidSample("wrong_label_type", f"{error}; give each class one label type")
