"""Keeping a network plastic: continual backprop, shrink and perturb, ReDo, L2 toward the
initial weights.

Each method acts on a `Network` once per learned example: `L2Init.add_gradient` before the
optimizer step, `ShrinkPerturb.step`, `ContinualBackprop.step` and `ReDo.step` after it (in that
order), as in the reference code (GitHub shibhansh/loss-of-plasticity, `lop/algos/gnt.py`,
`lop/algos/bp.py`).

>>> import numpy as np, torch
>>> from lifelong.model.network import Network
>>> from lifelong.model.optim import SGD
>>> net = Network(hidden=(8,), n_outputs=1, generator=torch.Generator().manual_seed(0),
...               n_inputs=2)
>>> sgd = SGD(net, lr=0.01)
>>> cbp = ContinualBackprop(net, replacement_rate=0.1, maturity_threshold=5)
>>> for _ in range(20):
...     net.input[:] = np.random.default_rng(0).normal(size=2)
...     _ = net.forward()
...     net.d_output[:] = 1.0
...     net.backward()
...     sgd.step()
...     cbp.step()
>>> cbp.replaced  # 0.1 x (units older than 5 steps) per step, from step 6 on
[8]

"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from lifelong.model.network import Network, kaiming_bound


class ContinualBackprop:
    """Continual backprop (Dohare et al., Nature 2024): replace the least useful mature hidden
    units with fresh ones, a few at a time, forever.

    Per hidden unit i, after every step: age + 1; running mean activation f ← η f + (1-η) h,
    bias-corrected f̂ = f / (1 - η^age); utility u ← η u + (1-η) y with y = mean_k |w_out[k,i]| ·
    |h - f̂| ("contribution"; "adaptable_contribution" also divides by mean_j |w_in[i,j]|),
    bias-corrected û = u / (1 - η^age). Units older than `maturity_threshold` are eligible; each
    layer accumulates `replacement_rate` x (number eligible) per step and replaces the integer
    part, lowest û first. A replaced unit gets Kaiming-uniform incoming weights, bias 0 and
    outgoing weights 0; the next layer's bias absorbs w_out · f̂ so its mean input is unchanged;
    its age, f and u restart at 0 and its optimizer state is reset.

    The reference code zeroes f before it corrects the next bias, so its correction adds 0; this
    one uses f̂ as the paper describes.

    Parameters
    ----------
    network
        The network; its hidden layers are the ones renewed.
    replacement_rate, maturity_threshold, decay_rate, utility
        rho, m, eta and the utility, as in `LearnerConfig`.

    """

    def __init__(
        self,
        network: Network,
        replacement_rate: float = 1e-4,
        maturity_threshold: int = 100,
        decay_rate: float = 0.99,
        utility: str = "contribution",
    ) -> None:
        self.network = network
        self.replacement_rate = replacement_rate
        self.maturity_threshold = maturity_threshold
        self.decay_rate = decay_rate
        self.adaptable = utility == "adaptable_contribution"
        widths = network.sizes[1:-1]
        self._starts = np.cumsum([0, *widths])[:-1]
        self._bounds = [(int(s), int(s) + w) for s, w in zip(self._starts, widths, strict=True)]
        # Per unit, all hidden layers end to end: one call updates every layer.
        width = sum(widths)
        self.age = np.zeros(width, dtype=np.int64)
        self.mean = np.zeros(width, dtype=np.float32)  # f
        self.utility = np.zeros(width, dtype=np.float32)  # u
        self.decay_power = np.ones(width, dtype=np.float32)  # η^age
        # Fractional replacements carried over, per layer (float64: the compiled path adds to it).
        self.accumulated = np.zeros(len(widths))
        self.replaced = [0] * len(widths)
        self.correction = np.zeros(width, dtype=np.float32)  # 1 - η^age, of the last step
        self.mean_hat = np.zeros(width, dtype=np.float32)  # f̂, of the last step
        self.mature = np.zeros(width, dtype=bool)  # age > maturity_threshold
        self._y = np.zeros(width, dtype=np.float32)
        self._tmp = np.zeros(width, dtype=np.float32)

    def step(self) -> None:
        """Update the units' statistics with the last example's activations (from the forward
        pass before the optimizer step) and replace units that are due."""
        if not self._bounds:
            return
        eta = self.decay_rate
        h = self.network.hidden_all
        self.age += 1
        self.decay_power *= eta
        np.subtract(1.0, self.decay_power, out=self.correction)
        self.mean *= eta
        np.multiply(h, 1.0 - eta, out=self._tmp)
        self.mean += self._tmp
        np.divide(self.mean, self.correction, out=self.mean_hat)
        y = self._y
        np.subtract(h, self.mean_hat, out=y)
        np.abs(y, out=y)
        self._weigh(y)
        self.utility *= eta
        y *= 1.0 - eta
        self.utility += y
        np.greater(self.age, self.maturity_threshold, out=self.mature)
        eligible = np.add.reduceat(self.mature, self._starts)
        for layer, count in enumerate(eligible.tolist()):
            if count == 0:
                continue
            self.accumulated[layer] += self.replacement_rate * count
            n = int(self.accumulated[layer])
            if n:
                self.accumulated[layer] -= n
                self._replace(layer, min(n, count))

    def replace_due(self) -> None:
        """Replace the units `accumulated` says are due, as `step` does: for the compiled path,
        which counts them but leaves the random draws to this."""
        for layer, (start, end) in enumerate(self._bounds):
            due = int(self.accumulated[layer])
            if due:
                self.accumulated[layer] -= due
                self._replace(layer, min(due, int(self.mature[start:end].sum())))

    def _weigh(self, y: np.ndarray) -> None:
        """y *= mean |outgoing weight| (and /= mean |incoming weight|), per unit."""
        weights, _ = self.network.weights()
        tmp = self._tmp
        for layer, (start, end) in enumerate(self._bounds):
            out_w = weights[layer + 1]
            magnitude = tmp[start:end]
            if out_w.shape[0]:
                np.add.reduce(np.abs(out_w), axis=0, out=magnitude)
                magnitude *= 1.0 / out_w.shape[0]
            else:  # no output yet (a classifier before its first class)
                magnitude[...] = 0.0
            if self.adaptable and weights[layer].shape[1]:
                in_w = weights[layer]
                magnitude *= in_w.shape[1]
                magnitude /= np.add.reduce(np.abs(in_w), axis=1)
        y *= tmp

    def _replace(self, layer: int, n: int) -> None:
        start, end = self._bounds[layer]
        # Bias-corrected utility of the eligible units; the lowest go.
        score = self.utility[start:end] / self.correction[start:end]
        score[~self.mature[start:end]] = np.inf
        units = np.argsort(score, kind="stable")[:n]
        net = self.network
        weights, biases = net.weights()
        fan_in = weights[layer].shape[1]
        incoming = net.uniform((n, fan_in), kaiming_bound(fan_in, hidden=True)) if fan_in else None
        for k, unit in enumerate(units.tolist()):
            i = start + unit
            biases[layer + 1] += weights[layer + 1][:, unit] * self.mean_hat[i]
            net.reset_unit(layer, unit, incoming[k] if incoming is not None else 0.0)
            self.age[i] = 0
            self.mean[i] = 0.0
            self.utility[i] = 0.0
            self.decay_power[i] = 1.0
        self.replaced[layer] += n

    def restart(self, units: np.ndarray) -> None:
        """Make the statistics of `units` (indices over all hidden layers) those of fresh units,
        for units another method (ReDo) reset."""
        self.age[units] = 0
        self.mean[units] = 0.0
        self.utility[units] = 0.0
        self.decay_power[units] = 1.0

    def state_dict(self) -> tuple[dict[str, np.ndarray], dict[str, list]]:
        """Per-unit arrays, and the JSON-able counters."""
        arrays = {
            "age": self.age,
            "mean": self.mean,
            "utility": self.utility,
            "decay_power": self.decay_power,
        }
        return arrays, {"accumulated": self.accumulated.tolist(), "replaced": list(self.replaced)}

    def load_state_dict(self, arrays: dict[str, np.ndarray], counters: dict[str, list]) -> None:
        for name in ("age", "mean", "utility", "decay_power"):
            getattr(self, name)[...] = arrays[name]
        self.accumulated[...] = counters["accumulated"]
        self.replaced = [int(r) for r in counters["replaced"]]


MASK64 = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15  # SplitMix64's increment, 2^64 / golden ratio
_MIX1, _MIX2 = 0xBF58476D1CE4E5B9, 0x94D049BB133111EB
# float32 constants of `gaussian` (kernel.c spells the same values in hexadecimal).
_F = np.float32
_SQRT2, _LN2, _HALF_PI = _F(math.sqrt(2.0)), _F(math.log(2.0)), _F(math.pi / 2.0)
_LOG_TERMS = tuple(_F(1.0 / k) for k in (9, 7, 5, 3))  # atanh series, highest first
_COS_TERMS = tuple(_F((-1) ** (k // 2) / math.factorial(k)) for k in (8, 6, 4, 2))
_SIN_TERMS = tuple(_F((-1) ** (k // 2) / math.factorial(k)) for k in (9, 7, 5, 3))


def mix64(z: int) -> int:
    """SplitMix64's finaliser of a 64-bit integer (Steele, Lea & Flood 2014).

    >>> hex(mix64(GOLDEN))  # SplitMix64's first output from seed 0
    '0xe220a8397b1dcdaf'

    """
    z = ((z ^ (z >> 30)) * _MIX1) & MASK64
    z = ((z ^ (z >> 27)) * _MIX2) & MASK64
    return z ^ (z >> 31)


def step_key(key: int, step: int) -> int:
    """The key of step `step`'s noise, from the stream's `key`."""
    return mix64((key + step * GOLDEN) & MASK64)


def gaussian(stepkey: int, weyl: np.ndarray, out: np.ndarray) -> np.ndarray:
    """N(0, 1) noise into `out` (float32), element j from the 64 bits mix64(stepkey + weyl[j])
    (`weyl[j]` = (j + 1)·GOLDEN mod 2⁶⁴, uint64) by Box-Muller, r·cos θ: counter-based, so any
    element of any step is computed alone, in any order; `kernel.c`'s `gaussian` makes the same
    float32 operations in the same order, so both give the same bits.

    u₁ = (top 24 bits + 1)·2⁻²⁴ ∈ (0, 1] and r = √(-2 ln u₁) (|noise| ≤ 5.8); ln from the
    exponent and an atanh series of the mantissa. θ = q·π/2 + x from the low 24 bits: quadrant
    q (2 bits) and x uniform in (-π/4, π/4) (22 bits), cos and sin of x by Taylor polynomials
    (float32-accurate there). Both are uniform, so the result is N(0, 1) to float32 accuracy.
    Every step writes into a few buffers: temporaries per operation cost as much again.

    >>> weyl = np.arange(1, 100_001, dtype=np.uint64) * np.uint64(GOLDEN)
    >>> z = gaussian(step_key(1, 0), weyl, np.empty(len(weyl), np.float32))
    >>> abs(float(z.mean())) < 0.01, round(float(z.std()), 2)
    (True, 1.0)

    """
    n = len(out)
    z, t = np.empty(n, np.uint64), np.empty(n, np.uint64)
    a, b, c, d, f = (np.empty(n, np.float32) for _ in range(5))
    e, flag = np.empty(n, np.int32), np.empty(n, bool)
    np.add(weyl, np.uint64(stepkey), out=z)
    for shift, factor in ((30, _MIX1), (27, _MIX2)):
        np.right_shift(z, np.uint64(shift), out=t)
        z ^= t
        z *= np.uint64(factor)
    np.right_shift(z, np.uint64(31), out=t)
    z ^= t
    # u1 = m·2^e, m ∈ [1, 2) (frexp's [1/2, 1) doubled), halved above √2: in a
    np.right_shift(z, np.uint64(40), out=t)
    t += np.uint64(1)
    np.multiply(t, _F(2.0**-24), out=b, casting="unsafe")  # t ≤ 2^24: exact
    np.frexp(b, out=(a, e))
    a *= _F(2.0)
    e -= 1
    np.greater(a, _SQRT2, out=flag)
    np.multiply(a, _F(0.5), out=a, where=flag)
    e += flag
    # ln m = 2(s + s·s²(1/3 + s²(1/5 + ...))), s = (m - 1)/(m + 1): in c
    np.subtract(a, _F(1.0), out=b)
    a += _F(1.0)
    b /= a
    np.multiply(b, b, out=a)
    c.fill(_LOG_TERMS[0])
    for term in _LOG_TERMS[1:]:
        c *= a
        c += term
    c *= a
    c *= b
    c += b
    c *= _F(2.0)
    # r = √(-2 (e ln 2 + ln m)): in d
    np.multiply(e, _LN2, out=d, casting="unsafe")
    d += c
    d *= _F(-2.0)
    np.sqrt(d, out=d)
    # q in z, x = ((f + 1/2)·2⁻²² - 1/2)·π/2 in a
    np.bitwise_and(z, np.uint64(0xFFFFFF), out=t)
    np.right_shift(t, np.uint64(22), out=z)
    t &= np.uint64(0x3FFFFF)
    np.add(t, _F(0.5), out=a, casting="unsafe")
    a *= _F(2.0**-22)
    a -= _F(0.5)
    a *= _HALF_PI
    np.multiply(a, a, out=b)  # x²
    _series(b, _COS_TERMS, out=c)
    c += _F(1.0)
    _series(b, _SIN_TERMS, out=f)
    f *= a
    f += a
    # cos(q·π/2 + x): cos x, -sin x, -cos x, sin x
    np.bitwise_and(z, np.uint64(1), out=t)
    np.not_equal(t, 0, out=flag)
    np.copyto(c, f, where=flag)
    np.multiply(d, c, out=out)
    np.right_shift(z, np.uint64(1), out=t)
    t ^= z
    t &= np.uint64(1)
    np.not_equal(t, 0, out=flag)
    np.negative(out, out=out, where=flag)
    return out


def _series(x2: np.ndarray, terms: tuple[np.float32, ...], out: np.ndarray) -> np.ndarray:
    """((t₀ x² + t₁) x² + ...) x² into `out`, Horner's order, as kernel.c."""
    acc = np.multiply(x2, terms[0], out=out)
    for term in terms[1:]:
        acc += term
        acc *= x2
    return acc


