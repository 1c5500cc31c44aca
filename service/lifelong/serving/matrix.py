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
from lifelong.samples import InvalidSample, non_finite
from lifelong.serving.inputs import check_outputs, first_non_finite
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
    cell = first_non_finite(X)
    if cell is not None:
        i, j = cell
        raise non_finite(f"matrix row {i}, column {j} (feature {feature_names[j]!r})", X[i, j])
    return X


def matrix_predictions(
    predictor: Predictor, classes: Sequence[pb.Label], X: np.ndarray, out: pb.MatrixPredictions
) -> None:
    """Predict the rows of `X` into `out`: `classes` (the predictor's, as messages) and row-major
    probabilities for a classifier, values for a regressor. Raises `InvalidSample` if an output
    is not finite."""
    if predictor.task == "regression":
        y = predictor.predict_dense(X)
        check_outputs(y, _matrix_row)
        out.values.extend(y.tolist())  # a list: extending from an array converts per element
        return
    proba = predictor.predict_proba_dense(X)
    check_outputs(proba, _matrix_row)
    out.classes.extend(classes)
    out.probabilities.extend(proba.ravel().tolist())


def _matrix_row(i: int) -> str:
    return f"matrix row {i}: "
