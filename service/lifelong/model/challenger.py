"""A learner that does not bet on its warm model alone after a change: `Challenged` trains a
fresh challenger beside the serving incumbent and swaps them when the challenger is better.

A network trained long on one concept may need more examples to unlearn it than a fresh one
needs to learn the next. So when a trigger fires, a fresh learner of the same configuration
starts beside the incumbent; both learn every following row once (nothing is stored), the
incumbent keeps serving, and the challenger replaces it when its prequential score over the
rows both have seen is better by `margin` after at least `window` rows, or is dropped at
`max_age` rows. The deposed incumbent is not dropped at once: it learns on beside the new one,
as a challenger of reason "return", for `keep_deposed` rows, and serves again if it is better
by `margin` (a concept that recurs: the old model may still know it).

Triggers, checked every `check_every` rows counted from the start (so the state does not depend
on how the stream is split into calls, and a checkpoint continues bit for bit):

- "drift": the incumbent's drift detector fired;
- "score_drop": its prequential score fell `score_drop` (a fraction) below its best since the
  last challenge ended (its error rose by that fraction, for regression);
- "plasticity": a hidden layer's dead fraction reached `dead_fraction`, or its effective rank
  fell to `rank_fraction` of its width (read every `plasticity_every` rows).

Scores: each learner's prequential monitor scores a row before learning it (exact test-then-
train, inside `learn_many`'s compiled loop as well), so nothing is predicted twice. Each one's
fading score over the rows since the challenge began comes from two readings of its monitor's
faded sums, at the start and now: (S - a^k S0) / (N - a^k N0) after k learned rows. Accuracy
for classification, mean absolute error for regression (lower is better; there `margin` is a
fraction of the incumbent's error).

>>> import numpy as np
>>> from lifelong.model import LearnerConfig, LifelongClassifier, load
>>> model = Challenged(LifelongClassifier(LearnerConfig(hidden=(16,), seed=0)))
>>> X = np.random.default_rng(0).normal(size=(40_000, 2))
>>> model.learn_many(X[:20_000], (X[:20_000, 0] > 0).tolist())  # concept A
[]
>>> model.learn_many(X[20_000:], (X[20_000:, 1] > 0).tolist())  # then B: the detector fires
[]
>>> s = model.stats()
>>> s.samples_learned, s.challenger.active, s.challenger.started["drift"]
(40000, True, 1)
>>> s.challenger.swaps["drift"]  # the warm model relearned as fast: it keeps serving
0
>>> load(model.to_bytes()).to_bytes() == model.to_bytes()
True

"""

from __future__ import annotations

import dataclasses
import itertools
import logging
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from lifelong.model import state
from lifelong.model.base import ChallengerStats, Learner, LearnerStats, Predictor
from lifelong.model.values import labelled_rows

__all__ = ["REASONS", "Challenged", "ChallengerConfig"]

# Why a challenge began: the triggers, and "return" for a deposed incumbent kept learning.
log = logging.getLogger(__name__)

REASONS = ("drift", "score_drop", "plasticity", "return")
STATE_FORMAT = 1


