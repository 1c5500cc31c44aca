"""Conversions between plain Python values and the ``lifelong.v1`` protobuf messages.

Torch- and numpy-free, so the server can reuse them (e.g. for ``Label``).

>>> features_to_proto({"x1": 0.5}).named["x1"]
0.5
>>> list(features_to_proto([0.5, -1.0]).dense)
[0.5, -1.0]
>>> label_from_proto(label_to_proto("spam")), label_from_proto(label_to_proto(True))
('spam', True)
"""

from __future__ import annotations

import json
import numbers
from collections.abc import Iterable, Mapping, Sequence
from itertools import chain

from lifelong.client.results import (
    BatchPrediction,
    CheckpointEntry,
    CheckpointResult,
    FeatureValues,
    FrozenSubmodules,
    LabelValue,
    LayerStats,
    LearningState,
    LearnStreamResult,
    MatrixPrediction,
    ModelInfo,
    ModelReplaced,
    PlasticityStats,
    Prediction,
    Task,
)
from lifelong.v1 import lifelong_pb2 as pb

_TASKS: dict[int, Task] = {
    pb.TASK_CLASSIFICATION: "classification",
    pb.TASK_REGRESSION: "regression",
}


def features_to_proto(features: FeatureValues) -> pb.Features:
    """A mapping becomes ``Features.named``; a sequence or 1-D array becomes ``Features.dense``.

    >>> features_to_proto((1, 2.5))
    dense: 1
    dense: 2.5
    <BLANKLINE>
    """
    if isinstance(features, Mapping):
        try:
            return pb.Features(named=features)
        except TypeError as err:
            raise TypeError(_first_bad(features.items(), str)) from err
    if isinstance(features, str | bytes):
        # Both are iterable, and bytes would silently become a vector of small integers.
        kind = type(features).__name__
        raise TypeError(f"features must be a mapping or a sequence of numbers, not {kind}")
    try:
        return pb.Features(dense=features)
    except TypeError as err:
        raise TypeError(_first_bad(enumerate(features), int)) from err


def _first_bad(items: Iterable[tuple[object, object]], key_type: type) -> str:
    """Say which entry is not ``name (or index) -> number``, so the caller can fix it."""
    for key, value in items:
        if not isinstance(key, key_type):
            return f"feature name {key!r} is not a str"
        if not isinstance(value, numbers.Real):
            return f"feature {key!r} is {value!r}, not a number"
    return "a feature value is not a number"  # a one-shot iterator was consumed by the first try


def features_from_proto(features: pb.Features) -> dict[str, float] | list[float]:
    """The named features as a dict, or the dense ones as a list.

    >>> features_from_proto(features_to_proto({"x1": 0.5}))
    {'x1': 0.5}
    """
    if features.named and features.dense:
        raise ValueError("features are given both by name and as a dense vector; give one")
    return list(features.dense) if features.dense else dict(features.named)


def label_to_proto(label: LabelValue) -> pb.Label:
    """``str`` → ``text``, ``bool`` → ``boolean``, ``int`` → ``integer``, ``float`` → ``number``.

    Numpy scalars work too (``numpy.bool_``, ``numbers.Integral``/``numbers.Real``). ``True`` is
    not ``1`` to the server: a model's labels all have its first class's type.

    >>> label_to_proto(3)
    integer: 3
    <BLANKLINE>
    """
    if isinstance(label, str):
        return pb.Label(text=label)
    if isinstance(label, bool) or (  # or numpy's (bool_, bool in NumPy 2), without numpy
        type(label).__module__ == "numpy" and type(label).__name__ in ("bool_", "bool")
    ):
        return pb.Label(boolean=bool(label))
    if isinstance(label, numbers.Integral):
        return pb.Label(integer=int(label))
    if isinstance(label, numbers.Real):
        return pb.Label(number=float(label))
    raise TypeError(f"a label is a str, int, bool or float, not {type(label).__name__}")


def label_from_proto(label: pb.Label) -> LabelValue:
    """The label's value; ``ValueError`` if none is set.

    >>> label_from_proto(pb.Label(number=0.5))
    0.5
    """
    field = label.WhichOneof("value")
    if field is None:
        raise ValueError("the label has no value")
    return getattr(label, field)


def sample_to_proto(features: FeatureValues, label: LabelValue) -> pb.Sample:
    """A labelled example (also the protobuf encoding of a Kafka record)."""
    return pb.Sample(features=features_to_proto(features), label=label_to_proto(label))


def prediction_from_proto(prediction: pb.Prediction, model_version: int) -> Prediction:
    """The prediction, with probabilities most probable first whatever order they arrived in."""
    pairs = ((label_from_proto(p.label), p.probability) for p in prediction.probabilities)
    return Prediction(
        label=label_from_proto(prediction.label),
        probabilities=dict(sorted(pairs, key=lambda pair: -pair[1])),  # stable: ties keep order
        model_version=model_version,
        no_known_features=prediction.no_known_features,
    )


def batch_from_proto(predictions: Iterable[pb.Prediction], model_version: int) -> BatchPrediction:
    """Predictions of one model version, in order."""
    return BatchPrediction(
        predictions=tuple(prediction_from_proto(p, model_version) for p in predictions),
        model_version=model_version,
    )


