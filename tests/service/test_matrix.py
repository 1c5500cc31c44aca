"""PredictBatch / PredictStream with a Matrix: the per-row path's numbers, as arrays."""

import json
import random
import subprocess

import grpc
import numpy as np
import pytest
from lifelong.samples import InvalidSample
from lifelong.serving.matrix import matrix_predictions
from lifelong.v1 import lifelong_pb2 as pb
from testsupport import Servers, line_sample


@pytest.fixture(scope="module")
def servers():
    """A classifier and a regressor that learned the same 300 points, as dense rows (so their
    features are "0", "1" in that order); each test leaves them as it found them."""
    servers = Servers()
    rng = random.Random(0)
    stream = [([x["x0"], x["x1"]], y) for x, y in (line_sample(rng) for _ in range(300))]
    classifier = servers.start()
    classifier.learn(stream)
    regressor = servers.start(task="regression")
    regressor.learn((x, 3 * x[0] - x[1]) for x, _ in stream)
    yield {"classification": classifier, "regression": regressor}
    servers.close()


def rows(n: int, seed: int) -> np.ndarray:
    """Points around the learned ones and far beyond them."""
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 2)) * rng.choice([1e-3, 1.0, 1e3, 1e30], size=(n, 1))


def matrix(X: np.ndarray) -> pb.Matrix:
    return pb.Matrix(columns=X.shape[1], values=X.ravel().tolist())


def examples(X: np.ndarray) -> list[pb.Features]:
    return [pb.Features(dense=row) for row in X.tolist()]


def per_row_arrays(predictions, classes) -> list[float]:
    """The per-row answer as the matrix form gives it: probabilities row-major, in the order of
    `classes`, or the values."""
    if not classes:
        return [p.label.number for p in predictions]
    out = []
    for prediction in predictions:
        by_class = {p.label.SerializeToString(): p.probability for p in prediction.probabilities}
        out += [by_class[c.SerializeToString()] for c in classes]
    return out


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_a_matrix_is_answered_as_the_same_rows_one_by_one_to_the_bit(servers, task):
    served = servers[task]
    X = rows(200, seed=1)
    info = served.model.GetModelInfo(pb.GetModelInfoRequest())
    assert info.feature_names == ["0", "1"]

    dense = served.predictions.PredictBatch(pb.PredictBatchRequest(matrix=matrix(X)))
    per_row = served.predictions.PredictBatch(pb.PredictBatchRequest(examples=examples(X)))

    assert dense.model_version == per_row.model_version == 300
    assert len(dense.predictions) == 0
    answer = dense.matrix_predictions
    assert list(answer.classes) == list(info.classes)
    got = list(answer.probabilities if task == "classification" else answer.values)
    assert got == per_row_arrays(per_row.predictions, list(answer.classes))
    if task == "classification":
        assert len(answer.values) == 0
        probabilities = np.array(got).reshape(len(X), len(answer.classes))
        labels = [answer.classes[j] for j in np.argmax(probabilities, axis=1)]
        assert labels == [p.label for p in per_row.predictions]
    else:
        assert len(answer.probabilities) == 0


def test_a_stream_answers_matrix_and_per_row_messages_in_order(servers):
    served = servers["classification"]
    X = rows(30, seed=2)
    requests = [
        pb.PredictStreamRequest(request_id=7, matrix=matrix(X[:10])),
        pb.PredictStreamRequest(request_id=8, examples=examples(X[10:20])),
        pb.PredictStreamRequest(request_id=9, matrix=matrix(X[20:])),
    ]
    answers = list(served.predictions.PredictStream(iter(requests)))

    assert [a.request_id for a in answers] == [7, 8, 9]
    assert [len(a.matrix_predictions.probabilities) for a in answers] == [20, 0, 20]
    assert [len(a.predictions) for a in answers] == [0, 10, 0]
    assert not answers[1].HasField("matrix_predictions")
    batch = served.predictions.PredictBatch(pb.PredictBatchRequest(matrix=matrix(X[20:])))
    assert answers[2].matrix_predictions == batch.matrix_predictions


def test_a_matrix_without_rows_is_answered_without_rows(servers):
    served = servers["classification"]
    response = served.predictions.PredictBatch(pb.PredictBatchRequest(matrix=pb.Matrix()))
    assert response.HasField("matrix_predictions")
    assert len(response.matrix_predictions.classes) == 2
    assert len(response.matrix_predictions.probabilities) == 0
    assert response.model_version == 300


def test_matrix_rows_are_counted_as_predictions(servers):
    served = servers["classification"]

    def predicted() -> float:
        return served.host.metrics.registry.get_sample_value(
            "lifelong_predictions_total", {"rpc": "predict_batch"}
        )

    before = predicted()
    served.predictions.PredictBatch(pb.PredictBatchRequest(matrix=matrix(rows(17, seed=3))))
    assert predicted() == before + 17


