"""Remediation from telemetry: a sustained plasticity symptom mapped to an action, taken by the
learner itself and counted (`lifelong_remediations_total{action}`).

`Remediated` wraps a learner (the built-in MLP, or a `Challenged` one) and reads its plasticity
telemetry every `every` rows counted from the start (the telemetry window: one reading per
completed window), so its decisions do not depend on how the stream is split into calls and a
checkpoint continues bit for bit. A `Rule` fires when its symptom holds in some hidden layer for
`windows` readings in a row; its streak then starts again.

Symptoms (per hidden layer, of the last completed window):

- "dead_fraction": the fraction of units that never fired is at least `threshold`;
- "tau_dormant_fraction": the fraction of τ-dormant units is at least `threshold`;
- "rank_fraction": the effective rank over the width is at most `threshold`.

Actions:

- "redo": reset the units τ-dormant over the last window (score ≤ `redo_threshold`), as a ReDo
  sweep does (`reset_dormant_units`);
- "challenger": start a fresh challenger beside the serving model (the learner must be
  `Challenged`: settings `challenger = true`); counted once it starts.

>>> import numpy as np
>>> from lifelong.model import LearnerConfig, LifelongRegressor, load
>>> model = Remediated(LifelongRegressor(LearnerConfig(hidden=(16,), telemetry_window=100)),
...                    [Rule("dead_fraction", 0.0, windows=2, action="redo")])
>>> X = np.random.default_rng(0).normal(size=(1000, 3))
>>> model.learn_many(X, X.sum(1).tolist())
[]
>>> model.stats().remediations  # "dead fraction >= 0" holds always: every second window
{'redo': 5}
>>> load(model.to_bytes()).to_bytes() == model.to_bytes()
True

"""

from __future__ import annotations

import dataclasses
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from lifelong.model import state
from lifelong.model.base import Learner, LearnerStats, Predictor
from lifelong.model.challenger import Challenged
from lifelong.model.values import labelled_rows

__all__ = ["ACTIONS", "SYMPTOMS", "Remediated", "Rule"]

SYMPTOMS = ("dead_fraction", "tau_dormant_fraction", "rank_fraction")
ACTIONS = ("redo", "challenger")
STATE_FORMAT = 1


@dataclass(frozen=True)
class Rule:
    """Take `action` when `symptom` crosses `threshold` in a hidden layer for `windows`
    readings in a row."""

    symptom: str
    threshold: float
    windows: int = 3
    action: str = "redo"
    redo_threshold: float = 0.1  # τ of the units "redo" resets

    def __post_init__(self) -> None:
        if self.symptom not in SYMPTOMS:
            raise ValueError(f"symptom must be one of {SYMPTOMS}, got {self.symptom!r}")
        if self.action not in ACTIONS:
            raise ValueError(f"action must be one of {ACTIONS}, got {self.action!r}")
        if self.windows < 1:
            raise ValueError("windows must be at least 1")
        if not 0.0 <= self.threshold <= 1.0 or not 0.0 <= self.redo_threshold <= 1.0:
            raise ValueError("threshold and redo_threshold are fractions in [0, 1]")

    def holds(self, stats: LearnerStats) -> bool:
        """Whether the symptom shows in some hidden layer of `stats`."""
        for layer in stats.layers:
            if self.symptom == "rank_fraction":
                if layer.effective_rank <= self.threshold * layer.width:
                    return True
            elif self.symptom == "dead_fraction":
                if layer.dead_fraction >= self.threshold:
                    return True
            elif layer.tau_dormant_fraction >= self.threshold:
                return True
        return False


