"""What the probes read: a learner's state (waiting, learning, halted) and its markers."""

import random

from lifelong.host import ModelHost
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


def test_refused_updates_and_recoveries_are_markers():
    # Unstandardised inputs of 1e30 with lr 1000: steps the learner refuses, then recovers from.
    host = ModelHost(small_learner(lr=1000, standardize=False, recovery_refusals=3))
    board = Board(LearnerProbe(host), interval=1.0, horizon=10.0)
    board.record()
    assert board.document()["model"]["state"] == "waiting"
    host.learn(samples(200, seed=0), source="grpc")
    board.record()
    host.learn(samples(500, seed=1, scale=1e30), source="grpc")
    board.record()
    document = board.document()
    stats = host.stats()
    refused = sum(stats.updates_refused.values())
    assert refused > 0 and stats.recoveries["shrink_step"] > 0
    series = document["history"]["series"]
    assert series["updates_refused"] == [0, 0, refused]
    assert series["recoveries.shrink_step"][-1] == stats.recoveries["shrink_step"]
    kinds = {e["kind"]: e["seq"] for e in document["history"]["events"]}
    assert kinds["update_refused"] == kinds["shrink_step"] == 3  # the third reading
    assert document["stats"]["updates_refused"] == stats.updates_refused
    assert document["model"]["state"] == "learning"


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
