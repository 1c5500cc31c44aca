"""What one client may add to the model over gRPC (`lifelong.admission`), on a live server: each
refusal says which limit, with INVALID_ARGUMENT (wrong whatever the model) or RESOURCE_EXHAUSTED
(no room in the model yet), is counted, and changes nothing."""

from __future__ import annotations

import grpc
import pytest
from lifelong.admission import Limits
from lifelong.host import ModelHost
from lifelong.v1 import lifelong_pb2 as pb
from testsupport import small_learner

LIMITS = Limits(max_classes=3, max_label_length=8, max_new_features_per_sample=5,
                feature_growth_burst=6, feature_growth_per_1000_samples=100)  # fmt: skip


def sample(features: dict[str, float], label: pb.Label) -> pb.LearnRequest:
    return pb.LearnRequest(sample=pb.Sample(features=pb.Features(named=features), label=label))


@pytest.fixture
def served(serve):
    return serve(ModelHost(small_learner(), refresh_every_samples=1, limits=LIMITS))


def refusal(served, request: pb.LearnRequest) -> tuple[grpc.StatusCode, str]:
    before = served.host.predictor.version, served.host.predictor.feature_names
    with pytest.raises(grpc.RpcError) as error:
        served.learning.Learn(request)
    assert (served.host.predictor.version, served.host.predictor.feature_names) == before
    return error.value.code(), error.value.details()


def rejected(served, reason: str) -> float:
    labels = {"source": "grpc", "reason": reason}
    return served.host.metrics.registry.get_sample_value("lifelong_samples_rejected_total", labels)


def test_a_label_of_another_type_than_the_first_class_is_invalid_argument(served):
    """Finding 2: True and 1 are one class to Python; the first class's type decides."""
    served.learning.Learn(sample({"x": 1.0}, pb.Label(boolean=True)))
    code, details = refusal(served, sample({"x": 1.0}, pb.Label(integer=1)))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert details.startswith("wrong_label_type: label 1 (int) is not of this model's label type")
    assert refusal(served, sample({"x": 1.0}, pb.Label(text="yes")))[0] == code
    served.learning.Learn(sample({"x": -1.0}, pb.Label(boolean=False)))
    info = served.model.GetModelInfo(pb.GetModelInfoRequest())
    assert [c.WhichOneof("value") for c in info.classes] == ["boolean", "boolean"]
    prediction = served.predictions.Predict(pb.PredictRequest(features=pb.Features(named={"x": 1})))
    assert prediction.prediction.label.WhichOneof("value") == "boolean"
    assert rejected(served, "wrong_label_type") == 2


def test_a_new_class_past_max_classes_is_resource_exhausted(served):
    for label in ("a", "b", "c"):
        served.learning.Learn(sample({"x": 1.0}, pb.Label(text=label)))
    code, details = refusal(served, sample({"x": 1.0}, pb.Label(text="d")))
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "too_many_classes" in details and "max_classes=3" in details
    served.learning.Learn(sample({"x": 1.0}, pb.Label(text="a")))  # known classes still learn
    assert rejected(served, "too_many_classes") == 1


def test_a_long_label_is_invalid_argument(served):
    code, details = refusal(served, sample({"x": 1.0}, pb.Label(text="x" * 9)))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert details.startswith("label_too_long: the label has 9 characters")


def test_new_features_per_sample_and_their_rate_are_bounded(served):
    """Finding 3: one sample may bring at most `max_new_features_per_sample` new features
    (INVALID_ARGUMENT), and the model grows by at most `feature_growth_per_1000_samples` per
    1000 samples learned beyond `feature_growth_burst` (RESOURCE_EXHAUSTED: later, it may)."""
    code, details = refusal(served, sample({f"f{i}": 1.0 for i in range(6)}, pb.Label(text="a")))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert details.startswith("too_many_new_features: the sample brings 6 new features")
    served.learning.Learn(sample({f"f{i}": 1.0 for i in range(5)}, pb.Label(text="a")))
    served.learning.Learn(sample({"f5": 1.0}, pb.Label(text="a")))  # 6: the burst
    code, details = refusal(served, sample({"f6": 1.0}, pb.Label(text="a")))
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "feature_growth_limited" in details
    for _ in range(8):  # 10 samples learned: one more feature (100 per 1000)
        served.learning.Learn(sample({"f0": 1.0}, pb.Label(text="a")))
    served.learning.Learn(sample({"f6": 1.0}, pb.Label(text="a")))
    assert len(served.host.feature_names) == 7
    assert rejected(served, "too_many_new_features") == rejected(served, "feature_growth_limited")


def test_a_batch_of_more_rows_than_max_batch_rows_is_resource_exhausted(serve):
    served = serve(max_batch_rows=3)
    served.learning.Learn(sample({"x": 1.0}, pb.Label(text="a")))
    rows = [pb.Features(named={"x": float(i)}) for i in range(4)]
    for request in (
        pb.PredictBatchRequest(examples=rows),
        pb.PredictBatchRequest(matrix=pb.Matrix(columns=1, values=[0.0] * 4)),
    ):
        with pytest.raises(grpc.RpcError) as error:
            served.predictions.PredictBatch(request)
        assert error.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "too_many_rows: the request asks for 4 rows" in error.value.details()
    answer = served.predictions.PredictBatch(pb.PredictBatchRequest(examples=rows[:3]))
    assert len(answer.predictions) == 3
