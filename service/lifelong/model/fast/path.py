"""The fast path: a learner's sequence of dense examples through the compiled kernel, and one
row's prediction.

Same semantics as the learner's reference path, example by example: standardise, predict (for
the prequential monitor), learn with the optimizer, shrink and perturb, continual backprop,
ReDo's sums, telemetry. The kernel works in place on the buffers of the network and of the parts
that learn with it (optimizer state, scaler, continual backprop's per-unit arrays, shrink and
perturb's step count, ReDo's sums, telemetry sums), so the two paths can alternate freely.
Shrink and perturb's noise is counter-based (`plasticity.gaussian`): the kernel computes the
same bits. It returns to Python where the reference needs Python: a continual-backprop
replacement or a ReDo sweep (drawn from the learner's torch generator by
`ContinualBackprop.replace_due` and `ReDo.sweep`, so both paths draw the same numbers) and the
close of a telemetry window (an eigendecomposition); the
learner updates its prequential monitor (river's ADWIN) from each example's prediction as the
kernel recorded it.

An example that would diverge stops the kernel before it changes anything (as the reference's
`_check`); `learn` returns how many were learned and `refusal` says why it stopped, for the
learner to refuse that example.
"""

from __future__ import annotations

import ctypes
import math
from array import array
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from lifelong.model.config import LOGIT_STEP
from lifelong.model.fast.build import KernelUnavailable, load
from lifelong.model.network import GRADIENT_LIMIT
from lifelong.model.optim import SGD, Adam

if TYPE_CHECKING:
    from lifelong.model.config import LearnerConfig
    from lifelong.model.network import Network
    from lifelong.model.plasticity import ContinualBackprop, L2Init, ReDo, ShrinkPerturb
    from lifelong.model.scaler import Standardizer, TargetScaler
    from lifelong.model.telemetry import LayerTelemetry

MAX_LAYERS = 16  # kernel.c
GRAM_ROWS = 32  # kernel.c
REFUSALS = {1: "non_finite_output", 2: "gradient_limit"}  # kernel.c: `diverged`
DUE_CBP, DUE_REDO = 1, 2  # kernel.c: `due`
OUT_OF_RANGE = 3  # kernel.c: `diverged` for a raw value not finite or beyond RAW_LIMIT

_f = ctypes.POINTER(ctypes.c_float)
_d = ctypes.POINTER(ctypes.c_double)
_i64 = ctypes.c_int64
_i32 = ctypes.c_int32


class _Net(ctypes.Structure):
    """kernel.c's `Net`, field for field."""

    _fields_ = [
        ("n_layers", _i32),
        ("sizes", _i32 * (MAX_LAYERS + 1)),
        ("w_off", _i64 * MAX_LAYERS),
        ("w_stride", _i64 * MAX_LAYERS),
        ("b_off", _i64 * MAX_LAYERS),
        *((name, _f) for name in ("param", "momentum", "exp_avg", "exp_avg_sq")),
        *((name, _f) for name in ("beta1_power", "beta2_power", "initial")),
        *((name, _i32) for name in ("optimizer", "task", "standardize", "cbp", "adaptable")),
        *((name, ctypes.c_float) for name in ("lr", "mom", "beta1", "beta2")),
        *((name, ctypes.c_float) for name in ("one_minus_beta1", "one_minus_beta2", "eps")),
        ("l2_twice", ctypes.c_float),
        ("step_lr", ctypes.c_double),
        ("kappa", ctypes.c_double),
        ("logit_step", ctypes.c_double),
        ("clip", ctypes.c_double),
        ("limit", ctypes.c_double),
        ("min_weight", ctypes.c_double),
        *((name, _d) for name in ("sc_count", "sc_mean", "sc_var", "sc_run", "target")),
        ("age", ctypes.POINTER(_i64)),
        *((name, _f) for name in ("mean", "utility", "decay_power", "correction", "mean_hat")),
        ("mature", ctypes.POINTER(ctypes.c_uint8)),
        ("accumulated", _d),
        ("eta", ctypes.c_float),
        ("one_minus_eta", ctypes.c_float),
        ("rho", ctypes.c_double),
        ("maturity", _i64),
        ("gram", _d * MAX_LAYERS),
        ("unit_sums", _d * MAX_LAYERS),
        *((name, _f) for name in ("h", "delta", "out", "d_out", "x", "magnitude", "rows", "g")),
        ("x_next", _f),
        ("h_next", _f),
        ("grad_norm2", ctypes.c_double),
        ("diverged", _i32),
        ("due", _i32),
        ("sp_steps", ctypes.POINTER(_i64)),
        ("sp_key", ctypes.c_uint64),
        ("sp_shrink", _i32),
        ("sp_keep", ctypes.c_float),
        ("sp_std", ctypes.c_float),
        ("sp_stepkey", ctypes.c_uint64),
        ("redo_sums", _d),
        ("redo_steps", ctypes.POINTER(_i64)),
        ("redo_every", _i64),
    ]


