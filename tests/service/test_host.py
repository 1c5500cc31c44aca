"""ModelHost: snapshots within their staleness bound, offsets with the learning, checkpoints."""

import random
import time

import numpy as np
from conftest import line_sample, small_learner
from lifelong.checkpoint import CheckpointStore
from lifelong.host import ModelHost
from lifelong.model import load
from lifelong.samples import Sample


def samples(n: int, seed: int = 0) -> list[Sample]:
    rng = random.Random(seed)
    return [Sample(x, None, y) for x, y in (line_sample(rng) for _ in range(n))]


def test_snapshot_published_after_refresh_every_samples():
    host = ModelHost(small_learner(), refresh_every_samples=5, refresh_every_seconds=3600)
    first = host.predictor
    assert host.learn(samples(4), source="grpc") == 4
    assert host.predictor is first and first.version == 0
    host.learn(samples(1, seed=1), source="grpc")
    assert host.predictor.version == 5


def test_snapshot_published_after_refresh_every_seconds():
    host = ModelHost(small_learner(), refresh_every_samples=1000, refresh_every_seconds=0.05)
    host.learn(samples(3), source="grpc")
    assert host.predictor.version == 0
    assert not host.refresh() or host.predictor.version == 3  # the bound may already be past
    time.sleep(0.06)
    host.refresh()
    assert host.predictor.version == 3
    assert not host.refresh(), "nothing new to publish"


def test_dense_samples_too_short_are_rejected_at_their_turn():
    host = ModelHost(small_learner(), refresh_every_samples=1)
    rejected = []
    batch = [
        Sample({"x0": 1.0}, None, "a"),
        Sample(None, np.array([1.0, 2.0], np.float32), "b"),  # a second feature, named "1"
        Sample(None, np.array([1.0], np.float32), "b"),  # too short now
        Sample({"x0": 1.0}, None, "a"),
    ]
    learned = host.learn(batch, source="kafka", on_rejected=lambda s, e: rejected.append((s, e)))
    assert learned == 3
    assert [(s is batch[2], e.reason) for s, e in rejected] == [(True, "dense_size_mismatch")]
    assert host.predictor.feature_names == ("x0", "1")
    registry = host.metrics.registry
    labels = {"source": "kafka", "reason": "dense_size_mismatch"}
    assert registry.get_sample_value("lifelong_samples_rejected_total", labels) == 1
    assert registry.get_sample_value("lifelong_samples_learned_total", {"source": "kafka"}) == 3


def test_a_label_equal_to_a_class_of_another_type_is_rejected_not_learned():
    learner = small_learner()
    host = ModelHost(learner)
    host.learn([Sample({"x0": 1.0}, None, True)], source="kafka")
    before = learner.to_bytes()
    rejected = []
    learned = host.learn(
        [Sample({"x0": 1.0}, None, 1)], source="kafka", on_rejected=lambda s, e: rejected.append(e)
    )
    assert learned == 0 and learner.to_bytes() == before
    assert [e.reason for e in rejected] == ["wrong_label_type"]
    assert "label 1 is equal to class True" in rejected[0].message
    assert host.learn([Sample({"x0": -1.0}, None, False)], source="kafka") == 1


def test_checkpoint_holds_state_offsets_and_count(tmp_path):
    store = CheckpointStore(tmp_path)
    host = ModelHost(small_learner(), checkpoints=store)
    host.learn(samples(30), source="kafka", offsets={"t:0": 30})
    host.learn(samples(20, seed=1), source="kafka", offsets={"t:1": 20})
    assert host.checkpoint_due(every_samples=50, every_seconds=3600)
    info = host.checkpoint()
    assert not host.checkpoint_due(every_samples=1, every_seconds=0)
    assert (info.samples_learned, info.offsets) == (50, {"t:0": 30, "t:1": 20})

    checkpoint = store.load_latest()
    assert checkpoint.path == info.path
    assert (checkpoint.samples_learned, checkpoint.offsets) == (50, {"t:0": 30, "t:1": 20})
    resumed = ModelHost(load(checkpoint.learner_state), offsets=checkpoint.offsets)
    assert resumed.samples_learned == 50 and resumed.offsets == host.offsets
    registry = host.metrics.registry
    assert registry.get_sample_value("lifelong_checkpoints_total") == 1
    assert registry.get_sample_value("lifelong_last_checkpoint_timestamp_seconds") > 0

    # Offsets moving without a learned sample (a batch of invalid records) still need saving.
    host.learn([], source="kafka", offsets={"t:0": 31})
    assert host.checkpoint_due(every_samples=1000, every_seconds=0)
