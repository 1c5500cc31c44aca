"""Samples as the service sees them, and the validation every source goes through.

Bad input never reaches the learner: each source (gRPC, Kafka JSON, Kafka protobuf) turns its
records into `Sample`s with `make_sample` (or `sample_from_proto`), which raises `InvalidSample`
with a bounded `reason` code and a message that says what to fix.

>>> make_sample(features={"x": 1.0}, label="spam", task="classification", max_features=10)
Sample(features={'x': 1.0}, dense=None, label='spam')

>>> try:
...     make_sample(features={"x": float("nan")}, label=1, task="classification", max_features=10)
... except InvalidSample as e:
...     print(e.reason, "|", e.message)
non_finite | feature 'x' is nan; send finite numbers within float32 range only

"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from numbers import Integral, Real
from typing import Literal

import numpy as np
from lifelong.client.convert import label_from_proto
from lifelong.v1 import lifelong_pb2

Task = Literal["classification", "regression"]
TASKS: tuple[Task, ...] = ("classification", "regression")

# The bounded reason codes: a metric label and the dead-letter header `lifelong-error-reason`.
REASONS = (
    "undecodable",
    "invalid_schema",
    "empty_features",
    "non_finite",
    "wrong_label_type",
    "too_many_features",
    "dense_size_mismatch",
    "oversized",
    "unlearnable",
    # The model's growth (`lifelong.admission`), decided at the sample's turn.
    "too_many_new_features",
    "feature_growth_limited",
    "too_many_classes",
    "label_too_long",
    # A prediction request of more rows than `max_batch_rows` (never a sample).
    "too_many_rows",
)

Label = str | int | float

# The network computes in float32: a feature value beyond its range cannot be represented.
FLOAT32_MAX = float(np.finfo(np.float32).max)


@dataclass(frozen=True, slots=True)
class Sample:
    """One labelled example: named `features` (river's convention) or a float32 `dense` vector
    in the order of the model's feature names; exactly one of them is set."""

    features: dict[str, float] | None
    dense: np.ndarray | None
    label: Label


@dataclass(slots=True)
class Rows:
    """Samples shaped exactly like the model's input when they were decoded: row `i` of `matrix`
    (float64, columns in the order of `names`) with `labels[i]`; `dense[i]` if it came as a dense
    vector rather than by name. Learned as one matrix while the model's features are still
    `names`; otherwise sample by sample (`sample(i)`), with the same result.

    >>> rows = Rows(("a", "b"), np.array([[1.0, 2.0]]), ["spam"], [False])
    >>> rows.sample(0)
    Sample(features={'a': 1.0, 'b': 2.0}, dense=None, label='spam')

    """

    names: tuple
    matrix: np.ndarray
    labels: list
    dense: list[bool]

    def __len__(self) -> int:
        return len(self.labels)

    def sample(self, i: int) -> Sample:
        """Row `i` as the `Sample` its record would have made on its own."""
        row, label = self.matrix[i], self.labels[i]
        if self.dense[i]:
            return Sample(None, row.astype(np.float32), label)
        return Sample(dict(zip(self.names, row.tolist(), strict=True)), None, label)

    def samples(self) -> list[Sample]:
        return [self.sample(i) for i in range(len(self))]


class InvalidSample(ValueError):
    """A record or request that can never be learned or predicted as sent.

    >>> e = InvalidSample("empty_features", "the sample has no features")
    >>> e.reason, str(e)
    ('empty_features', 'empty_features: the sample has no features')

    """

    def __init__(self, reason: str, message: str):
        if reason not in REASONS:
            raise ValueError(f"unknown reason code {reason!r}")
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message

    def detached(self) -> InvalidSample:
        """This error without its traceback and context, to be kept as a rejection: their frames
        (and each frame's caller) would hold the batch that keeps it, in a reference cycle that
        only the cyclic collector frees, long after (a poll of several-MB records, each time).

        >>> try:
        ...     raise InvalidSample("undecodable", "not JSON")
        ... except InvalidSample as e:
        ...     kept = e.detached()
        >>> kept.__traceback__ is None, kept.message
        (True, 'not JSON')

        """
        self.__traceback__ = self.__context__ = self.__cause__ = None
        return self


def validate_features(
    features: Mapping[str, object] | None,
    dense: Sequence[float] | np.ndarray | None,
    *,
    max_features: int,
) -> tuple[dict[str, float] | None, np.ndarray | None]:
    """Check an input given by name or densely (not both); return it as the learner takes it.

    >>> validate_features(None, [1, 2], max_features=2)
    (None, array([1., 2.], dtype=float32))
    >>> validate_features({"a": 1, "b": 2}, None, max_features=1)
    Traceback (most recent call last):
    ...
    lifelong.samples.InvalidSample: too_many_features: 2 features, more than max_features=1; \
send fewer features or raise the server's max_features

    """
    if features is not None and not isinstance(features, Mapping):
        raise InvalidSample("invalid_schema", "named features must map names to numbers")
    if isinstance(dense, str | bytes | Mapping):
        raise InvalidSample("invalid_schema", "dense features must be a list of numbers")
    has_dense = dense is not None and len(dense) > 0
    check_shape(len(features or ()), len(dense) if has_dense else 0, max_features=max_features)
    if has_dense:
        return None, dense_vector(dense)
    named = {}
    for name, value in features.items():
        if not isinstance(name, str):
            raise InvalidSample("invalid_schema", f"feature name {name!r} is not a string")
        # bool is an int to Python but a mistake in a feature vector.
        if isinstance(value, bool) or not isinstance(value, Real):
            raise InvalidSample(
                "invalid_schema", f"feature {name!r} is {value!r}; feature values are numbers"
            )
        try:
            value = float(value)
        except OverflowError:  # an integer beyond any float
            value = math.inf
        if not abs(value) <= FLOAT32_MAX:  # also false for NaN
            raise non_finite(f"feature {name!r}", value)
        named[name] = value
    return named, None


def non_finite(where: str, value: object) -> InvalidSample:
    """The error for a feature value (`where`: a feature, `dense[i]`, a matrix cell) that is not
    a finite float32: the one wording, whichever path found it."""
    return InvalidSample(
        "non_finite", f"{where} is {value}; send finite numbers within float32 range only"
    )


def check_shape(n_named: int, n_dense: int, *, max_features: int) -> None:
    """Check that an input has features by name or densely, not both, and not too many."""
    if n_named and n_dense:
        raise InvalidSample(
            "invalid_schema", "features are given both by name and densely; send one of them"
        )
    if not n_named and not n_dense:
        raise InvalidSample(
            "empty_features", "no features given; send named features or a dense vector"
        )
    if n_named + n_dense > max_features:
        raise InvalidSample(
            "too_many_features",
            f"{n_named + n_dense} features, more than max_features={max_features}; "
            "send fewer features or raise the server's max_features",
        )


def dense_size_mismatch(size: int, n_features: int) -> InvalidSample:
    """The error for a dense input shorter than the model's feature list. (Longer is fine: when
    learned, the values beyond it are new features; when predicting, they are ignored.)"""
    return InvalidSample(
        "dense_size_mismatch",
        f"dense has {size} values but the model has {n_features} features "
        "(ModelInfo.feature_names); send a value for each, in that order",
    )


def dense_vector(values: Sequence[float] | np.ndarray) -> np.ndarray:
    """`values` as a float32 vector, rejecting anything but numbers (NumPy would turn "1.5" and
    `True` into 1.5 and 1.0; named features reject them too), NaN, infinities and numbers beyond
    float32.

    >>> dense_vector([1.5, True])
    Traceback (most recent call last):
    ...
    lifelong.samples.InvalidSample: invalid_schema: dense[1] is True (bool); dense features are \
numbers

    """
    if isinstance(values, np.ndarray):
        if values.dtype.kind not in "fiu":
            raise InvalidSample(
                "invalid_schema", f"dense features must be numbers, got an array of {values.dtype}"
            )
    # One pass in C over the element types; the slow scan only finds the culprit (or a NumPy
    # scalar, which is fine).
    elif not {float, int}.issuperset(map(type, values)):
        for i, value in enumerate(values):
            if isinstance(value, bool) or not isinstance(value, Real):
                raise InvalidSample(
                    "invalid_schema",
                    f"dense[{i}] is {value!r} ({type(value).__name__}); dense features are numbers",
                )
    try:
        with np.errstate(over="ignore"):
            vector = np.asarray(values, dtype=np.float32)
    except (TypeError, ValueError) as e:
        raise InvalidSample("invalid_schema", f"dense features must be numbers ({e})") from None
    except OverflowError:  # an integer beyond any float (JSON allows 400 digits)
        raise InvalidSample(
            "non_finite", "dense has an integer beyond float32 range; send finite numbers only"
        ) from None
    if vector.ndim != 1:
        raise InvalidSample("invalid_schema", "dense features must be a flat list of numbers")
    if not np.isfinite(vector).all():
        i = int(np.flatnonzero(~np.isfinite(vector))[0])
        raise non_finite(f"dense[{i}]", values[i])
    return vector


def validate_label(label: object, *, task: Task) -> Label:
    """Check that `label` suits the task: text, integer or bool for classification, a finite
    number for regression.

    >>> validate_label(3, task="regression")
    3.0
    >>> validate_label(0.5, task="classification")
    Traceback (most recent call last):
    ...
    lifelong.samples.InvalidSample: wrong_label_type: classification labels are text or integers, \
got 0.5 (float)

    """
    if task == "classification":
        if isinstance(label, str | Integral):  # bool is Integral
            return label if isinstance(label, str | bool) else int(label)
        raise InvalidSample(
            "wrong_label_type",
            f"classification labels are text or integers, got {label!r} ({type(label).__name__})",
        )
    if isinstance(label, bool) or not isinstance(label, Real):
        raise InvalidSample(
            "wrong_label_type",
            f"regression labels are numbers, got {label!r} ({type(label).__name__})",
        )
    value = float(label)
    if not math.isfinite(value):
        raise InvalidSample("non_finite", f"label is {value}; send a finite number")
    return value


def make_sample(
    *,
    features: Mapping[str, object] | None = None,
    dense: Sequence[float] | np.ndarray | None = None,
    label: object,
    task: Task,
    max_features: int,
) -> Sample:
    """Validate one labelled example from any source."""
    if label is None:
        raise InvalidSample("invalid_schema", "the sample has no label")
    named, vector = validate_features(features, dense, max_features=max_features)
    return Sample(named, vector, validate_label(label, task=task))


def sample_from_proto(msg: lifelong_pb2.Sample, *, task: Task, max_features: int) -> Sample:
    """Validate a `lifelong.v1.Sample` (a gRPC request or a protobuf Kafka record)."""
    try:
        label = label_from_proto(msg.label)
    except ValueError:
        label = None  # make_sample says what is missing
    return make_sample(
        features=msg.features.named,
        dense=msg.features.dense,
        label=label,
        task=task,
        max_features=max_features,
    )
