"""Online standardisation of the inputs and of the regression target.

Running means and variances (Welford, in float64: a float32 mean drifts over millions of
examples) of everything seen so far, as river's `preprocessing.StandardScaler`. An example is
counted before it is standardised, so the first value of a feature maps to 0.

>>> import numpy as np
>>> scaler = Standardizer()
>>> scaler.grow(2)
>>> z = np.zeros(2, dtype=np.float32)
>>> for x in ([1.0, 10.0], [3.0, 10.0]):
...     scaler.learn_transform(np.array(x), z)
>>> z  # (3 - 2) / 1; a constant feature stays at 0
array([1., 0.], dtype=float32)
>>> scaler.transform(np.array([[2.0, 11.0]]))  # no spread yet: 0, as river does
array([[0., 0.]], dtype=float32)

"""

from __future__ import annotations

import math

import numpy as np

# Floor of a standard deviation while learning, where a feature without spread (m2 = 0) has
# a deviation of exactly 0 from its mean: its z-score is 0, as river's.
TINY = 1e-12


class Standardizer:
    """Per-feature running mean and variance; inputs become z-scores.

    A feature missing from an example is not counted in its statistics and its z-score is 0, so
    the value the network sees for it is the mean: it contributes as little as possible.
    """

    def __init__(self) -> None:
        self.count = np.zeros(0)
        self.mean = np.zeros(0)
        self.m2 = np.zeros(0)
        self._d = np.zeros(0)
        self._t = np.zeros(0)

    @property
    def n_features(self) -> int:
        return len(self.count)

    def grow(self, k: int) -> None:
        """Add `k` features, never seen yet."""
        pad = np.zeros(k)
        self.count = np.concatenate([self.count, pad])
        self.mean = np.concatenate([self.mean, pad])
        self.m2 = np.concatenate([self.m2, pad])
        self._d = np.zeros(self.n_features)
        self._t = np.zeros(self.n_features)

    def learn_transform(
        self, x: np.ndarray, out: np.ndarray, present: np.ndarray | None = None
    ) -> None:
        """Count `x` (float64, one value per feature), then write its z-scores into `out`.

        `present`: indices of the features the example has; the others are skipped and get 0.
        """
        if present is not None:
            self._learn_transform_some(x, out, present)
            return
        count, mean, m2, d, t = self.count, self.mean, self.m2, self._d, self._t
        count += 1.0
        np.subtract(x, mean, out=d)
        np.divide(d, count, out=t)
        mean += t
        np.subtract(x, mean, out=t)  # x - new mean
        d *= t
        m2 += d
        np.divide(m2, count, out=d)
        np.sqrt(d, out=d)
        np.maximum(d, TINY, out=d)
        np.divide(t, d, out=out)

    def _learn_transform_some(self, x: np.ndarray, out: np.ndarray, present: np.ndarray) -> None:
        x = x[present]
        count = self.count[present] + 1.0
        d = x - self.mean[present]
        mean = self.mean[present] + d / count
        t = x - mean
        m2 = self.m2[present] + d * t
        self.count[present], self.mean[present], self.m2[present] = count, mean, m2
        out[...] = 0.0
        out[present] = t / np.maximum(np.sqrt(m2 / count), TINY)

    def transform(self, X: np.ndarray, columns: list[int] | None = None) -> np.ndarray:
        """z-scores of `X` (n, n_features) or (n_features,), as float32; the statistics do not
        change. `columns`: the features `X` holds, if not all."""
        count, mean, m2 = self.count, self.mean, self.m2
        if columns is not None:
            count, mean, m2 = count[columns], mean[columns], m2[columns]
        std = np.sqrt(m2 / np.maximum(count, 1.0))
        z = np.zeros(np.shape(X), dtype=np.float32)
        np.divide(X - mean, std, out=z, where=std > 0, casting="same_kind")
        return z

    def copy(self) -> Standardizer:
        other = Standardizer()
        other.count, other.mean, other.m2 = self.count.copy(), self.mean.copy(), self.m2.copy()
        return other

    def state_dict(self) -> dict[str, np.ndarray]:
        return {"count": self.count, "mean": self.mean, "m2": self.m2}

    def load_state_dict(self, arrays: dict[str, np.ndarray]) -> None:
        self.count = np.array(arrays["count"], dtype=np.float64)
        self.mean = np.array(arrays["mean"], dtype=np.float64)
        self.m2 = np.array(arrays["m2"], dtype=np.float64)
        self._d = np.zeros(self.n_features)
        self._t = np.zeros(self.n_features)


class TargetScaler:
    """Running mean and standard deviation of a regression target (1 until it varies).

    >>> target = TargetScaler()
    >>> for y in (1.0, 3.0):
    ...     target.learn(y)
    >>> target.transform(3.0), target.inverse(1.0)
    (1.0, 3.0)

    """

    def __init__(self) -> None:
        self.n = 0
        self.mean = 0.0
        self.m2 = 0.0

    @property
    def std(self) -> float:
        return math.sqrt(self.m2 / self.n) if self.m2 > 0 else 1.0

    def learn(self, y: float) -> None:
        self.n += 1
        d = y - self.mean
        self.mean += d / self.n
        self.m2 += d * (y - self.mean)

    def transform(self, y: float) -> float:
        return (y - self.mean) / self.std

    def inverse(self, z: float) -> float:
        return self.mean + self.std * z

    def copy(self) -> TargetScaler:
        other = TargetScaler()
        other.n, other.mean, other.m2 = self.n, self.mean, self.m2
        return other

    def state_dict(self) -> dict[str, float]:
        return {"n": self.n, "mean": self.mean, "m2": self.m2}

    def load_state_dict(self, d: dict[str, float]) -> None:
        self.n, self.mean, self.m2 = int(d["n"]), float(d["mean"]), float(d["m2"])
