"""Streams for the plasticity benchmarks: online permuted digits and slowly-changing regression.

Both are generated in code (no download) and are deterministic given a seed.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

# -- Online permuted digits --------------------------------------------------------------------


def load_digits_01() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled 8x8 digits (1797 examples), pixels scaled from 0..16 to [0, 1]."""
    from sklearn.datasets import load_digits

    d = load_digits()
    return (d.data / 16.0).astype(np.float32), d.target.astype(np.int64)


@dataclass(frozen=True)
class Task:
    index: int
    permutation: np.ndarray  # pixel permutation applied to every image of the task
    X: np.ndarray  # (n, 64) float32, permuted pixels, examples in this task's (shuffled) order
    y: np.ndarray  # (n,) int64 labels 0..9


def permuted_digits_tasks(n_tasks: int, seed: int) -> Iterator[Task]:
    """Task t: a fresh fixed pixel permutation and a fresh shuffle of all 1797 examples.

    The stream of tasks depends only on `seed` (not on the method), so every method sees the same
    tasks in the same order; task t can be regenerated alone with `permuted_digits_task`.
    """
    X, y = load_digits_01()
    for t in range(n_tasks):
        yield _task(X, y, seed, t)


def permuted_digits_task(seed: int, t: int) -> Task:
    X, y = load_digits_01()
    return _task(X, y, seed, t)


def _task(X: np.ndarray, y: np.ndarray, seed: int, t: int) -> Task:
    rng = np.random.default_rng([seed, t])
    perm = rng.permutation(X.shape[1])
    order = rng.permutation(X.shape[0])
    return Task(t, perm, np.ascontiguousarray(X[order][:, perm]), y[order])


# -- Slowly-changing regression (the bit-flipping problem) --------------------------------------


@dataclass(frozen=True)
class LTUTarget:
    """The paper's target: one hidden layer of linear threshold units, all weights in {-1, +1}.

    Follows `lop/nets/fix_ltu_net.py`: feature i is 1 if w_i.x + b_i > tau_i with
    tau_i = beta * (n_inputs + 1) - S_i and S_i = (n_inputs - sum_j w_ij + b_i) / 2, else 0;
    output = v.features + c.
    """

    W: np.ndarray  # (n_features, n_inputs)
    b: np.ndarray  # (n_features,)
    v: np.ndarray  # (n_features,)
    c: float
    tau: np.ndarray  # (n_features,)

    @classmethod
    def random(
        cls, rng: np.random.Generator, n_inputs: int = 20, n_features: int = 100, beta: float = 0.7
    ) -> LTUTarget:
        def pm1(*shape: int) -> np.ndarray:
            return rng.integers(0, 2, size=shape).astype(np.float64) * 2 - 1

        W, b, v, c = pm1(n_features, n_inputs), pm1(n_features), pm1(n_features), float(pm1(1)[0])
        S = (n_inputs - W.sum(axis=1) + b) / 2
        tau = beta * (n_inputs + 1) - S
        return cls(W, b, v, c, tau)

    def features(self, X: np.ndarray) -> np.ndarray:
        return (X @ self.W.T + self.b > self.tau).astype(np.float64)

    def __call__(self, X: np.ndarray) -> np.ndarray:
        return self.features(X) @ self.v + self.c


def bit_flipping_stream(
    n_examples: int,
    seed: int,
    flip_every: int = 10_000,
    n_inputs: int = 20,
    n_flipping: int = 15,
    n_target_features: int = 100,
    beta: float = 0.7,
    chunk: int = 10_000,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yields (X, y) chunks, X (k, n_inputs) float32 in {0, 1}, y (k,) float32.

    The first `n_flipping` inputs are held fixed and one of them, drawn at random, flips every
    `flip_every` examples (the paper's `flip_one` variant); the other inputs are fresh random bits
    for every example. The target network is drawn once per seed. Nothing is materialised beyond
    one chunk, so millions of examples cost no memory.
    """
    rng = np.random.default_rng([seed, 0xB17])
    target = LTUTarget.random(rng, n_inputs, n_target_features, beta)
    bits = rng.integers(0, 2, size=n_flipping).astype(np.float64)
    done = 0
    while done < n_examples:
        # the number of examples until the next flip bounds the chunk
        if done > 0 and done % flip_every == 0:
            i = rng.integers(n_flipping)
            bits[i] = 1 - bits[i]
        k = min(chunk, n_examples - done, flip_every - done % flip_every)
        X = np.empty((k, n_inputs), dtype=np.float64)
        X[:, :n_flipping] = bits
        X[:, n_flipping:] = rng.integers(0, 2, size=(k, n_inputs - n_flipping))
        yield X.astype(np.float32), target(X).astype(np.float32)
        done += k