NAN, INF = float("nan"), float("inf")

INVALID = {
    "both forms": (
        pb.PredictBatchRequest(
            examples=[pb.Features(dense=[1, 2])], matrix=pb.Matrix(columns=2, values=[1, 2])
        ),
        "invalid_schema: the request has both examples and matrix; send the rows in one",
    ),
    "partial row": (
        pb.PredictBatchRequest(matrix=pb.Matrix(columns=2, values=[1, 2, 3])),
        "invalid_schema: matrix.values has 3 values, not a multiple of matrix.columns (2)",
    ),
    "too few columns": (
        pb.PredictBatchRequest(matrix=pb.Matrix(columns=1, values=[1, 2])),
        "dense_size_mismatch: matrix.columns is 1 but the model has 2 features "
        "(ModelInfo.feature_names); send a column for each, in that order",
    ),
    "too many columns": (
        pb.PredictBatchRequest(matrix=pb.Matrix(columns=3, values=[1, 2, 3])),
        "matrix.columns is 3 but the model has 2 features",
    ),
    "columns unset": (
        pb.PredictBatchRequest(matrix=pb.Matrix(values=[1, 2])),
        "matrix.columns is 0 but the model has 2 features",
    ),
    "nan": (
        pb.PredictBatchRequest(matrix=pb.Matrix(columns=2, values=[1, 2, 3, NAN])),
        "non_finite: matrix row 1, column 1 (feature '1') is nan; "
        "send finite numbers within float32 range only",
    ),
    "infinity": (
        pb.PredictBatchRequest(matrix=pb.Matrix(columns=2, values=[-INF, 0])),
        "matrix row 0, column 0 (feature '0') is -inf",
    ),
    "beyond float32": (
        pb.PredictBatchRequest(matrix=pb.Matrix(columns=2, values=[0, 0, 0, 0, 1e39, 0])),
        "matrix row 2, column 0 (feature '0') is 1e+39",
    ),
}


@pytest.mark.parametrize("case", INVALID)
def test_a_bad_matrix_is_invalid_argument_saying_what_to_fix(servers, case):
    request, message = INVALID[case]
    for served in servers.values():
        with pytest.raises(grpc.RpcError) as error:
            served.predictions.PredictBatch(request)
        assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert message in error.value.details()


def test_a_bad_matrix_ends_a_stream_naming_its_request_id(servers):
    served = servers["classification"]
    requests = [
        pb.PredictStreamRequest(request_id=1, matrix=pb.Matrix(columns=2, values=[1, 2])),
        pb.PredictStreamRequest(request_id=2, matrix=pb.Matrix(columns=2, values=[1, NAN])),
        pb.PredictStreamRequest(request_id=3, matrix=pb.Matrix(columns=2, values=[1, 2])),
    ]
    answers = []
    with pytest.raises(grpc.RpcError) as error:
        answers.extend(served.predictions.PredictStream(iter(requests)))
    assert [a.request_id for a in answers] == [1]
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "request_id 2: non_finite: matrix row 0, column 1" in error.value.details()


def test_a_matrix_before_anything_is_learned_is_a_failed_precondition(serve):
    served = serve()
    with pytest.raises(grpc.RpcError) as error:
        served.predictions.PredictBatch(
            pb.PredictBatchRequest(matrix=pb.Matrix(columns=2, values=[1, 2]))
        )
    assert error.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "learned nothing" in error.value.details()


class NonFinite:
    """A predictor whose second row's output overflowed."""

    task = "classification"

    def predict_proba_dense(self, X):
        return np.array([[0.5, 0.5], [np.nan, np.nan], [1.0, 0.0]])


def test_a_non_finite_output_names_its_row_and_writes_nothing():
    out = pb.MatrixPredictions()
    with pytest.raises(InvalidSample, match="matrix row 1: the model's output is not finite"):
        matrix_predictions(NonFinite(), [pb.Label(text="a")] * 2, np.zeros((3, 2)), out)
    assert out == pb.MatrixPredictions()


@pytest.mark.slow  # the first run builds grpcurl
def test_grpcurl_sends_a_matrix_as_json_numbers(grpcurl, servers):
    served = servers["classification"]
    request = json.dumps({"matrix": {"columns": 2, "values": [0.2, 0.7, -1, 0.5]}})
    command = [str(grpcurl), "-plaintext", "-d", request, served.target]
    result = subprocess.run(
        [*command, "lifelong.v1.PredictionService/PredictBatch"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)["matrix_predictions"]
    assert len(answer["classes"]) == 2
    assert len(answer["probabilities"]) == 4
    assert sum(answer["probabilities"][:2]) == pytest.approx(1)
