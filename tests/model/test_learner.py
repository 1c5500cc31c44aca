"""The river estimators: learning streams, growth, labels, dense calls, snapshots, statistics."""

import math
import re

import numpy as np
import pytest
import torch
from lifelong.model import LearnerConfig, LifelongClassifier, LifelongRegressor
from numerics import U64, assert_within, forward_error_bound, gamma, softmax_rtol
from river import evaluate, metrics
from river.datasets import synth

SMALL = LearnerConfig(hidden=(16, 16), seed=0)


def blobs(classes, n, seed):
    """(x, y) from Gaussian blobs, one per class, in 2-D."""
    centres = {"a": (-2.0, 0.0), "b": (2.0, 0.0), "c": (0.0, 3.0)}
    rng = np.random.default_rng(seed)
    for _ in range(n):
        y = classes[rng.integers(len(classes))]
        cx, cy = centres[y]
        yield {"u": cx + 0.5 * rng.normal(), "v": cy + 0.5 * rng.normal()}, y


def accuracy(model, stream):
    pairs = list(stream)
    return sum(model.predict_one(x) == y for x, y in pairs) / len(pairs)


@pytest.mark.parametrize(
    "dataset",
    [synth.Agrawal(classification_function=2, seed=1), synth.Hyperplane(seed=1, n_features=10)],
    ids=["agrawal", "hyperplane"],
)
def test_learns_a_river_stream_in_progressive_val_score(dataset):
    model = LifelongClassifier()
    metric = evaluate.progressive_val_score(dataset.take(4000), model, metrics.Accuracy())
    majority = max(np.bincount([y for _, y in dataset.take(4000)])) / 4000
    assert metric.get() > max(0.8, majority + 0.2)
    assert model.stats().prequential_score > 0.8  # its own test-then-train score agrees


def test_regressor_learns_friedman():
    model = LifelongRegressor()
    mae = evaluate.progressive_val_score(synth.Friedman(seed=1).take(4000), model, metrics.MAE())
    ys = [y for _, y in synth.Friedman(seed=1).take(4000)]
    assert mae.get() < 0.6 * np.mean(np.abs(np.array(ys) - np.mean(ys)))


def test_regressor_predicts_on_the_target_scale():
    model = LifelongRegressor(SMALL)
    for i in range(2000):
        x = (i * 7919) % 100 / 100
        model.learn_one({"x": x}, 1000.0 + 50.0 * x)
    assert model.predict_one({"x": 0.5}) == pytest.approx(1025.0, abs=3.0)


def test_new_feature_has_zero_weight_and_keeps_predictions_and_optimizer_state():
    model = LifelongClassifier(LearnerConfig(hidden=(8,), optimizer="adam", seed=0))
    for x, y in blobs("ab", 300, seed=0):
        model.learn_one(x, y)
    net = model._network

    def proba(xs):
        return np.array([list(model.predict_proba_one(x).values()) for x in xs])

    def inputs(xs):  # what the network is given for xs
        return np.vstack([model._predictor()._row(x) for x in xs])

    probes = [x for x, _ in blobs("ab", 20, seed=1)]
    before = proba(probes)
    bound_before = forward_error_bound(*net.weights(), inputs(probes))
    # A new column's optimizer state is fresh: Adam's moments 0, its running beta powers 1.
    fresh = {"param": 0, "exp_avg": 0, "exp_avg_sq": 0, "beta1_power": 1, "beta2_power": 1}
    kept = {name: [(W.copy(), b.copy()) for W, b in net.layers(name)] for name in fresh}
    model._add_features(["w"])
    assert model.feature_names == ("u", "v", "w")
    # Growth copies the old elements and fills the new ones: exact, on any CPU.
    for name, value in fresh.items():
        (W0, b0), *rest = net.layers(name)
        (W0_kept, b0_kept), *rest_kept = kept[name]
        np.testing.assert_array_equal(W0[:, 2], value, err_msg=name)
        np.testing.assert_array_equal(W0[:, :2], W0_kept, err_msg=name)
        np.testing.assert_array_equal(b0, b0_kept, err_msg=name)
        for (W, b), (W_kept, b_kept) in zip(rest, rest_kept, strict=True):
            np.testing.assert_array_equal(W, W_kept, err_msg=name)
            np.testing.assert_array_equal(b, b_kept, err_msg=name)
    # The same function, but layer 0's dot products have one more term (0 · 0) and BLAS may sum
    # them in another order: the same probabilities within both sides' rounding.
    with_w = [{**x, "w": 9.0} for x in probes]
    assert not inputs(with_w)[:, 2].any()  # an unseen feature has no spread yet: z-score 0
    delta = bound_before + forward_error_bound(*net.weights(), inputs(with_w))
    rtol = softmax_rtol(delta)[:, None]
    assert_within(proba(probes), before, rtol * before)
    assert_within(proba(with_w), before, rtol * before)


