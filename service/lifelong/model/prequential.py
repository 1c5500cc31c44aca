"""Prequential score and loss with a fading factor, and a drift detector on the error stream.

Each sample is predicted before it is learned, so its error is an honest test error. Recent
performance is the fading-factor prequential average of Gama, Sebastião & Rodrigues (2013, "On
evaluating stream learning algorithms"): for per-sample values L_i and fading factor a,

    S_i = L_i + a S_(i-1),   N_i = 1 + a N_(i-1),   average_i = S_i / N_i.

Score: accuracy (L = 1 if the prediction is right) or mean absolute error. Loss: log loss,
-log p(y), p clipped to [1e-15, 1 - 1e-15] like river, or squared error.

Drift: river's ADWIN (Bifet & Gavaldà 2007) on the 0/1 error, or on the absolute error divided by
the standard deviation of the targets seen so far: ADWIN's bound assumes values of order one, and
on raw errors of order 1e-3 it never fires. ADWIN detects a change of the mean either way; only a
rise of the error is a drift here (a fall is the model improving, as early in any stream): the
window ADWIN keeps after a detection must have a higher mean than the window it cut it from.

"""

from __future__ import annotations

import base64
import math
import warnings
from collections.abc import Sequence
from typing import Any

import river
from river import drift

__all__ = ["PrequentialMonitor"]

_TASKS = ("classification", "regression")
_P_MIN = 1e-15  # the clip of river's log losses: a confident mistake costs 34.5, not infinity


