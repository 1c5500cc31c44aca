"""ModelHost: snapshots within their staleness bound, offsets with the learning, checkpoints."""

import gc
import random
import time

import numpy as np
import pytest
from lifelong.checkpoint import CheckpointStore
from lifelong.host import ModelHost
from lifelong.model import load
from lifelong.samples import Sample
from testsupport import line_sample, small_learner


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
    learned = host.learn(
        batch, source="kafka", on_rejected=lambda k, e: rejected.append((batch[k], e))
    )
    assert learned == 3
    assert [(s is batch[2], e.reason) for s, e in rejected] == [(True, "dense_size_mismatch")]
    assert host.predictor.feature_names == ("x0", "1")
    registry = host.metrics.registry
    labels = {"source": "kafka", "reason": "dense_size_mismatch"}
    assert registry.get_sample_value("lifelong_samples_rejected_total", labels) == 1
    assert registry.get_sample_value("lifelong_samples_learned_total", {"source": "kafka"}) == 3


@pytest.mark.parametrize("rows", [1, 3])  # one by one, and in runs through learn_many
def test_a_batch_with_rejected_samples_is_freed_as_soon_as_it_is_dropped(rows):
    """The rejections passed on keep no traceback: it would hold the learning frame, so the
    batch, in a reference cycle that only the cyclic collector frees (issue 16, finding 7)."""
    host = ModelHost(small_learner(), refresh_every_samples=1000)
    host.learn(samples(5), source="kafka")  # the lazy parts built before counting
    bad = [Sample({"x0": 1.0}, None, 7)] * rows  # an integer label in a model of text labels
    rejected = []
    gc.collect()
    gc.disable()
    try:
        learned = host.learn(
            samples(3) + bad + samples(3, seed=1), source="kafka",
            on_rejected=lambda k, e: rejected.append(e.reason),
        )  # fmt: skip
        assert (learned, rejected) == (6, ["wrong_label_type"] * rows)
        assert gc.collect() == 0  # nothing was left for it
    finally:
        gc.enable()


def test_a_label_equal_to_a_class_of_another_type_is_rejected_not_learned():
    learner = small_learner()
    host = ModelHost(learner)
    host.learn([Sample({"x0": 1.0}, None, True)], source="kafka")
    before = learner.to_bytes()
    rejected = []
    learned = host.learn(
        [Sample({"x0": 1.0}, None, 1)], source="kafka", on_rejected=lambda _, e: rejected.append(e)
    )
    assert learned == 0 and learner.to_bytes() == before
    assert [e.reason for e in rejected] == ["wrong_label_type"]
    assert "label 1 (int) is not of this model's label type, bool" in rejected[0].message
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
        if type(sample.label) is not str:  # True and 1: the model's labels are str
            continue
        if sample.features is not None:
            reference.learn_one(sample.features, sample.label)
        else:
            reference.learn_dense(sample.dense, sample.label)

    learner = small_learner(seed=3)
    host, rejected, start = ModelHost(learner), [], 0
    while start < len(stream):
        end = start + rng.randint(1, 300)
        host.learn(
            stream[start:end],
            source="kafka",
            on_rejected=lambda k, e, start=start: rejected.append(stream[start + k]),
        )
        start = end
    assert rejected == [stream[1500], stream[1600]]
    assert learner.samples_learned == reference.samples_learned == 2998
    assert learner.to_bytes() == reference.to_bytes()


def test_new_features_beyond_max_model_features_are_rejected_at_their_turn():
    learner = small_learner()
    host = ModelHost(learner, max_model_features=3)
    host.learn([Sample({"x0": 1.0, "x1": 0.5}, None, "a")], source="grpc")
    before, rejected = learner.to_bytes(), []
    batch = [
        Sample({"x0": 1.0, "x2": 0.5, "x3": 0.1}, None, "a"),  # two new: 4 > 3
        Sample(None, np.array([1, 2, 3, 4], np.float32), "a"),  # dense grows to 4 too
    ]
    learned = host.learn(
        batch, source="kafka", on_rejected=lambda k, e: rejected.append((batch[k], e))
    )
    assert learned == 0 and learner.to_bytes() == before
    assert [(s is b, e.reason) for (s, e), b in zip(rejected, batch, strict=True)] == [
        (True, "too_many_features")
    ] * 2
    assert "brings 2 new features but the model has 2 of at most max_model_features=3" in (
        rejected[0][1].message
    )
    assert "brings 2 new features" in rejected[1][1].message
    registry = host.metrics.registry
    labels = {"source": "kafka", "reason": "too_many_features"}
    assert registry.get_sample_value("lifelong_samples_rejected_total", labels) == 2
    # Up to the limit it grows; at the limit it learns its own features, by name or densely.
    growing = [
        Sample({"x0": 1.0, "x2": 0.5}, None, "a"),
        Sample({"x0": 1.0, "x1": 1.0, "x2": 0.5}, None, "b"),
        Sample(None, np.array([1, 2, 3], np.float32), "a"),
        Sample({"x9": 1.0}, None, "a"),
    ]
    rejected.clear()
    assert (
        host.learn(growing, source="kafka", on_rejected=lambda k, e: rejected.append(growing[k]))
        == 3
    )
    assert rejected == [growing[3]] and learner.feature_names == ("x0", "x1", "x2")


