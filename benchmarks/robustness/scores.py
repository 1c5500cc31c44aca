"""Prequential scores over a trailing window, what each event did to them, and the issue's
criterion.

- Classification: accuracy over the trailing `window` examples (higher is better).
- Regression: relative squared error, the window's mean squared error divided by the variance
  of the target over the same window (lower is better; 1 is predicting the window's mean), so a
  rescaled target is comparable.

`windowed(...)[t]` is the score of examples t - window .. t - 1 (NaN for t < window, and for any
window reaching the example at which the learner failed or beyond). For an event at e, followed
by the next event (or the end) at b:

- before: the score at e (the last window wholly before the event);
- recover: the first t in [e + window, b] (windows wholly after the event) whose score is within
  the bound of `before` (within `ACCURACY_DROP` points, or at most `RSE_FACTOR` times), minus
  window, minus e: how many examples after the event had to pass before a full window is back
  at the old level. 0: the first window after the event already is; None: never before b;
- worst: the worst score over those windows; after: the score at b (the settled level).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from streams import CLASSIFICATION

ACCURACY_DROP = 0.03  # "within 3 points"
RSE_FACTOR = 1.5  # "within 1.5x relative squared error"


def windowed(task: str, values: np.ndarray, y: np.ndarray | None, window: int) -> np.ndarray:
    """Scores at every t in 0..n: `values` is 1/0 per correct prediction (classification) or
    the squared error (regression, with the targets `y`); NaN values: the learner had failed."""
    n = len(values)
    out = np.full(n + 1, np.nan)
    if n < window:
        return out
    # Window by window, not differences of running sums: one squared error of 1e20 would leave
    # those differences meaningless for the rest of the stream.
    if task == CLASSIFICATION:
        out[window:] = _per_window(values, window, np.mean)
    else:
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            mse = _per_window(values, window, np.mean)
            out[window:] = mse / _per_window(y, window, np.var)
    return out


def _per_window(
    a: np.ndarray, window: int, statistic: Callable[..., np.ndarray], block: int = 2048
) -> np.ndarray:
    """statistic(a[t - window:t]) for t = window..n, a block of windows at a time (the
    temporaries of `np.var` over all windows at once would take n x window floats)."""
    views = np.lib.stride_tricks.sliding_window_view(a, window)
    return np.concatenate(
        [statistic(views[i : i + block], axis=1) for i in range(0, len(views), block)]
    )


def within(task: str, score: np.ndarray, before: float) -> np.ndarray:
    if task == CLASSIFICATION:
        return score >= before - ACCURACY_DROP
    return score <= RSE_FACTOR * before


def events(
    task: str, score: np.ndarray, positions: tuple[int, ...], window: int
) -> list[dict[str, Any]]:
    """before / worst / after / recover of every event (see the module's docstring)."""
    n = len(score) - 1
    out = []
    for i, e in enumerate(positions):
        b = positions[i + 1] if i + 1 < len(positions) else n
        before = float(score[e])
        after_windows = score[e + window : b + 1]
        ok = np.flatnonzero(within(task, after_windows, before))
        finite = after_windows[np.isfinite(after_windows)]
        worst = (finite.min() if task == CLASSIFICATION else finite.max()) if finite.size else None
        out.append(
            {
                "position": e,
                "before": before,
                "worst": None if worst is None else float(worst),
                "after": float(score[b]),
                "recover": int(ok[0]) if ok.size else None,
            }
        )
    return out


def final(task: str, values: np.ndarray, y: np.ndarray | None, last: int) -> float:
    """The score over the last `last` examples (NaN if the learner failed before the end)."""
    return float(windowed(task, values[-last:], None if y is None else y[-last:], last)[-1])


def criterion(results: dict[str, dict[str, Any]], reference: str) -> None:
    """Adds "pass" and "why" to each learner's results on one stream: it survived (never
    raised, never predicted a non-finite value), and after every event its score came back
    within the bound, no slower than `reference` did (when the reference came back at all)."""
    ref = results[reference]["events"]
    for r in results.values():
        why = []
        if not r["survived"]:
            why.append(f"failed at {r['failed_at']}")
        for ev, ev_ref in zip(r["events"], ref, strict=True):
            if not r["survived"] and ev["position"] >= r["failed_at"]:
                continue  # the failure says it
            if ev["recover"] is None:
                why.append(f"never recovered from {ev['position']}")
            elif ev_ref["recover"] is not None and ev["recover"] > ev_ref["recover"]:
                why.append(
                    f"slower than {reference} after {ev['position']}: "
                    f"{ev['recover']} > {ev_ref['recover']}"
                )
        r["pass"], r["why"] = not why, why
