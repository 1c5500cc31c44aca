"""What the client returns: small frozen dataclasses of plain Python values.

>>> p = Prediction(label="spam", probabilities={"spam": 0.9, "ham": 0.1}, model_version=7)
>>> p.label, next(iter(p.probabilities))
('spam', 'spam')
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

LabelValue: TypeAlias = str | int | float
"""A class (str or int; bool is sent as int) or a regression target (float)."""

FeatureValues: TypeAlias = Mapping[str, float] | Iterable[float]
"""Features by name, or dense values (sequence, 1-D array) in ``ModelInfo.feature_names`` order."""

Task: TypeAlias = Literal["classification", "regression", "unspecified"]


@dataclass(frozen=True, slots=True)
class Prediction:
    """One prediction.

    ``label`` is the most probable class (classification) or the predicted number (regression).
    ``probabilities`` holds every known class, most probable first (empty for regression).
    ``model_version`` is the number of samples the model had learned when it answered.
    ``no_known_features``: none of the row's named features is one the model knows, so the
    answer is the model's for an input with every feature missing, not about this row.
    """

    label: LabelValue
    probabilities: dict[LabelValue, float]
    model_version: int
    no_known_features: bool = False


@dataclass(frozen=True, slots=True)
class BatchPrediction:
    """Predictions for a batch, one per row and in row order, all from one model version."""

    predictions: tuple[Prediction, ...]
    model_version: int


@dataclass(frozen=True, slots=True)
class MatrixPrediction:
    """Predictions for rows sent as a matrix, in row order, all from one model version.

    Classification: ``probabilities[i][j]`` is row ``i``'s probability of ``classes[j]`` (every
    known class, in the server's order). Regression: ``values[i]`` is row ``i``'s prediction,
    and ``classes`` and ``probabilities`` are empty.

    >>> m = MatrixPrediction(("a", "b"), ((0.25, 0.75), (0.5, 0.5)), (), model_version=7)
    >>> m.labels
    ['b', 'a']
    """

    classes: tuple[LabelValue, ...]
    probabilities: tuple[tuple[float, ...], ...]
    values: tuple[float, ...]
    model_version: int

    @property
    def labels(self) -> list[LabelValue]:
        """Each row's most probable class (the first of equals, in ``classes`` order), or its
        predicted value for regression."""
        if not self.classes:
            return list(self.values)
        classes, columns = self.classes, range(len(self.classes))
        return [classes[max(columns, key=row.__getitem__)] for row in self.probabilities]


@dataclass(frozen=True, slots=True)
class LearnStreamResult:
    """Samples of the stream that were learned, and samples the model has learned in all."""

    samples_accepted: int
    samples_learned: int


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """What the served model knows; ``config`` is the learner configuration parsed from JSON."""

    task: Task
    feature_names: tuple[str, ...]
    classes: tuple[LabelValue, ...]
    samples_learned: int
    model_version: int
    config: dict[str, Any]


@dataclass(frozen=True, slots=True)
class LayerStats:
    """Plasticity statistics of one hidden layer (``layer`` 0 is nearest the input)."""

    layer: int
    width: int
    dead_fraction: float
    dormant_fraction: float
    tau_dormant_fraction: float
    effective_rank: float
    mean_abs_weight: float
    units_replaced: int


@dataclass(frozen=True, slots=True)
class PlasticityStats:
    """Learner health: per-layer statistics, gradient and weight sizes, prequential quality.

    ``prequential_score`` is accuracy (classification) or mean absolute error (regression).
    """

    layers: tuple[LayerStats, ...]
    gradient_norm: float
    mean_abs_weight: float
    prequential_score: float
    prequential_loss: float
    drifts_detected: int
    samples_learned: int


@dataclass(frozen=True, slots=True)
class CheckpointResult:
    """Where the server wrote the checkpoint, and how many samples it holds."""

    path: str
    samples_learned: int


@dataclass(frozen=True, slots=True)
class CheckpointEntry:
    """A checkpoint on the server's disk (`list_checkpoints`); `sequence` is what `roll_back`
    takes."""

    sequence: int
    path: str
    samples_learned: int
    offsets: dict[str, int]  # "topic:partition" -> the next offset its model reads
    created: float  # Unix time


@dataclass(frozen=True, slots=True)
class LearningState:
    """Whether the server learns, after `pause_learning` or `resume_learning`."""

    paused: bool
    samples_learned: int


@dataclass(frozen=True, slots=True)
class ModelReplaced:
    """The model after `roll_back` or `reset_model`, and the checkpoint saved for it (None when
    the server keeps no checkpoints)."""

    samples_learned: int
    checkpoint: CheckpointEntry | None


@dataclass(frozen=True, slots=True)
class FrozenSubmodules:
    """What of a torch module does not learn after `freeze_submodules` or
    `unfreeze_submodules` (names in the order they were frozen), and the checkpoint saved for it
    (None when the server keeps no checkpoints)."""

    frozen: tuple[str, ...]
    samples_learned: int
    checkpoint: CheckpointEntry | None
