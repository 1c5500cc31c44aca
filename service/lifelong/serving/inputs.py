"""Prediction inputs: a batch of `lifelong.v1.Features` as one matrix for a snapshot.

The checks are `lifelong.samples`' rules; unlike learning, a name the model does not know, or a
dense value beyond its feature list, is ignored (it has no weights for it). A row by name that
lacks some of the model's features is listed as partial: the model takes a missing feature as its
mean, which a matrix cannot say.

>>> from lifelong.v1 import lifelong_pb2 as pb
>>> rows = [pb.Features(named={"b": 2.0, "new": 9.0}), pb.Features(dense=[1.0, 3.0])]
>>> X, partial = features_matrix(rows, {"a": 0, "b": 1}, max_features=10)
>>> X.tolist(), partial
([[0.0, 2.0], [1.0, 3.0]], [0])

"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import grpc
import numpy as np
from lifelong.samples import (
    FLOAT32_MAX,
    InvalidSample,
    check_shape,
    dense_size_mismatch,
    non_finite,
)
from lifelong.v1 import lifelong_pb2 as pb


def features_matrix(
    rows: Sequence[pb.Features], columns: Mapping[str, int], *, max_features: int
) -> tuple[np.ndarray, list[int]]:
    """Rows as an (n, len(columns)) float64 matrix (`columns` maps feature name to column), and
    the indices of the partial rows.

    Raises `InvalidSample` whose message names the offending row when there are several.
    """
    n_features = len(columns)
    X = np.zeros((len(rows), n_features))
    partial = []
    for i, row in enumerate(rows):
        named, dense = row.named, row.dense
        try:
            check_shape(len(named), len(dense), max_features=max_features)
            if dense:
                if len(dense) < n_features:
                    raise dense_size_mismatch(len(dense), n_features)
                for j in range(n_features, len(dense)):  # ignored, but checked all the same
                    if not abs(dense[j]) <= FLOAT32_MAX:
                        raise non_finite(f"dense[{j}]", dense[j])
                X[i] = dense[:n_features]
                continue
            found = 0
            for name in named:  # faster than .items() on a protobuf map
                j = columns.get(name)
                if j is not None:
                    X[i, j] = named[name]
                    found += 1
                elif not abs(named[name]) <= FLOAT32_MAX:  # known ones: checked below, at once
                    raise non_finite(f"feature {name!r}", named[name])
            if found < n_features:
                partial.append(i)
        except InvalidSample as e:
            raise at_row(e, i, len(rows)) from None
    cell = first_non_finite(X)
    if cell is not None:
        i, j = cell
        row = rows[i]
        where = (
            f"dense[{j}]"
            if row.dense
            else f"feature {next(name for name in row.named if columns.get(name) == j)!r}"
        )
        raise at_row(non_finite(where, X[i, j]), i, len(rows))
    return X, partial


def first_non_finite(X: np.ndarray) -> tuple[int, int] | None:
    """Row and column of the first value of `X` that is not a finite float32, or None."""
    bad = ~(np.abs(X) <= FLOAT32_MAX)  # NaN compares false
    if not bad.any():
        return None
    i, j = np.argwhere(bad)[0]
    return int(i), int(j)


def check_outputs(outputs: np.ndarray, row: Callable[[int], str]) -> None:
    """Raise `non_finite` for the first row whose output is not finite, named by `row(i)`:
    inputs far beyond what the model has seen can overflow its float32 arithmetic."""
    bad = ~np.isfinite(outputs)
    if bad.any():
        bad = bad.reshape(len(outputs), -1).any(axis=1)
        raise InvalidSample(
            "non_finite",
            f"{row(int(np.flatnonzero(bad)[0]))}the model's output is not finite for it; "
            "send values on the scale of those the model learned",
        )


def at_row(error: InvalidSample, i: int, n: int) -> InvalidSample:
    """`error` naming row `i` of a batch of `n` (single inputs need no index)."""
    return error if n == 1 else InvalidSample(error.reason, f"examples[{i}]: {error.message}")


# A quota or capacity reached, in Google's API design guide's terms: the model has no room for
# the sample yet, or the request asks for more rows than a call may. Every other refusal is
# INVALID_ARGUMENT (wrong whatever the model's state).
RESOURCE_EXHAUSTED_REASONS = frozenset(
    {"too_many_classes", "feature_growth_limited", "too_many_rows"}
)


def status_of(error: InvalidSample) -> grpc.StatusCode:
    """The status a refused sample or request fails its call with."""
    if error.reason in RESOURCE_EXHAUSTED_REASONS:
        return grpc.StatusCode.RESOURCE_EXHAUSTED
    return grpc.StatusCode.INVALID_ARGUMENT
