"""`Challenged`: a fresh challenger beside the incumbent after a change, swapped in when better."""

import numpy as np
import pytest
from lifelong.model import (
    Challenged,
    ChallengerConfig,
    LearnerConfig,
    LifelongClassifier,
    LifelongRegressor,
    load,
)
from lifelong.model.base import Learner, Predictor
from lifelong.model.challenger import REASONS

FAST = ChallengerConfig(window=1000, max_age=5000, margin=0.01)  # small, quick to decide
NONE = dict.fromkeys(REASONS, 0)


def teacher(rng, d=4, k=3):
    """A random tanh network's argmax: a concept a small learner needs thousands of rows for."""
    W1, b1 = rng.normal(size=(d, 8)) / np.sqrt(d), rng.normal(size=8) * 0.5
    W2 = rng.normal(size=(8, k)) * 3 / np.sqrt(8)
    return lambda X: (np.tanh(X @ W1 + b1) @ W2).argmax(axis=1)


def change(seed=0, before=20_000, after=10_000):
    """Teacher A, then a new teacher B."""
    rng = np.random.default_rng(seed)
    a, b = teacher(rng), teacher(rng)
    X = rng.normal(size=(before + after, 4))
    return X, np.concatenate([a(X[:before]), b(X[before:])]).tolist()


def classifier(config=FAST, hidden=(16,)):
    return Challenged(LifelongClassifier(LearnerConfig(hidden=hidden, seed=0)), settings=config)


def test_is_a_learner():
    model = classifier()
    assert isinstance(model, Learner)
    model.learn_one({"a": 1.0, "b": 2.0}, "x")
    assert isinstance(model.snapshot(), Predictor)
    assert model.feature_names == ("a", "b") and model.classes == ("x",)
    assert model.config == LearnerConfig(hidden=(16,), seed=0)  # what the status page shows
    s = model.stats()
    assert s.samples_learned == 1 and not s.challenger.active
    assert s.challenger.swaps == NONE


def test_swaps_after_an_abrupt_change():
    X, y = change()
    model = classifier()
    assert model.learn_many(X[:20_000], y[:20_000]) == []
    assert model.stats().challenger.started == NONE
    before, drifts = model.incumbent, model.stats().drifts_detected
    model.learn_many(X[20_000:], y[20_000:])
    s = model.stats()
    assert s.challenger.started["drift"] == 1 and s.challenger.swaps["drift"] == 1
    assert model.incumbent is not before
    assert model.challenger is before  # learns on, in case concept A returns
    assert s.challenger.started["return"] == 1 and s.challenger.age < 10_000
    assert s.drifts_detected >= drifts
    assert model.samples_learned == 30_000  # the model version counts on across the swap
    assert model.snapshot().version == 30_000
    assert model.stats().samples_learned == 30_000


def test_no_swap_on_a_stable_stream():
    rng = np.random.default_rng(1)
    a = teacher(rng)
    X = rng.normal(size=(40_000, 4))
    model = classifier()
    model.learn_many(X, a(X).tolist())
    c = model.stats().challenger
    assert sum(c.swaps.values()) == 0


def test_regression():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(12_000, 3))
    y = np.where(np.arange(12_000) < 6000, X @ [1.0, 2.0, -1.0], X @ [-3.0, 0.5, 2.0] + 5.0)
    model = Challenged(LifelongRegressor(LearnerConfig(hidden=(16,), seed=0)), settings=FAST)
    model.learn_many(X, y.tolist())
    s = model.stats()
    assert s.samples_learned == 12_000 and model.classes == ()
    assert s.challenger.started["drift"] == 1
    assert isinstance(model.snapshot().predict_one({"0": 1.0, "1": 0.0, "2": 0.0}), float)


def test_a_class_the_challenger_has_not_seen():
    X, y = change()
    model = classifier()
    model.learn_many(X[:20_500], y[:20_500])
    assert model.challenger is not None and model.challenger.classes != ()
    new = np.array([[9.0, 9.0, 9.0, 9.0]] * 5)
    model.learn_many(new, ["new"] * 5)
    assert "new" in model.classes and "new" in model.challenger.classes
    model.learn_many(X[20_500:], y[20_500:])
    assert model.stats().challenger.swaps["drift"] == 1
    assert "new" in model.classes


def test_features_keep_their_order_in_the_challenger():
    model = classifier()
    model.learn_one({"b": 1.0, "a": 2.0}, 0)  # sorted: ("a", "b")
    model.learn_many([[0.5, 0.5, 3.0]], [1])  # a third feature, named by position: "2"
    X, y = change()
    model.learn_many(np.hstack([X[:20_500, :2], X[:20_500, 2:3]]), y[:20_500])
    assert model.challenger is not None
    assert model.challenger.feature_names == model.feature_names == ("a", "b", "2")


@pytest.mark.parametrize("at", [15_000, 20_600, 25_000])  # before, during, after a swap
def test_state_continues_bit_for_bit(at):
    X, y = change()
    whole = classifier()
    whole.learn_many(X, y)
    part = classifier()
    part.learn_many(X[:at], y[:at])
    assert (part.challenger is not None) == (at > 20_000)
    assert part.stats().challenger.swaps["drift"] == (at > 21_000)
    restored = load(part.to_bytes())
    assert restored.to_bytes() == part.to_bytes()
    for start in range(at, len(X), 777):  # split differently: decisions fall on the same rows
        restored.learn_many(X[start : start + 777], y[start : start + 777])
    assert restored.to_bytes() == whole.to_bytes()
    assert restored.stats() == whole.stats()


def test_a_bad_label_leaves_both_learners_in_step():
    X, y = change()
    model = classifier()
    model.learn_many(X[:20_500], y[:20_500])
    incumbent, challenger = model.incumbent.samples_learned, model.challenger.samples_learned
    age, refused = model.stats().challenger.age, []
    with pytest.raises(TypeError):
        model.learn_many(X[:3], [0, 1, 2.5], refused)
    assert refused == []
    assert model.incumbent.samples_learned == incumbent + 2
    assert model.challenger.samples_learned == challenger + 2
    assert model.stats().challenger.age == age + 2


def test_settings_are_checked():
    with pytest.raises(ValueError):
        ChallengerConfig(plasticity_every=300, check_every=250)
    with pytest.raises(ValueError):
        ChallengerConfig(margin=-0.1)
