"""Prediction inputs: a batch of `lifelong.v1.Features` as one float32 matrix for a snapshot.

The checks are `lifelong.samples`' rules; unlike learning, a name the model does not know, or a
dense value beyond its feature list, is ignored (it has no weights for it), and a name it knows
but the input lacks is 0.

>>> from lifelong.v1 import lifelong_pb2 as pb
>>> rows = [pb.Features(named={"b": 2.0, "new": 9.0}), pb.Features(dense=[1.0, 3.0])]
>>> features_matrix(rows, {"a": 0, "b": 1}, max_features=10)
array([[0., 2.],
       [1., 3.]], dtype=float32)

"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from lifelong.samples import InvalidSample, check_shape, dense_size_mismatch, dense_vector
from lifelong.v1 import lifelong_pb2 as pb


def features_matrix(
    rows: Sequence[pb.Features], columns: Mapping[str, int], *, max_features: int
) -> np.ndarray:
    """Rows as an (n, len(columns)) float32 matrix; `columns` maps feature name to column.

    Raises `InvalidSample` whose message names the offending row when there are several.
    """
    n_features = len(columns)
    X = np.zeros((len(rows), n_features), dtype=np.float32)
    with np.errstate(over="ignore"):  # doubles beyond float32 become inf, reported below
        for i, row in enumerate(rows):
            named, dense = row.named, row.dense
            try:
                check_shape(len(named), len(dense), max_features=max_features)
                if dense:
                    if len(dense) < n_features:
                        raise dense_size_mismatch(len(dense), n_features)
                    if len(dense) > n_features:
                        dense_vector(dense)  # the ignored values are checked all the same
                    X[i] = dense[:n_features]
                    continue
                for name in named:  # faster than .items() on a protobuf map
                    j = columns.get(name)
                    if j is not None:
                        X[i, j] = named[name]
                    elif not math.isfinite(value := named[name]):  # known: checked below, at once
                        raise InvalidSample(
                            "non_finite", f"feature {name!r} is {value}; send finite numbers only"
                        )
            except InvalidSample as e:
                raise _at(e, i, len(rows)) from None
    finite = np.isfinite(X)
    if not finite.all():
        i, j = (int(k) for k in np.argwhere(~finite)[0])
        row = rows[i]
        name, value = (f"dense[{j}]", row.dense[j]) if row.dense else _named_column(row, columns, j)
        error = InvalidSample(
            "non_finite", f"{name} is {value}; send finite numbers within float32 range only"
        )
        raise _at(error, i, len(rows))
    return X


def _named_column(row: pb.Features, columns: Mapping[str, int], j: int) -> tuple[str, float]:
    name = next(name for name in row.named if columns.get(name) == j)
    return f"feature {name!r}", row.named[name]


def _at(error: InvalidSample, i: int, n: int) -> InvalidSample:
    """`error` naming row `i` of a batch of `n` (single inputs need no index)."""
    return error if n == 1 else InvalidSample(error.reason, f"examples[{i}]: {error.message}")
