"""The hostile streams: each a production phenomenon, generated in code from a seed.

Every stream is a function `(period, seed) -> Stream`. `period` is the number of examples
before the first event (and between events): enough to reach a learned level, and after the
event enough to recover. A `Stream` declares its task, its length, its event positions and
every feature name that can appear; `examples()` yields `(x, y)` with `x` a dict name -> float
(a feature absent from an example is absent from its dict) and `y` a bool (classification) or
a float (regression). The whole stream is drawn up front with NumPy (a few MB): the learners,
not the generator, should take the time.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "plasticity"))

from data import bit_flipping_stream  # benchmarks/plasticity/data.py

CLASSIFICATION = "classification"
REGRESSION = "regression"


@dataclass(frozen=True)
class Stream:
    name: str
    task: str  # CLASSIFICATION or REGRESSION
    what: str  # one line for the README and the plot's title
    events: tuple[int, ...]  # index of the first example after each change
    features: tuple[str, ...]  # every name that can appear, in a fixed order
    X: np.ndarray  # (n, len(features)) float64; NaN: the feature is absent from that example
    y: np.ndarray  # (n,) bool or float64

    @property
    def n(self) -> int:
        return len(self.y)

    def examples(self) -> Iterator[tuple[dict[str, float], Any]]:
        names = self.features
        labels = self.y.tolist()  # Python bools / floats, as a client sends them
        sparse = np.isnan(self.X).any(axis=1)
        for row, absent, label in zip(self.X.tolist(), sparse.tolist(), labels, strict=True):
            if absent:
                yield {k: v for k, v in zip(names, row, strict=True) if not math.isnan(v)}, label
            else:
                yield dict(zip(names, row, strict=True)), label


def _names(d: int) -> tuple[str, ...]:
    return tuple(f"x{i}" for i in range(d))


def _hyperplane(rng: np.random.Generator, n: int, d: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """river's `synth.Hyperplane` without noise or drift: x uniform in [0, 1]^d, a fixed w
    uniform in [0, 1]^d, label w.x > sum(w) / 2."""
    X = rng.random((n, d))
    w = rng.random(d)
    return X, X @ w > w.sum() / 2


def _regression(rng: np.random.Generator, n: int, d: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """x uniform in [0, 1]^d; y = w.x + sin(2 pi x0) x1 + noise (sd 0.05), w ~ N(0, 1): mostly
    linear, so river's linear model has a fair level, with a part only a network can learn."""
    X = rng.random((n, d))
    w = rng.normal(size=d)
    y = X @ w + np.sin(2 * np.pi * X[:, 0]) * X[:, 1] + rng.normal(0.0, 0.05, n)
    return X, y


def bit_flipping(period: int, seed: int) -> Stream:
    """The paper's slowly-changing regression (Dohare et al. 2024), as
    benchmarks/plasticity/data.py draws it: 20 bits, the first 15 fixed and one of them
    flipping every `period` examples, the rest random; the target from a fixed LTU network."""
    n = 4 * period
    chunks = list(bit_flipping_stream(n, seed, flip_every=period))
    X = np.concatenate([c[0] for c in chunks]).astype(np.float64)
    y = np.concatenate([c[1] for c in chunks]).astype(np.float64)
    return Stream(
        "bit_flipping",
        REGRESSION,
        f"a feature constant for {period:,} examples flips (20 bits, LTU target)",
        (period, 2 * period, 3 * period),
        _names(20),
        X,
        y,
    )


def unit_change(period: int, seed: int) -> Stream:
    """A feature's unit changes: x0 arrives x1000 (metres -> millimetres); the target, a
    function of the quantity, does not change."""
    rng = np.random.default_rng([seed, 1])
    X, y = _regression(rng, 3 * period)
    X[period:, 0] *= 1000.0
    return Stream("unit_change", REGRESSION, "x0's unit changes x1000", (period,), _names(10), X, y)


