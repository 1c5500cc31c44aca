"""Guided Transfer Learning's scouts (Nikolić et al. 2023): a guidance matrix from short
trainings of copies of the initial model on small random subsets of a bootstrap stream.

The stream is read once and nothing of it is kept: every scout sees each sample with probability
`fraction` (its own subset, drawn from `seed`) and learns it at once, so all scouts train side by
side. The raw guide of a parameter is the squared change of it, summed over the scouts, from
where the scout started (its first learned sample); each layer (W and b together) is divided by
its largest value, so the guide is in [0, 1] (a layer no scout moved gets 1: nothing says it
matters). `lifelong guide` writes it with `guidance.save`.

>>> config = LearnerConfig(hidden=(4,), seed=0)
>>> stream = (({"x": float(i % 5)}, "big" if i % 5 > 2 else "small") for i in range(200))
>>> result = scout_guidance(stream, config, "classification", scouts=3, fraction=0.2, seed=1)
>>> result.features, result.classes, result.rows
(['x'], ['small', 'big'], 200)
>>> [round(float(max(t.max() for t in pair)), 3) for pair in result.layers()]
[1.0, 1.0]

"""

from __future__ import annotations

import copy
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from lifelong.model.base import Task
from lifelong.model.config import LearnerConfig
from lifelong.model.learner import LifelongClassifier, LifelongRegressor


@dataclass
class ScoutResult:
    """The normalised guide (`W{i}`, `b{i}`), the names of its first layer's columns and last
    layer's rows, the rows read and the samples each scout learned."""

    tensors: dict[str, np.ndarray]
    features: list[Hashable]
    classes: list[Any]
    rows: int
    learned: list[int] = field(default_factory=list)

    def layers(self) -> list[tuple[np.ndarray, np.ndarray]]:
        n = len(self.tensors) // 2
        return [(self.tensors[f"W{i}"], self.tensors[f"b{i}"]) for i in range(n)]


def scout_guidance(
    samples: Iterable[tuple[dict[Hashable, float], Any]],
    config: LearnerConfig,
    task: Task,
    *,
    scouts: int,
    fraction: float,
    seed: int = 0,
) -> ScoutResult:
    """Train `scouts` copies of a fresh learner of `config` (without "guided" and "upgd": scouts
    learn plainly) on random `fraction`s of `samples`, read once; their guide."""
    if scouts < 1 or not 0.0 < fraction <= 1.0:
        raise ValueError(f"need scouts >= 1 and 0 < fraction <= 1, got {scouts}, {fraction}")
    plain = tuple(m for m in config.plasticity if m not in ("guided", "upgd"))
    config = replace(config, plasticity=plain, guidance_file="")
    make = LifelongClassifier if task == "classification" else LifelongRegressor
    rng = np.random.default_rng(seed)
    team: list[Any] = []
    start: list[list[np.ndarray] | None] = [None] * scouts
    learned = [0] * scouts
    rows = 0
    for x, y in samples:
        if not team:  # the initial model, knowing the first sample's features, copied
            base = make(config)
            base.add_features(list(x))
            team = [copy.deepcopy(base) for _ in range(scouts)]
        new = [name for name in x if name not in team[0].feature_names]
        for scout in team:  # every scout grows alike, so their layers line up
            scout.add_features(new)
            if task == "classification":
                scout.add_classes([y])
        for s in np.flatnonzero(rng.random(scouts) < fraction).tolist():
            if start[s] is None:
                start[s] = _parameters(team[s])
            team[s].learn_one(x, y)
            learned[s] += 1
        rows += 1
    if not team:
        raise ValueError("no samples to scout")
    final = [_parameters(scout) for scout in team]
    raw = [np.zeros_like(p, dtype=np.float64) for p in final[0]]
    for begin, end in zip(start, final, strict=True):
        if begin is None:
            continue
        for total, p0, p1 in zip(raw, begin, end, strict=True):
            # Inputs and classes added after the scout started began at 0.
            padded = np.zeros_like(p1)
            padded[tuple(slice(0, n) for n in p0.shape)] = p0
            total += (p1.astype(np.float64) - padded) ** 2
    tensors = {}
    for i in range(len(raw) // 2):
        W, b = raw[2 * i], raw[2 * i + 1]
        top = max(W.max(initial=0.0), b.max(initial=0.0))
        scale = 1.0 / top if top > 0.0 else None
        tensors[f"W{i}"] = (W * scale if scale else np.ones_like(W)).astype(np.float32)
        tensors[f"b{i}"] = (b * scale if scale else np.ones_like(b)).astype(np.float32)
    scout = team[0]
    return ScoutResult(tensors, list(scout.feature_names), list(scout.classes), rows, learned)


def _parameters(learner: LifelongClassifier | LifelongRegressor) -> list[np.ndarray]:
    """W0, b0, W1, b1, ... of the learner's network, copied."""
    tensors, meta = learner.state_dict()
    n_layers = len(meta["layout"]["sizes"]) - 1
    return [tensors[f"network.param.{p}{i}"].numpy().copy() for i in range(n_layers) for p in "Wb"]
