"""Divergence never corrupts the learner, never stops it, and a client's values cannot cause it.

Standardised inputs and targets are clipped, so one absurd value moves the network no more than
a 10-sigma one, and the step is bounded so that it cannot overshoot whatever the inputs' scale.
A step that would still make the output or gradient non-finite is refused before it changes
anything, in both paths: the learner counts it and goes on; repeated refusals halve the step,
then restart the network.
"""

from __future__ import annotations

import numpy as np
import pytest
import safetensors.torch
from lifelong.model import LearnerConfig, LifelongClassifier, LifelongRegressor, load
from lifelong.model.learner import REFUSAL_REASONS
from lifelong.model.scaler import Standardizer
from lifelong.model.state import metadata

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
    tensors, _ = model.state_dict()
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


def diverging(model_type, path: str, plasticity=("cbp",), **config):
    """A learner with a huge lr, raw inputs and no step bound: it diverges within a few
    examples. Recovery is off unless asked for, so the refusals are what is tested."""
    lr = 1000.0 if model_type is LifelongClassifier else 1.0
    config = {"recovery_refusals": 10**6, **config}
    config = LearnerConfig(
        hidden=(8, 8), lr=lr, standardize=False, plasticity=plasticity, step_bound=0.0, **config
    )
    return make(model_type, config, path)


def refusals(model) -> int:
    return sum(model.stats().updates_refused.values())


def without_refusals(data: bytes) -> tuple[dict, dict]:
    """A state's tensors and metadata but the refusal counters: what a refused step keeps."""
    meta = metadata(data)
    del meta["recovery"]
    return {k: v.numpy().tobytes() for k, v in safetensors.torch.load(data).items()}, meta


def learn_until_refused(model, X, y) -> tuple[int, bytes]:
    """Rows learned one by one before the first refused one, and the state before it."""
    for i in range(len(X)):
        before, count = model.to_bytes(), refusals(model)
        assert model.learn_dense(X[i], y[i]) is None
        if refusals(model) > count:
            return i, before
    raise AssertionError("no step was refused")


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # NumPy's overflow on the way
@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("model_type", [LifelongClassifier, LifelongRegressor])
def test_a_refused_step_changes_nothing_but_its_count(path: str, model_type) -> None:
    X, y, target = stream(200)
    X *= 10.0
    labels = y if model_type is LifelongClassifier else target
    model = diverging(model_type, path)
    failed, before = learn_until_refused(model, X, labels)
    assert failed >= 2  # past the first rows (growth: features, classes), on the path tested
    assert without_refusals(model.to_bytes()) == without_refusals(before)
    assert finite(model)
    assert refusals(model) == 1
    assert set(model.stats().updates_refused) == set(REFUSAL_REASONS)
    model.learn_dense(X[failed], labels[failed])  # again: refused again, still nothing else
    assert refusals(model) == 2
    assert without_refusals(model.to_bytes()) == without_refusals(before)
    assert model.samples_learned == failed


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("path", PATHS)
def test_learn_many_refuses_rows_and_goes_on_as_one_by_one(path: str) -> None:
    X, y, _ = stream(200)
    X *= 100.0
    one_by_one = diverging(LifelongClassifier, path)
    refused = []
    for i in range(len(X)):
        count = refusals(one_by_one)
        one_by_one.learn_dense(X[i], y[i])
        if refusals(one_by_one) > count:
            refused.append(i)
    batch = diverging(LifelongClassifier, path)
    assert batch.learn_many(X, y) == refused
    assert 0 < len(refused) < len(X)  # some refused, and learning went on past them
    assert batch.samples_learned == len(X) - len(refused)
    assert batch.to_bytes() == one_by_one.to_bytes()


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_fast_and_reference_paths_refuse_the_same_first_example() -> None:
    X, y, _ = stream(200)
    X *= 100.0
    first = {}
    for path in PATHS:
        model = diverging(LifelongClassifier, path, plasticity=())
        first[path] = model.learn_many(X, y)[0]
    assert first["fast"] == first["reference"] > 2


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("path", PATHS)
def test_a_refused_example_that_grows_the_model_is_undone_with_its_growth(path: str) -> None:
    X, y, _ = stream(200)
    X *= 100.0
    model = diverging(LifelongClassifier, path)
    model.learn_many(X[:2], y[:2])
    failed, before = learn_until_refused(model, X[2:], y[2:])
    x = X[2 + failed]
    for grow in (
        {"x": {**dict(enumerate(x)), "new": 1.0}, "y": 1},
        {"x": dict(enumerate(x)), "y": 7},
    ):
        model.learn_one(grow["x"], grow["y"])
        assert without_refusals(model.to_bytes()) == without_refusals(before)
        assert model.fast_path == (path == "fast")
    model.learn_dense(np.append(x, 1.0), 1)  # a new feature, by position
    assert without_refusals(model.to_bytes()) == without_refusals(before)
    assert refusals(model) == 4 and model.classes == (0, 1)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_non_finite_weights_are_refused_before_anything_changes() -> None:
    model = LifelongClassifier(LearnerConfig(hidden=(16, 16), seed=0))
    model.fast_path = False
    model.learn_one({"x": 1.0}, "a")
    model._network.layers("param")[-1][1][0] = np.inf
    before = model.to_bytes()
    model.learn_one({"x": 1.0}, "a")
    assert model.stats().updates_refused["non_finite_output"] == 1
    assert without_refusals(model.to_bytes()) == without_refusals(before)


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
    assert model.learn_many(X[50:55], y[50:55]) == [0, 1, 2, 3, 4]
    assert refusals(model) == 5  # the reason depends on the inputs' signs (nan or -inf)
    assert without_refusals(model.to_bytes()) == without_refusals(before)


