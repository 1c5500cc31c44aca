"""Plasticity statistics of a hidden layer, streamed over tumbling windows of examples.

Definitions (Dohare et al. 2024; ReDo: Sokar et al. 2023; effective rank: Roy & Vetterli 2007), for
the post-activation values h (one row per example, one column per unit) of n examples:

- dead fraction: units with h > 0 on none of the n examples;
- dormant fraction: units with h > 0 on fewer than `below` · n of them;
- τ-dormant fraction: units with s_i = mean|h_i| / (mean_j mean|h_j| + 1e-9) <= τ;
- effective rank: exp(H(p)), p = sigma / sum(sigma) for the singular values sigma of the
  (uncentred) n-by-width activation matrix, with 0 · log 0 = 0; 0 for an all-zero matrix.

The batch functions compute these from a matrix; `LayerTelemetry` computes the same numbers without
keeping the examples, from per-unit counts and sums and the uncentred second-moment sum S = Σ h hᵀ,
whose eigenvalues are the squared singular values.

"""

from __future__ import annotations

import math

import numpy as np
import torch

__all__ = [
    "LayerTelemetry",
    "dead_fraction",
    "dormant_fraction",
    "effective_rank",
    "tau_dormant_fraction",
]

_KEYS = ("dead_fraction", "dormant_fraction", "tau_dormant_fraction", "effective_rank")
_REDO_EPS = 1e-9  # ReDo's guard against a layer whose units are all silent


def _dead(active: torch.Tensor) -> float:
    """Fraction of units whose count of h > 0 is zero."""
    return int((active == 0).sum()) / active.numel()


def _dormant(active: torch.Tensor, n: int, below: float) -> float:
    """Fraction of units with h > 0 on a fraction of the examples < `below`."""
    return int((active.to(torch.float64) / n < below).sum()) / active.numel()


def _tau_dormant(abs_sum: torch.Tensor, n: int, tau: float) -> float:
    """Fraction of units whose mean |h|, relative to the layer's average of it, is <= `tau`."""
    mean_abs = abs_sum / n
    score = mean_abs / (mean_abs.mean() + _REDO_EPS)
    return int((score <= tau).sum()) / abs_sum.numel()


def _entropy_rank(sigma: torch.Tensor) -> float:
    """exp of the entropy of the normalised singular values; 0 if they are all zero."""
    total = sigma.sum()
    if total <= 0:
        return 0.0
    p = sigma / total
    p = p[p > 0]  # 0 · log 0 = 0
    return math.exp(-float((p * p.log()).sum()))


def _gram_rank(gram: torch.Tensor) -> float:
    """Effective rank from the second-moment sum S = Σ h hᵀ, whose eigenvalues are the squared
    singular values; read from S's upper triangle."""
    # S is symmetric positive semi-definite; rounding can make tiny eigenvalues negative.
    return _entropy_rank(torch.linalg.eigvalsh(gram, UPLO="U").clamp(min=0).sqrt())


def dead_fraction(H: torch.Tensor) -> float:
    """Fraction of the columns of `H` (n, width) with no positive entry.

    >>> dead_fraction(torch.tensor([[0.0, 1.0], [0.0, 0.0]]))
    0.5

    """
    return _dead((H > 0).sum(0))


def dormant_fraction(H: torch.Tensor, below: float = 0.01) -> float:
    """Fraction of the columns of `H` (n, width) positive on fewer than `below` · n rows.

    >>> H = torch.zeros(100, 2)
    >>> H[0, 0] = 1.0
    >>> H[:5, 1] = 1.0
    >>> dormant_fraction(H, below=0.02)
    0.5

    """
    return _dormant((H > 0).sum(0), len(H), below)


def tau_dormant_fraction(H: torch.Tensor, tau: float = 0.1) -> float:
    """Fraction of the columns of `H` (n, width) that are τ-dormant in the sense of ReDo.

    >>> tau_dormant_fraction(torch.tensor([[1.0, 1.0, 0.05]]), tau=0.1)
    0.3333333333333333

    """
    return _tau_dormant(H.abs().to(torch.float64).sum(0), len(H), tau)


