"""Keeping a network plastic: continual backprop, shrink and perturb, L2 toward the initial
weights.

Each method acts on a `Network` once per learned example: `L2Init.add_gradient` before the
optimizer step, `ShrinkPerturb.step` and `ContinualBackprop.step` after it (in that order), as in
the reference code (GitHub shibhansh/loss-of-plasticity, `lop/algos/gnt.py`, `lop/algos/bp.py`).

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

import numpy as np
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


class ShrinkPerturb:
    """Shrink and perturb (Ash & Adams 2020), every step: θ ← (1 - shrink) θ + N(0, std²).

    The noise is drawn from the network's generator into a preallocated buffer, one call for
    all parameters, and masked to the network's logical parameters.
    """

    def __init__(self, network: Network, shrink: float, std: float) -> None:
        self.network = network
        self.shrink = shrink
        self.std = std
        if std:
            network.add_slot("noise", persistent=False)
            network.add_slot("live", fill=1.0, persistent=False)  # 0 on spare capacity

    def step(self) -> None:
        net = self.network
        param = net.flat("param")
        if self.shrink:
            param *= 1.0 - self.shrink
        if self.std:
            net.tensor("noise").normal_(0.0, self.std, generator=net.generator)
            noise = net.flat("noise")
            noise *= net.flat("live")
            param += noise


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