@pytest.mark.parametrize("kappa", [0.5, 1.0, 2.0])
def test_the_step_bound_keeps_the_output_short_of_its_target(kappa: float) -> None:
    """A linear model's output moves exactly as the first order says. The loss (out - z)² has
    curvature 2, so with the bound κ one example's step moves its output at most 1/κ of the way
    to z: κ = 1 at most reaches it, κ = 1/2 at most mirrors it, κ = 2 stops halfway."""
    rng = np.random.default_rng(1)
    config = LearnerConfig(hidden=(), lr=1000.0, step_bound=kappa, standardize=False)
    model = LifelongRegressor(config)
    model.fast_path = False
    for x in rng.normal(size=(20, 3)) * 50.0:
        model.learn_dense(x, float(x.sum()))
    net = model._network
    ratios = []
    for x in rng.normal(size=(20, 3)) * 50.0:
        y = float(-3.0 * x.sum())
        net.input[...] = x
        before = float(net.forward()[0])
        model.learn_dense(x, y)
        z = model._target.transform(y)  # the standardised target it learned
        net.input[...] = x
        after = float(net.forward()[0])
        ratios.append((after - z) / (before - z))
    assert min(ratios) == pytest.approx(1.0 - 1.0 / kappa, abs=1e-4)  # lr 1000: always bound
    assert max(ratios) <= 1.0 - 1.0 / kappa + 1e-4
    assert refusals(model) == 0


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("path", PATHS)
def test_the_bound_learns_where_the_unbounded_step_diverges(path: str) -> None:
    X, y, _ = stream(3000)
    X *= 100.0
    bounded = make(
        LifelongClassifier, LearnerConfig(hidden=(8, 8), lr=1000.0, standardize=False), path
    )
    assert bounded.learn_many(X[:2000], y[:2000]) == []
    assert finite(bounded)
    assert np.mean(bounded.predict_dense(X[2000:]).astype(int) == y[2000:]) > 0.75
    unbounded = diverging(LifelongClassifier, path)
    assert len(unbounded.learn_many(X[:2000], y[:2000])) > 100


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("path", PATHS)
def test_repeated_refusals_halve_the_step_then_restart_the_network(path: str) -> None:
    X, y, _ = stream(300)
    model = make(LifelongClassifier, LearnerConfig(hidden=(16, 16), recovery_refusals=3), path)
    model.learn_many(X[:100], y[:100])
    model._network.layers("param")[-1][1][0] = np.inf  # every step refused from now on
    scales = []
    for i in range(100, 112):
        model.learn_dense(X[i], y[i])
        scales.append(model.stats().step_scale)
    assert scales == [1.0] * 2 + [0.5] * 3 + [0.25] * 3 + [0.125] * 3 + [0.0625]
    assert model.stats().recoveries == {"shrink_step": 4, "restart": 0}
    for i in range(112, 115):
        model.learn_dense(X[i], y[i])
    stats = model.stats()
    assert stats.recoveries == {"shrink_step": 4, "restart": 1}
    assert stats.updates_refused["non_finite_output"] == 15
    assert stats.step_scale == 1.0 and stats.samples_learned == 100
    assert finite(model) and model.classes == (0, 1)
    model.learn_many(X[115:], y[115:])  # learns again, from a fresh network
    assert model.samples_learned == 100 + len(X) - 115
    assert refusals(model) == 15


