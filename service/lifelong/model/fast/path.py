"""The fast path: a learner's sequence of dense examples through the compiled kernel.

Same semantics as the learner's reference path, example by example: standardise, predict (for
the prequential monitor), learn with the optimizer, continual backprop, telemetry. The kernel
works in place on the learner's own buffers (parameter slots, optimizer state, scaler, continual
backprop's per-unit arrays, telemetry sums), so the two paths can alternate freely. It returns
to Python where the reference needs Python: a continual-backprop replacement (drawn from the
learner's torch generator by `ContinualBackprop._replace` itself, so both paths draw the same
numbers), the close of a telemetry window (an eigendecomposition) and the prequential monitor's
updates (river's ADWIN), which read each example's prediction as the kernel recorded it.

An example that would diverge stops the kernel before it changes anything (as the reference's
`_check`); `learn` returns how many were learned and `refusal` says why it stopped, for the
learner to refuse that example. The kernel also stops where a recovery window ends while the
step is halved (`_Lifelong._window_room`), so the step doubles back at the same example as in
the reference.
"""

from __future__ import annotations

import ctypes
import math
from typing import TYPE_CHECKING, Any

import numpy as np
from lifelong.model.config import LOGIT_STEP
from lifelong.model.fast.build import KernelUnavailable, load
from lifelong.model.network import GRADIENT_LIMIT
from lifelong.model.optim import Adam

if TYPE_CHECKING:
    from lifelong.model.config import LearnerConfig

MAX_LAYERS = 16  # kernel.c
GRAM_ROWS = 32  # kernel.c
REFUSALS = ("non_finite_output", "gradient_limit")  # kernel.c: `diverged` 1 and 2

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
    ]


def unsupported(config: LearnerConfig) -> str | None:
    """Why `config` needs the reference path, or None if the kernel covers it."""
    if "shrink_perturb" in config.plasticity:
        # Its noise is drawn from the torch generator for every parameter at every step.
        return "shrink_perturb draws torch noise every step"
    if len(config.hidden) + 1 > MAX_LAYERS:
        return f"more than {MAX_LAYERS - 1} hidden layers"
    return None


def _ptr(array: np.ndarray, kind: Any) -> Any:
    if not array.flags.c_contiguous:
        raise ValueError("the kernel needs contiguous buffers")
    return ctypes.cast(array.ctypes.data, kind)


