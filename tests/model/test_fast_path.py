"""The compiled fast path learns exactly what the reference path learns.

Both learners start from the same seed and see the same stream; one learns every example through
the reference path (`fast_path = False`), the other through the kernel (the default), by
`learn_dense` and `learn_many`. They must
end with the same parameters, optimizer state, gradient, scaler, continual-backprop state (same
units replaced, same random draws), telemetry sums and window statistics, and prequential
statistics, up to float32 rounding: the kernel sums dot products in another order than BLAS.

Streams are kept short where the dynamics are chaotic: with momentum 0.9 a one-ulp change of the
initial weights grows to O(1) differences within ~2000 steps on the reference path alone.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from lifelong.model import load
from lifelong.model.config import LearnerConfig
from lifelong.model.fast import unsupported
from lifelong.model.learner import LifelongClassifier, LifelongRegressor

RTOL, ATOL = 1e-4, 1e-5

CASES = {
    "sgd+cbp (default)": (LearnerConfig(hidden=(16, 16), telemetry_window=97), 1500),
    "momentum": (LearnerConfig(hidden=(16, 16), momentum=0.9, telemetry_window=97), 300),
    "adam": (LearnerConfig(hidden=(16, 16), optimizer="adam", lr=1e-3), 1000),
    "cbp often, adaptable, l2_init": (
        LearnerConfig(
            hidden=(8, 12),
            plasticity=("cbp", "l2_init"),
            cbp_utility="adaptable_contribution",
            cbp_replacement_rate=0.02,
            cbp_maturity_threshold=10,
            telemetry_window=50,
        ),
        1000,
    ),
    "plain backprop": (LearnerConfig(hidden=(16,), plasticity=()), 1000),
    "shrink and perturb": (
        LearnerConfig(
            hidden=(16, 16),
            plasticity=("cbp", "shrink_perturb"),
            shrink=1e-4,
            perturb_std=1e-3,
            telemetry_window=97,
        ),
        1500,
    ),
    "redo": (
        LearnerConfig(
            hidden=(16, 16),
            plasticity=("redo",),
            redo_every=50,
            redo_threshold=0.25,
            telemetry_window=97,
        ),
        1000,
    ),
    "everything, adam": (
        LearnerConfig(
            hidden=(12, 8),
            optimizer="adam",
            lr=1e-3,
            plasticity=("cbp", "l2_init", "redo", "shrink_perturb"),
            cbp_replacement_rate=0.02,
            cbp_maturity_threshold=10,
            redo_every=40,
            redo_threshold=0.5,
            perturb_std=1e-3,
            telemetry_window=50,
        ),
        1000,
    ),
    "three layers, raw inputs": (LearnerConfig(hidden=(8, 8, 8), standardize=False), 1000),
    "linear": (LearnerConfig(hidden=()), 1000),
}


def stream(n: int, n_features: int = 6, n_classes: int = 3, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.normal(2.0, 3.0, size=(n, n_features))
    logits = X @ rng.normal(size=(n_features, n_classes))
    y = logits.argmax(axis=1)
    y[:n_classes] = np.arange(n_classes)  # every class known after the first few examples
    return X, y, logits[:, 0] * 10.0 + 5.0


def reference(model_type, config: LearnerConfig, X, y):
    model = model_type(config)
    model.fast_path = False
    for x, label in zip(X, y, strict=True):
        model.learn_dense(x, label)
    return model


def fast(model_type, config: LearnerConfig, X, y, chunks):
    """Learned by `learn_dense` for chunks of size 1, `learn_many` for the others and the rest.
    The first rows add the classes, through the reference path inside `learn_many`."""
    model = model_type(config)
    start = 0
    for size in [*chunks, len(X)]:
        if size == 1:
            model.learn_dense(X[start], y[start])
        else:
            model.learn_many(X[start : start + size], y[start : start + size])
        start += size
    assert model.fast_path_unavailable is None
    return model


def reference_and_fast(model_type, config: LearnerConfig, X, y, chunks):
    return reference(model_type, config, X, y), fast(model_type, config, X, y, chunks)


def assert_same(ref, fast) -> None:
    assert fast.samples_learned == ref.samples_learned
    tensors_ref, meta_ref = ref.state_dict()
    tensors_fast, meta_fast = fast.state_dict()
    assert tensors_fast.keys() == tensors_ref.keys()
    for key, expected in tensors_ref.items():
        actual = tensors_fast[key]
        if key.startswith(("generator", "cbp.age")) or key.endswith((".n", ".active")):
            assert torch.equal(actual, expected), key  # counts and random draws: exact
        else:
            torch.testing.assert_close(actual, expected, rtol=RTOL, atol=ATOL, msg=key)
    if "cbp" in meta_ref:
        assert meta_fast["cbp"]["replaced"] == meta_ref["cbp"]["replaced"]
        np.testing.assert_allclose(meta_fast["cbp"]["accumulated"], meta_ref["cbp"]["accumulated"])
    for method in ("redo", "shrink_perturb"):  # counters and the noise's key: exact
        assert meta_fast.get(method) == meta_ref.get(method), method
    assert meta_fast["last_drift"] == meta_ref["last_drift"]
    if "target" in meta_ref:
        assert meta_fast["target"]["n"] == meta_ref["target"]["n"]
        assert meta_fast["target"]["mean"] == pytest.approx(meta_ref["target"]["mean"])
        assert meta_fast["target"]["var"] == pytest.approx(meta_ref["target"]["var"])
    s_ref, s_fast = ref.stats(), fast.stats()
    assert s_fast.drifts_detected == s_ref.drifts_detected
    assert s_fast.prequential_score == pytest.approx(s_ref.prequential_score, rel=1e-6)
    assert s_fast.prequential_loss == pytest.approx(s_ref.prequential_loss, rel=1e-4)
    assert s_fast.gradient_norm == pytest.approx(s_ref.gradient_norm, rel=1e-3, abs=1e-6)
    for a, b in zip(s_fast.layers, s_ref.layers, strict=True):
        assert a.units_replaced == b.units_replaced
        assert a.dead_fraction == b.dead_fraction
        assert a.dormant_fraction == b.dormant_fraction
        assert a.effective_rank == pytest.approx(b.effective_rank, rel=1e-5)


@pytest.mark.parametrize("case", CASES)
def test_classifier_same_as_reference(case: str) -> None:
    config, n = CASES[case]
    X, y, _ = stream(n)
    ref, fast_ = reference_and_fast(LifelongClassifier, config, X, y, chunks=[10, 1, 5, 200])
    assert_same(ref, fast_)
    if case in ("sgd+cbp (default)", "cbp often, adaptable, l2_init", "everything, adam"):
        assert sum(ref._cbp.replaced) > 0  # the replacements themselves were compared
    if "redo" in config.plasticity:
        assert sum(ref._redo.replaced) > 0  # so were ReDo's resets


@pytest.mark.parametrize(
    "case",
    ["sgd+cbp (default)", "adam", "cbp often, adaptable, l2_init", "shrink and perturb", "redo"],
)
def test_regressor_same_as_reference(case: str) -> None:
    config, n = CASES[case]
    X, _, target = stream(n)
    ref, fast_ = reference_and_fast(LifelongRegressor, config, X, target, chunks=[1, 1, 300])
    assert_same(ref, fast_)


def test_chunking_does_not_matter() -> None:
    """One call, or the same stream in calls of every size, gives the same learner, bit for
    bit: a call boundary is not a semantic boundary."""
    config, n = CASES["cbp often, adaptable, l2_init"]
    X, y, _ = stream(n)
    whole = fast(LifelongClassifier, config, X, y, chunks=[])
    pieces = fast(LifelongClassifier, config, X, y, chunks=[1, 2, 3, 50, 1, 7, 1])
    assert whole.to_bytes() == pieces.to_bytes()


def test_state_round_trip_continues_the_same() -> None:
    config, n = CASES["sgd+cbp (default)"]
    X, y, _ = stream(n)
    model = fast(LifelongClassifier, config, X[:500], y[:500], chunks=[])
    copy = load(model.to_bytes())
    model.learn_many(X[500:], y[500:])
    copy.learn_many(X[500:], y[500:])
    assert model.to_bytes() == copy.to_bytes()


def test_new_classes_within_a_batch() -> None:
    """A class first seen mid-batch grows the output layer at its turn, as one by one."""
    config, n = CASES["sgd+cbp (default)"]
    X, y, _ = stream(n, n_classes=5)
    y = np.where(np.arange(n) < 400, y % 2, y)  # classes 2-4 first appear after 400 rows
    y[[400, 401, 650]] = [2, 3, 4]
    ref = reference(LifelongClassifier, config, X, y)
    model = LifelongClassifier(config)
    model.learn_many(X, y)
    assert model.classes == ref.classes
    assert_same(ref, model)


def test_a_bad_label_stops_the_batch_where_learn_dense_would() -> None:
    X, y, _ = stream(20)
    labels: list = y.tolist()
    labels[12] = 0.5
    model = LifelongClassifier(LearnerConfig(hidden=(4,)))
    with pytest.raises(TypeError, match="class label"):
        model.learn_many(X, labels)
    assert model.samples_learned == 12


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_the_noise_is_the_same_bits(optimizer: str) -> None:
    assert_same_noise(optimizer)


def assert_same_noise(optimizer: str = "sgd") -> None:
    """At lr 1e-30 no gradient step moves a weight by half an ulp (the weights are O(0.1), the
    noise O(1e-2)), so what changes the weights is shrink and perturb alone, which both paths
    compute with the same float32 operations in the same order: equal to the bit, whatever
    vector width the kernel was built for."""
    config = LearnerConfig(
        hidden=(16, 16),
        optimizer=optimizer,
        lr=1e-30,
        plasticity=("shrink_perturb",),
        shrink=1e-3,
        perturb_std=1e-2,
    )
    X, y, _ = stream(300)
    ref, fast_ = reference_and_fast(LifelongClassifier, config, X, y, chunks=[10, 1, 5])
    np.testing.assert_array_equal(fast_._network.flat("param"), ref._network.flat("param"))
    assert fast_.state_dict()[1]["shrink_perturb"]["steps"] == 300


def test_unsupported_configuration_falls_back_to_the_reference_path() -> None:
    config = LearnerConfig(hidden=(2,) * 16, plasticity=("cbp", "redo", "shrink_perturb"))
    X, y, _ = stream(100)
    ref = reference(LifelongClassifier, config, X, y)
    model = LifelongClassifier(config)
    model.learn_many(X, y)
    assert "hidden layers" in model.fast_path_unavailable
    assert model.to_bytes() == ref.to_bytes()  # the reference path itself: bit for bit


def test_unsupported_configurations_are_named() -> None:
    assert unsupported(LearnerConfig()) is None
    assert unsupported(LearnerConfig(optimizer="adam", plasticity=("l2_init",))) is None
    every_method = replace(LearnerConfig(), plasticity=("cbp", "l2_init", "redo", "shrink_perturb"))
    assert unsupported(every_method) is None
    assert "15 hidden layers" in unsupported(LearnerConfig(hidden=(2,) * 16))
