"""`Learning`: the single writer. It owns a learner (anything with `lifelong.model.Learner`'s
methods) and the stream offsets its state reflects, and learns batches in order under one lock.

A batch holds `Sample`s and `Rows` (a decoded block shaped exactly like the model's input).
Samples are numbered by their position in the batch, a `Rows` counting one per row, and a
rejected one is reported by that position, so an adapter finds its record without this module
knowing what a record is.

>>> from lifelong.model import LifelongClassifier, LearnerConfig
>>> from lifelong.samples import Sample
>>> learning = Learning(LifelongClassifier(LearnerConfig(seed=0)))
>>> outcome = learning.learn([Sample({"x": 1.0}, None, True), Sample({"x": 1.0}, None, 1)])
>>> outcome.learned, [(k, e.reason) for k, e in outcome.rejected]
(1, [(1, 'wrong_label_type')])

"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import islice, takewhile
from typing import Any, TypeVar

import numpy as np
from lifelong.admission import Admission, Limits
from lifelong.model import Learner
from lifelong.samples import InvalidSample, Rows, Sample, dense_size_mismatch

T = TypeVar("T")


@dataclass
class Outcome:
    """What one `learn` call did: samples learned, rejected ones by position, time taken."""

    learned: int = 0
    rejected: list[tuple[int, InvalidSample]] = field(default_factory=list)
    seconds: float = 0.0


class Learning:
    """The learner and its offsets ("topic:partition" -> next offset to read), learned under one
    lock. `changes` counts every change of the state (samples learned, offsets moved, the learner
    replaced), for whoever decides when to save it.

    An operator may pause learning (`pause`; sources look at `paused` between batches) and
    replace the learner (`replace`: a rollback or a fresh model). A replacement starts a new
    `epoch`: a batch read for an older one is not learned (its records were read from offsets
    the new learner does not reflect), and sources seek to the new offsets."""

    def __init__(
        self,
        learner: Learner,
        offsets: Mapping[str, int] | None = None,
        limits: Limits | None = None,
    ) -> None:
        self.task = learner.task
        self.admission = Admission(limits, classification=learner.task == "classification")
        self._learner = learner
        self._offsets = dict(offsets or {})
        self._lock = threading.Lock()
        self._changes = 0
        self.epoch = 0
        self.paused = False

    @property
    def feature_names(self) -> tuple:
        """The model's features (a plain read, no lock: `Rows` built for names that changed
        meanwhile are learned sample by sample)."""
        return self._learner.feature_names

    @property
    def samples_learned(self) -> int:
        return self._learner.samples_learned

    @property
    def changes(self) -> int:
        """Grows with every change of the state: samples learned, offsets moved, replacement."""
        return self._changes

    def pause(self) -> None:
        self.paused = True

    def resume(self) -> None:
        self.paused = False

    def replace(self, learner: Learner, offsets: Mapping[str, int] | None = None) -> None:
        """Learn with `learner` from now on, at `offsets` if given (else where the streams
        are); a new epoch starts."""
        if learner.task != self.task:
            raise ValueError(f"a {learner.task} model cannot replace a {self.task} one")
        with self._lock:
            self._learner = learner
            if offsets is not None:
                self._offsets = dict(offsets)
            self._changes += 1
            self.epoch += 1

    @property
    def offsets(self) -> dict[str, int]:
        """A copy of the offsets the learner's state reflects."""
        with self._lock:
            return dict(self._offsets)

    def admit(self, sample: Sample) -> None:
        """Raise `InvalidSample` if `sample` could not be learned by the model as it is now
        (`lifelong.admission`): for a caller that wants an answer before the sample's turn. The
        check at its turn still decides."""
        with self._lock:
            learner = self._learner
            self.admission.check(
                sample, feature_names=learner.feature_names, classes=learner.classes,
                samples_learned=learner.samples_learned,
            )  # fmt: skip

    def change(self, f: Callable[[Learner], T]) -> T:
        """`f(learner)` between learning steps, for an operator's change of its state (counted
        in `changes`, so it is saved)."""
        with self._lock:
            result = f(self._learner)
            self._changes += 1
            return result

    def read(self, f: Callable[[Learner], T]) -> T:
        """`f(learner)` between learning steps (a snapshot, statistics)."""
        with self._lock:
            return f(self._learner)

    def state(self) -> tuple[bytes, dict[str, int], int, int]:
        """The learner's bytes, its offsets, samples learned and `changes`, taken together."""
        with self._lock:
            learner = self._learner
            return learner.to_bytes(), dict(self._offsets), learner.samples_learned, self.changes

    def learn(
        self,
        batch: Sequence[Sample | Rows],
        offsets: Mapping[str, int] | None = None,
        epoch: int | None = None,
    ) -> Outcome:
        """Learn `batch` in order, then record `offsets` with it.

        Some checks need the model as it is at the sample's turn (the samples before it may have
        added features or classes), so only the writer can make them (`lifelong.admission`): a
        rejected sample is never learned, and learning goes on with the next. So does a sample
        whose step the learner refuses (`unlearnable`). A batch read in an `epoch` other than
        this one changes nothing (`Outcome.learned` 0): its source reads it again.
        """
        outcome = Outcome()
        with self._lock:
            if epoch is not None and epoch != self.epoch:
                return outcome  # read before a replacement: its source reads it again
            start = time.perf_counter()
            before = self._learner.samples_learned
            self._learn_in_order(batch, outcome.rejected)
            outcome.learned = self._learner.samples_learned - before
            self._changes += outcome.learned
            if offsets:  # only once the whole batch is in the state
                self._offsets.update(offsets)
                self._changes += 1
            outcome.seconds = time.perf_counter() - start
        return outcome

    def _learn_in_order(
        self, items: Sequence[Sample | Rows], rejected: list[tuple[int, InvalidSample]]
    ) -> None:
        """`Rows` of the model's features through `learn_many`, everything else by
        `_learn_samples`; `at` is the position of the item's first sample."""
        at, i, n = 0, 0, len(items)
        while i < n:
            item = items[i]
            if type(item) is Rows:
                if item.names == self._learner.feature_names:
                    self._learn_rows(item.matrix, item.labels, item.sample, at, rejected)
                else:  # a sample before it changed the features: the per-sample checks apply
                    self._learn_samples(item.samples(), at, rejected)
                at += len(item)
                i += 1
                continue
            j = i + 1
            while j < n and type(items[j]) is not Rows:
                j += 1
            self._learn_samples(items[i:j], at, rejected)
            at += j - i
            i = j

    def _learn_rows(
        self,
        X: np.ndarray,
        labels: Sequence[Any],
        sample: Callable[[int], Sample],
        at: int,
        rejected: list[tuple[int, InvalidSample]],
    ) -> None:
        """Rows with exactly the model's features, through `learn_many` (one compiled loop for
        the built-in learner), up to each bad label; row i is the sample at position at + i."""
        start, n = 0, len(X)
        while start < n:
            start += self._learn_many(X[start:], labels[start:], at + start, rejected)

    def _learn_many(
        self,
        X: np.ndarray,
        labels: Sequence[Any],
        at: int,
        rejected: list[tuple[int, InvalidSample]],
    ) -> int:
        """`learn_many` up to the first bad label: how many rows it went through (learned,
        refused, or the bad one)."""
        learner, refused = self._learner, []
        if self.admission.classification:  # up to a new class, admitted (or not) on its own
            try:
                known = self.admission.admit_labels(labels, learner.classes)
            except InvalidSample as error:
                rejected.append((at, error.detached()))
                return 1
            X, labels = X[:known], labels[:known]
        before = learner.samples_learned
        try:
            learner.learn_many(X, labels, refused=refused)
        except TypeError as error:  # the rows before it are learned or refused
            bad = len(refused) + learner.samples_learned - before
            rejected.extend((at + i, _unlearnable()) for i in refused)
            rejected.append((at + bad, _wrong_label_type(error)))
            return bad + 1
        rejected.extend((at + i, _unlearnable()) for i in refused)
        return len(X)

    def _learn_samples(
        self, samples: Sequence[Sample], at: int, rejected: list[tuple[int, InvalidSample]]
    ) -> None:
        """Runs of samples with exactly the model's features through `learn_many` (same
        result), the rest one by one after `admit`."""
        learner, i = self._learner, 0
        while i < len(samples):
            names = learner.feature_names
            rows = list(takewhile(_is_row, (_as_row(s, names) for s in islice(samples, i, None))))
            if len(rows) > 1:
                labels = [sample.label for sample in samples[i : i + len(rows)]]
                i += self._learn_many(np.stack(rows), labels, at + i, rejected)
                continue
            sample, k = samples[i], at + i
            i += 1
            before = learner.samples_learned
            try:
                if sample.dense is not None and len(sample.dense) < len(names):
                    raise dense_size_mismatch(len(sample.dense), len(names))
                self.admission.check(
                    sample, feature_names=names, classes=learner.classes,
                    samples_learned=learner.samples_learned,
                )  # fmt: skip
                if sample.features is not None:
                    learner.learn_one(sample.features, sample.label)
                else:
                    learner.learn_many(sample.dense[None, :], [sample.label])
            except InvalidSample as error:
                rejected.append((k, error.detached()))
                continue
            except TypeError as error:  # the learner checks labels before any update
                rejected.append((k, _wrong_label_type(error)))
                continue
            if learner.samples_learned == before:  # its step was refused
                rejected.append((k, _unlearnable()))


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