def _sentinels(name: str, what: str, values: tuple[float, ...], period: int, seed: int) -> Stream:
    """The 10-feature hyperplane; from `period` on, each value is replaced with probability
    1/500 (0.2%) by one of `values` (an upstream system writing "missing" as a number)."""
    rng = np.random.default_rng([seed, 2])
    n = 3 * period
    X, y = _hyperplane(rng, n)
    after = X[period:]
    hit = rng.random(after.shape) < 1 / 500
    after[hit] = rng.choice(values, size=int(hit.sum()))
    return Stream(name, CLASSIFICATION, what, (period,), _names(10), X, y)


def sentinel_1e30(period: int, seed: int) -> Stream:
    return _sentinels(
        "sentinel_1e30", "sentinels: 1 value in 500 is +-1e30", (1e30, -1e30), period, seed
    )


def sentinel_mixed(period: int, seed: int) -> Stream:
    return _sentinels(
        "sentinel_mixed",
        "sentinels: 1 value in 500 is -9999, 1e9 or 1e30",
        (-9999.0, 1e9, 1e30),
        period,
        seed,
    )


def new_feature(period: int, seed: int) -> Stream:
    """A new feature appears, at another scale (x10 = 1000 u), and carries information the
    others lack: label w.x + w10 (u - 1/2) > sum(w) / 2, where before it was measured u was
    1/2 (the 10-feature hyperplane). w10 = 2 max(w), so it matters."""
    rng = np.random.default_rng([seed, 3])
    n = 3 * period
    X10, _ = _hyperplane(rng, n)
    w = rng.random(10)
    u = rng.random(n)
    u[:period] = 0.5
    w10 = 2 * w.max()
    y = X10 @ w + w10 * (u - 0.5) > w.sum() / 2
    X = np.column_stack([X10, 1000.0 * u])
    X[:period, 10] = np.nan
    return Stream(
        "new_feature",
        CLASSIFICATION,
        "a new, informative feature appears at scale 1000",
        (period,),
        _names(11),
        X,
        y,
    )


def target_rescale(period: int, seed: int) -> Stream:
    """The regression target's unit and origin change: y -> 100 y + 1000."""
    rng = np.random.default_rng([seed, 4])
    X, y = _regression(rng, 3 * period)
    y[period:] = 100.0 * y[period:] + 1000.0
    return Stream(
        "target_rescale",
        REGRESSION,
        "the target is rescaled x100 and shifted by 1000",
        (period,),
        _names(10),
        X,
        y,
    )


def cauchy(period: int, seed: int) -> Stream:
    """Heavy-tailed features: x ~ N(0, 1) until `period`, standard Cauchy after (no mean, no
    variance: running statistics never settle). The label, w.x > 0 with w ~ N(0, 1), depends
    only on the direction of x, so it stays exactly learnable by a linear model."""
    rng = np.random.default_rng([seed, 5])
    n = 3 * period
    X = np.concatenate([rng.normal(size=(period, 10)), rng.standard_cauchy((n - period, 10))])
    y = X @ rng.normal(size=10) > 0
    return Stream(
        "cauchy", CLASSIFICATION, "features turn heavy-tailed (Cauchy)", (period,), _names(10), X, y
    )


def label_flip(period: int, seed: int) -> Stream:
    """A preference flips: the 10-feature hyperplane, every label inverted from `period` on."""
    rng = np.random.default_rng([seed, 6])
    X, y = _hyperplane(rng, 3 * period)
    y[period:] = ~y[period:]
    return Stream(
        "label_flip", CLASSIFICATION, "the label preference flips", (period,), _names(10), X, y
    )


STREAMS: dict[str, Callable[[int, int], Stream]] = {
    f.__name__: f
    for f in (
        bit_flipping,
        unit_change,
        sentinel_1e30,
        sentinel_mixed,
        new_feature,
        target_rescale,
        cauchy,
        label_flip,
    )
}