class _Rows(ctypes.Structure):
    """kernel.c's `Rows`, field for field."""

    _fields_ = [
        ("n_layers", _i32),
        ("sizes", _i32 * (MAX_LAYERS + 1)),
        ("W", _f * MAX_LAYERS),
        ("stride", _i64 * MAX_LAYERS),
        ("b", _f * MAX_LAYERS),
        ("mean", _d),
        ("var", _d),
        ("clip", ctypes.c_double),
    ]


def unsupported(config: LearnerConfig) -> str | None:
    """Why `config` needs the reference path, or None if the kernel covers it."""
    if guided := {"upgd", "guided"} & set(config.plasticity):
        # Their update scaling (and UPGD's noise) is not in the kernel yet.
        return f"{' and '.join(sorted(guided))} scale updates outside the kernel"
    if len(config.hidden) + 1 > MAX_LAYERS:
        return f"more than {MAX_LAYERS - 1} hidden layers"
    return None


def _ptr(array: np.ndarray, kind: type) -> ctypes._Pointer:
    if not array.flags.c_contiguous:
        raise ValueError("the kernel needs contiguous buffers")
    return ctypes.cast(array.ctypes.data, kind)


class FastPath:
    """The kernel bound to a network and the parts that learn with it; bound again when the
    network's or the scaler's buffers move (their `generation`)."""

    def __init__(
        self,
        config: LearnerConfig,
        network: Network,
        optimizer: SGD | Adam,
        scaler: Standardizer | None,
        target: TargetScaler | None,
        cbp: ContinualBackprop | None,
        l2: L2Init | None,
        sp: ShrinkPerturb | None,
        redo: ReDo | None,
        telemetry: Sequence[LayerTelemetry],
    ) -> None:
        reason = unsupported(config)
        if reason:
            raise KernelUnavailable(reason)
        self._learn = load().lifelong_learn
        self._learn.restype = _i64
        # Addresses as plain integers: cheaper than building ctypes pointers per call.
        self._learn.argtypes = [ctypes.c_void_p, _i64, *[ctypes.c_void_p] * 4]
        self._config, self._network, self._optimizer = config, network, optimizer
        self._scaler, self._target, self._cbp, self._l2 = scaler, target, cbp, l2
        self._sp, self._redo = sp, redo
        self._telemetry = telemetry
        self.refusal: str | None = None  # why the last `learn` stopped early, if it did
        self.grad_norm = 0.0  # of the last learned example's gradient
        self._generation: tuple[int, int] | None = None
        self._net = _Net()
        total = sum(config.hidden)
        self._delta = np.zeros(total, dtype=np.float32)
        self._h_next = np.zeros(total, dtype=np.float32)
        self._magnitude = np.zeros(total, dtype=np.float32)
        self._rows = np.zeros(GRAM_ROWS * total, dtype=np.float32)
        self._target_moments = np.zeros(4)  # count, mean, var, run
        self._target_dtype = np.float64 if target is not None else np.int64

    def _bind(self) -> _Net:
        net_, scaler = self._network, self._scaler
        generation = (net_.generation, scaler.generation if scaler is not None else 0)
        if generation == self._generation:
            return self._net
        n = _Net()
        n.n_layers = net_.n_layers
        for i, size in enumerate(net_.sizes):
            n.sizes[i] = size
        for i, (w0, _rows, cols, b0, _end) in enumerate(net_.blocks()):
            n.w_off[i], n.w_stride[i], n.b_off[i] = w0, cols, b0
        slots = set(net_.slot_names)
        for name in ("param", "momentum", "exp_avg", "exp_avg_sq", "beta1_power", "beta2_power",
                     "initial"):  # fmt: skip
            if name in slots:
                setattr(n, name, _ptr(net_.flat(name), _f))
        optimizer, config = self._optimizer, self._config
        n.task = 0 if self._target is None else 1
        if isinstance(optimizer, Adam):
            n.optimizer = 1
            n.beta1, n.beta2, n.eps = optimizer.beta1, optimizer.beta2, optimizer.eps
            n.one_minus_beta1, n.one_minus_beta2 = 1.0 - optimizer.beta1, 1.0 - optimizer.beta2
        else:
            n.mom = optimizer.momentum
            n.kappa = config.step_bound
            n.logit_step = LOGIT_STEP
        if self._l2 is not None:
            n.l2_twice = 2.0 * self._l2.strength
        if scaler is not None:
            n.standardize = 1
            n.sc_count, n.sc_mean = _ptr(scaler.count, _d), _ptr(scaler.mean, _d)
            n.sc_var, n.sc_run = _ptr(scaler.var, _d), _ptr(scaler.run, _d)
        n.target = _ptr(self._target_moments, _d)
        n.clip, n.limit = config.clip, GRADIENT_LIMIT
        horizon = config.scaler_horizon
        n.min_weight = 1.0 / horizon if horizon else 0.0
        cbp = self._cbp
        if cbp is not None:
            n.cbp = 1
            n.adaptable = int(cbp.adaptable)
            n.age = _ptr(cbp.age, ctypes.POINTER(_i64))
            for name in ("mean", "utility", "decay_power", "correction", "mean_hat"):
                setattr(n, name, _ptr(getattr(cbp, name), _f))
            n.mature = _ptr(cbp.mature.view(np.uint8), ctypes.POINTER(ctypes.c_uint8))
            n.accumulated = _ptr(cbp.accumulated, _d)
            n.eta, n.one_minus_eta = cbp.decay_rate, 1.0 - cbp.decay_rate
            n.rho, n.maturity = cbp.replacement_rate, cbp.maturity_threshold
        sp, redo = self._sp, self._redo
        if sp is not None:
            n.sp_steps, n.sp_key = _ptr(sp.steps, ctypes.POINTER(_i64)), sp.key
            # float32 as the reference's `param *= 1.0 - shrink` and `noise *= std` round them
            n.sp_shrink, n.sp_keep, n.sp_std = bool(sp.shrink), 1.0 - sp.shrink, sp.std
        if redo is not None:
            n.redo_sums, n.redo_every = _ptr(redo.sums, _d), redo.every
            n.redo_steps = _ptr(redo.steps, ctypes.POINTER(_i64))
        for i, telemetry in enumerate(self._telemetry):
            gram, sums = telemetry.sums
            n.gram[i], n.unit_sums[i] = _ptr(gram, _d), _ptr(sums, _d)
        n.h = _ptr(net_.hidden_all, _f)
        n.delta, n.magnitude = _ptr(self._delta, _f), _ptr(self._magnitude, _f)
        n.rows = _ptr(self._rows, _f)
        # One row's gradient: scratch sized for this layout, kept alive with the binding.
        self._g = np.zeros(max(net_.capacity[0], *net_.sizes[1:]), dtype=np.float32)
        n.g = _ptr(self._g, _f)
        self._x_next = np.zeros(net_.sizes[0], dtype=np.float32)
        n.x_next, n.h_next = _ptr(self._x_next, _f), _ptr(self._h_next, _f)
        n.x, n.out, n.d_out = _ptr(net_.input, _f), _ptr(net_.output, _f), _ptr(net_.d_output, _f)
        # One example's buffers, for `learn_one`: addresses taken once per binding.
        self._one = (np.empty(net_.sizes[0]), np.empty(1, self._target_dtype),
                     np.empty(net_.sizes[-1]))  # fmt: skip
        self._one_addresses = tuple(a.ctypes.data for a in self._one)
        self._net, self._generation, self._address = n, generation, ctypes.addressof(n)
        return n

    def learn(self, X: np.ndarray, targets: np.ndarray, outputs: np.ndarray, lr: float) -> int:
        """Learn rows of `X` (float64, one column per known feature, checked by the learner's
        `numbers`) in order, at step size `lr`:
        `targets` are output indices (every class already known) or regression targets; each
        row's prediction, made before learning it, goes to `outputs` (float64, a row per row).
        Returns how many were learned: fewer than all where a telemetry window closes, a
        continual-backprop replacement or a ReDo sweep was made, or the next row would diverge
        (`refusal`)."""
        X = np.ascontiguousarray(X, dtype=np.float64)
        targets = np.ascontiguousarray(targets, dtype=self._target_dtype)
        addresses = X.ctypes.data, targets.ctypes.data, outputs.ctypes.data
        return self._run(self._bind(), len(X), *addresses, lr)

    def learn_one(self, x: np.ndarray | array, target: float, lr: float) -> list[float] | None:
        """`learn` for one example, through buffers kept between calls: its prediction, None if
        it would diverge (`refusal` says why). Its values are checked here: `ValueError`, with
        nothing changed, if one is not finite or beyond the learner's `RAW_LIMIT`."""
        net = self._bind()
        row, targets, outputs = self._one
        row[...] = x
        targets[0] = target
        x_address, target_address, output_address = self._one_addresses
        if self._run(net, 1, x_address, target_address, output_address, lr):
            return outputs.tolist()
        if net.diverged == OUT_OF_RANGE:
            raise ValueError("a feature value is not finite or beyond the raw limit")
        return None

    def _run(self, net: _Net, count: int, x: int, targets: int, outputs: int, lr: float) -> int:
        net.step_lr = lr
        target = self._target
        if target is not None:
            self._target_moments[:] = target.n, target.mean, target.var, target.run
        if self._telemetry:  # never across the close of a window (the same for every layer)
            count = min(count, self._telemetry[0].remaining)
        done = self._learn(self._address, count, x, targets, targets, outputs)
        if target is not None:
            n, target.mean, target.var, run = self._target_moments.tolist()
            target.n, target.run = int(n), int(run)
        if done:
            self.grad_norm = math.sqrt(net.grad_norm2)
        for telemetry in self._telemetry:
            telemetry.count(done)
        if net.due & DUE_CBP:
            self._cbp.replace_due()
        if net.due & DUE_REDO:
            self._redo.sweep()
        self.refusal = REFUSALS.get(net.diverged)
        return done


