"""SGD and Adam over a `Network`'s flat slots.

An optimizer's state is a set of parameter-shaped slots of the network, so it grows with the
network (new inputs and outputs start fresh, existing state is kept) and continual backprop resets
it per unit (`Network.reset_unit`). A step is a few whole-buffer operations, whatever the number of
layers.

Adam keeps, per element, β₁ᵗ and β₂ᵗ rather than one step count t, as the reference's AdamGnT keeps
a per-element step: a replaced unit's moments restart with their own bias correction.

>>> import numpy as np, torch
>>> from lifelong.model.network import Network
>>> net = Network(hidden=(), n_outputs=1, generator=torch.Generator(), n_inputs=2)
>>> sgd = SGD(net, lr=0.5)
>>> net.flat("grad")[:] = 1.0
>>> before = net.flat("param").copy()
>>> sgd.step()
>>> net.flat("param") - before
array([-0.5, -0.5, -0.5], dtype=float32)

"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from lifelong.model.network import Network

# Changes an update (flat, in place) before it is subtracted, given the step size: guided updates.
Adjust = Callable[[np.ndarray, float], None]


class SGD:
    """Stochastic gradient descent, with momentum as torch's `optim.SGD` (no dampening)."""

    def __init__(self, network: Network, lr: float, momentum: float = 0.0) -> None:
        self.network = network
        self.lr = lr
        self.momentum = momentum
        network.add_slot("scratch", persistent=False)
        if momentum:
            network.add_slot("momentum")

    def step(self, lr: float | None = None, adjust: Adjust | None = None) -> None:
        """One update from slot "grad"; `lr`: this step's size, if not `self.lr`; `adjust`
        changes the update before it is applied."""
        lr = self.lr if lr is None else lr
        net = self.network
        param, grad, update = net.flat("param"), net.flat("grad"), net.flat("scratch")
        if self.momentum:
            buf = net.flat("momentum")
            buf *= self.momentum
            buf += grad
            grad = buf
        np.multiply(grad, lr, out=update)
        if adjust is not None:
            adjust(update, lr)
        param -= update


class Adam:
    """Adam (Kingma & Ba 2015) as torch's `optim.Adam`, with per-element bias corrections."""

    def __init__(
        self,
        network: Network,
        lr: float,
        beta1: float = 0.9,
        beta2: float = 0.999,
        eps: float = 1e-8,
    ) -> None:
        self.network = network
        self.lr, self.beta1, self.beta2, self.eps = lr, beta1, beta2, eps
        network.add_slot("exp_avg")
        network.add_slot("exp_avg_sq")
        # β^t per element: 1 is step 0, for fresh elements too.
        network.add_slot("beta1_power", fill=1.0)
        network.add_slot("beta2_power", fill=1.0)
        network.add_slot("scratch", persistent=False)
        network.add_slot("denominator", persistent=False)

    def step(self, lr: float | None = None, adjust: Adjust | None = None) -> None:
        """One update from slot "grad"; `lr`: this step's size, if not `self.lr`; `adjust`
        changes the update before it is applied."""
        lr = self.lr if lr is None else lr
        net = self.network
        b1, b2 = self.beta1, self.beta2
        param, grad = net.flat("param"), net.flat("grad")
        m, v = net.flat("exp_avg"), net.flat("exp_avg_sq")
        p1, p2 = net.flat("beta1_power"), net.flat("beta2_power")
        tmp, den = net.flat("scratch"), net.flat("denominator")
        p1 *= b1
        p2 *= b2
        m *= b1
        np.multiply(grad, 1.0 - b1, out=tmp)
        m += tmp
        v *= b2
        np.multiply(grad, grad, out=tmp)
        tmp *= 1.0 - b2
        v += tmp
        # den = sqrt(v / (1 - β₂ᵗ)) + eps; update = lr · m / (1 - β₁ᵗ) / den
        np.subtract(1.0, p2, out=den)
        np.divide(v, den, out=den)
        np.sqrt(den, out=den)
        den += self.eps
        np.subtract(1.0, p1, out=tmp)
        np.divide(m, tmp, out=tmp)
        tmp /= den
        tmp *= lr
        if adjust is not None:
            adjust(tmp, lr)
        param -= tmp


def make_optimizer(network: Network, config) -> SGD | Adam:
    """The optimizer `config` (a `LearnerConfig`) asks for."""
    if config.optimizer == "adam":
        return Adam(network, config.lr, config.adam_beta1, config.adam_beta2, config.adam_eps)
    return SGD(network, config.lr, config.momentum)
