"""What the probes read: a learner's state (waiting, learning, halted) and its markers."""

import random

import pytest
from lifelong.host import LearningHalted, ModelHost
from lifelong.metrics import ServiceMetrics
from lifelong.samples import Sample
from lifelong.status import Board, LearnerProbe
from testsupport import line_sample, small_learner


def samples(n: int, seed: int, scale: float = 1.0) -> list[Sample]:
    rng = random.Random(seed)
    return [
        Sample({k: v * scale for k, v in x.items()}, None, y)
        for x, y in (line_sample(rng) for _ in range(n))
    ]


def test_a_halted_learner_says_why_and_marks_when():
    # Unstandardised inputs of 1e30 with lr 1000 drive any network beyond float32.
    host = ModelHost(small_learner(lr=1000, standardize=False))
    board = Board(LearnerProbe(host), interval=1.0, horizon=10.0)
    board.record()
    assert board.document()["model"]["state"] == "waiting"
    with pytest.raises(LearningHalted):
        host.learn(samples(500, seed=0, scale=1e30), source="grpc")
    board.record()
    document = board.document()
    assert document["model"]["state"] == "halted"
    assert document["model"]["halted"] == host.halted
    assert [e["kind"] for e in document["history"]["events"]] == ["halted"]
    assert document["history"]["series"]["halted"] == [0, 1]


def test_kafka_lag_is_what_the_kafka_loop_last_exported():
    metrics = ServiceMetrics()
    probe = LearnerProbe(ModelHost(small_learner(), metrics=metrics), metrics.consumer_lag)
    assert probe.now()["model"]["kafka_lag"] == {}
    metrics.set_consumer_lag(0, 12)
    metrics.set_consumer_lag(1, 3)
    metrics.set_consumer_lag(0, 7)
    assert probe.now()["model"]["kafka_lag"] == {"0": 7, "1": 3}


def test_regression_charts_mae_not_accuracy():
    probe = LearnerProbe(ModelHost(small_learner("regression")))
    titles = [chart.title for chart in probe.charts]
    assert titles[0] == "Prequential MAE" and "Prequential accuracy" not in titles
    assert probe.now()["model"]["classes"] == []
