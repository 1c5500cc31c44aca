"""Online standardisation of the inputs and of the regression target: statistics that follow
the stream and shrug off absurd values.

Per feature, a count n, a mean μ and a variance v. The n-th value x is counted with weight
w = max(1/n, 1/horizon): exactly the running mean and (population) variance for the first
`horizon` values, then an exponential forgetting of rate 1/horizon, so a feature that shifts is
re-centred within a few horizons. Before it is counted, x is winsorised against the current
estimate (x' = clip(x, μ ± clip·√v), once v > 0), so one absurd value (a sentinel, a unit error)
moves the variance by a bounded factor, 1 + w·clip² at most, instead of by orders of magnitude;
a real change of scale still gets through, by that factor per value:

    μ' = μ + w·(x' - μ)
    v' = (1 - w)·(v + w·(x' - μ)²)

(with w = 1/n this is Welford's update of the population variance). A change of regime (a unit
changed, a sensor replaced) shows as values beyond that bound one after another, which rare
outliers never do: after `REGIME_RUN` of them in a row the feature's statistics start again from
the value at hand, as for a new feature, so the z-scores of the new regime look like the old
ones at once instead of after thousands of values. The z-score is that of the
value itself against the updated statistics, z = (x - μ') / √v', clipped to ±`clip`; a feature
without spread (v' = 0) has z = 0, as river's. Counted before it is standardised, an n-th value
that is not winsorised has |z| <= √(n - 1) (Samuelson's inequality), so a clip of c touches none
of the first c² + 1 values of a feature without outliers.

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
>>> z, scaler.count  # clipped, however far it is
(array([3., 0.], dtype=float32), array([2., 2.]))
>>> scaler.commit()  # counted as if it were 2 + 3·1 = 5: the variance grows, not explodes
>>> scaler.mean.round(3).tolist(), scaler.var.round(3).tolist()
([3.0, 10.0], [2.667, 0.0])

"""

from __future__ import annotations

import math

import numpy as np

# Floor of a standard deviation while learning, where a feature without spread (v = 0) has a
# deviation of exactly 0 from its mean: its z-score is 0, as river's.
TINY = 1e-12
# Values beyond clip standard deviations in a row that restart a feature's statistics. Gaussian
# odds of one are ~1e-23; a Cauchy feature's winsorised scale leaves ~1% beyond, so 8 in a row
# ~1e-16; a sentinel at 1 value in 500, 4e-22.
REGIME_RUN = 8


class Standardizer:
    """Per-feature forgetting, outlier-robust mean and variance; inputs become z-scores, clipped
    to ±`clip`.

    A feature missing from an example is not counted in its statistics and its z-score is 0, so
    the value the network sees for it is the mean: it contributes as little as possible.
    `horizon` 0 never forgets (the running moments of everything seen).
    """

    def __init__(self, clip: float = math.inf, horizon: int = 0) -> None:
        self.clip = clip
        self.horizon = horizon
        self.count = np.zeros(0)
        self.mean = np.zeros(0)
        self.var = np.zeros(0)
        self.run = np.zeros(0)  # values beyond the bound in a row, per feature
        self.generation = 0  # bumped when the arrays are replaced (growth, loading)
        self._clear_pending()

    def _clear_pending(self) -> None:
        # The prepared example's statistics, until `commit` (none: the current ones); `_present`:
        # its features, if not all.
        self._pending = (self.count, self.mean, self.var, self.run)
        self._present: np.ndarray | None = None

    @property
    def n_features(self) -> int:
        return len(self.count)

    @property
    def min_weight(self) -> float:
        """The weight of a new value once the horizon is reached (0: never forgets)."""
        return 1.0 / self.horizon if self.horizon else 0.0

    def std(self) -> np.ndarray:
        """Each feature's standard deviation (0 for a feature without spread)."""
        return np.sqrt(self.var)

    def grow(self, k: int) -> None:
        """Add `k` features, never seen yet."""
        pad = np.zeros(k)
        self.count = np.concatenate([self.count, pad])
        self.mean = np.concatenate([self.mean, pad])
        self.var = np.concatenate([self.var, pad])
        self.run = np.concatenate([self.run, pad])
        self.generation += 1
        self._clear_pending()

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
        stats = self.count, self.mean, self.var, self.run
        if present is not None:
            x, stats = x[present], tuple(a[present] for a in stats)
        z = np.empty(len(x))
        self._pending = _count(x, *stats, self.clip, self.min_weight, z)
        self._present = present
        if present is None:
            out[...] = z
        else:
            out[...] = 0.0
            out[present] = z

    def commit(self) -> None:
        """Count the example `prepare` standardised."""
        where = slice(None) if self._present is None else self._present
        # In place: the fast path holds these buffers.
        for array, new in zip(
            (self.count, self.mean, self.var, self.run), self._pending, strict=True
        ):
            array[where] = new

    def transform(self, X: np.ndarray, columns: list[int] | None = None) -> np.ndarray:
        """z-scores of `X` (n, n_features) or (n_features,), as float32; the statistics do not
        change. `columns`: the features `X` holds, if not all."""
        mean, std = self.mean, self.std()
        if columns is not None:
            mean, std = mean[columns], std[columns]
        z = np.zeros(np.shape(X))
        np.divide(X - mean, std, out=z, where=std > 0)
        return np.clip(z, -self.clip, self.clip).astype(np.float32)

    def copy(self) -> Standardizer:
        other = Standardizer(self.clip, self.horizon)
        other.load_state_dict(self.state_dict())
        return other

    def state_dict(self) -> dict[str, np.ndarray]:
        return {"count": self.count, "mean": self.mean, "var": self.var, "run": self.run}

    def load_state_dict(self, arrays: dict[str, np.ndarray]) -> None:
        for name in ("count", "mean", "var", "run"):
            setattr(self, name, np.array(arrays[name], dtype=np.float64))
        self.generation += 1
        self._clear_pending()