class RowKernel:
    """The kernel's one-row forward pass (`lifelong_predict`), bound to a predictor's weights,
    biases and input statistics, which it keeps alive; callable from any number of threads."""

    def __init__(
        self, weights: list[np.ndarray], biases: list[np.ndarray], scaler: Standardizer | None
    ) -> None:
        if len(weights) > MAX_LAYERS:
            raise KernelUnavailable(f"more than {MAX_LAYERS - 1} hidden layers")
        self._predict = load().lifelong_predict
        self._predict.restype = _i32
        self._predict.argtypes = [ctypes.c_void_p] * 3 + [_i32]
        m = self._rows = _Rows()
        m.n_layers = len(weights)
        for i, (W, b) in enumerate(zip(weights, biases, strict=True)):
            if W.strides[1] != W.itemsize or not b.flags.c_contiguous:
                raise ValueError("the kernel needs contiguous rows")
            m.sizes[i], m.sizes[i + 1] = W.shape[1], W.shape[0]
            m.W[i] = ctypes.cast(W.ctypes.data, _f)
            m.stride[i] = W.strides[0] // W.itemsize
            m.b[i] = _ptr(b, _f)
        if scaler is not None:
            m.mean, m.var, m.clip = _ptr(scaler.mean, _d), _ptr(scaler.var, _d), scaler.clip
        self._held = (weights, biases, None if scaler is None else (scaler.mean, scaler.var))
        self._address = ctypes.addressof(m)
        # ctypes arrays: cheaper per call than NumPy's addresses.
        self._inputs = ctypes.c_double * m.sizes[0]
        self._outputs = ctypes.c_double * m.sizes[m.n_layers]

    def __call__(self, raw: np.ndarray | array, check: bool = False) -> list[float] | None:
        """The outputs for `raw` (float64, one value per input; NaN: missing, as its mean).
        With `check`: None if a value is not finite or beyond the learner's `RAW_LIMIT`."""
        out = self._outputs()
        if self._predict(self._address, self._inputs.from_buffer(raw), out, check):
            return None
        return out[:]