def test_a_model_loaded_with_more_features_than_the_limit_still_learns_them():
    learner = small_learner()
    learner.learn_one({"a": 1.0, "b": 2.0, "c": 3.0}, "p")
    host = ModelHost(learner, max_model_features=2)
    batch = [Sample({"a": 1.0}, None, "q"), Sample(None, np.array([1, 2, 3], np.float32), "p")]
    assert host.learn(batch, source="grpc") == 2


def diverging_host(*, fast_path: bool, **kwargs) -> ModelHost:
    """A host whose learner diverges on `huge()` samples: unstandardised inputs of 1e100, which
    are infinite in the network's float32 (1e30 is not: whether its forward pass overflows
    depends on the order of the sums)."""
    learner = small_learner(lr=1000, standardize=False)
    learner.fast_path = fast_path
    return ModelHost(learner, refresh_every_samples=1, **kwargs)


def huge(n: int, seed: int = 0) -> list[Sample]:
    return [
        Sample({k: v * 1e100 for k, v in s.features.items()}, None, s.label)
        for s in samples(n, seed)
    ]


@pytest.mark.parametrize("fast_path", [False, True], ids=["reference", "fast"])
def test_an_unlearnable_sample_is_rejected_and_learning_goes_on(tmp_path, fast_path):
    host = diverging_host(fast_path=fast_path, checkpoints=CheckpointStore(tmp_path))
    host.learn(samples(2), source="kafka", offsets={"t:0": 2})
    poison = huge(1)[0]
    poll = [*samples(10, seed=1), poison, *samples(5, seed=2)]  # one run for learn_many
    rejected = []
    learned = host.learn(
        poll,
        source="kafka",
        offsets={"t:0": 18},
        on_rejected=lambda k, e: rejected.append((poll[k], e)),
    )
    assert learned == 15 and host.samples_learned == 17
    assert [(s, e.reason) for s, e in rejected] == [(poison, "unlearnable")]
    assert "refused to learn this sample" in str(rejected[0][1])
    assert host.offsets == {"t:0": 18}, "the whole poll is in the state, the poison one refused"
    registry = host.metrics.registry
    rejected_total = {"source": "kafka", "reason": "unlearnable"}
    assert registry.get_sample_value("lifelong_samples_rejected_total", rejected_total) == 1
    refused = sum(
        registry.get_sample_value("lifelong_updates_refused_total", {"reason": reason})
        for reason in ("non_finite_output", "gradient_limit")
    )
    assert refused == 1
    assert host.checkpoint().samples_learned == 17
    assert host.learn(samples(3, seed=3), source="grpc") == 3  # and it goes on
    assert host.predictor.version == 20
    probabilities = host.predictor.predict_proba_one({"x0": 0.1, "x1": 0.2})
    assert probabilities and all(np.isfinite(list(probabilities.values())))


def test_repeated_unlearnable_samples_make_the_learner_recover_and_say_so(caplog):
    host = diverging_host(fast_path=True)
    host.learn(samples(20), source="grpc")
    with caplog.at_level("WARNING", logger="lifelong.host"):
        host.learn([*huge(30), *samples(10, seed=4)], source="grpc")
    assert host.samples_learned == 30
    registry = host.metrics.registry
    shrinks = registry.get_sample_value("lifelong_recoveries_total", {"action": "shrink_step"})
    assert shrinks == 3  # 10 refusals each (recovery_refusals' default)
    assert registry.get_sample_value("lifelong_step_scale_ratio") == 1 / 8
    assert "recovered by itself (shrink_step, 3 time(s)" in caplog.text