class ShrinkPerturb:
    """Shrink and perturb (Ash & Adams 2020), every step: θ ← (1 - shrink) θ + N(0, std²).

    The noise is counter-based (`gaussian`): element j of step t is a function of (key, t, j),
    so the compiled path computes the same numbers in its own pass over the weights, without
    a generator to share. `key` is drawn from the network's generator when the method is made
    (a restarted network gets another); `steps` counts the steps taken. Spare capacity gets no
    noise (masked to the network's logical parameters).
    """

    def __init__(self, network: Network, shrink: float, std: float) -> None:
        self.network = network
        self.shrink = shrink
        self.std = std
        self.key = int(torch.empty((), dtype=torch.int64).random_(generator=network.generator))
        self.steps = np.zeros(1, dtype=np.int64)  # an array: the compiled path counts in it
        self._weyl: np.ndarray | None = None
        self._generation = -1
        if std:
            network.add_slot("noise", persistent=False)
            network.add_slot("live", fill=1.0, persistent=False)  # 0 on spare capacity

    def step(self) -> None:
        net = self.network
        param = net.flat("param")
        if self.shrink:
            param *= 1.0 - self.shrink
        if self.std:
            if self._generation != net.generation:  # the layout moved: indices anew
                j = np.arange(1, len(param) + 1, dtype=np.uint64)
                self._weyl, self._generation = j * np.uint64(GOLDEN), net.generation
            noise = gaussian(step_key(self.key, int(self.steps[0])), self._weyl, net.flat("noise"))
            noise *= _F(self.std)
            noise *= net.flat("live")
            param += noise
        self.steps[0] += 1

    def state_dict(self) -> dict[str, int]:
        return {"key": self.key, "steps": int(self.steps[0])}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.key = int(state["key"])
        self.steps[0] = int(state["steps"])


