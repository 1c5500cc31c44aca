"""Divergence never corrupts the learner, and a client's values cannot cause it.

Standardised inputs and targets are clipped, so one absurd value moves the network no more than
a 10-sigma one. A step that would still make the output or gradient non-finite raises
`LearnerDiverged` before it changes anything, in both paths, with `learned` counting the rows of
a `learn_many` learned before it.
"""

from __future__ import annotations

import numpy as np
import pytest
from lifelong.model import LearnerConfig, LearnerDiverged, LifelongClassifier, LifelongRegressor
from lifelong.model.scaler import Standardizer

PATHS = ["reference", "fast"]


def make(model_type, config: LearnerConfig, path: str):
    model = model_type(config)
    model.fast_path = path == "fast"
    return model


def stream(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 5))
    return X, (X[:, 0] + X[:, 1] > 0).astype(int), 3.0 * X[:, 0] - X[:, 2] + 10.0


def finite(model) -> bool:
    tensors, _ = model._state()
    return all(bool(t.isfinite().all()) for t in tensors.values() if t.is_floating_point())


@pytest.mark.parametrize("path", PATHS)
def test_an_absurd_feature_value_is_clipped_and_learning_goes_on(path: str) -> None:
    X, y, _ = stream(3000)
    model = make(LifelongClassifier, LearnerConfig(hidden=(16, 16), seed=0), path)
    model.learn_many(X[:1000], y[:1000])
    absurd = X[1000].copy()
    absurd[2] = 1e30
    model.learn_dense(absurd, y[1000])
    assert finite(model)
    assert np.abs(model._network.input).max() == model.config.clip  # where 1e30 went
    model.learn_many(X[1001:2000], y[1001:2000])
    assert finite(model)
    assert np.mean(model.predict_dense(X[2000:]).astype(int) == y[2000:]) > 0.9


@pytest.mark.parametrize("path", PATHS)
def test_an_absurd_regression_target_is_clipped_and_learning_goes_on(path: str) -> None:
    X, _, target = stream(3000)
    model = make(LifelongRegressor, LearnerConfig(hidden=(16,), seed=0), path)
    model.learn_many(X[:1000], target[:1000])
    model.learn_dense(X[1000], 1e300)  # squared, beyond float64: counted as 1e100
    model.learn_many(X[1001:2000], target[1001:2000])
    assert finite(model)
    assert np.isfinite(model.predict_dense(X[2000:])).all()


def test_standardised_values_are_clipped_in_predictions_too() -> None:
    scaler = Standardizer(clip=10.0)
    scaler.grow(1)
    z = np.zeros(1, dtype=np.float32)
    for value in (0.0, 1.0, 0.0, 1.0):
        scaler.learn_transform(np.array([value]), z)
    assert scaler.transform(np.array([[1e300], [-1e300], [1.0]])).tolist() == [[10], [-10], [1]]


def diverging(model_type, path: str, plasticity=("cbp",)):
    """A learner with a huge lr and raw inputs: it diverges within a few examples."""
    lr = 1000.0 if model_type is LifelongClassifier else 1.0
    config = LearnerConfig(hidden=(8, 8), lr=lr, standardize=False, plasticity=plasticity)
    return make(model_type, config, path)


def learn_until_it_diverges(model, X, y) -> tuple[int, bytes]:
    """Rows learned one by one before the first `LearnerDiverged`, and the state before it."""
    for i in range(len(X)):
        before = model.to_bytes()
        try:
            model.learn_dense(X[i], y[i])
        except LearnerDiverged as e:
            assert e.learned == 0
            return i, before
    raise AssertionError("did not diverge")


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # NumPy's overflow on the way
@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("model_type", [LifelongClassifier, LifelongRegressor])
def test_a_diverging_step_changes_nothing(path: str, model_type) -> None:
    X, y, target = stream(200)
    X *= 10.0
    labels = y if model_type is LifelongClassifier else target
    model = diverging(model_type, path)
    failed, before = learn_until_it_diverges(model, X, labels)
    assert failed >= 2  # past the first rows (growth: features, classes), on the path tested
    assert model.to_bytes() == before
    assert finite(model)
    with pytest.raises(LearnerDiverged, match="diverged") as raised:  # again, still nothing
        model.learn_dense(X[failed], labels[failed])
    assert isinstance(raised.value, FloatingPointError)  # what callers caught before
    assert model.to_bytes() == before


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("path", PATHS)
def test_learn_many_learns_the_rows_before_the_diverging_one(path: str) -> None:
    X, y, _ = stream(200)
    X *= 100.0
    one_by_one = diverging(LifelongClassifier, path)
    one_by_one.learn_many(X[:2], y[:2])
    failed, before = learn_until_it_diverges(one_by_one, X[2:], y[2:])
    batch = diverging(LifelongClassifier, path)
    with pytest.raises(LearnerDiverged) as raised:
        batch.learn_many(X, y)
    assert raised.value.learned == 2 + failed
    assert batch.to_bytes() == before


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_fast_and_reference_paths_diverge_on_the_same_example() -> None:
    X, y, _ = stream(200)
    X *= 100.0
    learned = {}
    for path in PATHS:
        model = diverging(LifelongClassifier, path, plasticity=())
        with pytest.raises(LearnerDiverged) as raised:
            model.learn_many(X, y)
        learned[path] = raised.value.learned
        assert model.samples_learned == raised.value.learned
    assert learned["fast"] == learned["reference"] > 2


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("path", PATHS)
def test_a_diverging_example_that_grows_the_model_is_undone_with_its_growth(path: str) -> None:
    X, y, _ = stream(200)
    X *= 100.0
    model = diverging(LifelongClassifier, path)
    model.learn_many(X[:2], y[:2])
    failed, before = learn_until_it_diverges(model, X[2:], y[2:])
    x = X[2 + failed]
    for grow in (
        {"x": {**dict(enumerate(x)), "new": 1.0}, "y": 1},
        {"x": dict(enumerate(x)), "y": 7},
    ):
        with pytest.raises(LearnerDiverged):
            model.learn_one(grow["x"], grow["y"])
        assert model.to_bytes() == before
        assert model.fast_path == (path == "fast")
    with pytest.raises(LearnerDiverged):
        model.learn_dense(np.append(x, 1.0), 1)  # a new feature, by position
    assert model.to_bytes() == before


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_non_finite_weights_are_refused_before_anything_changes() -> None:
    model = LifelongClassifier(LearnerConfig(hidden=(16, 16), seed=0))
    model.fast_path = False
    model.learn_one({"x": 1.0}, "a")
    model._network.layers("param")[-1][1][0] = np.inf
    before = model.to_bytes()
    with pytest.raises(LearnerDiverged, match="diverged"):
        model.learn_one({"x": 1.0}, "a")
    assert model.to_bytes() == before


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("path", PATHS)
def test_a_non_finite_weight_of_a_silent_unit_is_refused(path: str) -> None:
    """A -inf incoming weight silences its unit (ReLU of -inf is 0), so its delta is zero and the
    output stays finite; its backpropagated inf * 0 is nan all the same, so the step is refused
    (the fast path may not skip that unit's row for its zero delta)."""
    X, y, _ = stream(60)
    model = make(LifelongClassifier, LearnerConfig(hidden=(16, 16), seed=0), path)
    model.learn_many(X[:50], y[:50])
    W1 = model._network.layers("param")[1][0]
    W1[0] = -np.inf
    before = model.to_bytes()
    with pytest.raises(LearnerDiverged) as raised:
        model.learn_many(X[50:], y[50:])
    assert raised.value.learned == 0
    assert model.to_bytes() == before
