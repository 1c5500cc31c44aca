"""Guided updates: each parameter's update, after the optimizer, scaled by a value in [0, 1].

`UPGD` (utility-based perturbed gradient descent, Elsayed & Mahmood, ICLR 2024) derives the
scale online from each weight's utility and perturbs the weights it leaves free; `Guided` (Guided
Transfer Learning, Nikolić et al. 2023) reads it from a guidance file that `lifelong guide`
computes with scouts (`lifelong.model.scouts`). Both scale the optimizer's *update*, not the
gradient: with Adam a constant per-parameter gradient scale is mostly cancelled by the
second-moment normalisation.

The learner calls `UPGD.prepare` after the gradient (and L2-init's term) and before the optimizer
step, whose update then goes through each method's `adjust(update, lr)` before it is subtracted.

>>> import numpy as np, torch
>>> from lifelong.model.network import Network
>>> from lifelong.model.optim import SGD
>>> net = Network(hidden=(), n_outputs=1, generator=torch.Generator(), n_inputs=2)
>>> upgd = UPGD(net, utility_decay=0.5, noise_std=0.0, weight_decay=0.0)
>>> net.flat("param")[:3] = [1.0, -1.0, 0.0]  # W = [1, -1], b = 0
>>> net.flat("grad")[:3] = [-2.0, -2.0, 1.0]  # -g·w: 2, -2, 0
>>> upgd.prepare()
>>> [round(float(s), 4) for s in net.layers("upgd_scale")[0][0][0]]  # û = 2, -2: 1 - sigmoid(±1)
[0.2689, 0.7311]

"""

from __future__ import annotations

import json
from collections.abc import Callable, Hashable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import safetensors.numpy
from lifelong.model.network import Network

FORMAT = "lifelong-guidance-1"  # "format" in the file's metadata
_KEY = "lifelong"  # the safetensors metadata entry holding the JSON
_TINY = float(np.finfo(np.float32).tiny)  # the utility scale when no utility is positive


class GuidanceError(ValueError):
    """A guidance file that does not fit the network, or is not a guidance file."""


class UPGD:
    """Utility-based perturbed gradient descent (Elsayed & Mahmood, ICLR 2024).

    Per weight, before each step: utility u ← β u + (1 - β)(-g·w), bias-corrected û = u / (1 - βᵗ)
    (t counted per weight: fresh weights restart it); per parameter tensor (each layer's W and b),
    ū = sigmoid(û / max û) (max û floored at the smallest float32: when no utility is positive,
    ū is 1/2 for û = 0 and 0 below). The optimizer's update Δ (SGD: lr·g) becomes
    (Δ + lr·ξ)(1 - ū) + lr·λ·w with ξ ~ N(0, σ²) from the learner's generator: with SGD,
    w ← w(1 - lr·λ) - lr (g + ξ)(1 - ū), the paper's rule. Useful weights are protected, useless
    ones perturbed.
    """

    def __init__(
        self, network: Network, utility_decay: float, noise_std: float, weight_decay: float
    ) -> None:
        self.network = network
        self.beta = utility_decay
        self.std = noise_std
        self.weight_decay = weight_decay
        network.add_slot("upgd_utility")
        network.add_slot("upgd_power", fill=1.0)  # βᵗ per weight
        # 1 - ū on logical elements, 0 on spare capacity: masks the noise there too.
        network.add_slot("upgd_scale", fill=1.0, persistent=False)
        network.add_slot("upgd_tmp", persistent=False)
        if noise_std:
            network.add_slot("upgd_noise", persistent=False)

    def prepare(self) -> None:
        """Update the utilities from slot "grad" and the weights before the step; compute the
        scale 1 - ū of this step's update."""
        net = self.network
        beta = self.beta
        u, power, tmp = net.flat("upgd_utility"), net.flat("upgd_power"), net.flat("upgd_tmp")
        np.multiply(net.flat("grad"), net.flat("param"), out=tmp)
        tmp *= -(1.0 - beta)
        u *= beta
        u += tmp
        power *= beta
        for (uW, ub), (pW, pb), (sW, sb) in zip(
            net.layers("upgd_utility"),
            net.layers("upgd_power"),
            net.layers("upgd_scale"),
            strict=True,
        ):
            for utility, p, scale in ((uW, pW, sW), (ub, pb, sb)):
                if not utility.size:
                    continue
                np.subtract(1.0, p, out=scale)
                np.divide(utility, scale, out=scale)  # û
                scale /= max(float(scale.max()), _TINY)
                # 1 - sigmoid(x) = sigmoid(-x) = 1 / (1 + exp(x))
                np.exp(scale, out=scale)
                scale += 1.0
                np.reciprocal(scale, out=scale)

    def adjust(self, update: np.ndarray, lr: float) -> None:
        """The optimizer's update (flat, spare capacity included), made UPGD's, in place."""
        net = self.network
        if self.std:
            noise = net.flat("upgd_noise")
            net.tensor("upgd_noise").normal_(0.0, self.std, generator=net.generator)
            noise *= lr
            update += noise
        update *= net.flat("upgd_scale")
        if self.weight_decay:
            tmp = net.flat("upgd_tmp")
            np.multiply(net.flat("param"), lr * self.weight_decay, out=tmp)
            update += tmp