def test_new_class_keeps_the_old_ranking_and_is_learned_quickly():
    model = LifelongClassifier(SMALL)
    for x, y in blobs("ab", 1000, seed=0):
        model.learn_one(x, y)
    assert accuracy(model, blobs("ab", 200, seed=1)) > 0.97
    probes = [x for x, _ in blobs("ab", 20, seed=2)]
    inputs = np.vstack([model._predictor()._row(x) for x in probes])
    before = [model.predict_proba_one(x) for x in probes]
    bound = forward_error_bound(*model._network.weights(), inputs)
    model._add_class("c")
    after = [model.predict_proba_one(x) for x in probes]
    # p_a / p_b = exp(z_a - z_b), and the old logits are the same function's, summed by BLAS
    # maybe in another blocking: each moves by at most both sides' bounds. Each side's float64
    # softmax adds its rounding to each probability, and the division one more.
    delta = (bound + forward_error_bound(*model._network.weights(), inputs)[:, :2]).max(axis=1)
    for p, q, d in zip(before, after, delta, strict=True):
        rtol = math.expm1(2 * d) + 2 * (2 * gamma(len(model.classes) + 8, U64) + U64)
        assert q["a"] / q["b"] == pytest.approx(p["a"] / p["b"], rel=rtol, abs=0)
        assert max(p, key=p.get) == max(q, key=q.get)
    # A few dozen examples of the new class among the old ones are enough.
    for x, y in blobs("abc", 90, seed=3):
        model.learn_one(x, y)
    assert accuracy(model, blobs("c", 100, seed=4)) > 0.9
    assert accuracy(model, blobs("ab", 200, seed=5)) > 0.95


def test_first_example_initialises_the_network_randomly():
    model = LifelongClassifier(LearnerConfig(hidden=(8,), seed=0))
    model.learn_one({"a": 1.0, "b": 2.0}, "x")
    (W0, _), (W1, _) = model._network.layers("param")
    assert np.count_nonzero(W0) == W0.size and np.count_nonzero(W1) == W1.size
    model.learn_one({"a": 1.0, "c": 2.0}, "y")  # later growth: zero weights before the step
    assert model._network.sizes == [3, 8, 2]


def test_missing_and_unknown_features():
    model = LifelongClassifier(SMALL)
    for x, y in blobs("ab", 500, seed=0):
        model.learn_one(x, y)
    assert model.predict_one({"u": -2.0}) == "a"  # v missing: its mean
    assert model.predict_one({"u": 2.0, "unknown": 1e6}) == "b"
    model.learn_one({"u": 2.0}, "b")  # learning with a missing feature
    assert model.samples_learned == 501 and model.feature_names == ("u", "v")


@pytest.mark.parametrize("label", [0.5, None, [1], (1,), 1.0])
def test_bad_class_labels_raise_and_change_nothing(label):
    model = LifelongClassifier(SMALL)
    model.learn_one({"x": 1.0}, 1)
    with pytest.raises(TypeError, match="class label"):
        model.learn_one({"x": 1.0, "new": 2.0}, label)
    assert model.samples_learned == 1 and model.feature_names == ("x",)