class Remediated:
    """A `Learner` around `learner` that takes `rules`' actions; `every`: rows between readings
    (default: the learner's telemetry window)."""

    def __init__(self, learner: Learner, rules: Sequence[Rule], every: int | None = None) -> None:
        if not rules:
            raise ValueError("no remediation rules")
        challenged = isinstance(learner, Challenged)
        if any(r.action == "challenger" for r in rules) and not challenged:
            raise ValueError("the action 'challenger' needs a learner with one (challenger)")
        self.learner = learner
        self.rules = tuple(rules)
        self.every = every if every is not None else learner.config.telemetry_window
        if self.every < 1:
            raise ValueError("every must be at least 1")
        self.task = learner.task
        # Learned or refused: the clock of readings, from the learner's count so that readings
        # fall where its telemetry windows close.
        self._rows = learner.samples_learned
        self._streaks = [0] * len(self.rules)
        self._taken = dict.fromkeys(dict.fromkeys(r.action for r in self.rules), 0)

    # -- the Learner interface -----------------------------------------------------------------

    @property
    def feature_names(self) -> tuple[Hashable, ...]:
        return self.learner.feature_names

    @property
    def classes(self) -> tuple[Any, ...]:
        return self.learner.classes

    @property
    def samples_learned(self) -> int:
        return self.learner.samples_learned

    def learn_one(self, x: dict, y: Any) -> None:
        self.learner.learn_one(x, y)
        self._rows += 1
        self._read()

    def learn_many(
        self,
        X: np.ndarray | Sequence[Sequence[float]],
        y: Sequence[Any],
        refused: list[int] | None = None,
    ) -> list[int]:
        """The learner's `learn_many`, split where a reading falls due."""
        X = labelled_rows(X, y)
        if not isinstance(y, list | np.ndarray):
            y = list(y)
        refused = [] if refused is None else refused
        mark, start = len(refused), 0
        while start < len(X):
            end = min(len(X), start + self.every - self._rows % self.every)
            positions: list[int] = []
            before = self.learner.samples_learned
            try:
                self.learner.learn_many(X[start:end], y[start:end], positions)
            finally:  # a bad label raises at its row: the rows before it count
                refused.extend(start + i for i in positions)
                self._rows += self.learner.samples_learned - before + len(positions)
            self._read()
            start = end
        return refused[mark:]

    def snapshot(self) -> Predictor:
        return self.learner.snapshot()

    def stats(self) -> LearnerStats:
        return dataclasses.replace(self.learner.stats(), remediations=dict(self._taken))

    # -- readings ------------------------------------------------------------------------------

    def _read(self) -> None:
        if self._rows % self.every:
            return
        stats = self.learner.stats()
        for i, rule in enumerate(self.rules):
            self._streaks[i] = self._streaks[i] + 1 if rule.holds(stats) else 0
            if self._streaks[i] >= rule.windows:
                self._streaks[i] = 0
                if self._act(rule):
                    self._taken[rule.action] += 1

    def _act(self, rule: Rule) -> bool:
        if rule.action == "redo":
            self.learner.reset_dormant_units(rule.redo_threshold)
            return True
        return self.learner.challenge("plasticity")

    # -- state ---------------------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        """The learner's state (nested as bytes), the rules and their streaks."""
        tensors = {"learner": state.as_tensor(self.learner.to_bytes())}
        meta = {
            "format": STATE_FORMAT,
            "rules": [dataclasses.asdict(r) for r in self.rules],
            "every": self.every,
            "rows": self._rows,
            "streaks": self._streaks,
            "taken": self._taken,
        }
        return state.dumps(type(self).__name__, tensors, meta)

    @classmethod
    def from_state(cls, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> Remediated:
        """The learner `to_bytes` described (what `state.load` calls for this kind)."""
        if meta.get("format") != STATE_FORMAT:
            raise ValueError(f"unsupported state format {meta.get('format')!r}")
        learner = state.load(state.as_bytes(tensors["learner"]))
        model = cls(learner, [Rule(**r) for r in meta["rules"]], meta["every"])
        model._rows = meta["rows"]
        model._streaks = list(meta["streaks"])
        model._taken.update(meta["taken"])
        return model


state.register("Remediated", Remediated.from_state)
