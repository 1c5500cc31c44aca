"""The multilayer perceptron: parameters in flat float32 tensors, a manual forward and backward
pass (no autograd), and growth of the input and output layers.

Every parameter-shaped buffer (the parameters, their gradient, each optimizer state, the initial
weights of L2-init, ...) is a *slot*: one flat, contiguous float32 tensor with the same layout,
so an optimizer step is a few whole-buffer operations and an external kernel can update a slot in
place. Layer `i` occupies a block `W[i]` (rows x columns, row-major) followed by `b[i]`. Only the
input layer's columns (features) and the output layer's rows (classes) can grow, and they do so
into spare capacity that grows geometrically; the logical `W[i]` is a view `[:rows, :cols]` of
its block, so layer 0's rows are strided while capacity is spare. Spare elements are kept at
zero and never read by the forward or backward pass.

One example costs a handful of calls per layer. They are NumPy calls on views of the tensors'
memory (cheaper than torch calls on tensors this small) except the outer products of the weight
gradients, where torch's kernel is much faster on large layers. That kernel must run on one
intra-op thread: the learner makes sure of it (see `one_thread`).

>>> import torch
>>> net = Network(hidden=(4,), n_outputs=1, generator=torch.Generator().manual_seed(0))
>>> net.grow_inputs(3, initialise=True)
>>> net.input[:] = [1.0, 2.0, 3.0]
>>> y = net.forward()
>>> net.d_output[:] = 1.0  # dLoss/dOutput
>>> net.backward()
>>> [w.shape for w, _ in net.layers("grad")]
[(4, 3), (1, 4)]

"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

GROWTH = 1.5  # capacity factor: n one-at-a-time growths cost O(n) copies in all
# A step whose gradient bound (`Network.propagate`) exceeds this is refused as divergence: Adam
# squares gradients (float32 overflows past 1.8e19), and lr <= 1000 keeps one update finite.
GRADIENT_LIMIT = 1e18


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Run per-example work on one torch intra-op thread, then restore the previous count.

    Per-example tensors are small; splitting them over threads costs far more than it saves
    (benchmarks/speed). The check is free when the process already uses one thread, which is
    what a service should do once at start (`torch.set_num_threads(1)`).

    >>> with one_thread():
    ...     torch.get_num_threads()
    1

    """
    threads = torch.get_num_threads()
    if threads == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _not_le(value: float) -> tuple[bool, float]:
    """Sort key for `max`: nan above everything, so a bound with a nan in it stays nan."""
    return (value != value, value)


def _sq_norm(v: np.ndarray) -> float:
    """‖v‖² of a float32 vector, summed in float64."""
    v = v.astype(np.float64)
    return float(np.dot(v, v))


def kaiming_bound(fan_in: int, hidden: bool) -> float:
    """Bound of the Kaiming-uniform initialisation, as the reference code uses it: gain √2 for a
    ReLU layer, 1 for the linear output layer."""
    gain = math.sqrt(2.0) if hidden else 1.0
    return gain * math.sqrt(3.0 / fan_in)


def forward_batch(
    weights: list[np.ndarray], biases: list[np.ndarray], X: np.ndarray
) -> list[np.ndarray]:
    """Every layer's output (post-ReLU for hidden layers) on the rows of `X`; allocates its own
    buffers, so it is safe from several threads."""
    outputs = []
    a = X
    last = len(weights) - 1
    for i, (W, b) in enumerate(zip(weights, biases, strict=True)):
        a = a @ W.T
        a += b
        if i < last:
            np.maximum(a, 0.0, out=a)
        outputs.append(a)
    return outputs


@dataclass
class _Slot:
    fill: float  # value of a fresh element (a new input/output, a replaced unit)
    copy_param: bool  # fresh elements take the parameter's value instead (initial weights)
    persistent: bool
    tensor: torch.Tensor
    flat: np.ndarray
    W: list[np.ndarray]
    b: list[np.ndarray]
    W_t: list[torch.Tensor]
    b_t: list[torch.Tensor]


