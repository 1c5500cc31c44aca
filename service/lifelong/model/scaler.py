"""Online standardisation of the inputs and of the regression target.

Running means and variances (Welford, in float64: a float32 mean drifts over millions of
examples) of everything seen so far, as river's `preprocessing.StandardScaler`. An example is
counted before it is standardised, so the first value of a feature maps to 0.

z-scores are clipped to ±`clip` (`LearnerConfig.clip`), so one extreme but finite value cannot
blow up an update. Counted first, the n-th value of a feature has |z| <= √(n - 1) (Samuelson's
inequality), so a clip of c never touches the first c² + 1 values.

Learning is two-phase: `prepare` writes the z-scores as if the example were counted, `commit`
counts it. The learner commits only once the step is known to be finite, so an example that
would diverge the network leaves the statistics as they were.

>>> import numpy as np
>>> scaler = Standardizer(clip=3.0)
>>> scaler.grow(2)
>>> z = np.zeros(2, dtype=np.float32)
>>> for x in ([1.0, 10.0], [3.0, 10.0]):
...     scaler.learn_transform(np.array(x), z)
>>> z  # (3 - 2) / 1; a constant feature stays at 0
array([1., 0.], dtype=float32)
>>> scaler.transform(np.array([[2.0, 11.0], [1e30, 10.0]]))  # no spread yet: 0, as river does
array([[0., 0.],
       [3., 0.]], dtype=float32)
>>> scaler.prepare(np.array([1e30, 10.0]), z)  # not counted until commit()
>>> z, scaler.count  # a third value is within √2 of the mean, however far it is
(array([1.4142135, 0.       ], dtype=float32), array([2., 2.]))

"""

from __future__ import annotations

import math

import numpy as np

# Floor of a standard deviation while learning, where a feature without spread (m2 = 0) has
# a deviation of exactly 0 from its mean: its z-score is 0, as river's.
TINY = 1e-12


class Standardizer:
    """Per-feature running mean and variance; inputs become z-scores, clipped to ±`clip`.

    A feature missing from an example is not counted in its statistics and its z-score is 0, so
    the value the network sees for it is the mean: it contributes as little as possible.
    """

    def __init__(self, clip: float = math.inf) -> None:
        self.clip = clip
        self.count = np.zeros(0)
        self.mean = np.zeros(0)
        self.m2 = np.zeros(0)
        self._grow_scratch()

    def _grow_scratch(self) -> None:
        n = self.n_features
        self._d, self._t = np.zeros(n), np.zeros(n)
        self._full = (np.zeros(n), np.zeros(n), np.zeros(n))
        # The prepared example's statistics, until `commit`; `_present`: its features, if not all.
        self._pending = self._full
        self._present: np.ndarray | None = None

    @property
    def n_features(self) -> int:
        return len(self.count)

    def grow(self, k: int) -> None:
        """Add `k` features, never seen yet."""
        pad = np.zeros(k)
        self.count = np.concatenate([self.count, pad])
        self.mean = np.concatenate([self.mean, pad])
        self.m2 = np.concatenate([self.m2, pad])
        self._grow_scratch()

    def learn_transform(
        self, x: np.ndarray, out: np.ndarray, present: np.ndarray | None = None
    ) -> None:
        """Count `x` (float64, one value per feature), then write its z-scores into `out`.

        `present`: indices of the features the example has; the others are skipped and get 0.
        """
        self.prepare(x, out, present)
        self.commit()

    def prepare(self, x: np.ndarray, out: np.ndarray, present: np.ndarray | None = None) -> None:
        """`learn_transform`'s z-scores, the statistics unchanged until `commit`."""
        if present is not None:
            self._prepare_some(x, out, present)
            return
        count, mean, m2 = self._pending = self._full
        d, t = self._d, self._t
        np.add(self.count, 1.0, out=count)
        np.subtract(x, self.mean, out=d)
        np.divide(d, count, out=t)
        np.add(self.mean, t, out=mean)
        np.subtract(x, mean, out=t)  # x - new mean
        d *= t
        np.add(self.m2, d, out=m2)
        np.divide(m2, count, out=d)
        np.sqrt(d, out=d)
        np.maximum(d, TINY, out=d)
        np.divide(t, d, out=t)
        np.clip(t, -self.clip, self.clip, out=t)
        out[...] = t
        self._present = None

    def _prepare_some(self, x: np.ndarray, out: np.ndarray, present: np.ndarray) -> None:
        x = x[present]
        count = self.count[present] + 1.0
        d = x - self.mean[present]
        mean = self.mean[present] + d / count
        t = x - mean
        m2 = self.m2[present] + d * t
        self._pending, self._present = (count, mean, m2), present
        out[...] = 0.0
        out[present] = np.clip(t / np.maximum(np.sqrt(m2 / count), TINY), -self.clip, self.clip)

    def commit(self) -> None:
        """Count the example `prepare` standardised."""
        count, mean, m2 = self._pending
        if self._present is None:  # in place: the fast path holds these buffers
            np.copyto(self.count, count)
            np.copyto(self.mean, mean)
            np.copyto(self.m2, m2)
        else:
            present = self._present
            self.count[present], self.mean[present], self.m2[present] = count, mean, m2

    def transform(self, X: np.ndarray, columns: list[int] | None = None) -> np.ndarray:
        """z-scores of `X` (n, n_features) or (n_features,), as float32; the statistics do not
        change. `columns`: the features `X` holds, if not all."""
        count, mean, m2 = self.count, self.mean, self.m2
        if columns is not None:
            count, mean, m2 = count[columns], mean[columns], m2[columns]
        std = np.sqrt(m2 / np.maximum(count, 1.0))
        z = np.zeros(np.shape(X))
        np.divide(X - mean, std, out=z, where=std > 0)
        return np.clip(z, -self.clip, self.clip).astype(np.float32)

    def copy(self) -> Standardizer:
        other = Standardizer(self.clip)
        other.count, other.mean, other.m2 = self.count.copy(), self.mean.copy(), self.m2.copy()
        return other

    def state_dict(self) -> dict[str, np.ndarray]:
        return {"count": self.count, "mean": self.mean, "m2": self.m2}

    def load_state_dict(self, arrays: dict[str, np.ndarray]) -> None:
        self.count = np.array(arrays["count"], dtype=np.float64)
        self.mean = np.array(arrays["mean"], dtype=np.float64)
        self.m2 = np.array(arrays["m2"], dtype=np.float64)
        self._grow_scratch()


