"""predict_matrix / predict_matrix_stream against the server double: dense rows as one Matrix on
the wire, array answers decoded into rows."""

import itertools
import math

import grpc
import numpy as np
import pytest
from lifelong.client import MatrixPrediction, ProtocolError
from lifelong.client.convert import matrix_from_proto, matrix_to_proto
from lifelong.v1 import lifelong_pb2 as pb


def sigmoid(score: float) -> float:
    return 1 / (1 + math.exp(-score))


def test_predict_matrix_sends_one_row_major_matrix_and_decodes_rows(client, fake):
    answer = client.predict_matrix([[1.0, 2.0], [-3.0, 0.5], [0.0, 0.0]])

    (request,) = fake.received
    assert request.matrix.columns == 2
    assert list(request.matrix.values) == [1.0, 2.0, -3.0, 0.5, 0.0, 0.0]
    assert len(request.examples) == 0
    assert isinstance(answer, MatrixPrediction)
    assert answer.classes == ("neg", "pos")  # the server's order, not most probable first
    assert answer.probabilities == (
        (1 - sigmoid(3.0), sigmoid(3.0)),
        (1 - sigmoid(-2.5), sigmoid(-2.5)),
        (0.5, 0.5),
    )
    assert answer.labels == ["pos", "neg", "neg"]  # a tie goes to the first class
    assert answer.values == ()
    assert answer.model_version == 42


@pytest.mark.parametrize(
    "rows",
    [
        np.array([[1.0, 2.0], [3.0, 4.0]]),
        np.array([[1, 2], [3, 4]], dtype=np.float32),
        (row for row in [(1, 2), (3, 4.0)]),  # an iterator of tuples
    ],
)
def test_arrays_and_iterables_of_rows_are_sent_alike(client, fake, rows):
    client.predict_matrix(rows)

    (request,) = fake.received
    assert (request.matrix.columns, list(request.matrix.values)) == (2, [1.0, 2.0, 3.0, 4.0])


def test_predict_matrix_of_a_regressor_gives_values(client, fake):
    fake.regression = True
    answer = client.predict_matrix([[1.0, 2.0], [-3.0, 0.5]])

    assert answer.values == (3.0, -2.5)
    assert answer.labels == [3.0, -2.5]
    assert (answer.classes, answer.probabilities) == ((), ())


def test_no_rows_are_answered_with_no_rows(client, fake):
    answer = client.predict_matrix([])

    assert answer.probabilities == ()
    assert answer.model_version == 42


@pytest.mark.parametrize(
    ("rows", "error", "message"),
    [
        ([[1.0, 2.0], [3.0]], ValueError, "row 1 has 1 values, row 0 has 2"),
        ([[], []], ValueError, "the rows have no values"),
        ([[1.0], ["x"]], TypeError, r"row 1, column 0 is 'x', not a number"),
        ([{"a": 1.0}], TypeError, "row 0 is dict, not a sequence of numbers.*predict_batch"),
        ([1.0, 2.0], TypeError, "row 0 is float, not a sequence of numbers"),
        (np.array([1.0, 2.0]), TypeError, "row 0 is float"),
    ],
)
def test_bad_rows_are_refused_before_sending(client, fake, rows, error, message):
    with pytest.raises(error, match=message):
        client.predict_matrix(rows)
    assert fake.received == []


@pytest.mark.parametrize(
    ("tamper", "message"),
    [
        (lambda r: r.matrix_predictions.probabilities.pop(), "3 probabilities for 2 rows of 2"),
        (lambda r: r.ClearField("matrix_predictions"), "older than the matrix form"),
    ],
)
def test_an_answer_of_the_wrong_size_is_a_protocol_error(client, fake, tamper, message):
    fake.tamper = tamper
    with pytest.raises(ProtocolError, match=message) as caught:
        client.predict_matrix([[1.0], [2.0]])
    assert caught.value.code == grpc.StatusCode.INTERNAL


def test_predict_matrix_stream_numbers_requests_and_matches_answers(client, fake):
    batches = [[[1.0]], [[-1.0], [2.0]], np.array([[-3.0], [0.0], [4.0]])]
    answers = list(client.predict_matrix_stream(batches))

    assert [r.request_id for r in fake.received] == [1, 2, 3]
    assert [list(r.matrix.values) for r in fake.received] == [[1.0], [-1.0, 2.0], [-3.0, 0.0, 4.0]]
    assert [a.model_version for a in answers] == [43, 44, 45]
    assert [a.labels for a in answers] == [["pos"], ["neg", "pos"], ["neg", "neg", "pos"]]
    assert answers[1].probabilities[1] == (1 - sigmoid(2.0), sigmoid(2.0))


def test_predict_matrix_stream_checks_each_answer_and_ends_the_call(client, fake):
    fake.tamper = lambda r: r.matrix_predictions.probabilities.extend([0.5, 0.5])
    with pytest.raises(ProtocolError, match="4 probabilities for 1 rows"):
        list(client.predict_matrix_stream(itertools.repeat([[1.0]])))
    assert fake.stream_closed.wait(timeout=5)


def test_matrix_from_proto_cuts_probabilities_into_rows():
    answer = pb.MatrixPredictions(
        classes=[pb.Label(integer=7), pb.Label(integer=3), pb.Label(integer=5)],
        probabilities=[0.2, 0.3, 0.5, 0.6, 0.2, 0.2],
    )
    result = matrix_from_proto(answer, model_version=9)
    assert result.classes == (7, 3, 5)
    assert result.probabilities == ((0.2, 0.3, 0.5), (0.6, 0.2, 0.2))
    assert result.labels == [5, 7]


def test_matrix_to_proto_round_trips_float64_exactly():
    rows = [[0.1, 1e300, -2.5e-300]]
    assert list(matrix_to_proto(rows).values) == rows[0]
