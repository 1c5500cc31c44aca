"""`LearnerConfig`: every hyper-parameter of the learner, with its default.

The config is frozen and hashable; sweep it with `dataclasses.replace`, store it with
`to_dict` / `from_dict` (JSON-able).

>>> from dataclasses import replace
>>> cfg = LearnerConfig(hidden=[32], plasticity=["l2_init", "cbp"])
>>> cfg.hidden, cfg.plasticity
((32,), ('cbp', 'l2_init'))
>>> replace(cfg, plasticity=()).plasticity  # plain backprop: the control
()
>>> LearnerConfig.from_dict(cfg.to_dict()) == cfg
True

"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

PLASTICITY_METHODS = ("cbp", "shrink_perturb", "l2_init", "redo", "upgd", "guided")
OPTIMIZERS = ("sgd", "adam")
ACTIVATIONS = ("relu",)
CBP_UTILITIES = ("contribution", "adaptable_contribution")
# Logits one classification step may move, to first order, at `step_bound` 1. Softmax
# cross-entropy has no target to overshoot (the softmax saturates), so its steps are capped
# instead: 10 logits take a probability from 1/2 to 0.99995, and ordinary steps move far less
# (benchmarks/robustness/README.md, "The step bound").
LOGIT_STEP = 10.0


@dataclass(frozen=True)
class LearnerConfig:
    """Hyper-parameters of `LifelongClassifier` and `LifelongRegressor`.

    Parameters
    ----------
    hidden
        Widths of the hidden layers; `()` is a linear model.
    activation
        Hidden activation. Only "relu": the dead/dormant unit statistics assume it.
    optimizer
        "sgd" (with `momentum`) or "adam" (`adam_beta1`, `adam_beta2`, `adam_eps`).
    lr
        Step size, for one example at a time; at most 1000, so that one update of a gradient
        within the divergence limit (`network.GRADIENT_LIMIT`) cannot overflow float32.
    step_bound
        κ of the bound on each SGD step (after ObGD, Elsayed, Vasan & Mahmood 2024). With output
        error d and loss gradient g, a step of size lr moves the example's output, to first
        order, by m = lr·‖g‖²/‖d‖; the step is shortened to lr·min(1, M/m) so that m <= M,
        whatever the scale of the inputs. Regression: M = |out - z|/κ, so with κ = 1 no step
        carries the output past its target. Classification: M = `LOGIT_STEP`/κ logits. 0 turns
        the bound off. Adam's steps are bounded by its own normalisation and are left as is.
    plasticity
        Any subset of "cbp" (continual backprop), "shrink_perturb", "l2_init", "redo" (dormant
        unit resets), "upgd" (utility-based perturbed updates) and "guided" (updates scaled by
        `guidance_file`); empty is plain backprop, the control. "upgd" and "guided" learn on the
        reference path.
    cbp_replacement_rate, cbp_maturity_threshold, cbp_decay_rate, cbp_utility
        Continual backprop's rho, m and eta (Dohare et al. 2024), and its utility: "contribution"
        (|outgoing weights| x |h - mean h|) or "adaptable_contribution" (also divided by the mean
        |incoming weight|, the variant the reference code uses on permuted MNIST).
    shrink, perturb_std
        Shrink and perturb, after every step: θ ← (1 - shrink) θ + N(0, perturb_std²); the
        noise is counter-based (SplitMix64, Box-Muller), the same on the compiled path.
    redo_every, redo_threshold
        ReDo (Sokar et al. 2023): every `redo_every` examples, hidden units whose mean |h| over
        those examples, divided by their layer's average of it, is <= `redo_threshold` (τ) get
        fresh incoming weights, zero outgoing weights and bias, and fresh optimizer state. τ 0.1
        is the telemetry's, so the units reset are those `tau_dormant_fraction` counts.
    l2_init_strength
        λ of the penalty λ‖θ - θ₀‖² toward the initial weights.
    upgd_utility_decay, upgd_noise_std, upgd_weight_decay
        UPGD's β, noise std and λ (Elsayed & Mahmood 2024; their defaults): utility
        u ← β u + (1-β)(-g·w) per weight, ū = sigmoid(û / max û) per tensor, and each update Δ
        (SGD: lr·g) becomes (Δ + lr·ξ)(1 - ū) + lr·λ·w with ξ ~ N(0, std²).
    guidance_file
        With "guided": a safetensors file of guidance values in [0, 1] per parameter
        (`lifelong guide` makes one) that multiply each update; features and classes the file
        does not name get 1.
    standardize
        Standardise inputs by their running mean and variance (the regression target always is).
    clip
        Standardised inputs and the standardised regression target are clipped to ±clip, and
        a value is counted in the running statistics as at most clip standard deviations from
        their mean (`lifelong.model.scaler`). 10: only values beyond 10 standard deviations are
        touched (Gaussian odds ~1e-23; heavy-tailed features reach 5-8 honestly), yet one absurd
        value (1e30, a unit error) moves the network no more than a 10-sigma one and the
        statistics by a bounded factor. Unstandardised inputs (`standardize=False`) are not
        clipped: their scale is the caller's.
    scaler_horizon
        The input and target statistics weight the n-th value by max(1/n, 1/scaler_horizon):
        exact running moments at first, then forgetting, so a shifted feature is re-centred.
        0 never forgets.
    recovery_refusals, recovery_window
        A step that would make the network non-finite is refused (the example changes nothing).
        `recovery_refusals` refusals within `recovery_window` examples trigger a recovery:
        the step size is halved (down to 1/16), then the network restarted fresh; a window
        without refusals doubles a halved step back.
    telemetry_window
        Examples per window of the streamed dead/dormant/effective-rank statistics.
    seed
        Seeds the learner's only random generator (initialisation, unit replacement, noise).

    """

    hidden: tuple[int, ...] = (64, 64)
    activation: str = "relu"
    optimizer: str = "sgd"
    lr: float = 0.01
    step_bound: float = 1.0
    momentum: float = 0.0
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_eps: float = 1e-8
    plasticity: tuple[str, ...] = ("cbp",)
    cbp_replacement_rate: float = 1e-4
    cbp_maturity_threshold: int = 100
    cbp_decay_rate: float = 0.99
    cbp_utility: str = "contribution"
    shrink: float = 1e-5
    perturb_std: float = 1e-5
    redo_every: int = 1000
    redo_threshold: float = 0.1
    l2_init_strength: float = 1e-4
    upgd_utility_decay: float = 0.999
    upgd_noise_std: float = 1e-3
    upgd_weight_decay: float = 1e-3
    guidance_file: str = ""
    standardize: bool = True
    clip: float = 10.0
    scaler_horizon: int = 10_000
    recovery_refusals: int = 10
    recovery_window: int = 1000
    telemetry_window: int = 1000
    seed: int = 0

    def __post_init__(self) -> None:
        # Lists (TOML, JSON, command lines) become tuples; method order does not matter.
        object.__setattr__(self, "hidden", tuple(self.hidden))
        object.__setattr__(self, "plasticity", tuple(sorted(set(self.plasticity))))
        self._validate()

    def _validate(self) -> None:
        if not all(isinstance(w, int) and not isinstance(w, bool) and w > 0 for w in self.hidden):
            raise ValueError(f"hidden must be positive integers, got {self.hidden}")
        _choice("activation", self.activation, ACTIVATIONS)
        _choice("optimizer", self.optimizer, OPTIMIZERS)
        _choice("cbp_utility", self.cbp_utility, CBP_UTILITIES)
        unknown = set(self.plasticity) - set(PLASTICITY_METHODS)
        if unknown:
            raise ValueError(
                f"unknown plasticity method(s) {sorted(unknown)}; known: {PLASTICITY_METHODS}"
            )
        _in_range("lr", self.lr, 0.0, 1000.0, low_open=True)
        _in_range("clip", self.clip, 0.0, math.inf, low_open=True)
        _in_range("step_bound", self.step_bound, 0.0, math.inf)
        for name in ("momentum", "adam_beta1", "adam_beta2", "cbp_decay_rate", "shrink"):
            _in_range(name, getattr(self, name), 0.0, 1.0, high_open=True)
        _in_range("upgd_utility_decay", self.upgd_utility_decay, 0.0, 1.0, high_open=True)
        for name in ("upgd_noise_std", "upgd_weight_decay"):
            _in_range(name, getattr(self, name), 0.0, math.inf)
        if not isinstance(self.guidance_file, str):
            raise ValueError(f"guidance_file must be a path, got {self.guidance_file!r}")
        if ("guided" in self.plasticity) != bool(self.guidance_file):
            raise ValueError('plasticity "guided" and guidance_file go together')
        for name in ("adam_eps", "perturb_std", "l2_init_strength", "cbp_replacement_rate"):
            _in_range(name, getattr(self, name), 0.0, math.inf)
        _in_range("redo_threshold", self.redo_threshold, 0.0, 1.0)
        for name in ("cbp_maturity_threshold", "telemetry_window", "seed", "scaler_horizon"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
        for name in ("telemetry_window", "recovery_refusals", "recovery_window", "redo_every"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not isinstance(self.standardize, bool):
            raise ValueError(f"standardize must be true or false, got {self.standardize!r}")

    def to_dict(self) -> dict[str, Any]:
        """The fields as JSON-able values (tuples become lists)."""
        return {
            f.name: list(v) if isinstance(v := getattr(self, f.name), tuple) else v
            for f in dataclasses.fields(self)
        }

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> LearnerConfig:
        return cls(**values)


def _choice(name: str, value: object, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {allowed}, got {value!r}")


def _in_range(
    name: str,
    value: object,
    low: float,
    high: float,
    *,
    low_open: bool = False,
    high_open: bool = False,
) -> None:
    ok = (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and (value > low if low_open else value >= low)
        and (value < high if high_open else value <= high)
    )
    if not ok:
        interval = f"{'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
        raise ValueError(f"{name} must be a number in {interval}, got {value!r}")
