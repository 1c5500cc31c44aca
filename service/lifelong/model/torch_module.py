"""Your own `torch.nn.Module`, learning online: one example at a time, in order, forever.

A factory named by import path (`"mypkg.models:build"`) is called with the task and the
settings' `model_args` (`build(task, **model_args)`) and returns the module. The module takes a
batch of standardised numeric features, `(n, len(features))` float32, and, when categorical
fields are declared, their codes as a second argument, `(n, len(categorical))` int64; it returns
`(n, outputs)`: logits for classification, one column for regression.

- **Inputs.** `TorchModuleConfig.features` names the numeric inputs, in the order of the input
  tensor; `categorical` maps each categorical field to the size of its vocabulary (its
  embedding's rows). `feature_names` is both, numeric first. A numeric feature is standardised
  by its running statistics (`lifelong.model.scaler`, as the built-in learner); one missing
  from an example enters as 0 (its mean), and a name the model does not know is ignored.
  A categorical value (a str, or a number: `3`, `3.0` and `"3"` are the same category, so codes
  sent as numbers through the service work) gets code 1, 2, ... in order of first appearance
  while learning, up to `size - 1`; code 0 is reserved for a value that is missing, unknown (in
  a prediction), or beyond the vocabulary.
- **Classes.** A module has a fixed output width. Declared `classes` take the first outputs in
  their order; otherwise labels take outputs in order of arrival, and a label beyond the width
  raises `ClassLimitExceeded` (a `TypeError` and a `ValueError`) before anything changes.
  Probabilities and the loss are a softmax over the known classes' outputs only.
- **Learning.** Test-then-train, as the built-in: each example is predicted (prequential score
  and loss, drift: `lifelong.model.prequential`), then learned with a torch optimizer (SGD with
  momentum, or Adam) whose state is kept. A step whose output is not finite, or whose gradient
  norm is not finite or beyond `GRADIENT_LIMIT`, is refused before anything changes and
  counted (`stats().updates_refused`). The module runs in training mode while it learns
  (dropout on; batch norm cannot learn from one example: use layer norm), on one torch
  intra-op thread, with a random generator of its own (saved in the state), so dropout and
  shrink & perturb continue bit for bit after a restart.
- **Plasticity.** Forward hooks on the activation modules (`ACTIVATIONS`) whose output is one
  `(1, width)` row, called once per forward, feed `LayerTelemetry`: dead, dormant and
  τ-dormant fractions and effective rank per hooked layer, with the mean |w| of the nearest
  `Linear` (2-D weight of `width` rows) registered before it (NaN if none). A module whose
  activations are functions (`F.relu`), shared, or not rows has no `layers`: absent, not zero.
  Methods that need no structure: "l2_init" (gradient + 2λ(θ - θ₀)) and "shrink_perturb"
  (θ ← (1 - shrink)θ + N(0, perturb_std²) after each step), on the learned (unfrozen)
  parameters; continual backprop ("cbp", `LinearStackCBP`) for an `nn.Sequential` of
  `nn.Linear` and activation modules, as the reference GnT.
- **Pretrained parts.** `weights` loads safetensors files into named submodules at creation
  (`{"backbone": "backbone.safetensors"}`; "" is the whole module); `freeze` names submodules
  (or parameters) that do not learn; `freeze()` / `unfreeze()` change that while learning.
- **State.** `to_bytes`: safetensors through `lifelong.model.state` (module state_dict,
  optimizer state, scaler, telemetry, generator; the rest as JSON), no pickle. `load` rebuilds
  the module with its factory and refuses a state whose tensors do not fit it, naming them.

>>> import torch.nn as nn
>>> def build(task, hidden=8):
...     return nn.Sequential(nn.Linear(2, hidden), nn.ReLU(), nn.Linear(hidden, 2))
>>> model = TorchModuleClassifier(build, TorchModuleConfig(features=("x", "y"), lr=0.1))
>>> for i in range(200):
...     model.learn_one({"x": i % 2, "y": 1.0}, "odd" if i % 2 else "even")
>>> model.predict_one({"x": 1, "y": 1.0}), model.classes, model.samples_learned
('odd', ('even', 'odd'), 200)
>>> snapshot = model.snapshot()
>>> snapshot.version, round(sum(snapshot.predict_proba_one({"x": 0}).values()), 6)
(200, 1.0)
>>> [layer.width for layer in model.stats().layers]
[8]

"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from numbers import Real
from pathlib import Path
from typing import Any

import numpy as np
import safetensors.torch
import torch
import torch.nn.functional as F
from lifelong.model import state
from lifelong.model.base import LayerStats, LearnerStats, Task
from lifelong.model.importpath import path_of, resolve
from lifelong.model.network import GRADIENT_LIMIT, one_thread
from lifelong.model.prequential import PrequentialMonitor
from lifelong.model.scaler import Standardizer, TargetScaler
from lifelong.model.telemetry import LayerTelemetry
from lifelong.model.values import labelled_rows, numbers
from river import base
from torch import nn

__all__ = [
    "ACTIVATIONS",
    "ClassLimitExceeded",
    "TorchModuleClassifier",
    "TorchModuleConfig",
    "TorchModulePredictor",
    "TorchModuleRegressor",
    "torch_module_learner",
]

# Activation modules the hooks read: h > 0 is an active unit, h <= 0 (near) silent.
ACTIVATIONS = (
    nn.ReLU,
    nn.ReLU6,
    nn.LeakyReLU,
    nn.ELU,
    nn.CELU,
    nn.SELU,
    nn.GELU,
    nn.SiLU,
    nn.Mish,
)
PLASTICITY_METHODS = ("cbp", "l2_init", "shrink_perturb")
OPTIMIZERS = ("sgd", "adam")
LABEL_TYPES = (str, int, bool)
REFUSAL_REASONS = ("non_finite_output", "gradient_limit")
STATE_FORMAT = 1
SNAPSHOT_FORMAT = 1
RAW_LIMIT = 1e100  # as the built-in learner: raw values beyond count as ±RAW_LIMIT


class ClassLimitExceeded(TypeError, ValueError):
    """A label that would need an output the module does not have. A `TypeError` too, so the
    service rejects the sample (`wrong_label_type`) and goes on."""


class _Refused(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class TorchModuleConfig:
    """How a `TorchModuleClassifier` / `TorchModuleRegressor` feeds and trains its module.

    Parameters
    ----------
    features
        Names of the numeric inputs, in the order of the module's input tensor.
    categorical
        Categorical field -> vocabulary size (rows of its embedding, code 0 reserved for
        unknown); a mapping or (name, size) pairs. Their codes are the module's second argument.
    classes
        Classes declared up front, in the order of the outputs; () takes labels as they come.
    optimizer, lr, momentum, weight_decay, adam_beta1, adam_beta2, adam_eps
        "sgd" (`torch.optim.SGD` with `momentum`) or "adam" (`torch.optim.Adam`).
    plasticity
        Any of "l2_init" (`l2_init_strength` λ), "shrink_perturb" (`shrink`, `perturb_std`) and
        "cbp" (continual backprop, `cbp_replacement_rate` rho, `cbp_maturity_threshold` m,
        `cbp_decay_rate` η, "contribution" utility): only for an `nn.Sequential` of `nn.Linear`
        and activation modules, alternating (the reference GnT's networks).
    standardize, clip, scaler_horizon
        Numeric inputs (and the regression target, always) as running z-scores clipped to
        ±clip, forgetting past `scaler_horizon` values (`lifelong.model.scaler`).
    telemetry_window
        Examples per plasticity-statistics window.
    weights
        Submodule name -> safetensors file of its state_dict, loaded at creation ("" = all).
    freeze
        Submodules (or parameters) by name whose parameters do not learn.
    seed
        Seeds the module's initialisation and the learner's generator.
    """

    features: tuple[str, ...] = ()
    categorical: tuple[tuple[str, int], ...] = ()
    classes: tuple[Any, ...] = ()
    optimizer: str = "sgd"
    lr: float = 0.01
    momentum: float = 0.0
    weight_decay: float = 0.0
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_eps: float = 1e-8
    plasticity: tuple[str, ...] = ()
    l2_init_strength: float = 1e-4
    cbp_replacement_rate: float = 1e-4
    cbp_maturity_threshold: int = 100
    cbp_decay_rate: float = 0.99
    shrink: float = 1e-5
    perturb_std: float = 1e-5
    standardize: bool = True
    clip: float = 10.0
    scaler_horizon: int = 10_000
    telemetry_window: int = 1000
    weights: tuple[tuple[str, str], ...] = ()
    freeze: tuple[str, ...] = ()
    seed: int = 0

    def __post_init__(self) -> None:
        def pairs(value: Any) -> tuple:
            items = value.items() if isinstance(value, Mapping) else value
            return tuple((str(k), v) for k, v in items)

        set_ = object.__setattr__
        set_(self, "features", tuple(self.features))
        set_(self, "categorical", tuple((k, int(v)) for k, v in pairs(self.categorical)))
        set_(self, "classes", tuple(self.classes))
        set_(self, "plasticity", tuple(sorted(set(self.plasticity))))
        set_(self, "weights", tuple((k, str(v)) for k, v in pairs(self.weights)))
        set_(self, "freeze", tuple(self.freeze))
        names = list(self.features) + [k for k, _ in self.categorical]
        if not names:
            raise ValueError("declare the module's inputs: features and/or categorical")
        if not all(isinstance(n, str) and n for n in names):
            raise ValueError("feature and categorical names must be non-empty strings")
        if len(set(names)) != len(names):
            raise ValueError("a name appears twice among features and categorical")
        if any(size < 2 for _, size in self.categorical):
            raise ValueError("a categorical vocabulary needs at least 2 codes (0 is unknown)")
        if any(type(c) not in LABEL_TYPES for c in self.classes):
            raise ValueError("classes must be str, int or bool")
        if len(set(self.classes)) != len(self.classes):
            raise ValueError("classes must be distinct")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, not {self.optimizer!r}")
        unknown = set(self.plasticity) - set(PLASTICITY_METHODS)
        if unknown:
            raise ValueError(
                f"plasticity: unknown method(s) {sorted(unknown)}; a torch module takes "
                f"{PLASTICITY_METHODS}"
            )
        if not (0 < self.lr <= 1000 and math.isfinite(self.lr)):
            raise ValueError("lr must be in (0, 1000]")
        if self.telemetry_window < 1 or self.scaler_horizon < 0:
            raise ValueError("telemetry_window must be positive, scaler_horizon non-negative")

    def to_dict(self) -> dict[str, Any]:
        """JSON-able; `from_dict` reads it back."""
        d = dataclasses.asdict(self)
        d["categorical"] = dict(self.categorical)
        d["weights"] = dict(self.weights)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TorchModuleConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(
                f"unknown torch module setting(s) {', '.join(unknown)}; known: "
                f"{', '.join(sorted(known))}"
            )
        return cls(**d)


def torch_module_learner(
    factory: str | Callable[..., nn.Module],
    task: Task,
    config: TorchModuleConfig | Mapping[str, Any] | None = None,
    model_args: Mapping[str, Any] | None = None,
) -> TorchModuleClassifier | TorchModuleRegressor:
    """The learner for `task` around the module `factory(task, **model_args)` builds."""
    if task not in ("classification", "regression"):
        raise ValueError(f"task must be classification or regression, not {task!r}")
    cls = TorchModuleClassifier if task == "classification" else TorchModuleRegressor
    return cls(factory, config, model_args)


class _TorchModuleLearner:
    """What both tasks share."""

    task: Task

    def __init__(
        self,
        factory: str | Callable[..., nn.Module],
        config: TorchModuleConfig | Mapping[str, Any] | None = None,
        model_args: Mapping[str, Any] | None = None,
        pretrained: bool = True,
    ) -> None:
        cfg = config if config is not None else TorchModuleConfig(features=())
        if isinstance(cfg, Mapping):
            cfg = TorchModuleConfig.from_dict(cfg)
        self.config = cfg
        self.model_args = dict(model_args or {})
        self.pretrained = pretrained
        try:
            json.dumps(self.model_args)
        except TypeError as e:
            raise ValueError(
                f"model_args must be JSON (they are saved with the state): {e}"
            ) from None
        self.factory = factory if isinstance(factory, str) else path_of(factory)
        self._build = resolve(factory) if isinstance(factory, str) else factory
        self.module, self._rng = _build_module(self._build, self.task, self.model_args, cfg.seed)
        self._numeric = cfg.features
        self._fields = tuple(name for name, _ in cfg.categorical)
        self._sizes = tuple(size for _, size in cfg.categorical)
        self._names = self._numeric + self._fields
        self._vocab: list[dict[str, int]] = [{} for _ in self._fields]
        self._scaler = Standardizer(cfg.clip, cfg.scaler_horizon) if cfg.standardize else None
        if self._scaler is not None:
            self._scaler.grow(len(self._numeric))
        if pretrained:
            for submodule, path in cfg.weights:
                self.load_weights(path, submodule)
        self.n_outputs, layers = _probe(self.module, self._forward_args(1), self.factory)
        if self.task == "regression" and self.n_outputs != 1:
            raise ValueError(f"a regression module has one output, this one {self.n_outputs}")
        self._layers = layers  # (name, width, incoming weight or None) per hooked activation
        self._telemetry = [LayerTelemetry(w, window=cfg.telemetry_window) for _, w, _ in layers]
        self._captured: list[torch.Tensor | None] = [None] * len(layers)
        self._capturing = False
        modules = dict(self.module.named_modules())
        for j, (name, _, _) in enumerate(layers):
            modules[name].register_forward_hook(self._hook(j))
        self._params = list(self.module.parameters())
        self._frozen: list[str] = []
        self.freeze(cfg.freeze)
        self._optimizer = _optimizer(self._params, cfg)
        self._init = (
            [p.detach().clone() for p in self._params] if "l2_init" in cfg.plasticity else None
        )
        self._cbp = LinearStackCBP(self.module, cfg) if "cbp" in cfg.plasticity else None
        self._monitor = PrequentialMonitor(self.task)
        self.samples_learned = 0
        self._last_drift = -1
        self._grad_norm = 0.0
        self._refused = dict.fromkeys(REFUSAL_REASONS, 0)
        self.module.train()

    # -- the interface --------------------------------------------------------------------------

    @property
    def feature_names(self) -> tuple[str, ...]:
        """Numeric features, then categorical fields: the columns of dense rows."""
        return self._names

    @property
    def recoveries(self) -> dict[str, int]:
        """None: a torch module's learner refuses steps but takes no recovery."""
        return {}

    @property
    def step_scale(self) -> float:
        return 1.0

    @property
    def layer_names(self) -> tuple[str, ...]:
        """The activation modules the hooks read, in the order of `stats().layers`."""
        return tuple(name for name, _, _ in self._layers)

    @property
    def frozen(self) -> tuple[str, ...]:
        return tuple(self._frozen)

    def learn_one(self, x: dict, y: Any) -> None:
        """Learn one example by feature name, after predicting it (test-then-train)."""
        y, k = self._label(y)
        inputs = self._encode(x)
        with self._stepping():
            self._learn_or_refuse(inputs, y, k)

    def learn_dense(self, x: np.ndarray | Sequence[float], y: Any) -> None:
        """`learn_one` for a row in the order of `feature_names` (values beyond are ignored)."""
        self.learn_many([x], [y])

    def learn_many(
        self,
        X: np.ndarray | Sequence[Sequence[float]],
        y: Sequence[Any],
        refused: list[int] | None = None,
    ) -> list[int]:
        """Learn the rows of `X` (columns in the order of `feature_names`; more are ignored,
        this module cannot grow) one at a time, in order. Returns the refused rows' positions,
        also appended to `refused`; a bad label raises at its row, the rows before it learned."""
        X = labelled_rows(X, y)
        n = len(self._names)
        if X.shape[1] < n:
            raise ValueError(f"got {X.shape[1]} values per row, the model has {n} features")
        refused = [] if refused is None else refused
        with self._stepping():
            for i, row in enumerate(X):
                label, k = self._label(y[i])
                if not self._learn_or_refuse(self._encode_row(row), label, k):
                    refused.append(i)
        return refused

    def snapshot(self) -> TorchModulePredictor:
        """A deep copy of the module (no hooks, eval mode) and of the input statistics."""
        module = copy.deepcopy(self.module)
        for m in module.modules():
            m._forward_hooks.clear()  # noqa: SLF001 (torch has no public way to drop a copy's hooks)
        module.eval().requires_grad_(False)
        return self._predictor(module, copies=True)

    def stats(self) -> LearnerStats:
        weights = [
            float(w.detach().abs().mean()) if w is not None else math.nan
            for _, _, w in self._layers
        ]
        replaced = self._cbp.replaced if self._cbp is not None else [0] * len(self._telemetry)
        layers = tuple(
            LayerStats(
                width=t.width, **t.stats(), mean_abs_weight=weights[j], units_replaced=replaced[j]
            )
            for j, t in enumerate(self._telemetry)
        )
        total = sum(float(p.detach().abs().sum()) for p in self._params)
        count = sum(p.numel() for p in self._params)
        window = self.config.telemetry_window
        return LearnerStats(
            samples_learned=self.samples_learned,
            prequential_score=self._monitor.score,
            prequential_loss=self._monitor.loss,
            drifts_detected=self._monitor.drifts_detected,
            drift_in_last_window=self._last_drift >= 0
            and self.samples_learned - self._last_drift < window,
            updates_refused=dict(self._refused),
            recoveries={},
            step_scale=1.0,
            layers=layers,
            gradient_norm=self._grad_norm,
            mean_abs_weight=total / count if count else None,
        )

    # -- pretrained parts -----------------------------------------------------------------------

    def load_weights(self, path: str | Path, into: str = "") -> None:
        """Load a safetensors file of a state_dict into submodule `into` ("" = the module);
        every tensor of the submodule must be in the file, with its shape."""
        target = self.module.get_submodule(into) if into else self.module
        try:
            tensors = safetensors.torch.load_file(str(path))
        except (OSError, safetensors.SafetensorError) as e:
            raise ValueError(
                f"weights for {into or 'the module'}: cannot read {path}: {e}"
            ) from None
        _check_fit(target.state_dict(), tensors, f"{path} for {into or 'the module'}")
        target.load_state_dict(tensors)
        if getattr(self, "_init", None) is not None:  # L2-init pulls toward these now
            self._init = [p.detach().clone() for p in self._params]

    def freeze(self, names: Sequence[str]) -> None:
        """Stop learning the parameters of these submodules (or parameters). All or nothing:
        a name the module does not have raises ValueError before anything changes."""
        for name, params in [(name, self._named_parameters(name)) for name in names]:
            for p in params:
                p.requires_grad_(False)
            if name not in self._frozen:
                self._frozen.append(name)

    def unfreeze(self, names: Sequence[str]) -> None:
        """Learn these again (a name that was frozen, or a part of one: its own parameters).
        All or nothing, as `freeze`."""
        for name, params in [(name, self._named_parameters(name)) for name in names]:
            for p in params:
                p.requires_grad_(True)
            self._frozen = [f for f in self._frozen if f != name]

    def _named_parameters(self, name: str) -> list[torch.nn.Parameter]:
        try:
            return list(self.module.get_submodule(name).parameters()) if name else self._params
        except AttributeError:
            pass
        try:
            return [self.module.get_parameter(name)]
        except AttributeError:
            raise ValueError(f"the module has no submodule or parameter named {name!r}") from None

    # -- learning -------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _stepping(self) -> Iterator[None]:
        """One intra-op thread, and the learner's own generator as torch's global one."""
        with one_thread():
            outer = torch.get_rng_state()
            torch.set_rng_state(self._rng)
            try:
                yield
            finally:
                torch.set_rng_state(outer)

    def _learn_or_refuse(self, inputs: tuple, y: Any, k: int) -> bool:
        try:
            self._step(inputs, y, k)
        except _Refused as e:
            self._refused[e.reason] += 1
            torch.set_rng_state(self._rng)  # as before the example
            return False
        self._rng = torch.get_rng_state()
        return True

    def _step(self, inputs: tuple, y: Any, k: int) -> None:
        raw, present, codes, new_codes = inputs
        z = self._standardize(raw, present)
        module = self.module
        for p in self._params:
            p.grad = None
        self._capturing = True
        try:
            out = self._forward(module, *self._tensors(z[None], [codes]))
        finally:
            self._capturing = False
        out = out.reshape(-1)
        values = out.tolist()  # one read of the outputs: the check and the prediction
        if not math.isfinite(sum(values)):  # a nan or an inf among them
            raise _Refused("non_finite_output")
        loss, commit = self._loss(out, values, y, k)
        loss.backward()
        grads = [p.grad for p in self._params if p.grad is not None]
        norm = (
            # torch's fused per-tensor norms, as its own clip_grad_norm_ uses them
            float(torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads))))  # noqa: SLF001
            if grads
            else 0.0
        )
        if not norm <= GRADIENT_LIMIT:  # nan too
            raise _Refused("gradient_limit")
        cfg = self.config
        with torch.no_grad():
            if self._init is not None:
                for p, p0 in zip(self._params, self._init, strict=True):
                    if p.grad is not None:
                        p.grad.add_(p - p0, alpha=2.0 * cfg.l2_init_strength)
            self._optimizer.step()
            if "shrink_perturb" in cfg.plasticity:
                for p in self._params:
                    if p.requires_grad:
                        p.mul_(1.0 - cfg.shrink).add_(torch.randn_like(p), alpha=cfg.perturb_std)
            if self._cbp is not None:
                self._cbp.step(self._captured, self._optimizer)
        # The step is taken: count the example everywhere.
        if self._scaler is not None:
            self._scaler.commit()
        for j, key in new_codes:
            self._vocab[j][key] = len(self._vocab[j]) + 1
        for telemetry, h in zip(self._telemetry, self._captured, strict=True):
            if h is not None:
                telemetry.observe(h)
        self._captured = [None] * len(self._captured)
        self._grad_norm = norm
        if commit():
            self._last_drift = self.samples_learned
        self.samples_learned += 1

    def _standardize(self, raw: np.ndarray, present: np.ndarray | None) -> np.ndarray:
        z = np.zeros(len(raw), dtype=np.float64)
        if self._scaler is not None:
            self._scaler.prepare(raw, z, present)
        elif present is None:
            z[:] = raw
        else:
            z[present] = raw[present]
        return z

    def _hook(self, j: int) -> Callable:
        def hook(module: nn.Module, args: Any, output: torch.Tensor) -> None:
            if self._capturing:
                self._captured[j] = output.detach()[0].clone()

        return hook

    # -- inputs ---------------------------------------------------------------------------------

    def _forward_args(self, n: int) -> tuple:
        codes = [[0] * len(self._fields)] * n
        return self._tensors(np.zeros((n, len(self._numeric))), codes)

    def _tensors(self, Z: np.ndarray, codes: list[list[int]]) -> tuple:
        with np.errstate(over="ignore"):  # beyond float32: inf, and the step is refused
            x = torch.from_numpy(np.asarray(Z, dtype=np.float32))
        if not self._fields:
            return (x,)
        return x, torch.tensor(codes, dtype=torch.int64)

    def _forward(self, module: nn.Module, *args: torch.Tensor) -> torch.Tensor:
        return module(*args)

    def _encode(self, x: dict) -> tuple:
        """An example by name: raw numeric values (float64), the indices present (None: all),
        category codes, and the new categories it brings (field, key)."""
        names = [n for n in self._numeric if n in x]
        raw = np.zeros(len(self._numeric))
        present = None
        if len(names) < len(self._numeric):
            present = np.array([i for i, n in enumerate(self._numeric) if n in x], dtype=np.intp)
        if names:
            values = numbers([x[n] for n in names], names)
            if present is None:
                raw[:] = values
            else:
                raw[present] = values
        codes, new = self._codes([x.get(f) for f in self._fields])
        return raw, present, codes, new

    def _encode_row(self, row: np.ndarray) -> tuple:
        n = len(self._numeric)
        codes, new = self._codes(row[n : n + len(self._fields)].tolist())
        return row[:n], None, codes, new

    def _codes(self, values: Sequence[Any]) -> tuple[list[int], list[tuple[int, str]]]:
        """Codes of a learned example's categorical values; unseen ones take the next code
        while the vocabulary has room (counted when the step is)."""
        codes, new = [], []
        for j, value in enumerate(values):
            if value is None:
                codes.append(0)
                continue
            key = category_key(value)
            code = self._vocab[j].get(key)
            if code is None:
                if len(self._vocab[j]) + 1 < self._sizes[j]:
                    code = len(self._vocab[j]) + 1
                    new.append((j, key))
                else:
                    code = 0
            codes.append(code)
        return codes, new

    # -- state ----------------------------------------------------------------------------------

    def _predictor(self, module: nn.Module, copies: bool) -> TorchModulePredictor:
        scaler = self._scaler.copy() if copies and self._scaler is not None else self._scaler
        target = getattr(self, "_target", None)
        return TorchModulePredictor(
            task=self.task,
            module=module,
            numeric=self._numeric,
            fields=self._fields,
            vocab=[dict(v) for v in self._vocab] if copies else self._vocab,
            scaler=scaler,
            target=target.copy() if copies and target is not None else target,
            classes=self.classes,
            version=self.samples_learned,
            factory=self.factory,
            model_args=self.model_args,
            config=self.config,
        )

    def _live(self, method: str, *args: Any) -> Any:
        """A prediction from the live module (river's API on the learner itself)."""
        self.module.eval()
        try:
            return getattr(self._predictor(self.module, copies=False), method)(*args)
        finally:
            self.module.train()

    def to_bytes(self) -> bytes:
        """The complete state; `lifelong.model.state.load` continues bit for bit from it."""
        return state.dumps(type(self).__name__, *self.state_dict())

    def state_dict(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        if self.factory is None:
            raise ValueError(
                "this module's factory has no import path (a lambda or a nested function): "
                "name it by 'package.module:function' to save the learner"
            )
        tensors = {f"module.{k}": v.detach().clone() for k, v in self.module.state_dict().items()}
        optim = self._optimizer.state_dict()
        scalars: dict[str, dict[str, Any]] = {}
        for i, entries in optim["state"].items():
            for key, value in entries.items():
                if isinstance(value, torch.Tensor):
                    tensors[f"optimizer.{i}.{key}"] = value.clone()
                else:
                    scalars.setdefault(str(i), {})[key] = value
        if self._init is not None:
            tensors |= {f"init.{i}": p.clone() for i, p in enumerate(self._init)}
        if self._scaler is not None:
            tensors |= {
                f"scaler.{k}": torch.from_numpy(v.copy())
                for k, v in self._scaler.state_dict().items()
            }
        for j, telemetry in enumerate(self._telemetry):
            tensors |= {f"telemetry.{j}.{k}": v for k, v in telemetry.state_dict().items()}
        tensors["generator"] = self._rng.clone()
        cbp = None
        if self._cbp is not None:
            arrays, cbp = self._cbp.state_dict()
            tensors |= {f"cbp.{k}": v.clone() for k, v in arrays.items()}
        meta = {
            "format": STATE_FORMAT,
            "factory": self.factory,
            "model_args": self.model_args,
            "config": self.config.to_dict(),
            "frozen": list(self._frozen),
            "trainable": [p.requires_grad for p in self._params],
            "vocab": [list(v) for v in self._vocab],
            "classes": list(self.classes),
            "samples_learned": self.samples_learned,
            "last_drift": self._last_drift,
            "gradient_norm": self._grad_norm,
            "refused": self._refused,
            "prequential": self._monitor.state_dict(),
            "optimizer": {"param_groups": optim["param_groups"], "scalars": scalars},
            "layers": list(self.layer_names),
            "cbp": cbp,
        }
        return tensors, meta

    @classmethod
    def from_state(cls, tensors: dict[str, torch.Tensor], meta: dict[str, Any]):
        """The learner `state_dict` described: its module rebuilt by its factory, then every
        tensor loaded (ValueError, naming them, if they do not fit)."""
        if meta.get("format") != STATE_FORMAT:
            raise ValueError(f"unsupported torch module state format {meta.get('format')!r}")
        model = cls(
            meta["factory"],
            TorchModuleConfig.from_dict(meta["config"]),
            meta["model_args"],
            pretrained=False,
        )
        model.load_state_dict(tensors, meta)
        return model

    def load_state_dict(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
        module_state = state.prefixed(tensors, "module.")
        _check_fit(self.module.state_dict(), module_state, f"the state ({meta['factory']})")
        self.module.load_state_dict(module_state)
        self.unfreeze(self._frozen)
        self.freeze(meta["frozen"])
        trainable = meta["trainable"]
        if len(trainable) != len(self._params):
            raise ValueError("the state's parameter list does not fit the module")
        for p, flag in zip(self._params, trainable, strict=True):
            p.requires_grad_(bool(flag))
        saved = meta["optimizer"]
        optim_state: dict[int, dict[str, Any]] = {}
        for name, value in state.prefixed(tensors, "optimizer.").items():
            i, key = name.split(".", 1)
            optim_state.setdefault(int(i), {})[key] = value
        for i, entries in saved["scalars"].items():
            optim_state.setdefault(int(i), {}).update(entries)
        try:
            self._optimizer.load_state_dict(
                {"state": optim_state, "param_groups": saved["param_groups"]}
            )
        except (ValueError, KeyError) as e:
            raise ValueError(f"the state's optimizer does not fit the module: {e}") from None
        if self._init is not None:
            init = state.prefixed(tensors, "init.")
            self._init = [init[str(i)].clone() for i in range(len(self._params))]
        if self._scaler is not None:
            self._scaler.load_state_dict(
                {k: v.numpy() for k, v in state.prefixed(tensors, "scaler.").items()}
            )
        for j, telemetry in enumerate(self._telemetry):
            telemetry.load_state_dict(state.prefixed(tensors, f"telemetry.{j}."))
        self._vocab = [{key: c + 1 for c, key in enumerate(keys)} for keys in meta["vocab"]]
        if len(self._vocab) != len(self._fields):
            raise ValueError("the state's categorical fields do not fit the configuration")
        self._rng = tensors["generator"].clone()
        if self._cbp is not None:
            self._cbp.load_state_dict(state.prefixed(tensors, "cbp."), meta["cbp"])
        self._monitor.load_state_dict(meta["prequential"])
        self.samples_learned = int(meta["samples_learned"])
        self._last_drift = int(meta["last_drift"])
        self._grad_norm = float(meta["gradient_norm"])
        self._refused.update(meta["refused"])


class TorchModuleClassifier(_TorchModuleLearner, base.Classifier):
    """A `torch.nn.Module` classifier learning online (see the module's docs)."""

    task: Task = "classification"

    def __init__(
        self,
        factory: str | Callable[..., nn.Module],
        config: TorchModuleConfig | Mapping[str, Any] | None = None,
        model_args: Mapping[str, Any] | None = None,
        pretrained: bool = True,
    ) -> None:
        self._classes: list[Any] = []
        self._class_index: dict[Any, int] = {}
        super().__init__(factory, config, model_args, pretrained)
        if len(self.config.classes) > self.n_outputs:
            raise ValueError(
                f"{len(self.config.classes)} classes declared, the module has "
                f"{self.n_outputs} outputs"
            )
        for c in self.config.classes:
            self._add_class(c)

    @property
    def _multiclass(self) -> bool:
        return True

    @property
    def classes(self) -> tuple[Any, ...]:
        return tuple(self._classes)

    def _add_class(self, y: Any) -> None:
        self._class_index[y] = len(self._classes)
        self._classes.append(y)

    def _label(self, y: Any) -> tuple[Any, int]:
        """The label as a Python value and its output; a new one takes the next output."""
        if type(y) not in LABEL_TYPES:
            if isinstance(y, np.bool_):
                y = bool(y)
            elif isinstance(y, np.integer):
                y = int(y)
            elif isinstance(y, str):
                y = str(y)
            else:
                raise TypeError(
                    f"a class label must be a str, int or bool, got {type(y).__name__} {y!r}"
                )
        k = self._class_index.get(y, -1)
        if k >= 0 and type(self._classes[k]) is not type(y):
            raise TypeError(f"label {y!r} is equal to class {self._classes[k]!r} of another type")
        if k < 0:
            if self.config.classes:
                raise ClassLimitExceeded(
                    f"label {y!r} is not one of the declared classes {list(self.config.classes)}"
                )
            if len(self._classes) >= self.n_outputs:
                raise ClassLimitExceeded(
                    f"label {y!r} would be class {len(self._classes) + 1}, but the module has "
                    f"{self.n_outputs} outputs, all taken by {self._classes}: widen its output "
                    "layer (model_args) or declare the classes"
                )
        return y, k

    def _loss(
        self, out: torch.Tensor, values: list[float], y: Any, k: int
    ) -> tuple[torch.Tensor, Callable]:
        known = len(self._classes)
        proba = _softmax(values[:known])
        seen = dict(zip(self._classes, proba, strict=True))
        y_pred = self._classes[proba.index(max(proba))] if proba else None
        new = k < 0
        if new:
            k = known
        logits = out[: known + new]
        loss = F.cross_entropy(
            logits[None], _TARGETS[k] if k < len(_TARGETS) else torch.tensor([k])
        )

        def commit() -> bool:
            if new:
                self._add_class(y)
            return self._monitor.update(y, y_pred, seen)

        return loss, commit

    def predict_proba_one(self, x: dict) -> dict[Any, float]:
        return self._live("predict_proba_one", x)

    def predict_one(self, x: dict) -> Any:
        return self._live("predict_one", x)

    def predict_proba_dense(self, X: np.ndarray) -> np.ndarray:
        return self._live("predict_proba_dense", X)

    def predict_dense(self, X: np.ndarray) -> np.ndarray:
        return self._live("predict_dense", X)

    def load_state_dict(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
        super().load_state_dict(tensors, meta)
        self._classes, self._class_index = [], {}
        for y in meta["classes"]:
            self._add_class(y)
        if len(self._classes) > self.n_outputs:
            raise ValueError("the state has more classes than the module has outputs")


class TorchModuleRegressor(_TorchModuleLearner, base.Regressor):
    """A `torch.nn.Module` regressor learning online on the standardised target."""

    task: Task = "regression"

    def __init__(
        self,
        factory: str | Callable[..., nn.Module],
        config: TorchModuleConfig | Mapping[str, Any] | None = None,
        model_args: Mapping[str, Any] | None = None,
        pretrained: bool = True,
    ) -> None:
        super().__init__(factory, config, model_args, pretrained)
        self._target = TargetScaler(self.config.clip, self.config.scaler_horizon)

    @property
    def classes(self) -> tuple[()]:
        return ()

    def _label(self, y: Any) -> tuple[float, int]:
        if isinstance(y, bool | np.bool_) or not isinstance(y, Real):
            raise TypeError(f"a regression target must be a number, got {type(y).__name__} {y!r}")
        y = float(y)
        if not math.isfinite(y):
            raise ValueError(f"a regression target must be finite, got {y}")
        return min(max(y, -RAW_LIMIT), RAW_LIMIT), 0

    def _loss(
        self, out: torch.Tensor, values: list[float], y: float, k: int
    ) -> tuple[torch.Tensor, Callable]:
        z = self._target.prepare(y)
        estimate = self._target.inverse(values[0])
        loss = (out[0] - z) ** 2

        def commit() -> bool:
            drift = self._monitor.update(y, estimate)
            self._target.commit()
            return drift

        return loss, commit

    def predict_one(self, x: dict) -> float:
        return self._live("predict_one", x)

    def predict_dense(self, X: np.ndarray) -> np.ndarray:
        return self._live("predict_dense", X)

    def state_dict(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        tensors, meta = super().state_dict()
        meta["target"] = self._target.state_dict()
        return tensors, meta

    def load_state_dict(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
        super().load_state_dict(tensors, meta)
        self._target.load_state_dict(meta["target"])


class TorchModulePredictor:
    """Predictions from a copy of the module, under `torch.inference_mode`: what `snapshot()`
    returns. A feature it does not know is ignored, a missing numeric one is its mean, an
    unknown or missing category code 0."""

    def __init__(
        self,
        task: Task,
        module: nn.Module,
        numeric: tuple[str, ...],
        fields: tuple[str, ...],
        vocab: list[dict[str, int]],
        scaler: Standardizer | None,
        target: TargetScaler | None,
        classes: tuple[Any, ...],
        version: int,
        factory: str | None,
        model_args: dict[str, Any],
        config: TorchModuleConfig,
    ) -> None:
        self.task = task
        self.module = module
        self._numeric, self._fields = numeric, fields
        self._index = {name: i for i, name in enumerate(numeric)}
        self._vocab = vocab
        self._scaler = scaler
        self._target = target
        self.classes = classes
        self.version = version
        self.feature_names = numeric + fields
        self._factory, self._model_args, self._config = factory, model_args, config

    def predict_proba_one(self, x: dict) -> dict[Any, float]:
        self._classifier_only()
        if not self.classes:
            return {}
        return dict(zip(self.classes, self._proba(*self._from_dicts([x]))[0].tolist(), strict=True))

    def predict_one(self, x: dict) -> Any:
        return self._labels(*self._from_dicts([x]))[0]

    def predict_proba_dense(self, X: np.ndarray) -> np.ndarray:
        self._classifier_only()
        return self._proba(*self._from_rows(X))

    def predict_dense(self, X: np.ndarray) -> np.ndarray:
        return self._labels(*self._from_rows(X))

    def row_function(self) -> Callable[[list[float]], np.ndarray | float]:
        regression = self.task == "regression"

        def predict(values: list[float]) -> np.ndarray | float:
            Z, codes = self._from_rows(np.array([values], dtype=np.float64))
            if regression:
                return float(self._labels(Z, codes)[0])
            return self._proba(Z, codes)

        return predict

    def _classifier_only(self) -> None:
        if self.task != "classification":
            raise TypeError("a regressor has no class probabilities; use predict_one / _dense")

    def _from_dicts(self, rows: list[dict]) -> tuple[np.ndarray, list[list[int]]]:
        n = len(self._numeric)
        Z = np.zeros((len(rows), n), dtype=np.float32)
        codes = []
        for r, x in enumerate(rows):
            columns = [self._index[k] for k in x if k in self._index]
            if columns:
                raw = numbers([x[self._numeric[c]] for c in columns])
                scaler = self._scaler
                Z[r, columns] = scaler.transform(raw, columns) if scaler is not None else raw
            codes.append([self._code(j, x.get(f)) for j, f in enumerate(self._fields)])
        return Z, codes

    def _from_rows(self, X: np.ndarray) -> tuple[np.ndarray, list[list[int]]]:
        X = np.asarray(X, dtype=np.float64)
        n, m = len(self._numeric), len(self._fields)
        if X.ndim != 2 or X.shape[1] < n + m:
            raise ValueError(
                f"X must be (rows, {n + m}) in the order of feature_names, got shape {X.shape}"
            )
        numeric = X[:, :n]
        Z = self._scaler.transform(numeric) if self._scaler is not None else numeric
        codes = [[self._code(j, v) for j, v in enumerate(row)] for row in X[:, n : n + m].tolist()]
        return np.asarray(Z, dtype=np.float32), codes

    def _code(self, j: int, value: Any) -> int:
        if value is None:
            return 0
        try:
            return self._vocab[j].get(category_key(value), 0)
        except (TypeError, ValueError):
            return 0

    def _outputs(self, Z: np.ndarray, codes: list[list[int]]) -> np.ndarray:
        if not len(Z):
            return np.zeros((0, len(self.classes) if self.classes else 1))
        x = torch.from_numpy(np.ascontiguousarray(Z, dtype=np.float32))
        args = (x,) if not self._fields else (x, torch.tensor(codes, dtype=torch.int64))
        with torch.inference_mode():
            return self.module(*args).double().numpy()

    def _proba(self, Z: np.ndarray, codes: list[list[int]]) -> np.ndarray:
        k = len(self.classes)
        if not k:
            return np.zeros((len(Z), 0))
        logits = self._outputs(Z, codes)[:, :k].copy()
        logits -= logits.max(axis=1, keepdims=True)
        np.exp(logits, out=logits)
        logits /= logits.sum(axis=1, keepdims=True)
        return logits

    def _labels(self, Z: np.ndarray, codes: list[list[int]]) -> np.ndarray:
        if self.task == "regression":
            out = self._outputs(Z, codes)[:, 0]
            return self._target.mean + self._target.std * out
        labels = np.empty(len(Z), dtype=object)
        if self.classes and len(Z):
            top = np.argmax(self._outputs(Z, codes)[:, : len(self.classes)], axis=1)
            labels[:] = [self.classes[k] for k in top.tolist()]
        return labels

    def to_bytes(self) -> bytes:
        if self._factory is None:
            raise ValueError(
                "this module's factory has no import path: the snapshot cannot be saved"
            )
        tensors = {f"module.{k}": v.detach().clone() for k, v in self.module.state_dict().items()}
        if self._scaler is not None:
            tensors |= {
                f"scaler.{k}": torch.from_numpy(v.copy())
                for k, v in self._scaler.state_dict().items()
            }
        meta = {
            "format": SNAPSHOT_FORMAT,
            "task": self.task,
            "factory": self._factory,
            "model_args": self._model_args,
            "config": self._config.to_dict(),
            "vocab": [list(v) for v in self._vocab],
            "classes": list(self.classes),
            "version": self.version,
            "target": self._target.state_dict() if self._target is not None else None,
        }
        return state.dumps("TorchModulePredictor", tensors, meta)

    @classmethod
    def from_state(cls, tensors: dict[str, torch.Tensor], meta: dict[str, Any]):
        if meta.get("format") != SNAPSHOT_FORMAT:
            raise ValueError(f"unsupported torch module snapshot format {meta.get('format')!r}")
        config = TorchModuleConfig.from_dict(meta["config"])
        task = meta["task"]
        module, _ = _build_module(resolve(meta["factory"]), task, meta["model_args"], config.seed)
        module_state = state.prefixed(tensors, "module.")
        _check_fit(module.state_dict(), module_state, f"the snapshot ({meta['factory']})")
        module.load_state_dict(module_state)
        module.eval().requires_grad_(False)
        scaler = None
        if config.standardize:
            scaler = Standardizer(config.clip, config.scaler_horizon)
            scaler.load_state_dict(
                {k: v.numpy() for k, v in state.prefixed(tensors, "scaler.").items()}
            )
        target = None
        if meta["target"] is not None:
            target = TargetScaler(config.clip, config.scaler_horizon)
            target.load_state_dict(meta["target"])
        return cls(
            task=task,
            module=module,
            numeric=config.features,
            fields=tuple(name for name, _ in config.categorical),
            vocab=[{key: c + 1 for c, key in enumerate(keys)} for keys in meta["vocab"]],
            scaler=scaler,
            target=target,
            classes=tuple(meta["classes"]),
            version=int(meta["version"]),
            factory=meta["factory"],
            model_args=meta["model_args"],
            config=config,
        )


class LinearStackCBP:
    """Continual backprop (Dohare et al. 2024) on an `nn.Sequential` of `nn.Linear` and
    activation modules, alternating: the built-in learner's `ContinualBackprop`, on the hidden
    layers' captured activations, with the "contribution" utility. Per hidden unit: age,
    running mean activation f (bias-corrected f̂), utility u ← η u + (1 - η) mean_k |w_out[k, i]|
    · |h - f̂|; each layer accumulates rho x (units older than m) per step and replaces the integer
    part, lowest bias-corrected utility first: Kaiming-uniform incoming weights, bias 0, outgoing
    weights 0, the next bias absorbing w_out · f̂, its optimizer state zeroed. A layer whose
    incoming weights are frozen is left alone."""

    def __init__(self, module: nn.Module, cfg: TorchModuleConfig) -> None:
        layers = list(module) if isinstance(module, nn.Sequential) else []
        linear = layers[0::2]
        activations = layers[1::2]
        if (
            len(layers) < 3
            or len(layers) % 2 == 0
            or not all(isinstance(m, nn.Linear) for m in linear)
            or not all(isinstance(m, ACTIVATIONS) for m in activations)
        ):
            raise ValueError(
                "plasticity cbp needs an nn.Sequential of nn.Linear and activation modules, "
                "alternating, with at least one hidden layer (as the reference GnT); for other "
                "modules use l2_init or shrink_perturb"
            )
        self.linear = linear
        self.rho = cfg.cbp_replacement_rate
        self.m = cfg.cbp_maturity_threshold
        self.eta = cfg.cbp_decay_rate
        widths = [m.out_features for m in linear[:-1]]
        self.age = [torch.zeros(w, dtype=torch.int64) for w in widths]
        self.mean = [torch.zeros(w) for w in widths]
        self.utility = [torch.zeros(w) for w in widths]
        self.decay_power = [torch.ones(w) for w in widths]
        self.accumulated = [0.0] * len(widths)
        self.replaced = [0] * len(widths)

    @torch.no_grad()
    def step(self, hidden: list[torch.Tensor | None], optimizer: torch.optim.Optimizer) -> None:
        """After the optimizer step: update the statistics with the example's activations (from
        its forward pass) and replace the units that are due."""
        eta = self.eta
        for layer, h in enumerate(hidden):
            if h is None:
                continue
            age, mean = self.age[layer], self.mean[layer]
            utility, power = self.utility[layer], self.decay_power[layer]
            age += 1
            power *= eta
            correction = 1.0 - power
            mean.mul_(eta).add_(h, alpha=1.0 - eta)
            mean_hat = mean / correction
            outgoing = self.linear[layer + 1].weight
            y = (h - mean_hat).abs_() * outgoing.abs().mean(0)
            utility.mul_(eta).add_(y, alpha=1.0 - eta)
            mature = age > self.m
            count = int(mature.sum())
            if not count or not self.linear[layer].weight.requires_grad:
                continue
            self.accumulated[layer] += self.rho * count
            n = int(self.accumulated[layer])
            if n:
                self.accumulated[layer] -= n
                self._replace(layer, min(n, count), mature, correction, mean_hat, optimizer)

    def _replace(self, layer, n, mature, correction, mean_hat, optimizer) -> None:
        score = self.utility[layer] / correction
        score[~mature] = math.inf
        units = torch.argsort(score, stable=True)[:n]
        incoming, outgoing = self.linear[layer], self.linear[layer + 1]
        fan_in = incoming.in_features
        bound = math.sqrt(2.0) * math.sqrt(3.0 / fan_in)  # network.kaiming_bound, hidden
        if outgoing.bias is not None:
            outgoing.bias += outgoing.weight[:, units] @ mean_hat[units]
        incoming.weight[units] = torch.empty(n, fan_in).uniform_(-bound, bound)
        if incoming.bias is not None:
            incoming.bias[units] = 0.0
        outgoing.weight[:, units] = 0.0
        for p, rows in ((incoming.weight, True), (incoming.bias, True), (outgoing.weight, False)):
            for value in optimizer.state.get(p, {}).values() if p is not None else ():
                if isinstance(value, torch.Tensor) and value.shape == p.shape:
                    if rows:
                        value[units] = 0.0
                    else:
                        value[:, units] = 0.0
        self.age[layer][units] = 0
        self.mean[layer][units] = 0.0
        self.utility[layer][units] = 0.0
        self.decay_power[layer][units] = 1.0
        self.replaced[layer] += n

    def state_dict(self) -> tuple[dict[str, torch.Tensor], dict[str, list]]:
        arrays = {}
        for name in ("age", "mean", "utility", "decay_power"):
            arrays |= {f"{j}.{name}": t for j, t in enumerate(getattr(self, name))}
        return arrays, {"accumulated": list(self.accumulated), "replaced": list(self.replaced)}

    def load_state_dict(self, arrays: dict[str, torch.Tensor], counters: dict[str, list]) -> None:
        for name in ("age", "mean", "utility", "decay_power"):
            for j, t in enumerate(getattr(self, name)):
                saved = arrays[f"{j}.{name}"]
                if saved.shape != t.shape:
                    raise ValueError(f"the state's cbp {name} of layer {j} does not fit the module")
                t.copy_(saved)
        self.accumulated = [float(a) for a in counters["accumulated"]]
        self.replaced = [int(r) for r in counters["replaced"]]


_TARGETS = [torch.tensor([k]) for k in range(64)]  # cross_entropy's target, made once


def _softmax(logits: list[float]) -> list[float]:
    """Probabilities in float64 from float32 logits (finite), as Python floats."""
    if not logits:
        return []
    top = max(logits)
    e = [math.exp(z - top) for z in logits]
    total = sum(e)
    return [v / total for v in e]


def category_key(value: Any) -> str:
    """The vocabulary key of a categorical value: a str as it is, a number by its value (an
    integral one as an int: 3, 3.0 and "3" are one category).

    >>> category_key("red"), category_key(3), category_key(3.0), category_key(0.5)
    ('red', '3', '3', '0.5')

    """
    if isinstance(value, str):
        return value
    if isinstance(value, bool | np.bool_) or not isinstance(value, Real):
        raise TypeError(f"a categorical value must be a str or a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"a categorical value must be finite, got {value}")
    return str(int(value)) if value.is_integer() else repr(value)


def _build_module(
    build: Callable[..., nn.Module], task: str, model_args: Mapping[str, Any], seed: int
) -> tuple[nn.Module, torch.Tensor]:
    """The module, initialised from `seed` without touching torch's global generator, and the
    generator's state after it (the learner's own from then on)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        module = build(task, **model_args)
        rng = torch.get_rng_state()
    if not isinstance(module, nn.Module):
        raise TypeError(f"the factory returned {type(module).__name__}, not a torch.nn.Module")
    return module, rng


def _probe(module: nn.Module, args: tuple, factory: str | None) -> tuple[int, list]:
    """One forward pass on zeros: the output width, and the activation modules the hooks can
    read (called once, output one row) with their width and incoming weight."""
    named = list(module.named_modules())
    calls: dict[str, list[torch.Tensor]] = {}
    handles = [
        m.register_forward_hook(lambda m, a, out, name=name: calls.setdefault(name, []).append(out))
        for name, m in named
        if isinstance(m, ACTIVATIONS)
    ]
    training = module.training
    module.eval()
    try:
        with torch.no_grad():
            out = module(*args)
    except Exception as e:
        shapes = " and ".join(f"{tuple(a.shape)} {a.dtype}" for a in args)
        raise ValueError(
            f"the module of {factory or 'the factory'} does not take the declared inputs "
            f"({shapes}): {type(e).__name__}: {e}"
        ) from None
    finally:
        for h in handles:
            h.remove()
        module.train(training)
    if not isinstance(out, torch.Tensor) or out.dim() != 2 or out.shape[0] != 1:
        raise ValueError(
            f"the module of {factory or 'the factory'} must return (rows, outputs), got "
            f"{getattr(out, 'shape', type(out).__name__)} for one row"
        )
    layers = []
    for position, (name, _) in enumerate(named):
        outs = calls.get(name, [])
        if len(outs) != 1 or outs[0].dim() != 2 or outs[0].shape[0] != 1:
            continue
        width = outs[0].shape[1]
        weight = None
        for _, m in reversed(named[:position]):
            w = getattr(m, "weight", None)
            if isinstance(w, nn.Parameter) and w.dim() == 2 and w.shape[0] == width:
                weight = w
                break
        layers.append((name, width, weight))
    return int(out.shape[1]), layers


def _optimizer(params: list[nn.Parameter], cfg: TorchModuleConfig) -> torch.optim.Optimizer:
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(
            params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay, foreach=False
        )
    return torch.optim.Adam(
        params,
        lr=cfg.lr,
        betas=(cfg.adam_beta1, cfg.adam_beta2),
        eps=cfg.adam_eps,
        weight_decay=cfg.weight_decay,
        foreach=False,
    )


def _check_fit(expected: Mapping[str, torch.Tensor], given: Mapping[str, torch.Tensor], what: str):
    """ValueError naming what does not fit: missing, unexpected or misshapen tensors."""
    problems = []
    missing = sorted(set(expected) - set(given))
    unexpected = sorted(set(given) - set(expected))
    if missing:
        problems.append(f"missing {', '.join(missing)}")
    if unexpected:
        problems.append(f"unexpected {', '.join(unexpected)}")
    for key in sorted(set(expected) & set(given)):
        if tuple(expected[key].shape) != tuple(given[key].shape):
            problems.append(
                f"{key} has shape {tuple(given[key].shape)} there, {tuple(expected[key].shape)} "
                "in the module"
            )
    if problems:
        raise ValueError(f"{what} does not fit the module: " + "; ".join(problems))


state.register("TorchModuleClassifier", TorchModuleClassifier.from_state)
state.register("TorchModuleRegressor", TorchModuleRegressor.from_state)
state.register("TorchModulePredictor", TorchModulePredictor.from_state)