def effective_rank(H: torch.Tensor) -> float:
    """Effective rank of `H` (n, width), from its singular values (not mean-centred).

    Equal singular values give their number:

    >>> round(effective_rank(torch.eye(3, 5)), 6)
    3.0

    """
    return _entropy_rank(torch.linalg.svdvals(H.to(torch.float64)))


class LayerTelemetry:
    """Dead, dormant and τ-dormant fractions and effective rank of one hidden layer, streamed.

    Examples are accumulated over tumbling windows of `window` examples; `stats` describes the
    last completed window (before the first completes: the examples so far). Per example this
    costs an outer product into a width-by-width sum and two per-unit sums; once per window a
    copy of that sum, eigendecomposed only when `stats` is read (then cached): a width-256
    eigendecomposition costs milliseconds, and statistics are read far less often than windows
    close.

    Parameters
    ----------
    width
        Number of units of the layer.
    window
        Number of examples per window.
    tau
        ReDo's threshold on a unit's relative mean |h|.
    dormant_below
        A unit active (h > 0) on fewer than this fraction of a window's examples is dormant.

    Examples
    --------
    >>> import torch
    >>> telemetry = LayerTelemetry(width=3, window=4)
    >>> for _ in range(2):
    ...     telemetry.observe(torch.tensor([1.0, 0.0, 0.0]))
    ...     telemetry.observe(torch.tensor([0.0, 1.0, 0.0]))
    >>> stats = telemetry.stats()
    >>> stats["dead_fraction"], stats["dormant_fraction"], stats["tau_dormant_fraction"]
    (0.3333333333333333, 0.3333333333333333, 0.3333333333333333)
    >>> round(stats["effective_rank"], 6)
    2.0

    """

    def __init__(
        self, width: int, window: int = 1000, tau: float = 0.1, dormant_below: float = 0.01
    ) -> None:
        if width < 1 or window < 1:
            raise ValueError("width and window must be positive")
        self.width = width
        self.window = window
        self.tau = tau
        self.dormant_below = dormant_below
        # Sums over the current window; float64 so the small eigenvalues of S survive summation.
        # Only S's upper triangle is read: the compiled fast path sums no other.
        self._n = 0
        self._gram = torch.zeros(width, width, dtype=torch.float64)
        # Per-unit sums, |h| and 1[h > 0], as one tensor so one op adds an example to both.
        self._unit_sums = torch.zeros(2, width, dtype=torch.float64)
        self._abs_sum, self._active = self._unit_sums
        self._scratch = torch.zeros(2, width, dtype=torch.float64)
        self._last: dict[str, float] | None = None  # stats of the last completed window
        # Its per-unit mean |h| (the τ-dormant score's numerator), for a dormant-unit reset.
        self.last_abs_mean = np.zeros(width)
        # Its second-moment sum, until `stats` computes its effective rank (then None).
        self._last_gram: torch.Tensor | None = None
        self._spare_gram: torch.Tensor | None = None  # reused: no allocation per window

    def observe(self, h: torch.Tensor) -> None:
        """Add the post-activation values of one example, (width,), or of a sequence, (n, width)."""
        if h.dim() == 1:
            x, positive = self._scratch
            x.copy_(h)
            self._gram.addr_(x, x)
            torch.gt(x, 0, out=positive)
            x.abs_()
            self._unit_sums.add_(self._scratch)
            self._n += 1
            if self._n == self.window:
                self._close_window()
            return
        start = 0
        while start < len(h):
            # A sequence may straddle windows: each part goes to its own window.
            x = h[start : start + self.window - self._n].to(torch.float64)
            self._gram.addmm_(x.T, x)
            self._active.add_((x > 0).sum(0))
            self._abs_sum.add_(x.abs().sum(0))
            self._n += len(x)
            start += len(x)
            if self._n == self.window:
                self._close_window()

    @property
    def sums(self) -> tuple[np.ndarray, np.ndarray]:
        """The window's float64 sums, for the compiled path to add to in place: S (upper
        triangle) and the per-unit (2, width) sums of |h| and 1[h > 0]."""
        return self._gram.numpy(), self._unit_sums.numpy()

    @property
    def window_completed(self) -> bool:
        """Whether a window has completed (`stats` and `last_abs_mean` describe it)."""
        return self._last is not None

    @property
    def remaining(self) -> int:
        """Examples until the current window closes."""
        return self.window - self._n

    def count(self, n: int) -> None:
        """Count `n` examples added to `sums` elsewhere (at most `remaining`); closes the window
        when it is full."""
        self._n += n
        if self._n == self.window:
            self._close_window()

    def stats(self) -> dict[str, float]:
        """Statistics of the last completed window (or of the examples so far; zeros if none)."""
        if self._last is None:
            return self._window_stats(self._gram)
        if self._last_gram is not None:
            self._last["effective_rank"] = _gram_rank(self._last_gram)
            self._spare_gram, self._last_gram = self._last_gram, None
        return dict(self._last)

    def _window_stats(self, gram: torch.Tensor | None) -> dict[str, float]:
        """The current window's statistics; its effective rank from `gram` (NaN if None)."""
        n = self._n
        if n == 0:
            return dict.fromkeys(_KEYS, 0.0)
        return {
            "dead_fraction": _dead(self._active),
            "dormant_fraction": _dormant(self._active, n, self.dormant_below),
            "tau_dormant_fraction": _tau_dormant(self._abs_sum, n, self.tau),
            "effective_rank": math.nan if gram is None else _gram_rank(gram),
        }

    def _close_window(self) -> None:
        self._last = self._window_stats(None)
        np.divide(self._abs_sum.numpy(), self._n, out=self.last_abs_mean)
        buffer = self._last_gram if self._last_gram is not None else self._spare_gram
        if buffer is None:
            buffer = torch.empty_like(self._gram)
        # Copied, not swapped: the compiled fast path holds the address of `_gram`. Through
        # NumPy, on this thread: torch splits a large copy over its threads, whose wake-up and
        # spinning cost more CPU than the copy on a busy machine (benchmarks/speed).
        np.copyto(buffer.numpy(), self._gram.numpy())
        self._last_gram, self._spare_gram = buffer, None
        self._n = 0
        self._unit_sums.numpy().fill(0.0)
        self._gram.numpy().fill(0.0)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The window's sums and the last completed window's statistics, as tensors."""
        last = self.stats() if self._last is not None else {}
        return {
            "n": torch.tensor(self._n, dtype=torch.int64),
            "active": self._active.to(torch.int64),
            "abs_sum": self._abs_sum.clone(),
            "gram": self._symmetric_gram(),
            "has_last": torch.tensor(self._last is not None, dtype=torch.int64),
            "last": torch.tensor([last.get(k, 0.0) for k in _KEYS], dtype=torch.float64),
            "last_abs_mean": torch.from_numpy(self.last_abs_mean.copy()),
        }

    def _symmetric_gram(self) -> torch.Tensor:
        """S, both triangles from its upper one."""
        upper = np.triu(self._gram.numpy())
        upper += np.triu(upper, 1).T
        return torch.from_numpy(upper)

    def load_state_dict(self, d: dict[str, torch.Tensor]) -> None:
        """Restore what `state_dict` returned, for a layer of the same width and window."""
        n = int(d["n"])
        shapes = {
            "active": (self.width,),
            "abs_sum": (self.width,),
            "gram": (self.width, self.width),
            "last": (len(_KEYS),),
        }
        for key, shape in shapes.items():
            if tuple(d[key].shape) != shape:
                raise ValueError(f"{key} has shape {tuple(d[key].shape)}, expected {shape}")
        if not 0 <= n < self.window:
            raise ValueError(f"{n} examples in the current window, window is {self.window}")
        self._n = n
        self._active.copy_(d["active"])
        self._abs_sum.copy_(d["abs_sum"])
        self._gram.copy_(d["gram"])
        self._last = (
            dict(zip(_KEYS, d["last"].tolist(), strict=True)) if int(d["has_last"]) else None
        )
        if "last_abs_mean" in d:  # a state saved before it was kept has none: zeros
            self.last_abs_mean[...] = d["last_abs_mean"].numpy()
        self._last_gram = None
