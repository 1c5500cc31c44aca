"""A model that diverged: learning calls fail with FAILED_PRECONDITION saying what to do, nothing
more is learned or checkpointed, and the server keeps serving."""

import random

import grpc
import pytest
from grpc_health.v1 import health_pb2
from lifelong.checkpoint import CheckpointStore
from lifelong.host import ModelHost
from lifelong.v1 import lifelong_pb2 as pb
from testsupport import line_sample, sample_proto, small_learner

HALTED = "learning halted: the model diverged"


def diverging(tmp_path, *, fast_path: bool) -> ModelHost:
    # Unstandardised inputs of 1e30 (see `halt`) drive any network beyond float32.
    learner = small_learner(lr=1000, standardize=False)
    learner.fast_path = fast_path
    return ModelHost(learner, checkpoints=CheckpointStore(tmp_path), refresh_every_samples=1)


def halt(served) -> None:
    rng = random.Random(0)
    with pytest.raises(grpc.RpcError) as error:
        served.learn(
            ({k: v * 1e30 for k, v in x.items()}, y)
            for x, y in (line_sample(rng) for _ in range(500))
        )
    assert error.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert HALTED in error.value.details() and "lower the learning rate" in error.value.details()
    assert "before it were learned" in error.value.details()


def test_learning_calls_fail_with_failed_precondition_once_the_model_diverged(serve, tmp_path):
    served = serve(diverging(tmp_path, fast_path=False))
    halt(served)
    learned = served.host.samples_learned
    with pytest.raises(grpc.RpcError) as error:
        served.learning.Learn(pb.LearnRequest(sample=sample_proto({"x0": 1.0}, "above")))
    assert error.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert HALTED in error.value.details()
    with pytest.raises(grpc.RpcError) as error:
        served.admin.Checkpoint(pb.CheckpointRequest())
    assert error.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert served.host.samples_learned == learned and not list(tmp_path.iterdir())
    info = served.model.GetModelInfo(pb.GetModelInfoRequest())
    assert info.samples_learned == learned
    health = served.health.Check(health_pb2.HealthCheckRequest())
    assert health.status == health_pb2.HealthCheckResponse.SERVING


def test_predictions_are_served_from_the_last_snapshot_after_divergence(serve, tmp_path):
    served = serve(diverging(tmp_path, fast_path=True))
    halt(served)
    answer = served.predictions.Predict(
        pb.PredictRequest(features=pb.Features(named={"x0": 0.3, "x1": -0.2}))
    )
    assert answer.model_version == served.host.samples_learned