def absurd_then_normal(n_absurd: int, n: int):
    """Raw rows and regression targets: `n_absurd` rows with a value of 1e30 (refused: the
    gradient bound), then normal ones."""
    X, _, target = stream(n_absurd + n)
    X[:n_absurd, 0] = 1e30
    return X, target


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_a_halved_step_doubles_back_after_a_window_without_refusals() -> None:
    config = LearnerConfig(hidden=(8,), standardize=False, recovery_refusals=3, recovery_window=50)
    X, y = absurd_then_normal(3, 200)
    model = LifelongRegressor(config)
    model.fast_path = False
    model.learn_many(X[3:10], y[3:10])  # 7 learned: the window ends after 50 attempts
    scales = []
    for x, label in zip(X[:3], y[:3], strict=True):
        model.learn_dense(x, label)
    for x, label in zip(X[10:], y[10:], strict=True):
        scales.append(model.stats().step_scale)
        model.learn_dense(x, label)
    assert model.stats().recoveries["shrink_step"] == 1
    # attempts 10..49 still in the window that had the refusals; 50..99 clean; doubled at 100
    assert scales == [0.5] * (100 - 10) + [1.0] * (len(X) - 100)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_recovery_does_not_depend_on_how_the_stream_is_split() -> None:
    config = LearnerConfig(
        hidden=(8, 8), standardize=False, recovery_refusals=3, recovery_window=50
    )
    X, y = absurd_then_normal(3, 400)
    X, y = np.concatenate([X[3:10], X[:3], X[10:]]), np.concatenate([y[3:10], y[:3], y[10:]])
    whole = LifelongRegressor(config)
    whole.learn_many(X, y)
    pieces = LifelongRegressor(config)
    for start in range(0, len(X), 37):
        pieces.learn_many(X[start : start + 37], y[start : start + 37])
    one_by_one = LifelongRegressor(config)
    for x, label in zip(X, y, strict=True):
        one_by_one.learn_dense(x, label)
    assert whole.stats().recoveries["shrink_step"] == 1
    assert whole.to_bytes() == pieces.to_bytes() == one_by_one.to_bytes()
    reference = LifelongRegressor(config)
    reference.fast_path = False
    reference.learn_many(X, y)
    assert reference.stats().step_scale == whole.stats().step_scale == 1.0
    assert reference.stats().updates_refused == whole.stats().updates_refused


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_a_state_saved_while_the_step_is_halved_continues_bit_for_bit() -> None:
    config = LearnerConfig(hidden=(8,), standardize=False, recovery_refusals=3, recovery_window=50)
    X, y = absurd_then_normal(3, 200)
    X, y = np.concatenate([X[3:10], X[:3], X[10:]]), np.concatenate([y[3:10], y[:3], y[10:]])
    model = LifelongRegressor(config)
    model.learn_many(X[:30], y[:30])
    assert model.stats().step_scale == 0.5
    copy = load(model.to_bytes())
    model.learn_many(X[30:], y[30:])
    copy.learn_many(X[30:], y[30:])
    assert copy.to_bytes() == model.to_bytes()