class Guided:
    """Multiplies each update by a fixed guidance value in [0, 1] per parameter, from a guidance
    file (`load`): 0 freezes a parameter, 1 leaves it free.

    The file names its features and classes; a feature or class the network gains takes the
    file's column or row if the file has its name, else guidance 1 (free), as does every
    parameter of a unit continual backprop replaces (it is fresh). The guidance is a slot of the
    network, in its state, so a checkpoint restores it as it was.

    Parameters
    ----------
    network
        The learner's network, its hidden layers as the file's.
    guidance
        `load`'s tensors and metadata.
    layout
        The learner's (feature names, classes), in the order of its input and output layers.
    task
        The learner's: the file's must be the same.

    """

    def __init__(
        self,
        network: Network,
        guidance: tuple[dict[str, np.ndarray], dict[str, Any]],
        layout: Callable[[], tuple[Sequence[Hashable], Sequence[Hashable]]],
        task: str,
    ) -> None:
        self.network = network
        self.tensors, meta = guidance
        if meta["task"] != task:
            raise GuidanceError(f"guidance for {meta['task']}, the learner does {task}")
        check(self.tensors, meta, network.sizes[1:-1])
        self._features = {_key(name): j for j, name in enumerate(meta["features"])}
        self._classes = {_key(c): k for k, c in enumerate(meta["classes"])}
        self._regression = meta["task"] == "regression"
        self.layout = layout
        network.add_slot("guidance", fill=1.0)
        # (inputs, outputs) the file was applied to; None: not yet (at the first step)
        self.known: tuple[int, int] | None = None

    def adjust(self, update: np.ndarray, lr: float) -> None:
        """Scale the optimizer's update (flat, spare capacity included) in place."""
        if (self.network.sizes[0], self.network.sizes[-1]) != self.known:
            self._apply()
        update *= self.network.flat("guidance")

    def _apply(self) -> None:
        """The file's values on the inputs and outputs added since the last call (on every
        layer at the first); other new elements keep the slot's fill, 1."""
        net = self.network
        names, classes = self.layout()
        last = net.n_layers - 1
        for i, (W, b) in enumerate(net.layers("guidance")):
            fW, fb = self.tensors[f"W{i}"], self.tensors[f"b{i}"]
            rows = self._match(classes, self._classes) if i == last else _identity(W.shape[0])
            cols = self._match(names, self._features) if i == 0 else _identity(W.shape[1])
            if self.known is None:
                W[np.ix_(rows[0], cols[0])] = fW[np.ix_(rows[1], cols[1])]
                b[rows[0]] = fb[rows[1]]
                continue
            # Only what is new: the rest keeps its values (restored ones, replaced units' 1).
            new_rows = rows[0] >= (self.known[1] if i == last else W.shape[0])
            new_cols = cols[0] >= (self.known[0] if i == 0 else W.shape[1])
            r, c = (rows[0][new_rows], rows[1][new_rows]), (cols[0][new_cols], cols[1][new_cols])
            W[np.ix_(r[0], cols[0])] = fW[np.ix_(r[1], cols[1])]
            W[np.ix_(rows[0], c[0])] = fW[np.ix_(rows[1], c[1])]
            b[r[0]] = fb[r[1]]
        self.known = (net.sizes[0], net.sizes[-1])

    def _match(
        self, names: Sequence[Hashable], known: dict[Any, int]
    ) -> tuple[np.ndarray, np.ndarray]:
        """(network indices, file indices) of the names both have; a regressor's one output
        is the file's."""
        if self._regression and known is self._classes:
            return _identity(1)
        pairs = [(i, known[_key(n)]) for i, n in enumerate(names) if _key(n) in known]
        if not pairs:
            return np.zeros(0, dtype=np.intp), np.zeros(0, dtype=np.intp)
        net_idx, file_idx = zip(*pairs, strict=True)
        return np.array(net_idx, dtype=np.intp), np.array(file_idx, dtype=np.intp)


