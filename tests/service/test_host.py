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


def test_batches_learn_exactly_what_one_by_one_learning_does():
    """Runs of complete rows go through learn_many; the state must be the reference's, bit for
    bit, through missing and new features, dense rows, new classes and a rejected label."""
    rng = random.Random(0)
    stream = []
    for t in range(3000):
        names = ["a", "b", "c", "d"] if t > 1000 else ["a", "b", "c"]
        x = {name: rng.uniform(-1, 1) for name in names}
        if rng.random() < 0.1:
            del x["a"]
        label = {1500: True, 1600: 1}.get(t, rng.choice("pqr" if t > 2000 else "pq"))
        if t > 1001 and rng.random() < 0.3:  # dense once "d" is known
            dense = np.array([x.get(name, 0.0) for name in names], np.float32)
            stream.append(Sample(None, dense, label))
        else:
            stream.append(Sample(x, None, label))

    reference = small_learner(seed=3)
    for sample in stream:
        try:
            if sample.features is not None:
                reference.learn_one(sample.features, sample.label)
            else:
                reference.learn_dense(sample.dense, sample.label)
        except TypeError:
            pass  # 1 after True: rejected by the host too

    learner = small_learner(seed=3)
    host, rejected, start = ModelHost(learner), [], 0
    while start < len(stream):
        end = start + rng.randint(1, 300)
        host.learn(stream[start:end], source="kafka", on_rejected=lambda s, e: rejected.append(s))
        start = end
    assert rejected == [stream[1600]]
    assert learner.samples_learned == reference.samples_learned == 2999
    assert learner.to_bytes() == reference.to_bytes()
