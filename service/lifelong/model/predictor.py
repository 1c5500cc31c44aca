"""`MLPPredictor`: predictions from the built-in network's fixed weights, what its learners'
`snapshot()` returns for serving, and its state in the codec's format.

>>> from lifelong.model import LifelongClassifier, LearnerConfig
>>> model = LifelongClassifier(LearnerConfig(hidden=(4,), seed=0))
>>> model.learn_one({"x": 1.0}, "spam")
>>> snapshot = model.snapshot()
>>> type(snapshot).__name__, snapshot.version, snapshot.predict_one({"x": 1.0})
('MLPPredictor', 1, 'spam')

"""

from __future__ import annotations

import math
from array import array
from collections.abc import Callable, Hashable
from typing import Any

import numpy as np
import torch
from lifelong.model import state
from lifelong.model.base import Task
from lifelong.model.fast import KernelUnavailable, RowKernel
from lifelong.model.network import forward_batch
from lifelong.model.scaler import Standardizer, TargetScaler
from lifelong.model.values import numbers

SNAPSHOT_FORMAT = 3  # 3: the state codec's container (2 had its own metadata key)


class MLPPredictor:
    """Predictions from fixed weights: what `snapshot()` returns for serving.

    It shares nothing with the learner (weights, feature index, classes and scaler statistics
    are copies), so it can be read from any number of threads while the learner goes on.
    A feature it does not know is ignored (its weight would be zero); a known feature missing
    from `x` counts as its mean.
    """

    def __init__(
        self,
        task: str,
        weights: list[np.ndarray],
        biases: list[np.ndarray],
        feature_index: dict[Hashable, int],
        feature_names: tuple[Hashable, ...],
        classes: tuple[Any, ...],
        scaler: Standardizer | None,
        target: TargetScaler | None,
        version: int,
    ) -> None:
        self.task = task
        self._weights = weights
        self._biases = biases
        self._index = feature_index
        self.feature_names = feature_names
        self.classes = classes
        self._scaler = scaler
        self._target = target
        self.version = version
        self._kernel: RowKernel | None = None  # bound at the first prediction by name
        self._kernel_unavailable = False

    def predict_proba_one(self, x: dict) -> dict[Any, float]:
        """Probability of each known class; `{}` before any class is known."""
        self._classifier_only()
        if not self.classes:
            return {}
        return dict(zip(self.classes, probabilities(self._outputs_one(x)), strict=True))

    def predict_one(self, x: dict) -> Any:
        """The most probable class (None before any), or the regression estimate."""
        if self.task == "regression":
            return self._target.mean + self._target.std * self._outputs_one(x)[0]
        if not self.classes:
            return None
        out = self._outputs_one(x)
        return self.classes[out.index(max(out))]

    def predict_proba_dense(self, X: np.ndarray) -> np.ndarray:
        """(n, n_classes) probabilities for the rows of `X` (n, n_features), columns in the
        order of `classes`."""
        self._classifier_only()
        return self._proba(self._rows(X))

    def predict_dense(self, X: np.ndarray) -> np.ndarray:
        """Most probable class (an object array; None before any class) or regression estimate
        (float64) for each row of `X`."""
        Z = self._rows(X)
        if self.task == "regression":
            return self._regress(Z)
        labels = np.empty(len(Z), dtype=object)
        if self.classes:
            labels[:] = [self.classes[k] for k in np.argmax(self._outputs(Z), axis=1).tolist()]
        return labels

    def row_function(self) -> Callable[[list[float]], np.ndarray | float]:
        """One row's prediction with little per-call work, for serving one row at a time: a
        function of the row's values (floats in `feature_names` order, every feature present,
        finite) to what `predict_proba_dense` (classification: (1, n_classes) probabilities) or
        `predict_dense` (regression: the estimate, a float) gives for that row, by the same
        arithmetic. The scaler's statistics are read now, once: for a snapshot, whose statistics
        never change, not for a learner's live predictor."""
        weights, biases = self._weights, self._biases
        scaler, n = self._scaler, len(self.feature_names)
        if scaler is not None:  # Standardizer.transform's terms, as Python floats
            std = scaler.std()[:n]
            terms = list(zip(scaler.mean[:n].tolist(), std.tolist(), strict=True))
            low, high = -scaler.clip, scaler.clip
        regression = self.task == "regression"
        if regression:
            t_mean, t_std = self._target.mean, self._target.std

        def predict(values: list[float]) -> np.ndarray | float:
            if scaler is not None:  # Standardizer.transform in float64, element by element
                values = [
                    min(max((x - m) / s, low), high) if s > 0 else 0.0
                    for x, (m, s) in zip(values, terms, strict=True)
                ]
            out = forward_batch(weights, biases, np.array((values,), dtype=np.float32))[-1]
            if regression:
                return t_mean + t_std * float(out[0, 0])
            logits = out.astype(np.float64)  # as `_proba`
            logits -= logits.max(axis=1, keepdims=True)
            np.exp(logits, out=logits)
            logits /= logits.sum(axis=1, keepdims=True)
            return logits

        return predict

    def state_dict(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """Weights, biases and input statistics as tensors; the rest as JSON metadata."""
        arrays = {f"weight.{i}": W for i, W in enumerate(self._weights)}
        arrays |= {f"bias.{i}": b for i, b in enumerate(self._biases)}
        scaler, target = self._scaler, self._target
        if scaler is not None:
            arrays |= {f"scaler.{k}": v for k, v in scaler.state_dict().items()}
        meta: dict[str, Any] = {
            "format": SNAPSHOT_FORMAT,
            "task": self.task,
            "version": self.version,
            "layers": len(self._weights),
            "features": list(self.feature_names),
            "classes": list(self.classes),
            "scaler_clip": scaler.clip if scaler is not None else None,
            "target": {**target.state_dict(), "clip": target.clip} if target is not None else None,
        }
        return {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in arrays.items()}, meta

    def to_bytes(self) -> bytes:
        return state.dumps("MLPPredictor", *self.state_dict())

    @classmethod
    def from_state(cls, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> MLPPredictor:
        """The snapshot `state_dict` described; ValueError if its parts do not fit together."""
        if meta.get("format") != SNAPSHOT_FORMAT:
            raise ValueError(f"unsupported snapshot format {meta.get('format')!r}")
        arrays = {k: v.numpy() for k, v in tensors.items()}
        n = int(meta["layers"])
        weights = [arrays[f"weight.{i}"] for i in range(n)]
        biases = [arrays[f"bias.{i}"] for i in range(n)]
        names = tuple(meta["features"])
        scaler = None
        if meta["scaler_clip"] is not None:
            scaler = Standardizer(float(meta["scaler_clip"]))
            scaler.load_state_dict({k: arrays[f"scaler.{k}"] for k in scaler.state_dict()})
        target = None
        if meta["target"] is not None:
            target = TargetScaler(float(meta["target"]["clip"]))
            target.load_state_dict(meta["target"])
        _check_shapes(weights, biases, len(names), scaler)
        index = {name: i for i, name in enumerate(names)}
        classes = tuple(meta["classes"])
        return cls(
            meta["task"],
            weights,
            biases,
            index,
            names,
            classes,
            scaler,
            target,
            int(meta["version"]),
        )

    @classmethod
    def empty(cls, task: Task) -> MLPPredictor:
        """The snapshot of a model that has learned nothing (version 0)."""
        target = TargetScaler() if task == "regression" else None
        return cls(task, [], [], {}, (), (), None, target, version=0)

    def _classifier_only(self) -> None:
        if self.task != "classification":
            raise TypeError("a regressor has no class probabilities; use predict_one / _dense")

    def _outputs_one(self, x: dict) -> list[float]:
        """The network's outputs for one example by name: through the kernel (its sums' order),
        else NumPy's."""
        if self._kernel is None and not self._kernel_unavailable:
            try:
                self._kernel = RowKernel(self._weights, self._biases, self._scaler)
            except KernelUnavailable:
                self._kernel_unavailable = True
        if self._kernel is None:
            return self._outputs(self._row(x))[0].tolist()
        names = self.feature_names
        if len(x) == len(names):  # every known feature: the kernel checks the values
            try:
                values = array("d", [x[name] for name in names])
            except (KeyError, TypeError, ValueError, OverflowError):
                pass  # other names, or values NumPy converts (or says what is wrong with)
            else:
                out = self._kernel(values, check=True)
                if out is not None:
                    return out
        return self._kernel(self._raw(x))

    def _row(self, x: dict) -> np.ndarray:
        """The network's input for one example by name, (1, n_features) float32, as the
        kernel computes it."""
        raw = self._raw(x)
        missing = np.isnan(raw)
        z = self._scaler.transform(raw) if self._scaler else raw.astype(np.float32)
        z[missing] = 0.0
        return z[None]

    def _raw(self, x: dict) -> np.ndarray:
        """x's values in the order of `feature_names`, NaN where it lacks one; others ignored."""
        names = self.feature_names
        if len(x) == len(names):
            try:
                return numbers([x[name] for name in names])
            except KeyError:
                pass  # other names: some unknown, some missing
        index = self._index
        columns, values = [], []
        for name, value in x.items():
            i = index.get(name)
            if i is not None:
                columns.append(i)
                values.append(value)
        raw = np.full(len(names), np.nan)
        if columns:
            raw[columns] = numbers(values)
        return raw

    def _rows(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        n = len(self.feature_names)
        if X.ndim != 2 or X.shape[1] < n:
            raise ValueError(
                f"X must be (rows, {n}) in the order of feature_names, got shape {X.shape}"
            )
        X = X[:, :n]  # columns beyond the known features have no weights yet
        return self._scaler.transform(X) if self._scaler else X.astype(np.float32)

    def _outputs(self, Z: np.ndarray) -> np.ndarray:
        return forward_batch(self._weights, self._biases, Z)[-1]

    def _proba(self, Z: np.ndarray) -> np.ndarray:
        logits = self._outputs(Z).astype(np.float64)
        logits -= logits.max(axis=1, keepdims=True, initial=-np.inf) if logits.size else 0.0
        np.exp(logits, out=logits)
        logits /= logits.sum(axis=1, keepdims=True)
        return logits

    def _regress(self, Z: np.ndarray) -> np.ndarray:
        out = self._outputs(Z)[:, 0].astype(np.float64)
        return self._target.mean + self._target.std * out


def probabilities(logits: list[float]) -> list[float]:
    """Softmax in float64."""
    if not logits:
        return []
    top = max(logits)
    e = [math.exp(z - top) for z in logits]
    total = sum(e)
    return [v / total for v in e]


def _check_shapes(weights, biases, n_features: int, scaler: Standardizer | None) -> None:
    inputs = n_features
    for W, b in zip(weights, biases, strict=True):
        if W.dtype != np.float32 or W.ndim != 2 or W.shape[1] != inputs or b.shape != W.shape[:1]:
            raise ValueError("the snapshot's layers do not fit together")
        inputs = W.shape[0]
    if scaler is not None and len({a.shape for a in scaler.state_dict().values()}) != 1:
        raise ValueError("the snapshot's input statistics do not fit together")
    if scaler is not None and len(scaler.count) < n_features:
        raise ValueError("the snapshot's input statistics do not cover its features")


state.register("MLPPredictor", MLPPredictor.from_state)
