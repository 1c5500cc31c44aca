"""The learner settings name: the built-in MLP, a torch module, or a river model.

`model` is None (the built-in MLP, `learner` holds `LearnerConfig` keys) or an import path:

- a river estimator class (`"river.linear_model:LogisticRegression"`), called with `model_args`;
- a class implementing `lifelong.model.Learner`, called with `model_args`: that learner;
- a factory, called as `factory(task, **model_args)`: an `nn.Module` makes a torch module
  learner (`learner` holds `TorchModuleConfig` keys), a river estimator or pipeline a river
  learner (`learner` holds nothing).

>>> model_kind(None, "classification")
'mlp'
>>> model_kind("river.linear_model:LogisticRegression", "classification")
'river'
>>> learner = make_learner("classification", "river.linear_model:LogisticRegression",
...                        {"l2": 0.01})
>>> type(learner).__name__, learner.task
('RiverClassifier', 'classification')

"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

import torch
from lifelong.model.importpath import resolve
from river import base

KINDS = ("mlp", "torch", "river", "learner")
# What makes a class a `lifelong.model.Learner` (a protocol with attributes: no issubclass).
LEARNER_METHODS = ("learn_one", "learn_many", "snapshot", "stats", "to_bytes")


def model_kind(model: str | None, task: str, model_args: Mapping[str, Any] | None = None) -> str:
    """ "mlp", "torch" or "river": what `model` makes (a factory is called once to see)."""
    if model is None:
        return "mlp"
    obj = resolve(model)
    if inspect.isclass(obj) and issubclass(obj, base.Estimator):
        return "river"
    if inspect.isclass(obj) and all(callable(getattr(obj, m, None)) for m in LEARNER_METHODS):
        return "learner"  # any class with the Learner methods, called with model_args
    if not callable(obj):
        raise ValueError(f"model {model!r} is neither a river estimator class nor a factory")
    with torch.random.fork_rng(devices=[]):  # the probe leaves torch's generator as it was
        made = obj(task, **dict(model_args or {}))
    if isinstance(made, torch.nn.Module):
        return "torch"
    if isinstance(made, base.Estimator):
        return "river"
    raise ValueError(
        f"model {model!r} returned {type(made).__name__}: a factory returns a torch.nn.Module "
        "or a river estimator"
    )


def make_learner(
    task: str,
    model: str | None = None,
    model_args: Mapping[str, Any] | None = None,
    learner: Mapping[str, Any] | None = None,
    key: bytes | str | None = None,
) -> Any:
    """A fresh learner of the kind `model` names (see the module's docs). `key`: a river
    model's state key (without one it learns and serves but cannot be saved)."""
    learner = dict(learner or {})
    kind = model_kind(model, task, model_args)
    if kind == "mlp":
        from lifelong.model import LearnerConfig, LifelongClassifier, LifelongRegressor

        if model_args:
            raise ValueError("model_args go with a model; the built-in one takes learner")
        cls = LifelongClassifier if task == "classification" else LifelongRegressor
        return cls(LearnerConfig(**learner))
    if kind == "learner":
        made = resolve(model)(**dict(model_args or {}))
        if made.task != task:
            raise ValueError(f"model {model!r} learns {made.task}, the task is {task}")
        return made
    if kind == "torch":
        from lifelong.model.torch_module import torch_module_learner

        return torch_module_learner(model, task, learner, model_args)
    from lifelong.model.river_model import river_learner

    if learner:
        raise ValueError(f"a river model takes no learner settings (got {', '.join(learner)})")
    return river_learner(model, model_args, task, key)
