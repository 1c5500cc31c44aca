"""The compiled fast path learns exactly what the reference path learns.

Both learners start from the same seed and see the same stream; one learns every example through
the reference path (`learn_dense`, one example at a time), the other through the kernel. They must
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
from lifelong.model.fast.path import FastPath, unsupported
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


def reference_and_fast(model_type, config: LearnerConfig, X, y, chunks):
    """Two models: the reference one learned X one by one, the fast one in `chunks` (sizes)."""
    ref, fast = model_type(config), model_type(config)
    head = 3  # the first examples add the classes (the reference path)
    for model in (ref, fast):
        for i in range(head):
            model.learn_dense(X[i], y[i])
    for i in range(head, len(X)):
        ref.learn_dense(X[i], y[i])
    path = FastPath(fast)
    targets = [fast._class_index[int(v)] for v in y] if model_type is LifelongClassifier else y
    targets = np.asarray(targets)
    start = head
    for size in chunks:
        if size == 1:
            path.learn_one(X[start], targets[start])
        else:
            path.learn(X[start : start + size], targets[start : start + size])
        start += size
    path.learn(X[start:], targets[start:])
    return ref, fast


def assert_same(ref, fast) -> None:
    assert fast.samples_learned == ref.samples_learned
    tensors_ref, meta_ref = ref._state()
    tensors_fast, meta_fast = fast._state()
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
    assert meta_fast["last_drift"] == meta_ref["last_drift"]
    if "target" in meta_ref:
        assert meta_fast["target"]["n"] == meta_ref["target"]["n"]
        assert meta_fast["target"]["mean"] == pytest.approx(meta_ref["target"]["mean"])
        assert meta_fast["target"]["m2"] == pytest.approx(meta_ref["target"]["m2"])
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
    ref, fast = reference_and_fast(LifelongClassifier, config, X, y, chunks=[1, 5, 200])
    assert_same(ref, fast)
    if case in ("sgd+cbp (default)", "cbp often, adaptable, l2_init"):
        assert sum(ref._cbp.replaced) > 0  # the replacements themselves were compared


@pytest.mark.parametrize("case", ["sgd+cbp (default)", "adam", "cbp often, adaptable, l2_init"])
def test_regressor_same_as_reference(case: str) -> None:
    config, n = CASES[case]
    X, _, target = stream(n)
    ref, fast = reference_and_fast(LifelongRegressor, config, X, target, chunks=[1, 1, 300])
    assert_same(ref, fast)


def test_chunking_does_not_matter() -> None:
    """One call, or the same stream in calls of every size, gives the same learner, bit for
    bit: a call boundary is not a semantic boundary."""
    config, n = CASES["cbp often, adaptable, l2_init"]
    X, y, _ = stream(n)
    _, whole = reference_and_fast(LifelongClassifier, config, X, y, chunks=[])
    _, pieces = reference_and_fast(LifelongClassifier, config, X, y, chunks=[1, 2, 3, 50, 1, 7])
    assert whole.to_bytes() == pieces.to_bytes()


def test_state_round_trip_continues_the_same() -> None:
    config, n = CASES["sgd+cbp (default)"]
    X, y, _ = stream(n)
    _, fast = reference_and_fast(LifelongClassifier, config, X[:500], y[:500], chunks=[])
    copy = load(fast.to_bytes())
    targets = np.array([fast._class_index[int(v)] for v in y[500:]])
    FastPath(fast).learn(X[500:], targets)
    FastPath(copy).learn(X[500:], targets)
    assert fast.to_bytes() == copy.to_bytes()


def test_unsupported_configurations_are_named() -> None:
    assert unsupported(LearnerConfig()) is None
    assert unsupported(LearnerConfig(optimizer="adam", plasticity=("l2_init",))) is None
    assert "shrink_perturb" in unsupported(replace(LearnerConfig(), plasticity=("shrink_perturb",)))