def _identity(n: int) -> tuple[np.ndarray, np.ndarray]:
    index = np.arange(n, dtype=np.intp)
    return index, index


def _key(label: Hashable) -> tuple[str, Hashable]:
    """A name or class as a dict key that keeps `True` and `1` apart, as JSON does."""
    return type(label).__name__, label


def save(
    path: str | Path,
    tensors: dict[str, np.ndarray],
    *,
    task: str,
    features: Sequence[Hashable],
    classes: Sequence[Hashable],
) -> None:
    """Write a guidance file: float32 `W{i}`, `b{i}` per layer, and the names of the first
    layer's columns (`features`) and the last layer's rows (`classes`; none for regression)."""
    # One metadata entry: safetensors writes several in no fixed order, and the same guide
    # should be the same bytes.
    meta = {
        _KEY: json.dumps(
            {"format": FORMAT, "task": task, "features": list(features), "classes": list(classes)}
        )
    }
    arrays = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in tensors.items()}
    try:
        safetensors.numpy.save_file(arrays, str(path), metadata=meta)
    except safetensors.SafetensorError as e:  # a missing directory, a full disk
        raise OSError(f"guidance file {path}: {e}") from None


def load(path: str | Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """A guidance file's tensors and metadata (features and classes as lists)."""
    try:
        with safetensors.safe_open(str(path), framework="numpy") as f:
            raw = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (not a dict)
    except (OSError, safetensors.SafetensorError) as e:
        raise GuidanceError(f"guidance file {path}: {e}") from None
    try:
        meta = json.loads(raw[_KEY])
    except (KeyError, ValueError):
        meta = {}
    if (
        not isinstance(meta, dict)
        or meta.get("format") != FORMAT
        or not isinstance(meta.get("features"), list)
        or not isinstance(meta.get("classes"), list)
    ):
        raise GuidanceError(f"guidance file {path}: not a {FORMAT} file (`lifelong guide`)")
    return tensors, meta


def check(tensors: dict[str, np.ndarray], meta: dict[str, Any], hidden: Sequence[int]) -> None:
    """Raise `GuidanceError` unless the guidance fits a network of these hidden widths.

    >>> check({"W0": np.ones((3, 2)), "b0": np.ones(3)}, {"task": "regression",
    ...        "features": ["a", "b"], "classes": []}, hidden=(4,))
    Traceback (most recent call last):
    ...
    lifelong.model.guidance.GuidanceError: guidance has 1 layer(s), the network 2 (hidden (4,))

    """
    n_layers = len(hidden) + 1
    layers = sum(1 for k in tensors if k.startswith("W"))
    if layers != n_layers or set(tensors) != {f"{p}{i}" for p in "Wb" for i in range(layers)}:
        raise GuidanceError(
            f"guidance has {layers} layer(s), the network {n_layers} (hidden {tuple(hidden)})"
        )
    n_out = 1 if meta["task"] == "regression" else len(meta["classes"])
    sizes = [len(meta["features"]), *hidden, n_out]
    for i in range(n_layers):
        W, b = tensors[f"W{i}"], tensors[f"b{i}"]
        want = (sizes[i + 1], sizes[i])
        if W.shape != want or b.shape != (want[0],):
            raise GuidanceError(
                f"guidance layer {i}: W {W.shape} and b {b.shape}, the network needs W {want} "
                f"and b ({want[0]},) (inputs: the file's features; outputs: its classes)"
            )
        for name, values in ((f"W{i}", W), (f"b{i}", b)):
            if values.size and not (np.isfinite(values).all() and 0.0 <= values.min() <= 1.0):
                raise GuidanceError(f"guidance {name}: values must be in [0, 1]")
            if values.size and values.max() > 1.0:
                raise GuidanceError(f"guidance {name}: values must be in [0, 1]")
