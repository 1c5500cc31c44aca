"""Tolerances that follow from float32 arithmetic, for results whose summation order is not ours.

NumPy's OpenBLAS picks its kernels by CPU (Haswell, SkylakeX, ... under DYNAMIC_ARCH), and a
kernel's blocking follows the length of the sums: the same dot product can round differently on
another CPU, or after a layer grew by a zero column. Each result is within the classical bound of
the exact value (Higham, *Accuracy and Stability of Numerical Algorithms*, section 3.1): a sum of
n products, in any order, with or without fused multiply-adds, is within gamma_n · Σ|w_j a_j| of
the exact sum, gamma_n = n·u / (1 - n·u), u = 2⁻²⁴. Two results of the same exact value differ
by at most the sum of their bounds: a test comparing them within it holds on any CPU and still
fails on any difference that rounding cannot make.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import safetensors.torch
import torch
from lifelong.model.network import forward_batch
from lifelong.model.state import metadata
from lifelong.model.telemetry import _KEYS as TELEMETRY_KEYS

U32 = 2.0**-24  # unit roundoff of float32
U64 = 2.0**-53


def gamma(n: int, u: float = U32) -> float:
    """Higham's gamma_n: the relative error bound of a sum of n terms in any order."""
    if n * u >= 1:
        raise ValueError(f"a sum of {n} terms has no rounding bound at u = {u}")
    return n * u / (1 - n * u)


def forward_error_bound(
    weights: list[np.ndarray], biases: list[np.ndarray], X: np.ndarray
) -> np.ndarray:
    """Per row and output, a bound on |computed - exact| of `forward_batch(weights, biases, X)`
    whatever order BLAS sums in (X exact, float32 weights and activations).

    Layer i computes ẑ = fl(W â + b) from its computed input â: n_i products and the bias, so
    its own rounding is at most gamma_{n_i+1} (|W| |â| + |b|); the error e carried in by â adds at
    most |W| e, and ReLU, 1-Lipschitz, does not grow it. Hence
    e_{i+1} = |W_i| e_i + gamma_{n_i+1} (|W_i| |â_i| + |b_i|), e_0 = 0, in float64 (whose own
    rounding is 2⁻²⁹ times smaller)."""
    activations = [np.asarray(X, dtype=np.float32), *forward_batch(weights, biases, X)[:-1]]
    error = np.zeros(np.shape(X), dtype=np.float64)
    for W, b, a in zip(weights, biases, activations, strict=True):
        W_abs = np.abs(W).astype(np.float64)
        own = gamma(W.shape[1] + 1) * (np.abs(a).astype(np.float64) @ W_abs.T + np.abs(b))
        error = error @ W_abs.T + own
    return error


def softmax_rtol(delta: np.ndarray) -> np.ndarray:
    """Per row, the relative bound on each class probability when every logit of the row moves
    by at most `delta` (rows x classes): p_k ∝ exp(z_k) moves by a factor within
    exp(±2 max_j delta_j); plus, on each side, the float64 softmax's own rounding (a
    subtraction, an exp of a few ulps, a sum over the classes and a division: generously
    gamma_{classes+8} in float64, 10⁻¹⁵ against float32's 10⁻⁷)."""
    classes = delta.shape[1]
    return np.expm1(2.0 * delta.max(axis=1)) + 2 * gamma(classes + 8, U64)


def assert_within(actual: np.ndarray, expected: np.ndarray, bound: np.ndarray) -> None:
    """|actual - expected| <= bound, element by element (bound broadcast); the message gives
    the worst element's difference and bound."""
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    diff = np.abs(actual - expected)
    bound = np.broadcast_to(bound, diff.shape)
    excess = diff - bound
    if not (excess <= 0).all():  # a nan fails too
        i = np.unravel_index(np.nanargmax(np.where(np.isnan(excess), np.inf, excess)), diff.shape)
        raise AssertionError(
            f"{np.count_nonzero(~(excess <= 0))} of {diff.size} elements differ by more than "
            f"rounding can make; worst at {tuple(int(k) for k in i)}: {actual[i]!r} vs "
            f"{expected[i]!r}, difference {diff[i]:.3g} > bound {bound[i]:.3g}"
        )


def effective_rank_rtol(width: int) -> float:
    """Relative bound on the difference of two computations of one window's effective rank from
    the same second-moment sum S (width x width, float64) by LAPACK, whose result depends on how
    many threads it ran on.

    Each computed eigenvalue is within p(d)·u·‖S‖ of an exact one (backward stability; LAPACK's
    "modestly growing" p(d) taken as d), so each singular value s = √λ within √(d·u)·s_max, and
    the normalised p = s / Σs moves by a total variation T <= Σ|Δs| / Σs <= d·√(d·u). The
    entropy then moves by at most T·log(d - 1) + h(T) (Fannes-Audenaert; h the binary entropy),
    and exp(H) by a factor exp(±ΔH) on each side; plus the entropy's own float64 rounding.
    Loose (7e-5 at d = 32, 4e-3 at d = 512, where 1 and 2 threads differ by 5e-12) but sure.
    """
    d = width
    if d < 2:
        return 0.0  # one singular value: p = (1,), the rank is exactly 0 or 1
    t = min(d * math.sqrt(d * U64), 1 - 1 / d)
    entropy = t * math.log(d - 1) - t * math.log(t) - (1 - t) * math.log1p(-t)
    own = gamma(4 * d, U64) * (1 + math.log(d))  # d terms p·log p, their sum, the exp
    return math.expm1(2 * (entropy + own))


def assert_same_learned_state(a: bytes, b: bytes) -> None:
    """Two learner states (`to_bytes`) hold the same learned model bit for bit: every tensor
    (parameters and optimizer state, scaler, continual backprop, telemetry sums and window
    fractions, generator) and the metadata (counters, prequential monitor, layout, names), but
    each layer's last-window effective rank, derived by LAPACK: within `effective_rank_rtol`.
    States nested in another (a challenger's learners, as uint8 tensors) are compared alike."""
    assert metadata(a) == metadata(b)
    tensors_a, tensors_b = safetensors.torch.load(a), safetensors.torch.load(b)
    assert tensors_a.keys() == tensors_b.keys()
    nested = metadata(a)["kind"] == "Challenged"
    for key, x in tensors_a.items():
        y = tensors_b[key]
        if nested:
            assert_same_learned_state(x.numpy().tobytes(), y.numpy().tobytes())
        elif key.startswith("telemetry.") and key.endswith(".last"):
            rank = TELEMETRY_KEYS.index("effective_rank")
            others = [i for i in range(len(x)) if i != rank]
            assert torch.equal(x[others], y[others]), key
            width = len(tensors_a[key.removesuffix("last") + "abs_sum"])
            rtol = effective_rank_rtol(width)
            assert float(x[rank]) == pytest.approx(float(y[rank]), rel=rtol, abs=0), key
        else:
            assert torch.equal(x, y), key