class ReDo:
    """Recycling dormant neurons (ReDo, Sokar et al. 2023): every `every` steps, reset the hidden
    units that were τ-dormant over those steps.

    Per hidden unit i, over the F = `every` examples since the last sweep: the mean activation
    magnitude a_i = Σ|h_i| / F (h ≥ 0 after ReLU, so |h| = h), summed in float64 as telemetry's;
    its score s_i = a_i / (mean_j a_j + 1e-9) over the units j of its layer (the telemetry's
    τ-dormant definition, but over these F examples, not its window). Units with s_i ≤ τ =
    `threshold` get fresh incoming weights (Kaiming-uniform, as at initialisation, from the
    network's generator: one draw per layer, in unit order), bias 0, outgoing weights 0 and
    their optimizer state reset (`Network.reset_unit`), and, with continual backprop, its
    statistics of a fresh unit. Layers go in order, so where units of consecutive layers are
    both reset, the later one's fresh incoming weights overwrite the zeros. Then the sums
    restart. A layer whose units are all silent has every score 0: all are reset.

    >>> import numpy as np, torch
    >>> from lifelong.model.network import Network
    >>> net = Network(hidden=(4,), n_outputs=1, generator=torch.Generator().manual_seed(0),
    ...               n_inputs=2)
    >>> redo = ReDo(net, every=3, threshold=0.1)
    >>> net.layers("param")[0][0][1] = -1.0  # unit 1 never fires on positive inputs
    >>> net.layers("param")[0][1][1] = 0.0
    >>> for _ in range(3):
    ...     net.input[:] = [1.0, 2.0]
    ...     _ = net.forward()
    ...     redo.step()
    >>> redo.replaced, bool(net.layers("param")[1][0][0, 1] == 0)
    ([1], True)

    """

    def __init__(
        self,
        network: Network,
        every: int,
        threshold: float,
        cbp: ContinualBackprop | None = None,
    ) -> None:
        self.network = network
        self.every = every
        self.threshold = threshold
        self.cbp = cbp
        widths = network.sizes[1:-1]
        ends = np.cumsum(widths, dtype=int)
        self._bounds = [(int(e) - w, int(e)) for e, w in zip(ends, widths, strict=True)]
        self.sums = np.zeros(sum(widths))  # Σ h per unit since the last sweep (float64)
        self.steps = np.zeros(1, dtype=np.int64)  # examples since it: an array the kernel counts
        self.replaced = [0] * len(widths)

    def step(self) -> None:
        """Add the last example's activations (from the forward pass before the optimizer step);
        sweep when `every` examples are in."""
        self.sums += self.network.hidden_all
        self.steps[0] += 1
        if self.steps[0] >= self.every:
            self.sweep()

    def sweep(self) -> None:
        """Reset the τ-dormant units of every hidden layer, then restart the sums."""
        mean_abs = self.sums / max(int(self.steps[0]), 1)
        for layer, (start, end) in enumerate(self._bounds):
            units = dormant_units(mean_abs[start:end], self.threshold)
            reset_units(self.network, layer, units, self.cbp, start)
            self.replaced[layer] += len(units)
        self.sums[...] = 0.0
        self.steps[0] = 0

    def state_dict(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """The sums, and the JSON-able counters."""
        return {"sums": self.sums}, {"steps": int(self.steps[0]), "replaced": list(self.replaced)}

    def load_state_dict(self, arrays: dict[str, np.ndarray], counters: dict[str, Any]) -> None:
        self.sums[...] = arrays["sums"]
        self.steps[0] = int(counters["steps"])
        self.replaced = [int(r) for r in counters["replaced"]]


def dormant_units(mean_abs: np.ndarray, threshold: float) -> np.ndarray:
    """The units of a layer whose τ-dormant score, mean |h| over the layer's average of it, is
    at most `threshold` (all of them when the layer is silent).

    >>> dormant_units(np.array([1.0, 0.05, 2.0, 0.0]), 0.1).tolist()
    [1, 3]
    """
    return np.flatnonzero(mean_abs / (mean_abs.mean() + 1e-9) <= threshold)


def reset_units(
    network: Network,
    layer: int,
    units: np.ndarray,
    cbp: ContinualBackprop | None = None,
    offset: int = 0,
) -> None:
    """Give hidden `units` of `layer` fresh incoming weights (Kaiming-uniform, one draw from the
    network's generator), bias and outgoing weights 0 and fresh optimizer state; with continual
    backprop, its statistics of a fresh unit (`offset`: the layer's first unit among all)."""
    if not len(units):
        return
    weights, _ = network.weights()
    fan_in = weights[layer].shape[1]
    bound = kaiming_bound(fan_in, hidden=True) if fan_in else 0.0
    incoming = network.uniform((len(units), fan_in), bound) if fan_in else None
    for k, unit in enumerate(units.tolist()):
        network.reset_unit(layer, unit, incoming[k] if incoming is not None else 0.0)
    if cbp is not None:
        cbp.restart(units + offset)


class L2Init:
    """L2 toward the initial weights (Kumar et al. 2023): the loss gains λ‖θ - θ₀‖², the gradient
    2λ(θ - θ₀). θ₀ of a new input or output is 0, of a replaced unit its new initial weights."""

    def __init__(self, network: Network, strength: float) -> None:
        self.network = network
        self.strength = strength
        network.add_slot("initial", copy_param=True)
        network.add_slot("l2_scratch", persistent=False)

    def add_gradient(self) -> None:
        net = self.network
        tmp = net.flat("l2_scratch")
        np.subtract(net.flat("param"), net.flat("initial"), out=tmp)
        tmp *= 2.0 * self.strength
        grad = net.flat("grad")
        grad += tmp