def test_labels_of_several_types():
    model = LifelongClassifier(SMALL)
    model.learn_one({"x": 1.0}, np.int64(3))
    model.learn_one({"x": 1.0}, np.bool_(False))
    model.learn_one({"x": 1.0}, "three")
    assert model.classes == (3, False, "three")
    assert [type(c) for c in model.classes] == [int, bool, str]
    with pytest.raises(TypeError, match="equal to class"):
        model.learn_one({"x": 1.0}, 0)  # 0 == False in Python: ambiguous


@pytest.mark.parametrize("target", ["1.0", True, None, [1.0]])
def test_bad_regression_targets_raise(target):
    with pytest.raises(TypeError, match="regression target"):
        LifelongRegressor(SMALL).learn_one({"x": 1.0}, target)


@pytest.mark.parametrize("target", [math.nan, math.inf])
def test_non_finite_regression_targets_raise(target):
    with pytest.raises(ValueError, match="finite"):
        LifelongRegressor(SMALL).learn_one({"x": 1.0}, target)


@pytest.mark.parametrize(
    ("x", "error", "message"),
    [
        ({"w": 1.0, "x": "abc"}, TypeError, "'x'='abc'"),
        ({"w": 1.0, "x": math.nan}, ValueError, "'x'=nan"),
        ({"w": 1.0, "x": -math.inf}, ValueError, "'x'=-inf"),
        ({("x", 1): 1.0}, TypeError, "feature names must be str or int"),
    ],
)
def test_bad_features_raise_naming_the_feature_and_change_nothing(x, error, message):
    model = LifelongClassifier(SMALL)
    with pytest.raises(error, match=re.escape(message)):
        model.learn_one(x, "a")
    assert model.samples_learned == 0 and model.feature_names == () and model.classes == ()
    model.learn_one({"w": 1.0, "x": 2.0}, "a")  # a known model: the same refusal
    with pytest.raises(error, match=re.escape(message)):
        model.learn_one(x, "a")
    assert model.samples_learned == 1


def test_dense_and_dict_paths_learn_the_same():
    dense = LifelongClassifier(SMALL)
    named = LifelongClassifier(SMALL)
    rng = np.random.default_rng(0)
    for _ in range(200):
        x = rng.normal(size=3).astype(np.float32)
        y = int(x.sum() > 0)
        dense.learn_dense(x, y)
        named.learn_one({"0": float(x[0]), "1": float(x[1]), "2": float(x[2])}, y)
    assert dense.feature_names == ("0", "1", "2")
    pairs = zip(dense._network.tensors("param"), named._network.tensors("param"), strict=True)
    for (W, b), (W2, b2) in pairs:
        assert torch.equal(W, W2) and torch.equal(b, b2)
    X = rng.normal(size=(5, 3)).astype(np.float32)
    proba = dense.predict_proba_dense(X)
    assert proba.shape == (5, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)
    # One row at a time or five at once, BLAS may sum in another order (gemv, gemm): the same
    # probabilities within both sides' rounding.
    bound = forward_error_bound(*dense._network.weights(), dense._predictor()._rows(X))
    one_by_one = [
        dense.predict_proba_one(dict(zip(dense.feature_names, row.tolist(), strict=True)))
        for row in X
    ]
    one_by_one = np.array([[p[c] for c in dense.classes] for p in one_by_one])
    assert_within(one_by_one, proba, softmax_rtol(2 * bound)[:, None] * proba)
    labels = dense.predict_dense(X)
    assert labels.tolist() == [dense.classes[k] for k in proba.argmax(axis=1)]
    with pytest.raises(ValueError, match="2 values"):
        dense.learn_dense(x[:2], 1)


