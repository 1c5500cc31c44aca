"""What the service hosts: a `Learner`, the `Predictor` snapshots it serves from, and the
`LearnerStats` it reports. The built-in MLP (`LifelongClassifier`, `LifelongRegressor`) is one;
anything with these methods is another, and the host, checkpoints, the snapshot file, metrics
and gRPC use nothing else.

A learner learns each example once, in order, and keeps no data. Its state goes to bytes in a
safe format and back through `lifelong.model.state`, whose registry maps each kind's name to
the function that restores it.

>>> from lifelong.model import LearnerConfig, LifelongClassifier, load
>>> model: Learner = LifelongClassifier(LearnerConfig(hidden=(4,), seed=0))
>>> model.learn_many([[0.5, 1.0], [-0.5, -1.0]], ["a", "b"])
[]
>>> model.task, model.feature_names, model.classes, model.samples_learned
('classification', ('0', '1'), ('a', 'b'), 2)
>>> load(model.to_bytes()).snapshot().predict_one({"0": 0.5, "1": 1.0}) in ("a", "b")
True
>>> len(model.stats().layers)
1

"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np

Task = Literal["classification", "regression"]


@dataclass(frozen=True)
class LayerStats:
    """One hidden layer, over the last completed telemetry window."""

    width: int
    dead_fraction: float  # units with h > 0 on none of the window's inputs
    dormant_fraction: float  # units active on < 1% of the window's inputs
    tau_dormant_fraction: float  # ReDo: E|h_i| / mean_j E|h_j| <= tau
    effective_rank: float  # Roy & Vetterli on the window's (uncentred) activations
    mean_abs_weight: float  # mean |W| of the layer's incoming weights
    units_replaced: int  # by continual backprop and ReDo, since the start


@dataclass(frozen=True)
class ChallengerStats:
    """A learner that trains a fresh challenger beside the serving incumbent after a drift
    (`lifelong.model.challenger`). Counts are since the start, by why the challenge began: a
    trigger ("drift", "score_drop", "plasticity") or "return" (the deposed incumbent after a
    swap, learning on in case its concept comes back)."""

    active: bool  # a challenger is learning now
    age: int  # rows since the challenge began; 0 when none
    prequential_score: float | None  # the challenger's over those rows; None when none
    incumbent_score: float | None  # the incumbent's over the same rows; None when none
    started: dict[str, int]  # challenges started
    swaps: dict[str, int]  # challengers that replaced the incumbent
    dropped: dict[str, int]  # challengers dropped at their maximum age


@dataclass(frozen=True)
class LearnerStats:
    """What a learner reports. A learner without hidden layers (or whose layers it cannot
    read) has no `layers` and None for the weight measures: the exporter publishes what
    exists, never a made-up zero."""

    samples_learned: int
    prequential_score: float  # accuracy (classification) or MAE (regression), recent (fading)
    prequential_loss: float  # log loss / squared error, recent (fading)
    drifts_detected: int
    drift_in_last_window: bool  # within the last telemetry window
    updates_refused: dict[str, int]  # steps refused (the example left the state as it was)
    recoveries: dict[str, int]  # recoveries taken, by action, since the start
    step_scale: float  # of the configured step size: below 1 after a "shrink_step" recovery
    layers: tuple[LayerStats, ...] = ()
    gradient_norm: float | None = None  # L2 norm of the last step's gradient
    mean_abs_weight: float | None = None  # over all parameters
    challenger: ChallengerStats | None = None  # None: the learner has no challenger mechanism
    remediations: dict[str, int] | None = None  # by action; None: no remediation rules


@runtime_checkable
class Predictor(Protocol):
    """Predictions from a fixed state; shares nothing with the learner, so any number of
    threads read it while learning goes on. A feature it does not know is ignored."""

    task: Task
    version: int  # the learner's `samples_learned` when it was taken
    feature_names: tuple[Hashable, ...]
    classes: tuple[Any, ...]  # () for regression

    def predict_one(self, x: dict) -> Any: ...

    def predict_proba_one(self, x: dict) -> dict[Any, float]: ...

    def predict_dense(self, X: np.ndarray) -> np.ndarray:
        """A label (object array; None before any class) or an estimate per row of `X`,
        columns in the order of `feature_names`."""
        ...

    def predict_proba_dense(self, X: np.ndarray) -> np.ndarray:
        """(rows, classes) probabilities, columns in the order of `classes`."""
        ...

    def row_function(self) -> Callable[[list[float]], np.ndarray | float]:
        """One row of every feature in order -> `predict_proba_dense` (classification) or the
        estimate (regression) for it, with as little per-call work as the kind can manage."""
        ...

    def to_bytes(self) -> bytes:
        """The snapshot in the state format (`lifelong.model.state.load` reads it back)."""
        ...


@runtime_checkable
class Learner(Protocol):
    """A model that learns from a stream, one example at a time, in order, forever.

    A step the learner cannot take (it would make it non-finite) is refused, never raised:
    the example leaves the state as it was and is counted in `stats().updates_refused`. A
    label of the wrong type or a bad value raises `TypeError` / `ValueError` before anything
    changes.
    """

    task: Task

    @property
    def feature_names(self) -> tuple[Hashable, ...]:
        """Known features, in the order of dense rows."""
        ...

    @property
    def classes(self) -> tuple[Any, ...]:
        """Known classes, in the order of probability columns; () for regression."""
        ...

    @property
    def samples_learned(self) -> int: ...

    def learn_one(self, x: dict, y: Any) -> None:
        """Learn one example given by feature name (river's convention)."""
        ...

    def learn_many(
        self,
        X: np.ndarray | Sequence[Sequence[float]],
        y: Sequence[Any],
        refused: list[int] | None = None,
    ) -> list[int]:
        """Learn the rows of `X` (in the order of `feature_names`; columns beyond them are new
        features named by position) one at a time, in order. Returns the positions of refused
        rows, also appended to `refused`, which says which were refused even when a bad label
        raises at its row."""
        ...

    def snapshot(self) -> Predictor:
        """A frozen copy for serving; `version` is `samples_learned`."""
        ...

    def stats(self) -> LearnerStats: ...

    def to_bytes(self) -> bytes:
        """The whole state; `lifelong.model.state.load` continues bit for bit from it."""
        ...
