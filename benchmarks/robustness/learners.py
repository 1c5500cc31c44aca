"""The learners compared on every stream, behind one small interface: `predict(x)` then
`learn(x, y)`, `x` a dict name -> float.

- `default`: Lifelong's learner as shipped, `LearnerConfig()`.
- `no_step_bound`: the same without the overshoot-bounded step, `LearnerConfig(step_bound=0.0)`.
- `river`: `preprocessing.StandardScaler() | linear_model.LogisticRegression()` (classification)
  or `| linear_model.LinearRegression()` (regression), river's defaults.
- `torch_sgd`: what a user writes by hand: `nn.Sequential` 64-64 ReLU, `torch.optim.SGD(lr=0.01)`,
  one example at a time, cross-entropy or squared error on the raw target; inputs standardised
  naively by their running mean and variance over everything seen (counted before scaling, as
  river's StandardScaler; no clipping), a feature absent from an example fed as 0.

A prediction that is not finite (a class probability or a regression estimate) raises
`NonFinitePrediction`; the runner counts it, like any exception, as the learner not surviving.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np
from streams import CLASSIFICATION, Stream


class NonFinitePrediction(FloatingPointError):
    """The learner answered with a non-finite probability or estimate."""


class Learner(Protocol):
    def predict(self, x: dict[str, float]) -> Any: ...

    def learn(self, x: dict[str, float], y: Any) -> None: ...


class RiverEstimator:
    """Any river estimator (Lifelong's learners are river estimators too). A classifier's
    prediction is the most probable class of `predict_proba_one`, so its probabilities are
    checked; None before any class is known."""

    def __init__(self, model: Any, task: str) -> None:
        self.model = model
        self.classify = task == CLASSIFICATION

    def predict(self, x: dict[str, float]) -> Any:
        if self.classify:
            proba = self.model.predict_proba_one(x)
            if not all(math.isfinite(p) for p in proba.values()):
                raise NonFinitePrediction(f"probabilities {proba}")
            return max(proba, key=proba.get) if proba else None
        value = self.model.predict_one(x)
        if not math.isfinite(value):
            raise NonFinitePrediction(f"estimate {value}")
        return value

    def learn(self, x: dict[str, float], y: Any) -> None:
        self.model.learn_one(x, y)


class TorchSGD:
    """A 64-64 ReLU `nn.Sequential` trained by plain SGD, one example at a time, on the stream's
    declared features (a fixed input layer, as a hand-written model has)."""

    def __init__(self, stream: Stream, seed: int, hidden: tuple[int, ...] = (64, 64)) -> None:
        import torch
        from torch import nn

        torch.manual_seed(seed)
        self.torch = torch
        self.names = stream.features
        self.classify = stream.task == CLASSIFICATION
        layers: list[nn.Module] = []
        width = len(self.names)
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        layers.append(nn.Linear(width, 2 if self.classify else 1))
        self.net = nn.Sequential(*layers)
        self.opt = torch.optim.SGD(self.net.parameters(), lr=0.01)
        self.loss = nn.CrossEntropyLoss() if self.classify else nn.MSELoss()
        d = len(self.names)
        self.count, self.mean, self.m2 = 0, np.zeros(d), np.zeros(d)

    def _inputs(self, x: dict[str, float]) -> Any:
        v = np.array([x.get(name, 0.0) for name in self.names])
        std = np.sqrt(self.m2 / self.count) if self.count else np.zeros_like(v)
        z = np.divide(v - self.mean, std, out=np.zeros_like(v), where=std > 0)
        return self.torch.from_numpy(z.astype(np.float32))[None, :]

    def predict(self, x: dict[str, float]) -> Any:
        with self.torch.no_grad():
            out = self.net(self._inputs(x))[0]
        if not self.torch.isfinite(out).all():
            raise NonFinitePrediction(f"output {out.tolist()}")
        return bool(out[1] > out[0]) if self.classify else float(out[0])

    def learn(self, x: dict[str, float], y: Any) -> None:
        v = np.array([x.get(name, 0.0) for name in self.names])
        self.count += 1
        delta = v - self.mean
        self.mean += delta / self.count
        self.m2 += delta * (v - self.mean)
        torch = self.torch
        out = self.net(self._inputs(x))
        target = torch.tensor([int(y)]) if self.classify else torch.tensor([[float(y)]])
        self.opt.zero_grad()
        self.loss(out, target).backward()
        self.opt.step()


def _lifelong(**fields: Any) -> Callable[[Stream, int], Learner]:
    def make(stream: Stream, seed: int) -> Learner:
        from lifelong.model import LearnerConfig, LifelongClassifier, LifelongRegressor

        cls = LifelongClassifier if stream.task == CLASSIFICATION else LifelongRegressor
        return RiverEstimator(cls(LearnerConfig(seed=seed, **fields)), stream.task)

    return make


def _river(stream: Stream, seed: int) -> Learner:
    from river import linear_model, preprocessing

    linear = (
        linear_model.LogisticRegression()
        if stream.task == CLASSIFICATION
        else linear_model.LinearRegression()
    )
    return RiverEstimator(preprocessing.StandardScaler() | linear, stream.task)


LEARNERS: dict[str, Callable[[Stream, int], Learner]] = {
    "default": _lifelong(),
    "no_step_bound": _lifelong(step_bound=0.0),
    "upgd": _lifelong(plasticity=("upgd",)),  # guided updates instead of CBP (issue 13)
    "cbp_redo": _lifelong(plasticity=("cbp", "redo")),
    "river": _river,
    "torch_sgd": TorchSGD,
}
LABELS = {
    "default": "Lifelong default",
    "no_step_bound": "Lifelong, step_bound=0",
    "upgd": "Lifelong, plasticity=upgd",
    "cbp_redo": "Lifelong, plasticity=cbp+redo",
    "river": "river scaler + linear model",
    "torch_sgd": "torch SGD 64-64",
}