class PrequentialMonitor:
    """Recent prequential score and loss of a learner, and drifts of its error.

    Parameters
    ----------
    task
        "classification" or "regression".
    fading
        Fading factor a of the averages; they weigh roughly the last 1 / (1 - a) samples.
    delta
        ADWIN's confidence: smaller values give fewer false alarms and later detections.

    Attributes
    ----------
    drifts_detected
        Number of times the detector fired on a rise of the error.

    Examples
    --------
    >>> monitor = PrequentialMonitor("classification", fading=0.5)
    >>> monitor.update("a", "a", {"a": 0.8, "b": 0.2})
    False
    >>> monitor.update("b", "a", {"a": 0.6, "b": 0.4})
    False
    >>> monitor.score  # (0 + 0.5 * 1) / (1 + 0.5)
    0.3333333333333333
    >>> round(monitor.loss, 4)  # (-log 0.4 + 0.5 * -log 0.8) / (1 + 0.5)
    0.6852

    """

    def __init__(self, task: str, fading: float = 0.999, delta: float = 0.002) -> None:
        if task not in _TASKS:
            raise ValueError(f"task must be one of {_TASKS}, not {task!r}")
        if not 0 < fading <= 1:
            raise ValueError("fading must be in (0, 1]")
        self.task = task
        self.fading = fading
        self.delta = delta
        self.drifts_detected = 0
        # Plain floats rather than river's EWMean: that is an exponential moving average seeded with
        # the first value, not Gama's S / N, and its state lives in Rust, out of reach of JSON.
        self._weight = 0.0
        self._score_sum = 0.0
        self._loss_sum = 0.0
        # Running mean and sum of squared deviations of the targets (Welford), for the error scale.
        self._target_n = 0
        self._target_mean = 0.0
        self._target_m2 = 0.0
        self._detector = drift.ADWIN(delta=delta)
        # Sum and count of ADWIN's window (its own `total` and `width` are slow to read per
        # update): the mean before a detection, to compare with the window it keeps.
        self._window_sum = 0.0
        self._window_n = 0

    @property
    def score(self) -> float:
        """Recent accuracy or mean absolute error; 0 before any sample."""
        return self._score_sum / self._weight if self._weight else 0.0

    @property
    def totals(self) -> tuple[float, float]:
        """(S, N): the faded sum of scores and of weights. Two readings k samples apart give
        the score of those k samples alone: (S - a^k S0) / (N - a^k N0)."""
        return self._score_sum, self._weight

    @property
    def loss(self) -> float:
        """Recent log loss or squared error; 0 before any sample."""
        return self._loss_sum / self._weight if self._weight else 0.0

    def update(self, y_true: Any, y_pred: Any, proba: dict[Any, float] | None = None) -> bool:
        """Account for one prediction made before learning `y_true`; True if a drift is detected.

        For classification, `proba` maps labels to probabilities (a missing label has
        probability 0); without it the prediction counts as certain of `y_pred`.
        """
        if self.task == "classification":
            error = float(y_pred != y_true)
            p = proba.get(y_true, 0.0) if proba is not None else 1.0 - error
            score, loss = 1.0 - error, -math.log(min(max(p, _P_MIN), 1.0 - _P_MIN))
            scale = 1.0
        else:
            error = abs(y_true - y_pred)
            score, loss = error, error * error
            scale = self._observe_target(y_true)
        self._weight = 1.0 + self.fading * self._weight
        self._score_sum = score + self.fading * self._score_sum
        self._loss_sum = loss + self.fading * self._loss_sum
        if scale == 0:  # the targets so far are all equal: no scale to judge errors by
            return False
        return self._detect(error / scale)

    def _detect(self, value: float) -> bool:
        """Feed ADWIN; True if it cut its window and the part it kept has the higher error."""
        detector = self._detector
        detector.update(value)
        self._window_sum += value
        self._window_n += 1
        if not detector.drift_detected:
            return False
        before = self._window_sum / self._window_n
        # ADWIN reports its width as a float; the state keeps it an int, as loading does.
        self._window_sum, self._window_n = detector.total, int(detector.width)
        if self._window_sum / self._window_n > before:
            self.drifts_detected += 1
            return True
        return False

    def update_many(
        self, y_true: Sequence[Any], y_pred: Sequence[Any], p_true: Sequence[float] | None = None
    ) -> list[int]:
        """`update` for each example in order, with the same result; returns the indices of the
        examples on which a drift was detected. For classification, `p_true` holds each
        example's probability of its true label (default: certain of `y_pred`).

        >>> monitor = PrequentialMonitor("classification", fading=0.5)
        >>> monitor.update_many(["a", "b"], ["a", "a"], [0.8, 0.4])
        []
        >>> monitor.score, round(monitor.loss, 4)
        (0.3333333333333333, 0.6852)

        """
        a, weight, score_sum, loss_sum = self.fading, self._weight, self._score_sum, self._loss_sum
        detect, log, drifts = self._detect, math.log, []
        if self.task == "classification":
            if p_true is None:
                p_true = [float(p == y) for y, p in zip(y_true, y_pred, strict=True)]
            for i, (y, pred, p) in enumerate(zip(y_true, y_pred, p_true, strict=True)):
                error = float(pred != y)
                weight = 1.0 + a * weight
                score_sum = (1.0 - error) + a * score_sum
                loss_sum = -log(min(max(p, _P_MIN), 1.0 - _P_MIN)) + a * loss_sum
                if detect(error):
                    drifts.append(i)
        else:
            observe = self._observe_target
            for i, (y, pred) in enumerate(zip(y_true, y_pred, strict=True)):
                error = abs(y - pred)
                scale = observe(y)
                weight = 1.0 + a * weight
                score_sum = error + a * score_sum
                loss_sum = error * error + a * loss_sum
                if scale != 0 and detect(error / scale):
                    drifts.append(i)
        self._weight, self._score_sum, self._loss_sum = weight, score_sum, loss_sum
        return drifts

    def _observe_target(self, y: float) -> float:
        """Add `y` to the running mean and variance of the targets; return their std."""
        self._target_n += 1
        delta = y - self._target_mean
        self._target_mean += delta / self._target_n
        self._target_m2 += delta * (y - self._target_mean)
        return math.sqrt(self._target_m2 / self._target_n)

    def state_dict(self) -> dict[str, Any]:
        """Complete state as JSON-serialisable numbers, strings and booleans."""
        return {
            "task": self.task,
            "fading": self.fading,
            "delta": self.delta,
            "drifts_detected": self.drifts_detected,
            "weight": self._weight,
            "score_sum": self._score_sum,
            "loss_sum": self._loss_sum,
            "target_n": self._target_n,
            "target_mean": self._target_mean,
            "target_m2": self._target_m2,
            "window_sum": self._window_sum,
            "window_n": self._window_n,
            "detector": {
                # ADWIN's buckets live in river's Rust extension; its own serialisation (bincode)
                # is the only complete view of them. It is private to river, hence the version.
                "river": river.__version__,
                "drift_detected": self._detector.drift_detected,
                "adwin": base64.b64encode(_adwin_helper(self._detector).__getstate__()).decode(),
            },
        }

    def load_state_dict(self, d: dict[str, Any]) -> None:
        """Restore what `state_dict` returned, into a monitor built with the same arguments.

        Saved by another version of river, the detector's state cannot be trusted: the detector
        starts afresh (with a warning), as after a drift; the averages are kept.
        """
        for key in ("task", "fading", "delta"):
            if d[key] != getattr(self, key):
                raise ValueError(
                    f"saved with {key}={d[key]!r}, this monitor has {getattr(self, key)!r}"
                )
        self.drifts_detected = int(d["drifts_detected"])
        self._weight = float(d["weight"])
        self._score_sum = float(d["score_sum"])
        self._loss_sum = float(d["loss_sum"])
        self._target_n = int(d["target_n"])
        self._target_mean = float(d["target_mean"])
        self._target_m2 = float(d["target_m2"])
        self._detector = drift.ADWIN(delta=self.delta)
        self._window_sum, self._window_n = 0.0, 0
        saved = d["detector"]
        if saved["river"] != river.__version__:
            warnings.warn(
                f"drift detector saved by river {saved['river']}, this is {river.__version__}: "
                "it starts afresh",
                RuntimeWarning,
                stacklevel=2,
            )
            return
        _adwin_helper(self._detector).__setstate__(base64.b64decode(saved["adwin"]))
        # Its flag has no setter; it resets on the next update.
        self._detector._drift_detected = bool(saved["drift_detected"])  # noqa: SLF001
        self._window_sum = float(d.get("window_sum", self._detector.total))
        self._window_n = int(d.get("window_n", self._detector.width))


def _adwin_helper(detector: drift.ADWIN) -> Any:
    """ADWIN's Rust state, which river exposes no other way: pickled (bincode) it is the only
    complete view of the buckets."""
    return detector._helper  # noqa: SLF001
