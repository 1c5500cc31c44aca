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

import numpy as np
from lifelong.model.network import forward_batch

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