def _count(
    x: np.ndarray,
    count: np.ndarray,
    mean: np.ndarray,
    var: np.ndarray,
    run: np.ndarray,
    clip: float,
    min_weight: float,
    z: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The statistics once `x` is counted (new arrays), and its z-scores into `z`: the module's
    update, element by element as the kernel computes it."""
    spread = _spread(var, clip, out=np.empty_like(var))
    deviation = x - mean
    run = np.where(np.abs(deviation) > spread, run + 1.0, 0.0)
    restart = run >= REGIME_RUN  # a new regime: from this value on, as a new feature
    count = np.where(restart, 1.0, count + 1.0)
    w = np.maximum(1.0 / count, min_weight)
    d = np.clip(x, mean - spread, mean + spread) - mean
    t = w * d
    new_mean = np.where(restart, x, mean + t)
    new_var = np.where(restart, 0.0, (1.0 - w) * (t * d + var))
    run[restart] = 0.0
    np.clip((x - new_mean) / np.maximum(np.sqrt(new_var), TINY), -clip, clip, out=z)
    return count, new_mean, new_var, run


def _spread(var: np.ndarray, clip: float, out: np.ndarray) -> np.ndarray:
    """How far from the mean a value is counted as it is: clip·√v, unbounded while v = 0 (no
    scale to judge by yet)."""
    spread = var > 0.0
    out.fill(np.inf)
    np.sqrt(var, out=out, where=spread)
    np.multiply(out, clip, out=out, where=spread)
    return out


class TargetScaler:
    """The regression target's forgetting, outlier-robust mean and standard deviation (1 until
    it varies), as `Standardizer`'s; the standardised target the network learns is clipped to
    ±`clip`.

    >>> target = TargetScaler(clip=1.0)
    >>> for y in (1.0, 3.0):
    ...     target.learn(y)
    >>> target.transform(3.0), target.inverse(1.0)
    (1.0, 3.0)
    >>> target.prepare(1e30), target.n  # 1e30 standardised and clipped, not yet counted
    (1.0, 2)

    """

    def __init__(self, clip: float = math.inf, horizon: int = 0) -> None:
        self.clip = clip
        self.horizon = horizon
        self.n = 0
        self.mean = 0.0
        self.var = 0.0
        self.run = 0  # values beyond the bound in a row
        self._pending = (0, 0.0, 0.0, 0)

    @property
    def std(self) -> float:
        return math.sqrt(self.var) if self.var > 0 else 1.0

    def learn(self, y: float) -> None:
        self.prepare(y)
        self.commit()

    def prepare(self, y: float) -> float:
        """The standardised, clipped target once `y` is counted; counted at `commit`."""
        spread = math.sqrt(self.var) * self.clip if self.var > 0 else math.inf
        run = self.run + 1 if abs(y - self.mean) > spread else 0
        if run >= REGIME_RUN:  # a new regime: from this value on
            n, mean, var, run = 1, y, 0.0, 0
        else:
            n = self.n + 1
            w = max(1.0 / n, 1.0 / self.horizon if self.horizon else 0.0)
            d = min(max(y, self.mean - spread), self.mean + spread) - self.mean
            t = w * d
            mean = self.mean + t
            var = (1.0 - w) * (t * d + self.var)
        self._pending = (n, mean, var, run)
        std = math.sqrt(var) if var > 0 else 1.0
        return min(max((y - mean) / std, -self.clip), self.clip)

    def commit(self) -> None:
        self.n, self.mean, self.var, self.run = self._pending

    def transform(self, y: float) -> float:
        return (y - self.mean) / self.std

    def inverse(self, z: float) -> float:
        return self.mean + self.std * z

    def copy(self) -> TargetScaler:
        other = TargetScaler(self.clip, self.horizon)
        other.load_state_dict(self.state_dict())
        return other

    def state_dict(self) -> dict[str, float]:
        return {"n": self.n, "mean": self.mean, "var": self.var, "run": self.run}

    def load_state_dict(self, d: dict[str, float]) -> None:
        self.n, self.mean, self.var = int(d["n"]), float(d["mean"]), float(d["var"])
        self.run = int(d["run"])
