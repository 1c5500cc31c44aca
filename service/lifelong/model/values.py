"""Raw feature values as the learners take them: finite float64, clipped to ±`RAW_LIMIT`.

>>> numbers([1, 2.5]).tolist()
[1.0, 2.5]
>>> numbers([1.0, float("nan")], names=["a", "b"])
Traceback (most recent call last):
...
ValueError: feature values must be finite, got 'b'=nan

"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Sequence, Sized
from numbers import Real
from typing import Any

import numpy as np

# Raw values (features, regression targets) beyond ±RAW_LIMIT count as ±RAW_LIMIT: their squares
# stay finite in the float64 running variances, whatever a client sends.
RAW_LIMIT = 1e100  # kernel.c: RAW_LIMIT
# `numbers` checks Σ(x·s)² < (RAW_LIMIT·s)² in two calls; with this s no square overflows.
_CHECK_SCALE = 1e-160
_CHECK_BOUND = (RAW_LIMIT * _CHECK_SCALE) ** 2


def numbers(values: Any, names: Sequence[Hashable] | None = None) -> np.ndarray:
    """`values` as a float64 array, checked finite; values beyond ±`RAW_LIMIT` are clipped
    (in a copy). `names`: the features `values` are of, named in the error if one is bad."""
    try:
        raw = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        bad = _first(names, values, lambda v: not isinstance(v, Real))
        raise TypeError(f"feature values must be numbers, got {bad}") from None
    scaled = raw.reshape(-1) * _CHECK_SCALE
    if scaled.dot(scaled) < _CHECK_BOUND:  # all finite and within ±RAW_LIMIT: the usual case
        return raw
    if not np.isfinite(raw).all():
        bad = _first(names, values, lambda v: not math.isfinite(float(v)))
        raise ValueError(f"feature values must be finite, got {bad}")
    if raw.size and (raw.max() > RAW_LIMIT or raw.min() < -RAW_LIMIT):
        raw = np.clip(raw, -RAW_LIMIT, RAW_LIMIT)
    return raw


def labelled_rows(X: Any, y: Sized) -> np.ndarray:
    """`X` as `numbers`, checked to be (rows, features) with a label in `y` for each row.

    >>> labelled_rows([[1, 2], [3, 4]], ["a", "b"]).shape
    (2, 2)
    """
    X = numbers(X)
    if X.ndim != 2 or len(X) != len(y):
        raise ValueError(f"X must be (rows, features) with a label per row, got {X.shape}")
    return X


def _first(names: Sequence[Hashable] | None, values: Any, bad: Callable[[Any], bool]) -> str:
    """The first bad value with its feature's name (`name=value`), or all of them unnamed."""
    if names is not None:
        for name, value in zip(names, values, strict=True):
            if bad(value):
                return f"{name!r}={value!r}"
    return repr(values)
