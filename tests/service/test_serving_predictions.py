"""Predictions over gRPC from a real learner that learns over gRPC."""

import random

import grpc
import pytest
from grpc_health.v1 import health_pb2
from lifelong.v1 import lifelong_pb2 as pb
from testsupport import line_sample, sample_proto


def accuracy(served, holdout) -> float:
    response = served.predictions.PredictBatch(
        pb.PredictBatchRequest(examples=[pb.Features(named=x) for x, _ in holdout])
    )
    assert len(response.predictions) == len(holdout)
    hits = sum(p.label.text == y for p, (_, y) in zip(response.predictions, holdout, strict=True))
    return hits / len(holdout)


def test_predictions_improve_as_the_stream_is_learned(serve):
    served = serve()
    rng = random.Random(0)
    holdout = [line_sample(rng) for _ in range(300)]
    served.learn(line_sample(rng) for _ in range(10))
    before = accuracy(served, holdout)
    response = served.learn(line_sample(rng) for _ in range(3000))
    assert response.samples_accepted == 3000
    assert response.samples_learned == 3010
    after = accuracy(served, holdout)
    assert after >= 0.9, (before, after)
    assert after > before + 0.1, (before, after)


def test_every_prediction_carries_the_snapshots_version(serve):
    served = serve()
    rng = random.Random(1)
    served.learn(line_sample(rng) for _ in range(50))
    x = {"x0": 1.0, "x1": -0.2}
    single = served.predictions.Predict(pb.PredictRequest(features=pb.Features(named=x)))
    assert single.model_version == 50 == served.host.predictor.version
    probabilities = single.prediction.probabilities
    assert {p.label.text for p in probabilities} == {"above", "below"}
    assert single.prediction.label == probabilities[0].label  # most probable first
    assert probabilities[0].probability >= probabilities[1].probability
    assert sum(p.probability for p in probabilities) == pytest.approx(1, abs=1e-5)

    # Named and dense rows in one batch: one pass through the network, one version.
    info = served.model.GetModelInfo(pb.GetModelInfoRequest())
    assert sorted(info.feature_names) == ["x0", "x1"]  # in the order the model met them
    dense = pb.Features(dense=[x[name] for name in info.feature_names])
    batch = served.predictions.PredictBatch(
        pb.PredictBatchRequest(examples=[pb.Features(named=x), dense])
    )
    assert batch.model_version == 50
    for prediction in batch.predictions:  # equal up to rounding in the batched product
        assert prediction.label == single.prediction.label
        expected = [p.probability for p in probabilities]
        assert [p.probability for p in prediction.probabilities] == pytest.approx(expected)

    # A row lacking a feature is answered as the model itself does: the feature at its mean.
    partial = served.predictions.PredictBatch(
        pb.PredictBatchRequest(examples=[dense, pb.Features(named={"x0": 1.0})])
    ).predictions[1]
    expected = served.host.predictor.predict_proba_one({"x0": 1.0})
    assert {p.label.text: p.probability for p in partial.probabilities} == pytest.approx(expected)

    requests = [pb.PredictStreamRequest(request_id=i, examples=[dense] * i) for i in (3, 1, 0)]
    answers = list(served.predictions.PredictStream(iter(requests)))
    assert [a.request_id for a in answers] == [3, 1, 0]
    assert [len(a.predictions) for a in answers] == [3, 1, 0]
    assert all(a.model_version == 50 for a in answers)


def test_health_is_serving_until_shutdown(serve):
    served = serve()
    services = ["", "lifelong.v1.PredictionService", "lifelong.v1.LearningService"]
    for service in services:
        request = health_pb2.HealthCheckRequest(service=service)
        assert served.health.Check(request).status == health_pb2.HealthCheckResponse.SERVING
    served.server.stop(0)
    answer = served.server.health.Check(health_pb2.HealthCheckRequest(), None)
    assert answer.status == health_pb2.HealthCheckResponse.NOT_SERVING


def test_nothing_learned_yet_is_a_failed_precondition(serve):
    served = serve()
    with pytest.raises(grpc.RpcError) as error:
        served.predictions.Predict(pb.PredictRequest(features=pb.Features(named={"x0": 1})))
    assert error.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "learned nothing" in error.value.details()


def test_regression(serve):
    served = serve(task="regression")
    rng = random.Random(2)
    stream = []
    for _ in range(3000):
        x = rng.uniform(-1, 1)
        stream.append(({"x": x}, 3 * x + 1))
    served.learn(stream)
    response = served.predictions.PredictBatch(
        pb.PredictBatchRequest(examples=[pb.Features(named={"x": x}) for x in (-0.5, 0.0, 0.5)])
    )
    predicted = [p.label.number for p in response.predictions]
    assert predicted == pytest.approx([-0.5, 1.0, 2.5], abs=0.3)
    assert all(not p.probabilities for p in response.predictions)

    with pytest.raises(grpc.RpcError) as error:
        served.learning.Learn(pb.LearnRequest(sample=sample_proto({"x": 1.0}, "three")))
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "regression labels are numbers" in error.value.details()
    info = served.model.GetModelInfo(pb.GetModelInfoRequest())
    assert info.task == pb.TASK_REGRESSION
    assert info.samples_learned == 3000


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_a_single_prediction_is_the_batch_paths_to_the_bit(serve, task):
    """Predict answers a complete, valid row by its own shorter path (`Predictor.row_function`):
    the same response, to the last bit, as a one-row PredictBatch; partial rows, extra dense
    values and unknown names included."""
    served = serve(task=task)
    rng = random.Random(3)
    stream = [line_sample(rng) for _ in range(300)]
    if task == "regression":
        stream = [(x, 3 * x["x0"] - x["x1"]) for x, _ in stream]
    served.learn(stream)
    rows = []
    for _ in range(100):
        scale = rng.choice([1e-3, 1.0, 1e3, 1e30])
        x0, x1 = rng.gauss(0, scale), rng.gauss(0, scale)
        rows += [
            pb.Features(dense=[x0, x1]),
            pb.Features(dense=[x0, x1, rng.gauss(0, 1)]),
            pb.Features(named={"x0": x0, "x1": x1}),
            pb.Features(named={"x1": x1, "x0": x0, "unknown": 5.0}),
            pb.Features(named={"x1": x1}),  # partial: the model's own path
        ]
    for row in rows:
        single = served.predictions.Predict(pb.PredictRequest(features=row))
        batch = served.predictions.PredictBatch(pb.PredictBatchRequest(examples=[row]))
        assert single.model_version == batch.model_version == 300
        assert single.prediction == batch.predictions[0], row
        assert single.prediction.SerializeToString() == batch.predictions[0].SerializeToString()
