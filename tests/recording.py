"""`RecordingLearner`: a test learner (`lifelong.model.Learner`) that learns nothing but the
identity of every sample it is given, in order, so a test can prove each sample of a stream was
learned exactly once. Its state is that record (and the features and classes it saw); its kind is
registered with `lifelong.model.state`, so it checkpoints and restores like any learner. The
service hosts it with `model = "recording:RecordingLearner"` (tests/ on the Python path).

>>> from lifelong.model import load
>>> learner = RecordingLearner()
>>> learner.learn_one({"id": 7, "x": 0.5}, "a")
>>> learner.learn_many([[8, 0.1], [9, 0.2]], ["b", "a"])
[]
>>> copy = load(learner.to_bytes())
>>> copy.ids, copy.feature_names, copy.classes, copy.samples_learned
([7, 8, 9], ('id', 'x'), ('a', 'b'), 3)

"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import Any

import numpy as np
import torch
from lifelong.model import LearnerStats, state


class RecordingLearner:
    task = "classification"

    def __init__(self, id_feature: str = "id") -> None:
        self.id_feature = id_feature
        self.ids: list[int] = []
        self._names: list[Hashable] = []
        self._classes: list[Any] = []

    @property
    def feature_names(self) -> tuple[Hashable, ...]:
        return tuple(self._names)

    @property
    def classes(self) -> tuple[Any, ...]:
        return tuple(self._classes)

    @property
    def samples_learned(self) -> int:
        return len(self.ids)

    def learn_one(self, x: dict, y: Any) -> None:
        if isinstance(y, float) or not isinstance(y, str | int | bool):
            raise TypeError(f"a class label is a str, int or bool, not {type(y).__name__}")
        self.ids.append(int(x[self.id_feature]))
        self._names += sorted((n for n in x if n not in self._names), key=str)
        if y not in self._classes:
            self._classes.append(y)

    def learn_many(
        self,
        X: np.ndarray | Sequence[Sequence[float]],
        y: Sequence[Any],
        refused: list[int] | None = None,
    ) -> list[int]:
        for row, label in zip(X, y, strict=True):
            names = self._names + [str(i) for i in range(len(self._names), len(row))]
            self.learn_one(dict(zip(names, (float(v) for v in row), strict=True)), label)
        return []

    def snapshot(self) -> RecordingPredictor:
        return RecordingPredictor(self.samples_learned, self.feature_names, self.classes)

    def stats(self) -> LearnerStats:
        return LearnerStats(
            samples_learned=self.samples_learned, prequential_score=0.0, prequential_loss=0.0,
            drifts_detected=0, drift_in_last_window=False, updates_refused={}, recoveries={},
            step_scale=1.0,
        )  # fmt: skip

    def to_bytes(self) -> bytes:
        tensors = {"ids": torch.tensor(self.ids, dtype=torch.int64)}
        meta = {"id_feature": self.id_feature, "features": self._names, "classes": self._classes}
        return state.dumps("RecordingLearner", tensors, meta)

    @classmethod
    def from_state(cls, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> RecordingLearner:
        learner = cls(meta["id_feature"])
        learner.ids = tensors["ids"].tolist()
        learner._names, learner._classes = list(meta["features"]), list(meta["classes"])
        return learner


class RecordingPredictor:
    """Uniform probabilities over the classes seen: serving works, nothing is predicted."""

    task = "classification"

    def __init__(self, version: int, feature_names: tuple, classes: tuple) -> None:
        self.version, self.feature_names, self.classes = version, feature_names, classes

    def predict_proba_one(self, x: dict) -> dict[Any, float]:
        return {c: 1 / len(self.classes) for c in self.classes}

    def predict_one(self, x: dict) -> Any:
        return self.classes[0] if self.classes else None

    def predict_proba_dense(self, X: np.ndarray) -> np.ndarray:
        return np.full((len(X), len(self.classes)), 1 / max(1, len(self.classes)))

    def predict_dense(self, X: np.ndarray) -> np.ndarray:
        return np.array([self.predict_one({})] * len(X), dtype=object)

    def row_function(self) -> Callable[[list[float]], np.ndarray]:
        return lambda row: self.predict_proba_dense([row])

    def to_bytes(self) -> bytes:
        meta = {"version": self.version, "features": list(self.feature_names),
                "classes": list(self.classes)}  # fmt: skip
        return state.dumps("RecordingPredictor", {}, meta)

    @classmethod
    def from_state(cls, tensors: dict, meta: dict[str, Any]) -> RecordingPredictor:
        return cls(meta["version"], tuple(meta["features"]), tuple(meta["classes"]))


state.register("RecordingLearner", RecordingLearner.from_state)
state.register("RecordingPredictor", RecordingPredictor.from_state)
