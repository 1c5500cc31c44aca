"""Whatever a client sends, the answer is a status that says what to fix, the server keeps
serving and the model does not change."""

import random

import grpc
import pytest
from lifelong.host import ModelHost
from lifelong.v1 import lifelong_pb2 as pb
from testsupport import Servers, line_sample, small_learner

NAN, INF = float("nan"), float("inf")
MAX_FEATURES = 50


def named(**values) -> pb.Features:
    return pb.Features(named=values)


def predict(features: pb.Features) -> tuple[str, object]:
    return "Predict", pb.PredictRequest(features=features)


def learn(features: pb.Features | None, label: pb.Label | None) -> tuple[str, object]:
    return "Learn", pb.LearnRequest(sample=pb.Sample(features=features, label=label))


TEXT = pb.Label(text="above")
CASES = {
    "predict without features": (predict(pb.Features()), "no features given"),
    "predict with nan": (predict(named(x0=NAN)), "feature 'x0' is nan"),
    "predict with inf": (predict(named(x1=-INF)), "feature 'x1' is -inf"),
    "predict beyond float32": (predict(named(x1=1e300)), "float32 range"),
    "predict with nan in an unknown feature": (predict(named(new=NAN)), "feature 'new' is nan"),
    "predict named and dense": (
        predict(pb.Features(named={"x0": 1}, dense=[1, 2])),
        "both by name and densely",
    ),
    "predict dense too short": (
        predict(pb.Features(dense=[1])),
        "dense has 1 values but the model has 2 features",
    ),
    "predict dense with nan beyond the known features": (
        predict(pb.Features(dense=[1, 2, NAN])),
        "dense[2] is nan",
    ),
    "predict dense with nan": (predict(pb.Features(dense=[1, NAN])), "dense[1] is nan"),
    "predict too many features": (
        predict(named(**{f"f{i}": 1.0 for i in range(MAX_FEATURES + 1)})),
        f"more than max_features={MAX_FEATURES}",
    ),
    "batch with one bad row": (
        ("PredictBatch", pb.PredictBatchRequest(examples=[named(x0=1), named(x0=NAN)])),
        "non_finite: examples[1]: feature 'x0' is nan",
    ),
    "learn without label": (learn(named(x0=1), None), "no label"),
    "learn without features": (learn(None, TEXT), "no features given"),
    "learn a number as a class": (
        learn(named(x0=1), pb.Label(number=0.5)),
        "classification labels are text or integers, got 0.5",
    ),
    "learn nan": (learn(named(x0=NAN), TEXT), "non_finite: feature 'x0' is nan"),
    "learn beyond float32": (learn(named(x0=-1e39), TEXT), "float32 range"),
    "learn dense too short": (
        learn(pb.Features(dense=[1]), TEXT),
        "dense_size_mismatch: dense has 1 values but the model has 2 features",
    ),
    "learn too many features": (
        learn(named(**{f"f{i}": 1.0 for i in range(MAX_FEATURES + 1)}), TEXT),
        "too_many_features",
    ),
}


@pytest.fixture(scope="module")
def served():
    """One trained server for every case: each case must leave it as it found it."""
    servers = Servers()
    served = servers.start(max_features=MAX_FEATURES, max_request_bytes=64 * 1024)
    rng = random.Random(0)
    served.learn(line_sample(rng) for _ in range(200))
    yield served
    servers.close()


def state(served) -> tuple[int, bytes]:
    """samples_learned and a reference prediction, bit for bit."""
    info = served.model.GetModelInfo(pb.GetModelInfoRequest())
    reference = served.predictions.PredictBatch(
        pb.PredictBatchRequest(examples=[named(x0=0.3, x1=-0.2), pb.Features(dense=[-1, 0.5])])
    )
    return info.samples_learned, reference.SerializeToString()


@pytest.mark.parametrize("case", CASES)
def test_bad_input_is_invalid_argument_and_changes_nothing(served, case):
    (method, request), message = CASES[case]
    stub = served.predictions if method.startswith("Predict") else served.learning
    before = state(served)
    with pytest.raises(grpc.RpcError) as error:
        getattr(stub, method)(request)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in error.value.details()
    assert state(served) == before


def test_a_bad_sample_ends_a_learn_stream_saying_where(served):
    rng = random.Random(1)
    good = [
        pb.LearnStreamRequest(sample=learn(named(**x), pb.Label(text=y))[1].sample)
        for x, y in (line_sample(rng) for _ in range(3))
    ]
    bad = pb.LearnStreamRequest(sample=learn(named(x0=INF), TEXT)[1].sample)
    learned_before = state(served)[0]
    with pytest.raises(grpc.RpcError) as error:
        served.learning.LearnStream(iter([*good, bad, *good]))
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "sample 3 of the stream" in error.value.details()
    assert "the 3 before it were learned" in error.value.details()
    assert state(served)[0] == learned_before + 3


def test_a_bad_message_ends_a_predict_stream_naming_its_request_id(served):
    requests = [
        pb.PredictStreamRequest(request_id=1, examples=[named(x0=1)]),
        pb.PredictStreamRequest(request_id=2, examples=[named(x0=1), pb.Features()]),
    ]
    answers = []
    with pytest.raises(grpc.RpcError) as error:
        answers.extend(served.predictions.PredictStream(iter(requests)))
    assert [a.request_id for a in answers] == [1]
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "request_id 2: empty_features: examples[1]" in error.value.details()


def test_oversized_request_is_resource_exhausted(served):
    before = state(served)
    huge = pb.PredictBatchRequest(examples=[named(x0=1.0)] * 10_000)
    with pytest.raises(grpc.RpcError) as error:
        served.predictions.PredictBatch(huge)
    assert error.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert state(served) == before


def test_checkpoint_without_a_directory_is_a_failed_precondition(served):
    with pytest.raises(grpc.RpcError) as error:
        served.admin.Checkpoint(pb.CheckpointRequest())
    assert error.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "checkpoint_dir" in error.value.details()


def test_rejections_are_counted_by_source_and_reason(served):
    def rejected() -> float:
        return served.host.metrics.registry.get_sample_value(
            "lifelong_samples_rejected_total", {"source": "grpc", "reason": "non_finite"}
        )

    before = rejected()
    with pytest.raises(grpc.RpcError):
        served.learning.Learn(learn(named(x0=NAN), TEXT)[1])
    assert rejected() == before + 1


def test_new_features_beyond_max_model_features_are_invalid_argument_and_change_nothing(serve):
    served = serve(ModelHost(small_learner(), refresh_every_samples=1, max_model_features=3))
    rng = random.Random(2)
    served.learn(line_sample(rng) for _ in range(20))  # features x0, x1
    before = state(served)
    for features in (named(x0=1, x1=2, x2=3, x3=4), pb.Features(dense=[1, 2, 3, 4])):
        with pytest.raises(grpc.RpcError) as error:
            served.learning.Learn(learn(features, TEXT)[1])
        assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert (
            "too_many_features: the sample brings 2 new features but the model has 2 of at most "
            "max_model_features=3" in error.value.details()
        )
        assert state(served) == before
    info = served.model.GetModelInfo(pb.GetModelInfoRequest())
    assert sorted(info.feature_names) == ["x0", "x1"]  # in the order a proto map gave them
    served.learning.Learn(learn(named(x0=1, x2=3), TEXT)[1])  # one new: up to the limit is fine
    info = served.model.GetModelInfo(pb.GetModelInfoRequest())
    assert sorted(info.feature_names) == ["x0", "x1", "x2"]