def test_dense_prediction_before_learning():
    model = LifelongClassifier(SMALL)
    assert model.predict_proba_dense(np.zeros((2, 5))).shape == (2, 0)
    assert model.predict_dense(np.zeros((2, 5))).tolist() == [None, None]
    assert model.predict_one({"x": 1.0}) is None and model.predict_proba_one({}) == {}
    assert LifelongRegressor(SMALL).predict_dense(np.zeros((3, 1))).shape == (3,)


def test_snapshot_is_frozen_and_independent():
    model = LifelongClassifier(SMALL)
    for x, y in blobs("ab", 200, seed=0):
        model.learn_one(x, y)
    snapshot = model.snapshot()
    probes = [x for x, _ in blobs("ab", 10, seed=1)]
    assert [snapshot.predict_proba_one(x) for x in probes] == [
        model.predict_proba_one(x) for x in probes
    ]
    frozen = [snapshot.predict_proba_one(x) for x in probes]
    for x, y in blobs("abc", 200, seed=2):
        model.learn_one({**x, "w": 1.0}, y)
    assert snapshot.version == 200 and model.samples_learned == 400
    assert snapshot.classes == ("b", "a") or snapshot.classes == ("a", "b")
    assert snapshot.feature_names == ("u", "v")
    assert [snapshot.predict_proba_one(x) for x in probes] == frozen


def test_regression_snapshot():
    model = LifelongRegressor(SMALL)
    for i in range(100):
        model.learn_one({"x": i % 10}, float(i % 10))
    snapshot = model.snapshot()
    assert snapshot.predict_one({"x": 3}) == model.predict_one({"x": 3})
    np.testing.assert_allclose(
        snapshot.predict_dense(np.array([[3.0]])), [model.predict_one({"x": 3})]
    )
    with pytest.raises(TypeError):
        snapshot.predict_proba_one({"x": 3})


def test_stats():
    config = LearnerConfig(hidden=(16, 8), cbp_replacement_rate=0.01, telemetry_window=100)
    model = LifelongClassifier(config)
    for x, y in blobs("ab", 1000, seed=0):
        model.learn_one(x, y)
    stats = model.stats()
    assert [layer.width for layer in stats.layers] == [16, 8]
    assert all(layer.units_replaced > 0 for layer in stats.layers)
    assert all(0 < layer.effective_rank <= layer.width for layer in stats.layers)
    assert all(layer.mean_abs_weight > 0 for layer in stats.layers)
    assert stats.gradient_norm > 0 and stats.mean_abs_weight > 0
    assert stats.prequential_score > 0.9 and stats.samples_learned == 1000


def test_drift_is_detected_and_reported_for_a_window():
    model = LifelongClassifier(LearnerConfig(hidden=(16,), telemetry_window=200))
    for x, y in blobs("ab", 1500, seed=0):
        model.learn_one(x, y)
    assert model.stats().drifts_detected == 0  # the error fell while it learned: no drift
    swapped = {"a": "b", "b": "a"}
    detected_after = None
    for i, (x, y) in enumerate(blobs("ab", 300, seed=1)):
        model.learn_one(x, swapped[y])
        if model.stats().drifts_detected:
            detected_after = i
            break
    assert detected_after is not None and detected_after < 100
    assert model.stats().drift_in_last_window


def test_test_then_train():
    model = LifelongClassifier(SMALL)
    model.learn_one({"x": 1.0}, "a")  # predicted None before learning: wrong
    assert model.stats().prequential_score == 0.0
    model.learn_one({"x": 1.0}, "a")  # predicted "a", the only class
    assert model.stats().prequential_score == pytest.approx(1 / (1 + 0.999))


def test_learning_uses_one_thread_and_restores_the_count(monkeypatch):
    seen = []
    outer = torch.outer

    def spy(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return outer(*args, **kwargs)

    monkeypatch.setattr(torch, "outer", spy)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        model = LifelongClassifier(SMALL)
        model.learn_one({"x": 1.0}, "a")
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(threads)
    assert seen and set(seen) == {1}