class TargetScaler:
    """Running mean and standard deviation of a regression target (1 until it varies); the
    standardised target the network learns is clipped to ±`clip`.

    >>> target = TargetScaler(clip=1.0)
    >>> for y in (1.0, 3.0):
    ...     target.learn(y)
    >>> target.transform(3.0), target.inverse(1.0)
    (1.0, 3.0)
    >>> target.prepare(1e30), target.n  # 1e30 standardised and clipped, not yet counted
    (1.0, 2)

    """

    def __init__(self, clip: float = math.inf) -> None:
        self.clip = clip
        self.n = 0
        self.mean = 0.0
        self.m2 = 0.0
        self._pending = (0, 0.0, 0.0)

    @property
    def std(self) -> float:
        return math.sqrt(self.m2 / self.n) if self.m2 > 0 else 1.0

    def learn(self, y: float) -> None:
        self.prepare(y)
        self.commit()

    def prepare(self, y: float) -> float:
        """The standardised, clipped target once `y` is counted; counted at `commit`."""
        n = self.n + 1
        d = y - self.mean
        mean = self.mean + d / n
        m2 = self.m2 + d * (y - mean)
        self._pending = (n, mean, m2)
        std = math.sqrt(m2 / n) if m2 > 0 else 1.0
        return min(max((y - mean) / std, -self.clip), self.clip)

    def commit(self) -> None:
        self.n, self.mean, self.m2 = self._pending

    def transform(self, y: float) -> float:
        return (y - self.mean) / self.std

    def inverse(self, z: float) -> float:
        return self.mean + self.std * z

    def copy(self) -> TargetScaler:
        other = TargetScaler(self.clip)
        other.n, other.mean, other.m2 = self.n, self.mean, self.m2
        return other

    def state_dict(self) -> dict[str, float]:
        return {"n": self.n, "mean": self.mean, "m2": self.m2}

    def load_state_dict(self, d: dict[str, float]) -> None:
        self.n, self.mean, self.m2 = int(d["n"]), float(d["mean"]), float(d["m2"])
