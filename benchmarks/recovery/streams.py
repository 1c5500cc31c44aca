"""The recovery streams, generated in code and deterministic given a seed: each yields
(X, y) row blocks and names the rows where the concept changes.

- `phone`: a long stable concept, then an abrupt different one (a new random teacher network);
- `gradual`: from one teacher to another, each row from the new one with a probability rising
  linearly over `width` rows;
- `recurring`: teacher A, then B, then A again;
- `digits`: permuted digits, a new pixel permutation every task (`benchmarks/plasticity`).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "plasticity"))
from data import load_digits_01

FEATURES, CLASSES, TEACHER_HIDDEN = 10, 4, 8


@dataclass(frozen=True)
class Stream:
    name: str
    X: np.ndarray  # (rows, features) float32
    y: np.ndarray  # (rows,) int64
    changes: tuple[int, ...]  # rows where a new concept starts (the start of a gradual drift)


class Teacher:
    """A random network: tanh hidden layer, argmax over `CLASSES` outputs. Its scales give
    classes of similar sizes and a concept the default learner reaches ~92% on in 60k rows."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.W1 = rng.normal(size=(FEATURES, TEACHER_HIDDEN)) / np.sqrt(FEATURES)
        self.b1 = rng.normal(size=TEACHER_HIDDEN) * 0.5
        self.W2 = rng.normal(size=(TEACHER_HIDDEN, CLASSES)) / np.sqrt(TEACHER_HIDDEN) * 3.0

    def __call__(self, X: np.ndarray) -> np.ndarray:
        return (np.tanh(X @ self.W1 + self.b1) @ self.W2).argmax(axis=1)


def _inputs(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.normal(size=(n, FEATURES)).astype(np.float32)


def phone(seed: int, before: int = 200_000, after: int = 60_000) -> Stream:
    rng = np.random.default_rng([seed, 0])
    a, b = Teacher(rng), Teacher(rng)
    X = _inputs(rng, before + after)
    y = np.concatenate([a(X[:before]), b(X[before:])])
    return Stream("phone", X, y, (before,))


def gradual(seed: int, before: int = 100_000, width: int = 20_000, after: int = 60_000) -> Stream:
    rng = np.random.default_rng([seed, 1])
    a, b = Teacher(rng), Teacher(rng)
    n = before + width + after
    X = _inputs(rng, n)
    p_new = np.clip((np.arange(n) - before) / width, 0.0, 1.0)
    new = rng.random(n) < p_new
    y = np.where(new, b(X), a(X))
    return Stream("gradual", X, y, (before,))


def recurring(
    seed: int, a_rows: int = 100_000, b_rows: int = 40_000, again: int = 40_000
) -> Stream:
    rng = np.random.default_rng([seed, 2])
    a, b = Teacher(rng), Teacher(rng)
    X = _inputs(rng, a_rows + b_rows + again)
    y = np.concatenate([a(X[:a_rows]), b(X[a_rows : a_rows + b_rows]), a(X[a_rows + b_rows :])])
    return Stream("recurring", X, y, (a_rows, a_rows + b_rows))


def digits(seed: int, tasks: int = 30, repeats: int = 3) -> Stream:
    """Each task: a new permutation, its 1797 images `repeats` times in fresh orders."""
    images, labels = load_digits_01()
    X, y, changes = [], [], []
    for t in range(tasks):
        rng = np.random.default_rng([seed, 3, t])
        perm = rng.permutation(images.shape[1])
        order = np.concatenate([rng.permutation(len(images)) for _ in range(repeats)])
        changes.append(sum(len(part) for part in y))
        X.append(images[order][:, perm])
        y.append(labels[order])
    return Stream("digits", np.concatenate(X), np.concatenate(y), tuple(changes[1:]))


STREAMS = {"phone": phone, "gradual": gradual, "recurring": recurring, "digits": digits}