class FastPath:
    """Binds the kernel to one learner's buffers; rebinds when they move (growth, loading)."""

    def __init__(self, learner: Any) -> None:
        reason = unsupported(learner.config)
        if reason:
            raise KernelUnavailable(reason)
        self._lib = load()
        self._lib.lifelong_learn.restype = _i64
        # Addresses as plain integers: cheaper than building ctypes pointers per call.
        self._lib.lifelong_learn.argtypes = [ctypes.c_void_p, _i64, *[ctypes.c_void_p] * 4]
        self._learner = learner
        self.refusal: str | None = None  # why the last `learn` stopped early, if it did
        self._key: tuple | None = None
        self._held: tuple = ()
        self._one: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self._net = _Net()
        widths = learner.config.hidden
        total = sum(widths)
        self._delta = np.zeros(total, dtype=np.float32)
        self._h_next = np.zeros(total, dtype=np.float32)
        self._magnitude = np.zeros(total, dtype=np.float32)
        self._rows = np.zeros(GRAM_ROWS * total, dtype=np.float32)
        self._accumulated = np.zeros(len(widths))
        self._target = np.zeros(4)  # count, mean, var, run
        self._telemetry_arrays = [
            (t._gram.numpy(), t._unit_sums.numpy()) for t in learner._telemetry
        ]

    def _bind(self) -> _Net:
        learner = self._learner
        net_ = learner._network
        scaler = learner._scaler
        # Growth and loading replace buffers: the binding holds the objects it points into, so
        # their ids cannot be reused while it compares them.
        statistics = () if scaler is None else (scaler.count, scaler.mean, scaler.var, scaler.run)
        held = (*(net_.tensor(name) for name in net_.slot_names), net_.hidden_all, *statistics)
        key = (tuple(net_.sizes), *map(id, held))
        if key == self._key:
            return self._net
        n = _Net()
        n.n_layers = net_.n_layers
        for i, size in enumerate(net_.sizes):
            n.sizes[i] = size
        for i, (w0, _rows, cols, b0, _end) in enumerate(net_._blocks()):
            n.w_off[i], n.w_stride[i], n.b_off[i] = w0, cols, b0
        slots = set(net_.slot_names)
        for name in ("param", "momentum", "exp_avg", "exp_avg_sq", "beta1_power", "beta2_power",
                     "initial"):  # fmt: skip
            if name in slots:
                setattr(n, name, _ptr(net_.flat(name), _f))
        optimizer = learner._optimizer
        n.optimizer = 1 if isinstance(optimizer, Adam) else 0
        n.task = 0 if learner.task == "classification" else 1
        if isinstance(optimizer, Adam):
            n.beta1, n.beta2, n.eps = optimizer.beta1, optimizer.beta2, optimizer.eps
            n.one_minus_beta1, n.one_minus_beta2 = 1.0 - optimizer.beta1, 1.0 - optimizer.beta2
        else:
            n.mom = optimizer.momentum
            n.kappa = learner.config.step_bound
            n.logit_step = LOGIT_STEP
        if learner._l2 is not None:
            n.l2_twice = 2.0 * learner._l2.strength
        if scaler is not None:
            n.standardize = 1
            n.sc_count, n.sc_mean = _ptr(scaler.count, _d), _ptr(scaler.mean, _d)
            n.sc_var, n.sc_run = _ptr(scaler.var, _d), _ptr(scaler.run, _d)
        n.target = _ptr(self._target, _d)
        n.clip, n.limit = learner.config.clip, GRADIENT_LIMIT
        horizon = learner.config.scaler_horizon
        n.min_weight = 1.0 / horizon if horizon else 0.0
        cbp = learner._cbp
        if cbp is not None:
            n.cbp = 1
            n.adaptable = int(cbp.adaptable)
            n.age = _ptr(cbp.age, ctypes.POINTER(_i64))
            for name in ("mean", "utility", "decay_power"):
                setattr(n, name, _ptr(getattr(cbp, name), _f))
            n.correction, n.mean_hat = _ptr(cbp._correction, _f), _ptr(cbp._mean_hat, _f)
            n.mature = _ptr(cbp._mature.view(np.uint8), ctypes.POINTER(ctypes.c_uint8))
            n.accumulated = _ptr(self._accumulated, _d)
            n.eta, n.one_minus_eta = cbp.decay_rate, 1.0 - cbp.decay_rate
            n.rho, n.maturity = cbp.replacement_rate, cbp.maturity_threshold
        for i, (gram, sums) in enumerate(self._telemetry_arrays):
            n.gram[i], n.unit_sums[i] = _ptr(gram, _d), _ptr(sums, _d)
        n.h = _ptr(net_.hidden_all, _f)
        n.delta, n.magnitude = _ptr(self._delta, _f), _ptr(self._magnitude, _f)
        n.rows = _ptr(self._rows, _f)
        # One row's gradient: scratch sized for this layout, kept alive with the binding.
        self._g = np.zeros(max(net_.capacity[0], *net_.sizes[1:]), dtype=np.float32)
        n.g = _ptr(self._g, _f)
        self._x_next = np.zeros(net_.sizes[0], dtype=np.float32)
        n.x_next, n.h_next = _ptr(self._x_next, _f), _ptr(self._h_next, _f)
        n.x = _ptr(net_._input_t.numpy(), _f)
        n.out = _ptr(net_._output_t.numpy(), _f)
        n.d_out = _ptr(net_._d_output_t.numpy(), _f)
        self._net, self._key, self._held = n, key, held
        return n

    def learn(self, X: np.ndarray, targets: np.ndarray) -> int:
        """Learn the rows of `X` (float64, one column per known feature) in order: `targets`
        are output indices (every class already known) or regression targets. Returns how many
        were learned: fewer than all if the next would have diverged (`refusal` says why)."""
        X = np.ascontiguousarray(X, dtype=np.float64)
        targets = np.ascontiguousarray(targets, dtype=self._target_dtype())
        outputs = np.empty((len(X), self._learner._network.sizes[-1]))
        return self._learn(X, targets, outputs)

    def learn_one(self, x: np.ndarray, target: float) -> bool:
        """`learn` for one example, through buffers kept between calls (the service learns one
        sample at a time); False if it would have diverged (`refusal` says why)."""
        n_in, n_out = self._learner._network.sizes[0], self._learner._network.sizes[-1]
        if self._one is None or self._one[0].shape[1] != n_in or self._one[2].shape[1] != n_out:
            self._one = (np.empty((1, n_in)), np.empty(1, self._target_dtype()),
                         np.empty((1, n_out)))  # fmt: skip
        X, targets, outputs = self._one
        X[0] = x
        targets[0] = target
        return self._learn(X, targets, outputs) == 1

    def _target_dtype(self) -> type:
        return np.int64 if self._learner.task == "classification" else np.float64

    def _learn(self, X: np.ndarray, targets: np.ndarray, outputs: np.ndarray) -> int:
        learner = self._learner
        net = self._bind()
        n = ctypes.addressof(net)
        telemetry, cbp = learner._telemetry, learner._cbp
        regress = learner.task == "regression"
        if regress:
            target = learner._target
            self._target[:] = target.n, target.mean, target.var, target.run
        if cbp is not None:
            self._accumulated[:] = cbp.accumulated
        x_addr, t_addr, o_addr = X.ctypes.data, targets.ctypes.data, outputs.ctypes.data
        row, out_row = 8 * X.shape[1], 8 * outputs.shape[1]
        start = 0
        self.refusal = None
        while start < len(X):
            learner._enter_window()  # a window may end inside the rows (a halved step)
            net.step_lr = learner._optimizer.lr
            count = min(len(X) - start, learner._window_room())
            if telemetry:  # never across the close of a window
                count = min(count, telemetry[0].window - telemetry[0]._n)
            done = self._lib.lifelong_learn(
                n, count, x_addr + row * start, t_addr + 8 * start, t_addr + 8 * start,
                o_addr + out_row * start,
            )  # fmt: skip
            if done:
                learner._grad_norm = math.sqrt(net.grad_norm2)
            self._account(targets, outputs, start, start + done)
            start += done
            if net.diverged:
                self.refusal = REFUSALS[net.diverged - 1]
                break
        if regress:
            n_, target.mean, target.var, run = self._target.tolist()
            target.n, target.run = int(n_), int(run)
        return start

    def _account(self, targets: np.ndarray, outputs: np.ndarray, start: int, end: int) -> None:
        """What the reference does in Python for examples [start, end), which the kernel has
        learned: monitor, counters, telemetry windows, and continual backprop's replacements
        after the last one."""
        learner = self._learner
        first = learner.samples_learned
        if learner.task == "classification":
            # Output indices stand for the classes: equal exactly when the labels are.
            ks, proba = targets[start:end], outputs[start:end]
            predicted = proba.argmax(axis=1)  # the first of equal maxima, as list.index(max)
            drifts = learner._monitor.update_many(
                ks.tolist(), predicted.tolist(), proba[np.arange(len(ks)), ks].tolist()
            )
        else:
            drifts = learner._monitor.update_many(
                targets[start:end].tolist(), outputs[start:end, 0].tolist()
            )
        if drifts:
            learner._last_drift = first + drifts[-1] + 1
        learner.samples_learned = first + end - start
        for t in learner._telemetry:
            t._n += end - start
            if t._n == t.window:
                t._close_window()
        cbp = learner._cbp
        if cbp is None:
            return
        accumulated = self._accumulated.tolist()
        if max(accumulated, default=0.0) >= 1.0:
            for layer, (lo, hi) in enumerate(cbp._bounds):
                due = int(accumulated[layer])
                if due:
                    accumulated[layer] -= due
                    cbp._replace(layer, min(due, int(cbp._mature[lo:hi].sum())))
            self._accumulated[:] = accumulated
        cbp.accumulated = accumulated
