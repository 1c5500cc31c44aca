"""A sample the model refuses to learn (its step would make the network non-finite): the call
fails with INVALID_ARGUMENT saying so, and learning, checkpoints and serving go on."""

import random

import grpc
import pytest
from grpc_health.v1 import health_pb2
from lifelong.checkpoint import CheckpointStore
from lifelong.host import ModelHost
from lifelong.v1 import lifelong_pb2 as pb
from testsupport import line_sample, sample_proto, small_learner

REFUSED = "the model refused to learn this sample"


def unstandardised(tmp_path, *, fast_path: bool) -> ModelHost:
    # Unstandardised inputs: a value of 1e30 (nothing clips it) gives a gradient past the
    # learner's bound, whatever its step size.
    learner = small_learner(standardize=False)
    learner.fast_path = fast_path
    return ModelHost(learner, checkpoints=CheckpointStore(tmp_path), refresh_every_samples=1)


def poison(served) -> tuple[dict, str]:
    """A sample with a value of 1e30 and the label the model does not predict for it (for the
    predicted one the error, and so the gradient, would be zero)."""
    x = {"x0": 1e30, "x1": 1.0}
    predicted = served.host.predictor.predict_one(x)
    return x, "below" if predicted == "above" else "above"


@pytest.mark.parametrize("fast_path", [False, True], ids=["reference", "fast"])
def test_an_unlearnable_sample_fails_its_call_and_learning_goes_on(serve, tmp_path, fast_path):
    served = serve(unstandardised(tmp_path, fast_path=fast_path))
    rng = random.Random(0)
    served.learn(line_sample(rng) for _ in range(20))
    with pytest.raises(grpc.RpcError) as error:
        served.learning.Learn(pb.LearnRequest(sample=sample_proto(*poison(served))))
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.value.details().startswith("unlearnable: " + REFUSED)
    assert "learning goes on" in error.value.details()
    assert served.host.samples_learned == 20
    served.learn(line_sample(rng) for _ in range(5))  # and it does
    assert served.host.samples_learned == 25
    assert served.admin.Checkpoint(pb.CheckpointRequest()).samples_learned == 25
    answer = served.predictions.Predict(
        pb.PredictRequest(features=pb.Features(named={"x0": 0.3, "x1": -0.2}))
    )
    assert answer.model_version == 25
    health = served.health.Check(health_pb2.HealthCheckRequest())
    assert health.status == health_pb2.HealthCheckResponse.SERVING


def test_in_a_stream_the_samples_before_the_unlearnable_one_are_learned(serve, tmp_path):
    served = serve(unstandardised(tmp_path, fast_path=True))
    rng = random.Random(1)
    served.learn(line_sample(rng) for _ in range(3))
    stream = [*(line_sample(rng) for _ in range(3)), poison(served)]
    with pytest.raises(grpc.RpcError) as error:
        served.learn(stream)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    details = error.value.details()
    assert "sample 3 of the stream" in details and REFUSED in details
    assert "the 3 before it were learned" in details
    assert served.host.samples_learned == 6
