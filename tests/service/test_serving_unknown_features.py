"""A row none of whose features the model knows (finding 4: `{"zzz": 1}` got a confident answer
with no sign of it): answered, with `no_known_features` set and counted; the client shows it."""

from __future__ import annotations

import random

import pytest
from lifelong.client import LifelongClient
from lifelong.v1 import lifelong_pb2 as pb
from testsupport import line_sample


def unknown_count(served) -> float:
    registry = served.host.metrics.registry
    return registry.get_sample_value("lifelong_predictions_without_known_features_total")


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_a_row_of_unknown_features_says_so(serve, task):
    served = serve(task=task)
    rng = random.Random(0)
    samples = [line_sample(rng) for _ in range(50)]
    if task == "regression":
        samples = [(x, x["x0"] - x["x1"]) for x, _ in samples]
    served.learn(samples)
    assert unknown_count(served) == 0

    single = served.predictions.Predict(pb.PredictRequest(features=pb.Features(named={"zzz": 1})))
    assert single.prediction.no_known_features
    rows = [
        pb.Features(named={"zzz": 1.0}),
        pb.Features(named={"x0": 0.5, "x1": 0.1}),  # complete
        pb.Features(named={"x0": 0.5, "zzz": 1.0}),  # partial: one known
        pb.Features(dense=[0.5, 0.1]),
        pb.Features(named={"a": 1.0, "b": 2.0}),
    ]
    batch = served.predictions.PredictBatch(pb.PredictBatchRequest(examples=rows))
    assert [p.no_known_features for p in batch.predictions] == [True, False, False, False, True]
    assert unknown_count(served) == 3

    with LifelongClient(served.target) as client:
        assert client.predict({"zzz": 1.0}).no_known_features
        assert not client.predict({"x0": 0.5, "x1": 0.1}).no_known_features
    assert unknown_count(served) == 4