@dataclass(frozen=True)
class ChallengerConfig:
    """When a challenger starts, when it replaces the incumbent and when it is dropped.
    Defaults chosen on `benchmarks/recovery` (its README says how)."""

    window: int = 1000  # rows a challenger learns before it may replace the incumbent
    margin: float = 0.02  # accuracy points (classification); fraction of the error (regression)
    max_age: int = 30_000  # rows after which a challenger that has not won is dropped
    keep_deposed: int = 50_000  # rows a deposed incumbent learns on, in case its concept returns
    on_drift: bool = True  # the incumbent's drift detector starts a challenger
    score_drop: float | None = 0.1  # None: the score does not start one
    dead_fraction: float | None = 0.5  # None: dead units do not start one
    rank_fraction: float | None = 0.05  # None: the effective rank does not start one
    check_every: int = 250  # rows between decisions
    plasticity_every: int = 5000  # rows between readings of the plasticity telemetry

    def __post_init__(self) -> None:
        for name in ("window", "max_age", "check_every", "plasticity_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if self.keep_deposed < 0:
            raise ValueError("keep_deposed must be >= 0")
        if self.plasticity_every % self.check_every:
            raise ValueError("plasticity_every must be a multiple of check_every")
        if self.margin < 0:
            raise ValueError("margin must be >= 0")


class Challenged:
    """A `Learner` around an `incumbent` that serves, and a `fresh` factory of challengers.

    `fresh()` (default: the incumbent's class and configuration) is called once: its state is
    the template of every challenger, so a checkpoint restores the factory without code. The
    learners must have a prequential `monitor` and `add_features` (the built-in ones do).
    `samples_learned` counts on across swaps (the service's model version); so do the counters
    of `stats()`.
    """

    def __init__(
        self,
        incumbent: Learner,
        fresh: Callable[[], Learner] | None = None,
        settings: ChallengerConfig | None = None,
    ) -> None:
        self.settings = settings if settings is not None else ChallengerConfig()
        self.task = incumbent.task
        self._incumbent = incumbent
        template = type(incumbent)(incumbent.config) if fresh is None else fresh()
        self._template = template.to_bytes()
        self._challenger: Learner | None = None
        self._challenge: dict[str, Any] | None = None  # reason, start row, incumbent's sums
        self._rows = 0  # offered, learned or refused: the clock of decisions
        # What the counters of earlier incumbents add to this one's: a swap adds the old one's
        # counts minus the new one's, so every count goes on from where it was.
        self._offset: dict[str, Any] = {
            "samples": 0,
            "drifts": 0,
            "refused": {},
            "recoveries": {},
            "units": [],
        }
        self._best: float | None = None  # the incumbent's best score since the last challenge
        self._best_after = self.settings.window  # a fading score needs rows before it means much
        self._drifts = incumbent.monitor.drifts_detected
        self._started = dict.fromkeys(REASONS, 0)
        self._swaps = dict.fromkeys(REASONS, 0)
        self._dropped = dict.fromkeys(REASONS, 0)

    # -- the Learner interface -----------------------------------------------------------------

    @property
    def incumbent(self) -> Learner:
        """The learner that serves."""
        return self._incumbent

    @property
    def challenger(self) -> Learner | None:
        """The learner being tried, if any."""
        return self._challenger

    @property
    def config(self) -> Any:
        """The learners' configuration (the incumbent's; challengers are made alike)."""
        return self._incumbent.config

    @property
    def feature_names(self) -> tuple[Hashable, ...]:
        return self._incumbent.feature_names

    @property
    def classes(self) -> tuple[Any, ...]:
        return self._incumbent.classes

    @property
    def samples_learned(self) -> int:
        return self._offset["samples"] + self._incumbent.samples_learned

    def learn_one(self, x: dict, y: Any) -> None:
        self._incumbent.learn_one(x, y)  # a bad example raises here, before anything changed
        if self._challenger is not None:
            self._challenger.learn_one(x, y)
        self._rows += 1
        self._decide()

    def learn_many(
        self,
        X: np.ndarray | Sequence[Sequence[float]],
        y: Sequence[Any],
        refused: list[int] | None = None,
    ) -> list[int]:
        """The incumbent's `learn_many` (its refused rows are returned), then the challenger's
        on the same rows, split where a decision falls due."""
        X = labelled_rows(X, y)
        if not isinstance(y, list | np.ndarray):
            y = list(y)
        refused = [] if refused is None else refused
        mark, every, start = len(refused), self.settings.check_every, 0
        while start < len(X):
            end = min(len(X), start + every - self._rows % every)
            self._learn_both(X[start:end], y[start:end], refused, start)
            self._decide()
            start = end
        return refused[mark:]

    def _learn_both(self, X: np.ndarray, y: Sequence[Any], refused: list[int], at: int) -> None:
        """Rows `at`... of a call, up to the next decision: the incumbent learns them, then the
        challenger the rows the incumbent went through (all, unless a bad label raised)."""
        incumbent, positions = self._incumbent, []
        before = incumbent.samples_learned
        try:
            incumbent.learn_many(X, y, positions)
        finally:  # a bad label raises at its row: the challenger learns the rows before it
            done = incumbent.samples_learned - before + len(positions)
            refused.extend(at + i for i in positions)
            challenger = self._challenger
            if challenger is not None and done:
                if len(challenger.feature_names) < len(incumbent.feature_names):
                    challenger.add_features(incumbent.feature_names)  # named as the incumbent's
                challenger.learn_many(X[:done], y[:done])
            self._rows += done

    def reset_dormant_units(self, threshold: float) -> int:
        """The incumbent's dormant units reset (`LifelongClassifier.reset_dormant_units`)."""
        return self._incumbent.reset_dormant_units(threshold)

    def challenge(self, reason: str) -> bool:
        """Start a fresh challenger now for `reason` (one of `REASONS`), unless one learns
        already; whether it started. Deterministic when called at the same row each run."""
        if reason not in REASONS:
            raise ValueError(f"reason must be one of {REASONS}, got {reason!r}")
        if self._challenge is not None:
            return False
        self._start(reason)
        return True

    def snapshot(self) -> Predictor:
        """The incumbent's snapshot; after a swap, the former challenger's."""
        snapshot = self._incumbent.snapshot()
        snapshot.version = self.samples_learned
        return snapshot

    def stats(self) -> LearnerStats:
        """The incumbent's, with counters carried over swaps, and the challenge's."""
        s = self._incumbent.stats()
        counts = _combine(_counts(s), self._offset, 1)
        scores = self._scores() if self._challenge is not None else (None, None)
        return dataclasses.replace(
            s,
            samples_learned=counts["samples"],
            drifts_detected=counts["drifts"],
            updates_refused=counts["refused"],
            recoveries=counts["recoveries"],
            layers=tuple(
                dataclasses.replace(layer, units_replaced=units)
                for layer, units in zip(s.layers, counts["units"], strict=False)
            ),
            challenger=ChallengerStats(
                active=self._challenger is not None,
                age=self._rows - self._challenge["row"] if self._challenge else 0,
                prequential_score=scores[0],
                incumbent_score=scores[1],
                started=dict(self._started),
                swaps=dict(self._swaps),
                dropped=dict(self._dropped),
            ),
        )

    # -- decisions -----------------------------------------------------------------------------

    def _decide(self) -> None:
        """Start, swap or drop a challenger, when a check falls due."""
        if self._rows % self.settings.check_every == 0:
            if self._challenge is None:
                reason = self._trigger()
                if reason is not None:
                    self._start(reason)
            else:
                self._judge()

    def _trigger(self) -> str | None:
        cfg, incumbent = self.settings, self._incumbent
        drifts = incumbent.monitor.drifts_detected
        fired, self._drifts = drifts > self._drifts, drifts
        if self._rows < self._best_after:  # a young model's alarms and best say little
            return None
        if cfg.on_drift and fired:
            return "drift"
        score = incumbent.monitor.score
        if cfg.score_drop is not None:
            if self._best is None or self._better(score, self._best, 0.0):
                self._best = score
            elif self._better(self._best, score, cfg.score_drop, relative=True):
                return "score_drop"
        if self._rows % cfg.plasticity_every == 0 and self._plasticity_lost():
            return "plasticity"
        return None

    def _plasticity_lost(self) -> bool:
        cfg = self.settings
        if cfg.dead_fraction is None and cfg.rank_fraction is None:
            return False
        for layer in self._incumbent.stats().layers:
            if cfg.dead_fraction is not None and layer.dead_fraction >= cfg.dead_fraction:
                return True
            if cfg.rank_fraction is not None and layer.effective_rank <= (
                cfg.rank_fraction * layer.width
            ):
                return True
        return False

    def _better(self, a: float, b: float, margin: float, relative: bool = False) -> bool:
        """Whether score `a` beats `b` by `margin` (absolute for accuracy unless `relative`)."""
        if self.task == "regression":
            return a < b * (1.0 - margin)
        return a > (b * (1.0 + margin) if relative else b + margin)

    def _start(self, reason: str) -> None:
        challenger = state.load(self._template)
        challenger.add_features(self._incumbent.feature_names)  # the same rows, the same order
        self._begin(challenger, reason)

    def _begin(self, challenger: Learner, reason: str) -> None:
        """Both learners' monitor sums now: their scores over the challenge are what follows."""
        self._challenger, incumbent = challenger, self._incumbent
        self._challenge = {"reason": reason, "row": self._rows}
        for name, learner in (("incumbent", incumbent), ("challenger", challenger)):
            s0, n0 = learner.monitor.totals
            self._challenge[name] = [learner.samples_learned, s0, n0]
        self._started[reason] += 1

    def _scores(self) -> tuple[float | None, float | None]:
        """(challenger, incumbent) prequential scores over the rows since the challenge began."""
        scores = []
        for name, learner in (("challenger", self._challenger), ("incumbent", self._incumbent)):
            learned, s0, n0 = self._challenge[name]
            fade = learner.monitor.fading ** (learner.samples_learned - learned)
            s, n = learner.monitor.totals
            s, n = s - fade * s0, n - fade * n0
            scores.append(s / n if n > 0 else None)
        return scores[0], scores[1]

    def _judge(self) -> None:
        cfg, c = self.settings, self._challenge
        age = self._rows - c["row"]
        if age >= cfg.window:
            challenger, incumbent = self._scores()
            if None not in (challenger, incumbent) and self._better(
                challenger, incumbent, cfg.margin
            ):
                self._swap()
                return
        if age >= (cfg.keep_deposed if c["reason"] == "return" else cfg.max_age):
            self._dropped[c["reason"]] += 1
            self._end()

    def _swap(self) -> None:
        """The challenger serves; the deposed incumbent learns on beside it for `keep_deposed`
        rows, and comes back if it is better again (a recurring concept)."""
        old, new = self._incumbent, self._challenger
        counted = _combine(self._offset, _counts(old.stats()), 1)
        self._offset = _combine(counted, _counts(new.stats()), -1)
        reason = self._challenge["reason"]
        self._swaps[reason] += 1
        log.warning(
            "a %s challenger replaced the serving model (%s swap(s) since the start, by reason: "
            "%s) after %d rows; the deposed one learns on in case its concept returns",
            reason, sum(self._swaps.values()), self._swaps, self._rows - self._challenge["row"],
        )  # fmt: skip
        self._incumbent = new
        self._end()
        if self.settings.keep_deposed:
            self._begin(old, "return")

    def _end(self) -> None:
        """No challenger; the trigger starts over (a new best after a warm-up)."""
        self._challenger = self._challenge = None
        self._best, self._best_after = None, self._rows + self.settings.window
        self._drifts = self._incumbent.monitor.drifts_detected

    # -- state ---------------------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        """Both learners' states (nested as bytes), the template and the trigger's state."""
        tensors = {
            "incumbent": state.as_tensor(self._incumbent.to_bytes()),
            "template": state.as_tensor(self._template),
        }
        if self._challenger is not None:
            tensors["challenger"] = state.as_tensor(self._challenger.to_bytes())
        meta = {
            "format": STATE_FORMAT,
            "settings": dataclasses.asdict(self.settings),
            "challenge": self._challenge,
            "rows": self._rows,
            "offset": self._offset,
            "best": self._best,
            "best_after": self._best_after,
            "drifts": self._drifts,
            "started": self._started,
            "swaps": self._swaps,
            "dropped": self._dropped,
        }
        return state.dumps(type(self).__name__, tensors, meta)

    @classmethod
    def from_state(cls, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> Challenged:
        """The learner `to_bytes` described (what `state.load` calls for this kind)."""
        if meta.get("format") != STATE_FORMAT:
            raise ValueError(f"unsupported state format {meta.get('format')!r}")
        template = state.as_bytes(tensors["template"])
        model = cls(
            state.load(state.as_bytes(tensors["incumbent"])),
            lambda: state.load(template),
            ChallengerConfig(**meta["settings"]),
        )
        model._template = template
        if "challenger" in tensors:
            model._challenger = state.load(state.as_bytes(tensors["challenger"]))
        model._challenge = meta["challenge"]
        for key in ("rows", "offset", "best", "best_after", "drifts"):
            setattr(model, f"_{key}", meta[key])
        model._started.update(meta["started"])
        model._swaps.update(meta["swaps"])
        model._dropped.update(meta["dropped"])
        return model


def _counts(s: LearnerStats) -> dict[str, Any]:
    """The counters of `s` that must not go back when another learner takes over."""
    return {
        "samples": s.samples_learned,
        "drifts": s.drifts_detected,
        "refused": s.updates_refused,
        "recoveries": s.recoveries,
        "units": [layer.units_replaced for layer in s.layers],
    }


def _combine(a: dict[str, Any], b: dict[str, Any], sign: int) -> dict[str, Any]:
    """Counts `a` plus `sign` times counts `b`, counter by counter."""

    def by_key(x: dict[str, int], y: dict[str, int]) -> dict[str, int]:
        return {k: x.get(k, 0) + sign * y.get(k, 0) for k in {**x, **y}}

    return {
        "samples": a["samples"] + sign * b["samples"],
        "drifts": a["drifts"] + sign * b["drifts"],
        "refused": by_key(a["refused"], b["refused"]),
        "recoveries": by_key(a["recoveries"], b["recoveries"]),
        "units": [
            x + sign * y for x, y in itertools.zip_longest(a["units"], b["units"], fillvalue=0)
        ],
    }


state.register("Challenged", Challenged.from_state)
