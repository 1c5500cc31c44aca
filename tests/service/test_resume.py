"""`ModelHost.resume`: a standby taking over goes on from a checkpoint's learner and offsets,
serves it at once, and counts the checkpoint it came from as the last one."""

import random

import pytest
from lifelong.checkpoint import CheckpointStore
from lifelong.host import ModelHost
from lifelong.model import load
from lifelong.samples import Sample
from testsupport import line_sample, small_learner


def samples(n: int, seed: int = 0) -> list[Sample]:
    rng = random.Random(seed)
    return [Sample(x, None, y) for x, y in (line_sample(rng) for _ in range(n))]


def test_resume_replaces_learner_offsets_and_snapshot(tmp_path):
    host = ModelHost(
        small_learner(), checkpoints=CheckpointStore(tmp_path), refresh_every_samples=1
    )
    host.learn(samples(30), source="kafka", offsets={"t:0": 30})
    other = small_learner()
    other.learn_many([[0.1, 0.2]] * 5, ["a"] * 5)
    host.take_over(load(other.to_bytes()), {"t:0": 5})
    assert host.samples_learned == 5 and host.offsets == {"t:0": 5}
    assert host.predictor.version == 5  # served at once
    assert not host.checkpoint_due(1, float("inf"))  # it came from a checkpoint
    host.learn(samples(1, seed=1), source="kafka", offsets={"t:0": 6})
    assert host.checkpoint_due(1, float("inf"))


def test_resume_refuses_a_learner_of_the_other_task():
    host = ModelHost(small_learner())
    with pytest.raises(ValueError, match="regression"):
        host.take_over(small_learner("regression"), {})