def matrix_to_proto(rows: Iterable[Sequence[float]]) -> pb.Matrix:
    """Rows of numbers, each in ``ModelInfo.feature_names`` order, as one ``Matrix``: sequences,
    or a 2-D array (its ``tolist()``, the quickest way to Python floats, is used when it has one).

    >>> matrix_to_proto([[1, 2.5], [3, 4]]).values
    [1.0, 2.5, 3.0, 4.0]
    """
    if hasattr(rows, "tolist"):
        rows = rows.tolist()
    if not isinstance(rows, Sequence):
        rows = list(rows)  # counted, then read
    try:
        columns = len(rows[0]) if rows else 0
        values = list(chain.from_iterable(rows))
        matrix = pb.Matrix(columns=columns, values=values)
    except TypeError as err:
        raise TypeError(_first_bad_row(rows)) from err
    if rows and not columns:
        raise ValueError("the rows have no values; send one per feature (ModelInfo.feature_names)")
    if len(values) != columns * len(rows):
        i = next(i for i, row in enumerate(rows) if len(row) != columns)
        raise ValueError(
            f"row {i} has {len(rows[i])} values, row 0 has {columns}; "
            "send one per feature (ModelInfo.feature_names) in every row"
        )
    return matrix


def _first_bad_row(rows: Sequence) -> str:
    """Say which row is not a sequence of numbers, so the caller can fix it."""
    for i, row in enumerate(rows):
        if isinstance(row, Mapping | str | bytes) or not isinstance(row, Iterable):
            return (
                f"row {i} is {type(row).__name__}, not a sequence of numbers in "
                "ModelInfo.feature_names order (features by name go to predict_batch)"
            )
        for j, value in enumerate(row):
            if not isinstance(value, numbers.Real):
                return f"row {i}, column {j} is {value!r}, not a number"
    return "a value is not a number"


def matrix_from_proto(answer: pb.MatrixPredictions, model_version: int) -> MatrixPrediction:
    """Probabilities cut into rows of one value per class; regression values as they came."""
    classes = tuple(label_from_proto(label) for label in answer.classes)
    flat, width = tuple(answer.probabilities), len(classes)
    starts = range(0, len(flat), width) if width else ()
    return MatrixPrediction(
        classes=classes,
        probabilities=tuple(flat[i : i + width] for i in starts),
        values=tuple(answer.values),
        model_version=model_version,
    )


def learn_stream_result_from_proto(response: pb.LearnStreamResponse) -> LearnStreamResult:
    return LearnStreamResult(
        samples_accepted=response.samples_accepted, samples_learned=response.samples_learned
    )


def model_info_from_proto(response: pb.GetModelInfoResponse) -> ModelInfo:
    """Model description; an empty ``config_json`` gives ``config == {}``."""
    return ModelInfo(
        task=_TASKS.get(response.task, "unspecified"),
        feature_names=tuple(response.feature_names),
        classes=tuple(label_from_proto(label) for label in response.classes),
        samples_learned=response.samples_learned,
        model_version=response.model_version,
        config=json.loads(response.config_json) if response.config_json else {},
    )


def stats_from_proto(response: pb.GetPlasticityStatsResponse) -> PlasticityStats:
    layers = tuple(
        LayerStats(
            layer=layer.layer,
            width=layer.width,
            dead_fraction=layer.dead_fraction,
            dormant_fraction=layer.dormant_fraction,
            tau_dormant_fraction=layer.tau_dormant_fraction,
            effective_rank=layer.effective_rank,
            mean_abs_weight=layer.mean_abs_weight,
            units_replaced=layer.units_replaced,
        )
        for layer in response.layers
    )
    return PlasticityStats(
        layers=layers,
        gradient_norm=response.gradient_norm,
        mean_abs_weight=response.mean_abs_weight,
        prequential_score=response.prequential_score,
        prequential_loss=response.prequential_loss,
        drifts_detected=response.drifts_detected,
        samples_learned=response.samples_learned,
    )


def checkpoint_from_proto(response: pb.CheckpointResponse) -> CheckpointResult:
    return CheckpointResult(path=response.path, samples_learned=response.samples_learned)


def checkpoint_entry_from_proto(info: pb.CheckpointInfo) -> CheckpointEntry:
    return CheckpointEntry(
        sequence=info.sequence,
        path=info.path,
        samples_learned=info.samples_learned,
        offsets=dict(info.offsets),
        created=info.create_time.ToNanoseconds() / 1e9,
    )


def learning_state_from_proto(state: pb.LearningState) -> LearningState:
    return LearningState(paused=state.paused, samples_learned=state.samples_learned)


def model_replaced_from_proto(replaced: pb.ModelReplaced) -> ModelReplaced:
    checkpoint = (
        checkpoint_entry_from_proto(replaced.checkpoint)
        if replaced.HasField("checkpoint")
        else None
    )
    return ModelReplaced(samples_learned=replaced.samples_learned, checkpoint=checkpoint)


def frozen_submodules_from_proto(answer: pb.FrozenSubmodules) -> FrozenSubmodules:
    checkpoint = (
        checkpoint_entry_from_proto(answer.checkpoint) if answer.HasField("checkpoint") else None
    )
    return FrozenSubmodules(
        frozen=tuple(answer.frozen), samples_learned=answer.samples_learned, checkpoint=checkpoint
    )
