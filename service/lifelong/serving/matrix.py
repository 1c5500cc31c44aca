"""`lifelong.v1.Matrix` requests: dense rows as one array in, `MatrixPredictions` out.

Whole-array NumPy operations, no Python per row: for `examples`, building and reading a message
per row costs more than the network's forward pass.

>>> from lifelong.v1 import lifelong_pb2 as pb
>>> request = pb.PredictBatchRequest(matrix=pb.Matrix(columns=2, values=[1, 2, 3, 4]))
>>> matrix_inputs(request, ("a", "b")).tolist()
[[1.0, 2.0], [3.0, 4.0]]

"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from lifelong.samples import FLOAT32_MAX, InvalidSample
from lifelong.v1 import lifelong_pb2 as pb

if TYPE_CHECKING:
    from lifelong.model import Predictor


def matrix_inputs(
    request: pb.PredictBatchRequest | pb.PredictStreamRequest, feature_names: Sequence
) -> np.ndarray:
    """The request's `matrix` as an (n, len(feature_names)) float64 array, for a model that has
    features. Raises `InvalidSample` saying what to fix."""
    if request.examples:
        raise InvalidSample(
            "invalid_schema", "the request has both examples and matrix; send the rows in one"
        )
    matrix, n_features = request.matrix, len(feature_names)
    X = np.array(matrix.values, dtype=np.float64)
    if not X.size:  # no rows, nothing to check
        return X.reshape(0, n_features)
    if matrix.columns != n_features:
        raise InvalidSample(
            "dense_size_mismatch",
            f"matrix.columns is {matrix.columns} but the model has {n_features} features "
            "(ModelInfo.feature_names); send a column for each, in that order",
        )
    if X.size % n_features:
        raise InvalidSample(
            "invalid_schema",
            f"matrix.values has {X.size} values, not a multiple of matrix.columns "
            f"({n_features}); send whole rows",
        )
    X = X.reshape(-1, n_features)
    bad = ~(np.abs(X) <= FLOAT32_MAX)  # NaN compares false
    if bad.any():
        i, j = (int(k) for k in np.argwhere(bad)[0])
        raise InvalidSample(
            "non_finite",
            f"matrix row {i}, column {j} (feature {feature_names[j]!r}) is {X[i, j]}; "
            "send finite numbers within float32 range only",
        )
    return X


def matrix_predictions(
    predictor: Predictor, classes: Sequence[pb.Label], X: np.ndarray, out: pb.MatrixPredictions
) -> None:
    """Predict the rows of `X` into `out`: `classes` (the predictor's, as messages) and row-major
    probabilities for a classifier, values for a regressor. Raises `InvalidSample` if an output
    is not finite."""
    if predictor.task == "regression":
        y = predictor.predict_dense(X)
        _check_finite(y)
        out.values.extend(y.tolist())  # a list: extending from an array converts per element
        return
    proba = predictor.predict_proba_dense(X)
    _check_finite(proba)
    out.classes.extend(classes)
    out.probabilities.extend(proba.ravel().tolist())


def _check_finite(outputs: np.ndarray) -> None:
    """Inputs far beyond what the model has seen can overflow its float32 arithmetic."""
    bad = ~np.isfinite(outputs)
    if bad.any():
        raise InvalidSample(
            "non_finite",
            f"matrix row {int(np.argwhere(bad)[0, 0])}: the model's output is not finite for it; "
            "send values on the scale of those the model learned",
        )