class Network:
    """A ReLU multilayer perceptron, learned one example at a time.

    Parameters
    ----------
    hidden
        Hidden layer widths; `()` is a linear model.
    n_outputs
        Initial number of outputs (1 for a regressor, 0 for a classifier that knows no class).
    generator
        The learner's random generator.
    n_inputs
        Initial number of inputs.

    """

    def __init__(
        self,
        hidden: tuple[int, ...],
        n_outputs: int,
        generator: torch.Generator,
        n_inputs: int = 0,
    ) -> None:
        self.sizes = [n_inputs, *hidden, n_outputs]
        self.generator = generator
        # Bumped whenever buffers or views move (growth, loading, a new slot): bindings to their
        # addresses compare it.
        self.generation = 0
        self.n_layers = len(self.sizes) - 1
        # Activations of the hidden layers, contiguous so per-unit statistics (continual
        # backprop) update all layers in one call; one scratch row per hidden layer for backward.
        width = sum(hidden)
        self._hidden_t = torch.zeros(width)
        self._delta_t = torch.zeros(width)
        self._mask = np.zeros(width, dtype=np.float32)
        self.hidden_all: np.ndarray = self._hidden_t.numpy()
        ends = np.cumsum(hidden, dtype=int)
        bounds = list(zip(ends - hidden, ends, strict=True))
        self._h_t = [self._hidden_t[s:e] for s, e in bounds]
        self._h = [t.numpy() for t in self._h_t]
        self._delta_views_t = [self._delta_t[s:e] for s, e in bounds]
        self._deltas = [t.numpy() for t in self._delta_views_t]
        self._masks = [self._mask[s:e] for s, e in bounds]
        self._slots: dict[str, _Slot] = {}
        self._allocate(n_inputs, n_outputs)
        self.add_slot("param")
        # The last step's gradient is scratch: the learner keeps its norm, not the gradient.
        self.add_slot("grad", persistent=False)
        self._rebind()
        for i in range(self.n_layers):
            self._initialise(i)

    # -- slots and views ---------------------------------------------------------------------

    def add_slot(
        self, name: str, fill: float = 0.0, copy_param: bool = False, persistent: bool = True
    ) -> None:
        """Add a parameter-shaped buffer. Its logical elements start at `fill`, as does every
        fresh element later (a new input or output, a replaced unit); `copy_param` makes them
        take the parameter's value instead; a non-`persistent` slot is left out of the state
        (scratch space, masks) and is back at `fill` after loading."""
        if name in self._slots:
            raise ValueError(f"slot {name!r} exists")
        tensor = torch.zeros(self._total())
        self._slots[name] = slot = self._bind(tensor, fill, copy_param, persistent)
        self.generation += 1
        if name != "param":
            self._refill(slot)

    def _refill(self, slot: _Slot) -> None:
        param = self._slots["param"]
        for W, b, W_p, b_p in zip(slot.W, slot.b, param.W, param.b, strict=True):
            W[...] = W_p if slot.copy_param else slot.fill
            b[...] = b_p if slot.copy_param else slot.fill

    def flat(self, name: str) -> np.ndarray:
        """The whole slot as one flat array (spare capacity included, kept at zero for
        parameter-like slots)."""
        return self._slots[name].flat

    def tensor(self, name: str) -> torch.Tensor:
        return self._slots[name].tensor

    def layers(self, name: str) -> list[tuple[np.ndarray, np.ndarray]]:
        """`(W[i], b[i])` views of slot `name`, W of shape (outputs, inputs)."""
        slot = self._slots[name]
        return list(zip(slot.W, slot.b, strict=True))

    def tensors(self, name: str) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """`(W[i], b[i])` torch views of slot `name` (same memory as `layers`)."""
        slot = self._slots[name]
        return list(zip(slot.W_t, slot.b_t, strict=True))

    @property
    def slot_names(self) -> tuple[str, ...]:
        return tuple(self._slots)

    @property
    def capacity(self) -> tuple[int, int]:
        """(input, output) capacity: part of the state, since it decides the memory layout."""
        return self._in_cap, self._out_cap

    def blocks(self) -> list[tuple[int, int, int, int, int]]:
        """Per layer: (W offset, rows capacity, columns capacity, b offset, end), in every slot."""
        blocks, offset = [], 0
        for i in range(self.n_layers):
            rows = self._out_cap if i == self.n_layers - 1 else self.sizes[i + 1]
            cols = self._in_cap if i == 0 else self.sizes[i]
            w_end = offset + rows * cols
            blocks.append((offset, rows, cols, w_end, w_end + rows))
            offset = w_end + rows
        return blocks

    def _total(self) -> int:
        return self.blocks()[-1][4]

    def _bind(
        self, tensor: torch.Tensor, fill: float, copy_param: bool, persistent: bool = True
    ) -> _Slot:
        flat = tensor.numpy()
        W, b, W_t, b_t = [], [], [], []
        for i, (w0, rows, cols, b0, end) in enumerate(self.blocks()):
            r, c = self.sizes[i + 1], self.sizes[i]
            W_t.append(tensor[w0:b0].view(rows, cols)[:r, :c])
            b_t.append(tensor[b0:end][:r])
            W.append(flat[w0:b0].reshape(rows, cols)[:r, :c])
            b.append(flat[b0:end][:r])
        return _Slot(fill, copy_param, persistent, tensor, flat, W, b, W_t, b_t)

    def _rebind(self) -> None:
        """Rebuild every view after the logical sizes or the capacity changed."""
        self.generation += 1
        for name, slot in self._slots.items():
            self._slots[name] = self._bind(slot.tensor, slot.fill, slot.copy_param, slot.persistent)
        self._x_t = self._input_t[: self.sizes[0]]
        self.input: np.ndarray = self._x_t.numpy()
        self.output: np.ndarray = self._output_t[: self.sizes[-1]].numpy()
        self._d_out_t = self._d_output_t[: self.sizes[-1]]
        self.d_output: np.ndarray = self._d_out_t.numpy()
        if "param" in self._slots:
            self._W, self._b = self._slots["param"].W, self._slots["param"].b

    def _allocate(self, in_cap: int, out_cap: int) -> None:
        """Fresh zero buffers for capacity (in_cap, out_cap), at the current logical sizes."""
        self._in_cap, self._out_cap = in_cap, out_cap
        total = self._total()
        for name, slot in self._slots.items():
            self._slots[name] = self._bind(
                torch.zeros(total), slot.fill, slot.copy_param, slot.persistent
            )
        self._input_t = torch.zeros(in_cap)
        self._output_t = torch.zeros(out_cap)
        self._d_output_t = torch.zeros(out_cap)
        self._rebind()

    def _reallocate(self, in_cap: int, out_cap: int) -> None:
        """`_allocate`, keeping every slot's logical elements."""
        old = {name: (slot.W, slot.b) for name, slot in self._slots.items()}
        x = self.input.copy()  # the current example's, when a new class grows the outputs
        self._allocate(in_cap, out_cap)
        self.input[...] = x
        for name, slot in self._slots.items():
            for W, b, W_old, b_old in zip(slot.W, slot.b, *old[name], strict=True):
                W[...] = W_old
                b[...] = b_old

    # -- growth ------------------------------------------------------------------------------

    def grow_inputs(self, k: int, initialise: bool = False) -> None:
        """Add `k` inputs. Their weights are zero, so the function is unchanged, and every
        slot's existing elements are kept; `initialise` instead redraws the whole input layer
        (before anything is learned, when all of it is new)."""
        self._grow(0, k, initialise)

    def grow_outputs(self, k: int, initialise: bool = False) -> None:
        """Add `k` outputs (zero weights and bias), as `grow_inputs`."""
        self._grow(-1, k, initialise)

    def _grow(self, end: int, k: int, initialise: bool) -> None:
        if k <= 0:
            return
        old = self.sizes[end]
        in_cap, out_cap = self.capacity
        if end == 0 and old + k > in_cap:
            in_cap = max(old + k, math.ceil(in_cap * GROWTH))
        if end == -1 and old + k > out_cap:
            out_cap = max(old + k, math.ceil(out_cap * GROWTH))
        if (in_cap, out_cap) != self.capacity:
            self._reallocate(in_cap, out_cap)
        self.sizes[end] = old + k
        self._rebind()
        layer = 0 if end == 0 else self.n_layers - 1
        for slot in self._slots.values():
            if end == 0:
                slot.W[layer][:, old:] = slot.fill
            else:
                slot.W[layer][old:] = slot.fill
                slot.b[layer][old:] = slot.fill
        if initialise:
            self._initialise(layer)

    def _initialise(self, i: int) -> None:
        """Kaiming-uniform weights and zero biases for layer `i` (and the slots that follow the
        parameters)."""
        W, b = self._slots["param"].W[i], self._slots["param"].b[i]
        rows, fan_in = W.shape
        if fan_in:
            bound = kaiming_bound(fan_in, hidden=i < self.n_layers - 1)
            W[...] = self.uniform((rows, fan_in), bound)
        b[...] = 0.0
        for slot in self._slots.values():
            if slot.copy_param:
                slot.W[i][...] = W
                slot.b[i][...] = b

    def uniform(self, shape: tuple[int, ...], bound: float) -> np.ndarray:
        """Draws from U(-bound, bound) with the learner's generator."""
        return torch.empty(shape).uniform_(-bound, bound, generator=self.generator).numpy()

    def reset_unit(self, i: int, unit: int, incoming: np.ndarray) -> None:
        """Make hidden unit `unit` of layer `i` fresh: incoming weights `incoming`, bias 0,
        outgoing weights 0; every other slot's incoming row, bias and outgoing column back to
        its fresh value (optimizer state reset), but the last step's gradient, which the
        gradient norm reads."""
        param = self._slots["param"]
        param.W[i][unit] = incoming
        param.b[i][unit] = 0.0
        param.W[i + 1][:, unit] = 0.0
        for name, slot in self._slots.items():
            if name in ("param", "grad"):
                continue
            if slot.copy_param:
                slot.W[i][unit] = param.W[i][unit]
                slot.b[i][unit] = 0.0
                slot.W[i + 1][:, unit] = 0.0
            else:
                slot.W[i][unit] = slot.fill
                slot.b[i][unit] = slot.fill
                slot.W[i + 1][:, unit] = slot.fill

    # -- one example ---------------------------------------------------------------------------

    @property
    def hidden(self) -> list[np.ndarray]:
        """Each hidden layer's activations from the last `forward` (views, overwritten by the
        next one)."""
        return self._h

    @property
    def hidden_tensors(self) -> list[torch.Tensor]:
        """`hidden` as torch tensors (same memory)."""
        return self._h_t

    def forward(self) -> np.ndarray:
        """Outputs for `self.input`; keeps the hidden activations for `backward`."""
        W, b, a = self._W, self._b, self.input
        last = self.n_layers - 1
        for i in range(last):
            h = self._h[i]
            np.dot(W[i], a, out=h)
            h += b[i]
            np.maximum(h, 0.0, out=h)
            a = h
        out = self.output
        np.dot(W[last], a, out=out)
        out += b[last]
        return out

    def backward(self) -> None:
        """Gradients of the loss into slot "grad", from `self.d_output` (dLoss/dOutputs) and the
        activations of the last `forward`: `propagate`, then `gradients`."""
        self.propagate()
        self.gradients()

    def propagate(self) -> float:
        """Backpropagate `self.d_output` into the hidden layers' deltas (kept for `gradients`),
        reading the weights only. Returns a bound on every gradient element: the largest over
        layers of max|delta| · max(1, max|layer input|); inf or nan if anything is not finite.
        The learner refuses a step whose bound is too large before the step changes anything."""
        bound = 0.0
        d = self.d_output
        for i in range(self.n_layers - 1, -1, -1):
            a = self._h[i - 1] if i else self.input
            top = float(np.abs(d).max(initial=0.0))
            bound = max(bound, top * max(1.0, float(np.abs(a).max(initial=0.0))), key=_not_le)
            if i:
                prev, h, mask = self._deltas[i - 1], self._h[i - 1], self._masks[i - 1]
                np.dot(self._W[i].T, d, out=prev)
                np.sign(h, out=mask)  # ReLU'(z) = 1[h > 0], as h >= 0
                prev *= mask
                d = prev
        return bound

    def gradient_sq_norm(self) -> float:
        """‖g‖² of the loss gradient the last `propagate` implies, from its deltas and the
        layers' inputs, before `gradients` writes it: Σᵢ ‖dᵢ‖² (‖aᵢ‖² + 1), as layer i's weight
        gradient is the outer product dᵢ aᵢᵀ and its bias gradient dᵢ."""
        total, d = 0.0, self.d_output
        for i in range(self.n_layers - 1, -1, -1):
            a = self._h[i - 1] if i else self.input
            total += _sq_norm(d) * (_sq_norm(a) + 1.0)
            if i:
                d = self._deltas[i - 1]
        return total

    def gradients(self) -> None:
        """Slot "grad" from the deltas of the last `propagate`."""
        grad = self._slots["grad"]
        d, d_t = self.d_output, self._d_out_t
        for i in range(self.n_layers - 1, -1, -1):
            a_t = self._h_t[i - 1] if i else self._x_t
            torch.outer(d_t, a_t, out=grad.W_t[i])
            np.copyto(grad.b[i], d)
            if i:
                d, d_t = self._deltas[i - 1], self._delta_views_t[i - 1]

    # -- batches and summaries -----------------------------------------------------------------

    def weights(self) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Live parameter views `(W, b)`."""
        return self._W, self._b

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Outputs on the rows of `X` (n, inputs), without touching the learning buffers."""
        return forward_batch(self._W, self._b, X)[-1]

    def hidden_activations(self, X: np.ndarray | torch.Tensor) -> list[torch.Tensor]:
        """Post-ReLU activations of every hidden layer on the rows of `X` (probing)."""
        X = np.asarray(X, dtype=np.float32)
        return [torch.from_numpy(h) for h in forward_batch(self._W, self._b, X)[:-1]]

    def mean_abs_weights(self) -> list[float]:
        """Mean |W| of each layer's incoming weights, hidden layers then the output layer."""
        return [float(np.abs(W).mean()) if W.size else 0.0 for W in self._W]

    def mean_abs_parameter(self) -> float:
        """Mean |θ| over all weights and biases."""
        total = sum(
            float(np.abs(W).sum()) + float(np.abs(b).sum()) for W, b in self.layers("param")
        )
        return total / max(self.n_parameters, 1)

    def gradient_norm(self) -> float:
        """L2 norm of slot "grad" (the last step's gradient)."""
        return math.sqrt(
            sum(float(np.vdot(W, W)) + float(np.dot(b, b)) for W, b in self.layers("grad"))
        )

    @property
    def n_parameters(self) -> int:
        return sum((r + 1) * c for r, c in zip(self.sizes[:-1], self.sizes[1:], strict=True))

    # -- state ---------------------------------------------------------------------------------

    def state_dict(self) -> tuple[dict[str, torch.Tensor], dict[str, list[int]]]:
        """Every persistent slot's logical tensors, and the layout (sizes and capacity)."""
        tensors = {}
        for name, slot in self._slots.items():
            if slot.persistent:
                for i, (W, b) in enumerate(zip(slot.W_t, slot.b_t, strict=True)):
                    tensors[f"{name}.W{i}"] = W.contiguous()
                    tensors[f"{name}.b{i}"] = b
        return tensors, {"sizes": list(self.sizes), "capacity": list(self.capacity)}

    def load_state_dict(self, tensors: dict[str, torch.Tensor], layout: dict) -> None:
        """Restore `state_dict`'s output into a network with the same hidden layers and slots."""
        if list(layout["sizes"][1:-1]) != self.sizes[1:-1]:
            raise ValueError(f"hidden sizes {layout['sizes'][1:-1]} != {self.sizes[1:-1]}")
        self.sizes = list(layout["sizes"])
        self._allocate(*layout["capacity"])
        for name, slot in self._slots.items():
            if slot.persistent:
                for i, (W, b) in enumerate(zip(slot.W_t, slot.b_t, strict=True)):
                    W.copy_(tensors[f"{name}.W{i}"])
                    b.copy_(tensors[f"{name}.b{i}"])
            else:
                self._refill(slot)
