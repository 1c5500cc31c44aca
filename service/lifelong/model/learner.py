"""River estimators that never stop learning, and the frozen `MLPPredictor` they serve from.

`LifelongClassifier` and `LifelongRegressor` learn one example at a time, in order, once, and
keep nothing of it but what it changed: parameters, optimizer state, scaler statistics,
continual backprop's per-unit statistics, ReDo's sums, shrink and perturb's step count,
telemetry sums and the random generator.

Each example is first predicted, for the prequential score and the drift detector, then learned
(test-then-train). New feature names widen the input layer and new classes the output layer,
with zero weights, so what was learned is kept; until the first example is learned the network
is still at its random initialisation and grows into it instead (Kaiming-uniform).

>>> from river import datasets, evaluate, metrics
>>> model = LifelongClassifier(LearnerConfig(hidden=(16,), seed=1))
>>> accuracy = evaluate.progressive_val_score(datasets.Phishing(), model, metrics.Accuracy())
>>> accuracy.get() > 0.8
True
>>> model.classes, model.samples_learned
((True, False), 1250)
>>> snapshot = model.snapshot()
>>> snapshot.version
1250

"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
from array import array
from collections.abc import Callable, Hashable, Iterator, Sequence
from numbers import Real
from typing import Any

import numpy as np
import torch
from lifelong.model import guidance, state
from lifelong.model.base import LayerStats, LearnerStats, Task
from lifelong.model.config import LOGIT_STEP, LearnerConfig
from lifelong.model.fast import FastPath, KernelUnavailable
from lifelong.model.network import GRADIENT_LIMIT, Network, one_thread
from lifelong.model.optim import SGD, make_optimizer
from lifelong.model.plasticity import (
    ContinualBackprop,
    L2Init,
    ReDo,
    ShrinkPerturb,
    dormant_units,
    reset_units,
)
from lifelong.model.predictor import MLPPredictor, probabilities
from lifelong.model.prequential import PrequentialMonitor
from lifelong.model.scaler import Standardizer, TargetScaler
from lifelong.model.telemetry import LayerTelemetry
from lifelong.model.values import RAW_LIMIT, labelled_rows, numbers
from river import base

FEATURE_NAME_TYPES = (str, int)
LABEL_TYPES = (str, int, bool)
DIVERGED = "the step would make the network's output or gradient non-finite"
# Why a step was refused: its output was not finite, or its gradient beyond `GRADIENT_LIMIT`.
REFUSAL_REASONS = ("non_finite_output", "gradient_limit")
# The recoveries repeated refusals trigger: halve the step size, then restart the network.
RECOVERY_ACTIONS = ("shrink_step", "restart")
MIN_STEP_SCALE = 1.0 / 16.0  # halvings before a restart: 4
# 2: forgetting scaler statistics (a variance where 1 had a sum of squares) and the refusal and
# recovery counters; a format-1 state is upgraded on load.
STATE_FORMAT = 2

logger = logging.getLogger(__name__)


class LearnerDiverged(FloatingPointError):
    """Raised inside a step that would make the network's output non-finite or a gradient
    element exceed `GRADIENT_LIMIT`, before it changes anything; the learner catches it and
    refuses the example (`reason`: one of `REFUSAL_REASONS`). It never leaves the learner."""

    def __init__(self, reason: str = "non_finite_output") -> None:
        super().__init__(f"{DIVERGED} ({reason})")
        self.reason = reason


class _Lifelong:
    """What both learners share; the task-specific part is `_learn`."""

    task: Task

    def __init__(self, config: LearnerConfig | None = None) -> None:
        self.config = config if config is not None else LearnerConfig()
        cfg = self.config
        self._target: TargetScaler | None = None  # the regressor's
        self._generator = torch.Generator().manual_seed(cfg.seed)
        self._build_network()
        self._scaler = Standardizer(cfg.clip, cfg.scaler_horizon) if cfg.standardize else None
        self._monitor = PrequentialMonitor(self.task)
        self._index: dict[Hashable, int] = {}
        self._names: list[Hashable] = []
        self._names_tuple: tuple[Hashable, ...] = ()
        self.samples_learned = 0
        self._last_drift = -1  # samples_learned when the detector last fired
        # Norm of the last step's gradient; None: read it from the "grad" slot (reference path).
        self._grad_norm: float | None = None
        self._live: MLPPredictor | None = None  # predictions from the live weights
        # Refused steps and the recoveries they trigger; windows of `recovery_window` examples
        # (learned or refused) counted from the start, so the same stream gives the same result
        # however it is split into calls.
        self._refused = dict.fromkeys(REFUSAL_REASONS, 0)
        self._recoveries = dict.fromkeys(RECOVERY_ACTIONS, 0)
        self._step_scale = 1.0
        self._window_index = 0
        self._window_refusals = 0
        # Dense examples of known classes go through the compiled fast path (lifelong.model.fast):
        # same result, without per-example Python. False forces the reference path.
        self.fast_path = True
        self.fast_path_unavailable: str | None = None  # why the fast path cannot be used
        self._fast: FastPath | None = None

    def _build_network(self) -> None:
        """A fresh network with its optimizer, plasticity methods and telemetry, for no inputs
        and no classes yet."""
        cfg = self.config
        n_outputs = 1 if self.task == "regression" else 0
        self._network = net = Network(cfg.hidden, n_outputs, self._generator)
        self._optimizer = make_optimizer(net, cfg)
        methods = set(cfg.plasticity)
        self._l2 = L2Init(net, cfg.l2_init_strength) if "l2_init" in methods else None
        self._sp = (
            ShrinkPerturb(net, cfg.shrink, cfg.perturb_std) if "shrink_perturb" in methods else None
        )
        self._cbp = (
            ContinualBackprop(
                net,
                cfg.cbp_replacement_rate,
                cfg.cbp_maturity_threshold,
                cfg.cbp_decay_rate,
                cfg.cbp_utility,
            )
            if "cbp" in methods
            else None
        )
        self._redo = (
            ReDo(net, cfg.redo_every, cfg.redo_threshold, self._cbp) if "redo" in methods else None
        )
        self._upgd = (
            guidance.UPGD(net, cfg.upgd_utility_decay, cfg.upgd_noise_std, cfg.upgd_weight_decay)
            if "upgd" in methods
            else None
        )
        self._guided = (
            guidance.Guided(net, guidance.load(cfg.guidance_file), self._layout, self.task)
            if "guided" in methods
            else None
        )
        self._telemetry = [LayerTelemetry(w, window=cfg.telemetry_window) for w in cfg.hidden]

    def _layout(self) -> tuple[tuple[Hashable, ...], tuple[Any, ...]]:
        return self._names_tuple, self.classes

    @property
    def feature_names(self) -> tuple[Hashable, ...]:
        """Known features, in the order of the input layer (and of dense vectors)."""
        return self._names_tuple

    @property
    def monitor(self) -> PrequentialMonitor:
        """The prequential monitor, updated as each example is learned (read it, do not feed
        it): its test-then-train accounting is exact whether rows come one by one or many."""
        return self._monitor

    @property
    def recoveries(self) -> dict[str, int]:
        """Recoveries taken since the start, by action (a copy; cheaper than `stats()`)."""
        return dict(self._recoveries)

    @property
    def step_scale(self) -> float:
        """Of the configured step size: below 1 after a "shrink_step" recovery."""
        return self._step_scale

    # -- learning ------------------------------------------------------------------------------

    def learn_one(self, x: dict, y: Any) -> None:
        """Learn one example, after predicting it for the prequential statistics. A step that
        would make the network non-finite is refused instead (see `stats().updates_refused`)."""
        y, k = self._label(y)
        names = self._names
        if k >= 0 and len(x) == len(names) and (fast := self._fast_path()) is not None:
            # The usual example, known features and class: straight into the kernel, which
            # checks the values (nothing changed if one is bad: the path below says which).
            try:
                learned = self._learn_one_fast(fast, array("d", [x[n] for n in names]), y, k)
            except (KeyError, TypeError, ValueError, OverflowError):
                pass  # other names, or values for `numbers` to convert or name
            else:
                if not learned:
                    self._refuse(fast.refusal)
                self._enter_window()
                return
        self._learn_or_refuse(k < 0 or not x.keys() <= self._index.keys(), self._features, x, y, k)

    def learn_dense(self, x: np.ndarray | Sequence[float], y: Any) -> None:
        """`learn_one` for a vector in the order of `feature_names`. Values beyond them are new
        features, named by their position ("20", "21", ...)."""
        self._learn_dense(x, y)

    def _learn_dense(self, x: np.ndarray | Sequence[float], y: Any) -> bool:
        """`learn_dense`; False if the step was refused."""
        y, k = self._label(y)
        raw = numbers(x)
        if raw.ndim != 1:
            raise ValueError(f"a dense example is one vector, got shape {raw.shape}")
        n = len(self._names)
        if len(raw) < n:
            raise ValueError(f"got {len(raw)} values, the model has {n} features")
        return self._learn_or_refuse(k < 0 or len(raw) > n, self._dense_features, raw, y, k)

    def _dense_features(self, raw: np.ndarray) -> tuple[np.ndarray, None]:
        """A dense example's inputs: values beyond the known features are new features."""
        n = len(self._names)
        if len(raw) > n:
            self._add_features([str(i) for i in range(n, len(raw))])
        return raw, None

    def _learn_or_refuse(
        self,
        grows: bool,
        features: Callable[[Any], tuple[np.ndarray, np.ndarray | None]],
        x: Any,
        y: Any,
        k: int,
    ) -> bool:
        """Learn one example whose inputs are `features(x)`; a step that would make the network
        non-finite is refused instead (undone with any growth, counted). False if refused."""
        try:
            with self._atomic() if grows else contextlib.nullcontext():
                raw, present = features(x)
                self._learn_threaded(raw, present, y, k)
        except LearnerDiverged as e:
            self._refuse(e.reason)
            learned = False
        else:
            learned = True
        self._enter_window()
        return learned

    def learn_many(
        self,
        X: np.ndarray | Sequence[Sequence[float]],
        y: Sequence[Any],
        refused: list[int] | None = None,
    ) -> list[int]:
        """`learn_dense` for each row of `X` and label of `y`, in order (one Kafka poll, say):
        the same result, in one compiled loop for each run of rows whose class is known.
        Returns the positions of the rows whose step was refused (usually none), appended to
        `refused` if given: a bad label raises `TypeError` / `ValueError` at its row, the rows
        before it learned or refused, and `refused` still says which."""
        X = labelled_rows(X, y)
        n = len(self._names)
        if X.shape[1] < n:
            raise ValueError(f"got {X.shape[1]} values per row, the model has {n} features")
        refused = [] if refused is None else refused
        start = 0
        if X.shape[1] > n and len(X):  # grows the input layer with its first row
            if not self._learn_dense(X[0], y[0]):
                refused.append(0)
            start = 1
        fast, regression = self._fast_path(), self.task == "regression"
        while start < len(X):
            run = []  # targets of the rows the fast path can take from `start`
            for label in y[start:] if fast is not None else ():
                try:
                    value, k = self._label(label)
                except (TypeError, ValueError):
                    break  # learn_dense raises it, once the rows before it are learned
                if k < 0:
                    break  # a new class grows the network: the reference path
                run.append(value if regression else k)
            if not run:
                if not self._learn_dense(X[start], y[start]):
                    refused.append(start)
                start += 1
                continue
            start += self._learn_fast(fast, X[start : start + len(run)], run)
            if fast.refusal is not None:
                self._refuse(fast.refusal)
                refused.append(start)
                start += 1
        self._enter_window()
        return refused

    def _fast_path(self) -> FastPath | None:
        """The compiled path, or None when it is off or unavailable."""
        if not self.fast_path or self.fast_path_unavailable:
            return None
        if self._fast is None:
            try:
                self._fast = FastPath(
                    self.config,
                    self._network,
                    self._optimizer,
                    self._scaler,
                    self._target,
                    self._cbp,
                    self._l2,
                    self._sp,
                    self._redo,
                    self._telemetry,
                )
            except KernelUnavailable as e:
                self.fast_path_unavailable = str(e)
                logger.warning("learning through the reference path: %s", e)
                return None
        return self._fast

    def _learn_fast(self, fast: FastPath, X: np.ndarray, targets: list) -> int:
        """Rows of `X` whose classes are known through the kernel, accounted as the reference
        path accounts them; how many were learned (fewer: the next one's step was refused)."""
        outputs = np.empty((len(X), self._network.sizes[-1]))
        start = 0
        while start < len(X):
            self._enter_window()  # a window may end inside the rows (a halved step)
            stop = min(len(X), start + self._window_room())
            lr = self._optimizer.lr
            done = fast.learn(X[start:stop], targets[start:stop], outputs[start:stop], lr)
            end = start + done
            if done:
                self._grad_norm = fast.grad_norm
                if self.task == "classification":
                    # Output indices stand for the classes: equal exactly when the labels are.
                    proba, ks = outputs[start:end], targets[start:end]
                    predicted = proba.argmax(axis=1)  # the first of equal maxima, as list.index
                    p_true = proba[np.arange(done), ks].tolist()
                    drifts = self._monitor.update_many(ks, predicted.tolist(), p_true)
                else:
                    drifts = self._monitor.update_many(
                        targets[start:end], outputs[start:end, 0].tolist()
                    )
                if drifts:
                    self._last_drift = self.samples_learned + drifts[-1] + 1
                self.samples_learned += done
            start = end
            if fast.refusal is not None:
                break
        return start

    def _learn_one_fast(self, fast: FastPath, raw: np.ndarray, y: Any, k: int) -> bool:
        """`_learn_fast` for one example, with less per-call work: the same result. False if
        its step was refused (`fast.refusal` says why; not counted yet)."""
        regression = self.task == "regression"
        out = fast.learn_one(raw, y if regression else k, self._optimizer.lr)
        if out is None:
            return False
        self._grad_norm = fast.grad_norm
        if regression:
            drift = self._monitor.update(y, out[0])
        else:  # output indices stand for the classes, as in `_learn_fast`
            drift = self._monitor.update(k, out.index(max(out)), {k: out[k]})
        self.samples_learned += 1
        if drift:
            self._last_drift = self.samples_learned
        return True

    def _learn_threaded(self, raw: np.ndarray, present: np.ndarray | None, y: Any, k: int) -> None:
        if present is None and k >= 0 and (fast := self._fast_path()) is not None:
            if not self._learn_one_fast(fast, raw, y, k):
                raise LearnerDiverged(fast.refusal)
        elif torch.get_num_threads() == 1:
            self._learn(raw, present, y, k)
        else:
            with one_thread():
                self._learn(raw, present, y, k)

    # -- refusals and recovery -----------------------------------------------------------------

    def _attempts(self) -> int:
        """Examples learned or refused so far."""
        return self.samples_learned + sum(self._refused.values())

    def _enter_window(self) -> None:
        """After each example (and so before the next): close the recovery window if it ended;
        a halved step doubles back after a window without refusals. Every call ends with it, so
        the state is the same however a stream was split into calls."""
        index = self._attempts() // self.config.recovery_window
        if index == self._window_index:
            return
        if self._window_refusals == 0 and self._step_scale < 1.0:
            self._set_step_scale(min(1.0, 2.0 * self._step_scale))
        self._window_index, self._window_refusals = index, 0

    def _window_room(self) -> int:
        """Examples before the window ends, if it matters (a halved step), else a large number:
        the fast path stops there so the window closes at the same example as the reference."""
        if self._step_scale == 1.0:
            return 1 << 62
        return (self._window_index + 1) * self.config.recovery_window - self._attempts()

    def _refuse(self, reason: str) -> None:
        """Count a refused step (the example changed nothing); recover if they repeat."""
        self._refused[reason] += 1
        self._window_refusals += 1
        if self._window_refusals % self.config.recovery_refusals:
            return
        if self._step_scale > MIN_STEP_SCALE:
            self._set_step_scale(self._step_scale / 2.0)
            action = "shrink_step"
        else:
            self._restart_network()
            self._set_step_scale(1.0)
            action = "restart"
        self._recoveries[action] += 1
        logger.warning(
            "the learner recovered by itself (%s, %d time(s) since the start) after repeated "
            "refused steps; step scale now %s, %d samples learned",
            action, self._recoveries[action], self._step_scale, self.samples_learned,
        )  # fmt: skip

    def _set_step_scale(self, scale: float) -> None:
        self._step_scale = scale
        self._optimizer.lr = self.config.lr * scale

    def _restart_network(self) -> None:
        """A fresh network (weights, optimizer, plasticity and telemetry state) for the same
        features and classes; the scaler statistics, prequential monitor and counters go on."""
        self._build_network()
        self._network.grow_inputs(len(self._names), initialise=True)
        n_classes = len(self.classes)
        self._network.grow_outputs(n_classes, initialise=True)
        self._fast = None
        self._live = None
        self._grad_norm = 0.0

    def _step_size(self) -> float:
        """This step's size: the optimizer's, bounded (SGD, `step_bound` κ) so that to first
        order it moves the output by m = lr·‖g‖²/‖d‖ (d the output error `d_output`, g the loss
        gradient) at most M: |out - z|/κ = ‖d‖/(2κ) for the squared error (no overshoot), and
        `LOGIT_STEP`/κ logits for cross-entropy. lr / max(1, m/M), m/M from `step_ratio`."""
        lr, kappa = self._optimizer.lr, self.config.step_bound
        if not kappa or not isinstance(self._optimizer, SGD):
            return lr
        d = self._network.d_output.astype(np.float64)
        error2 = float(np.dot(d, d))
        if error2 > 0.0:
            lr /= max(
                1.0, step_ratio(self.task, kappa, lr, self._network.gradient_sq_norm(), error2)
            )
        return lr

    def _learn(self, raw: np.ndarray, present: np.ndarray | None, y: Any, k: int) -> None:
        raise NotImplementedError

    def _label(self, y: Any) -> tuple[Any, int]:
        raise NotImplementedError

    @contextlib.contextmanager
    def _atomic(self) -> Iterator[None]:
        """Around the step of an example that grows the model (new features or class): undone,
        growth included, if the step diverges. It copies the state, but growth is rare; any
        other step is checked before it changes anything."""
        # The copy (tensor clones, the last window's eigendecomposition) and the growth are
        # per-example work too: on torch's thread pool they cost seconds on a busy machine.
        with one_thread():
            # What `to_bytes` would hold, unserialised (half its cost at 784-256-256-10).
            tensors, meta = self.state_dict()
            meta = copy.deepcopy(meta)
            try:
                yield
            except LearnerDiverged:
                keep = (self.config, self.fast_path, self.fast_path_unavailable)
                self.__dict__.clear()
                self.__init__(keep[0])  # a fresh learner, as `load` builds, then the copy
                self.load_state_dict(tensors, meta)
                _, self.fast_path, self.fast_path_unavailable = keep
                raise

    def _standardize(self, raw: np.ndarray, present: np.ndarray | None) -> None:
        """The example's inputs into the network; the scaler counts them at `_commit_inputs`."""
        if self._scaler is not None:
            self._scaler.prepare(raw, self._network.input, present)
        else:
            self._network.input[...] = raw  # a missing feature is 0

    def _check(self) -> None:
        """Refuse the step (nothing changed yet) if its gradient would not be finite."""
        if not self._network.propagate() <= GRADIENT_LIMIT:
            raise LearnerDiverged("gradient_limit")

    def _commit_inputs(self) -> None:
        if self._scaler is not None:
            self._scaler.commit()

    def _update(self, drift: bool) -> None:
        """Step and plasticity, once `_check` has propagated `network.d_output`."""
        net = self._network
        net.gradients()
        self._grad_norm = None
        if self._l2 is not None:
            self._l2.add_gradient()
        if self._upgd is not None:
            self._upgd.prepare()
        guided = self._upgd is not None or self._guided is not None
        self._optimizer.step(self._step_size(), self._adjust if guided else None)
        if self._sp is not None:
            self._sp.step()
        if self._cbp is not None:
            self._cbp.step()
        if self._redo is not None:
            self._redo.step()
        for telemetry, h in zip(self._telemetry, net.hidden_tensors, strict=True):
            telemetry.observe(h)
        self.samples_learned += 1
        if drift:
            self._last_drift = self.samples_learned

    def _adjust(self, update: np.ndarray, lr: float) -> None:
        """The optimizer's update, guided (UPGD's utility scale and noise, then the file's)."""
        if self._upgd is not None:
            self._upgd.adjust(update, lr)
        if self._guided is not None:
            self._guided.adjust(update, lr)

    # -- features ------------------------------------------------------------------------------

    def _features(self, x: dict) -> tuple[np.ndarray, np.ndarray | None]:
        """x's values as float64 in input order, and the indices present (None: all)."""
        names = self._names
        if len(x) == len(names):
            try:
                values = [x[name] for name in names]
            except KeyError:
                pass  # other names: some new, some missing
            else:
                return numbers(values, names), None
        values = numbers(list(x.values()), list(x))
        new = [name for name in x if name not in self._index]
        if new:  # in an order of their own, not the dict's: the same data, the same model
            self._add_features(sorted(new, key=_name_order))
        present = np.fromiter((self._index[name] for name in x), dtype=np.intp, count=len(x))
        raw = np.zeros(len(self._names))
        raw[present] = values
        return raw, present if len(present) < len(raw) else None

    def add_features(self, names: Sequence[Hashable]) -> None:
        """Know the features of `names` it does not know yet, in this order (dense rows follow
        it): a fresh learner given another's features reads the same rows. Like features that
        come with an example, they start at random before the first example, at zero after."""
        self._add_features([name for name in dict.fromkeys(names) if name not in self._index])

    def reset_dormant_units(self, threshold: float) -> int:
        """Reset the hidden units that were τ-dormant (score at most `threshold`) over the last
        completed telemetry window, as a ReDo sweep does; how many (a remediation's action)."""
        reset, offset = 0, 0
        for layer, telemetry in enumerate(self._telemetry):
            if telemetry.window_completed:  # else nothing says which units are dormant
                units = dormant_units(telemetry.last_abs_mean, threshold)
                reset_units(self._network, layer, units, self._cbp, offset)
                reset += len(units)
            offset += telemetry.width
        return reset

    def _add_features(self, names: list[Hashable]) -> None:
        for name in names:
            if type(name) not in FEATURE_NAME_TYPES:
                raise TypeError(f"feature names must be str or int, got {name!r}")
            if name in self._index:
                raise ValueError(f"feature {name!r} exists already")
        start = len(self._names)
        self._index.update((name, start + i) for i, name in enumerate(names))
        self._names.extend(names)
        self._names_tuple = tuple(self._names)
        self._network.grow_inputs(len(names), initialise=self.samples_learned == 0)
        if self._scaler is not None:
            self._scaler.grow(len(names))
        self._live = None

    # -- predicting ----------------------------------------------------------------------------

    def _predictor(self) -> MLPPredictor:
        """A `MLPPredictor` on the live weights and statistics (no copies; rebuilt on growth)."""
        if self._live is None:
            weights, biases = self._network.weights()
            self._live = MLPPredictor(
                self.task,
                weights,
                biases,
                self._index,
                self._names_tuple,
                self.classes,
                self._scaler,
                self._target,
                version=-1,
            )
        return self._live

    def predict_dense(self, X: np.ndarray) -> np.ndarray:
        return self._predictor().predict_dense(X)

    def snapshot(self) -> MLPPredictor:
        """A frozen copy for serving; `.version` is `samples_learned`."""
        weights, biases = self._network.weights()
        target = self._target
        return MLPPredictor(
            self.task,
            [W.copy() for W in weights],
            [b.copy() for b in biases],
            dict(self._index),
            self._names_tuple,
            self.classes,
            self._scaler.copy() if self._scaler is not None else None,
            target.copy() if target is not None else None,
            version=self.samples_learned,
        )

    # -- statistics and state ------------------------------------------------------------------

    def __getstate__(self) -> dict[str, Any]:
        """Pickled as its state bytes (`to_bytes`): deterministic, sharing nothing, and without
        the kernel's ctypes handle, which the copy acquires again at its first step."""
        return {"state": self.to_bytes(), "fast_path": self.fast_path}

    def __setstate__(self, pickled: dict[str, Any]) -> None:
        self.__dict__.update(state.load(pickled["state"]).__dict__)
        self.fast_path = pickled["fast_path"]

    def stats(self) -> LearnerStats:
        net = self._network
        weights = net.mean_abs_weights()
        replaced = [0] * len(self._telemetry)
        for method in (self._cbp, self._redo):
            if method is not None:
                replaced = [a + b for a, b in zip(replaced, method.replaced, strict=True)]
        layers = tuple(
            LayerStats(
                width=t.width,
                **t.stats(),
                mean_abs_weight=weights[i],
                units_replaced=replaced[i],
            )
            for i, t in enumerate(self._telemetry)
        )
        window = self.config.telemetry_window
        return LearnerStats(
            layers=layers,
            gradient_norm=self._gradient_norm(),
            mean_abs_weight=net.mean_abs_parameter(),
            prequential_score=self._monitor.score,
            prequential_loss=self._monitor.loss,
            drifts_detected=self._monitor.drifts_detected,
            drift_in_last_window=self._last_drift >= 0
            and self.samples_learned - self._last_drift < window,
            samples_learned=self.samples_learned,
            updates_refused=dict(self._refused),
            recoveries=dict(self._recoveries),
            step_scale=self._step_scale,
        )

    def _gradient_norm(self) -> float:
        return self._network.gradient_norm() if self._grad_norm is None else self._grad_norm

    def to_bytes(self) -> bytes:
        """The complete state (safetensors with JSON metadata; no pickle): `load` continues
        bit for bit where this learner is."""
        return state.dumps(type(self).__name__, *self.state_dict())

    def state_dict(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        tensors, layout = self._network.state_dict()
        tensors = {f"network.{k}": v.clone() for k, v in tensors.items()}
        meta: dict[str, Any] = {
            "format": STATE_FORMAT,
            "config": self.config.to_dict(),
            "layout": layout,
            "features": list(self._names),
            "samples_learned": self.samples_learned,
            "last_drift": self._last_drift,
            "gradient_norm": self._gradient_norm(),
            "prequential": self._monitor.state_dict(),
            "recovery": {
                "refused": self._refused,
                "recoveries": self._recoveries,
                "step_scale": self._step_scale,
                "window_index": self._window_index,
                "window_refusals": self._window_refusals,
            },
        }
        if self._scaler is not None:
            for k, v in self._scaler.state_dict().items():
                tensors[f"scaler.{k}"] = torch.from_numpy(v.copy())
        if self._cbp is not None:
            arrays, meta["cbp"] = self._cbp.state_dict()
            for k, v in arrays.items():
                tensors[f"cbp.{k}"] = torch.from_numpy(v.copy())
        if self._redo is not None:
            arrays, meta["redo"] = self._redo.state_dict()
            for k, v in arrays.items():
                tensors[f"redo.{k}"] = torch.from_numpy(v.copy())
        if self._sp is not None:
            meta["shrink_perturb"] = self._sp.state_dict()
        if self._guided is not None:
            meta["guided"] = self._guided.known
        for i, telemetry in enumerate(self._telemetry):
            for k, v in telemetry.state_dict().items():
                tensors[f"telemetry.{i}.{k}"] = v
        tensors["generator"] = self._generator.get_state()
        return tensors, meta

    @classmethod
    def from_state(cls, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> _Lifelong:
        """The learner `state_dict` described (what `state.load` calls for this kind)."""
        if meta.get("format") not in (1, STATE_FORMAT):
            raise ValueError(
                f"unsupported state format {meta.get('format')!r}, expected {STATE_FORMAT}"
            )
        if meta["format"] == 1:
            _upgrade_from_1(tensors, meta)
        model = cls(LearnerConfig.from_dict(meta["config"]))
        model.load_state_dict(tensors, meta)
        return model

    def load_state_dict(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
        names = meta["features"]
        if len(names) != meta["layout"]["sizes"][0]:
            raise ValueError("the state's feature names do not match its input layer")
        self._names = []
        self._index = {}
        self._add_features(names)
        self._network.load_state_dict(state.prefixed(tensors, "network."), meta["layout"])
        if self._scaler is not None:
            self._scaler.load_state_dict(
                {k: v.numpy() for k, v in state.prefixed(tensors, "scaler.").items()}
            )
        if self._cbp is not None:
            arrays = {k: v.numpy() for k, v in state.prefixed(tensors, "cbp.").items()}
            self._cbp.load_state_dict(arrays, meta["cbp"])
        if self._redo is not None:
            arrays = {k: v.numpy() for k, v in state.prefixed(tensors, "redo.").items()}
            self._redo.load_state_dict(arrays, meta["redo"])
        # A state saved before the noise was counter-based has no stream: it keeps the fresh one.
        if self._sp is not None and "shrink_perturb" in meta:
            self._sp.load_state_dict(meta["shrink_perturb"])
        if self._guided is not None:
            known = meta["guided"]
            self._guided.known = tuple(known) if known is not None else None
        for i, telemetry in enumerate(self._telemetry):
            telemetry.load_state_dict(state.prefixed(tensors, f"telemetry.{i}."))
        self._monitor.load_state_dict(meta["prequential"])
        self._generator.set_state(tensors["generator"])
        self.samples_learned = int(meta["samples_learned"])
        self._last_drift = int(meta["last_drift"])
        self._grad_norm = float(meta.get("gradient_norm", 0.0))
        recovery = meta["recovery"]
        self._refused.update(recovery["refused"])
        self._recoveries.update(recovery["recoveries"])
        self._set_step_scale(float(recovery["step_scale"]))
        self._window_index = int(recovery["window_index"])
        self._window_refusals = int(recovery["window_refusals"])
        self._live = None


class LifelongClassifier(_Lifelong, base.Classifier):
    """A classifier that learns forever: softmax over the classes seen so far.

    Labels are `str`, `int` or `bool` (NumPy integers and booleans are converted); `True` and
    `1` are equal in Python, so one model cannot have both.

    >>> model = LifelongClassifier(LearnerConfig(hidden=(8,), seed=0))
    >>> model.predict_proba_one({"x": 1.0})
    {}
    >>> for _ in range(50):
    ...     model.learn_one({"x": 1.0}, "spam")
    ...     model.learn_one({"x": -1.0}, "ham")
    >>> model.predict_one({"x": 0.9}), model.classes
    ('spam', ('spam', 'ham'))
    >>> model.learn_one({"x": 1.0}, 0.5)
    Traceback (most recent call last):
    ...
    TypeError: a class label must be a str, int or bool, got float 0.5

    """

    task: Task = "classification"

    def __init__(self, config: LearnerConfig | None = None) -> None:
        super().__init__(config)
        self._classes: list[Any] = []
        self._class_index: dict[Any, int] = {}

    @property
    def _multiclass(self) -> bool:
        return True

    @property
    def classes(self) -> tuple[Any, ...]:
        """Known classes, in the order of the output layer."""
        return tuple(self._classes)

    def _label(self, y: Any) -> tuple[Any, int]:
        """The label as a Python value, and its output (-1 for a new class)."""
        if type(y) not in LABEL_TYPES:
            if isinstance(y, np.bool_):
                y = bool(y)
            elif isinstance(y, np.integer):
                y = int(y)
            elif isinstance(y, str):
                y = str(y)
            else:
                raise TypeError(
                    f"a class label must be a str, int or bool, got {type(y).__name__} {y!r}"
                )
        k = self._class_index.get(y, -1)
        if k >= 0 and type(self._classes[k]) is not type(y):
            raise TypeError(f"label {y!r} is equal to class {self._classes[k]!r} of another type")
        return y, k

    def add_classes(self, labels: Sequence[Any]) -> None:
        """Know the classes of `labels` it does not know yet, in this order, as if met in the
        stream (before the first example, the output layer is drawn at random again)."""
        for label in labels:
            y, k = self._label(label)
            if k < 0:
                self._add_class(y)

    def _add_class(self, y: Any) -> int:
        k = len(self._classes)
        self._classes.append(y)
        self._class_index[y] = k
        self._network.grow_outputs(1, initialise=self.samples_learned == 0)
        self._live = None
        return k

    def _learn(self, raw: np.ndarray, present: np.ndarray | None, y: Any, k: int) -> None:
        net = self._network
        self._standardize(raw, present)
        proba = _softmax(net.forward().tolist())
        y_pred = self._classes[proba.index(max(proba))] if proba else None
        seen = dict(zip(self._classes, proba, strict=True))
        if k < 0:  # growth: `_atomic` undoes it if the step diverges
            k = self._add_class(y)
            proba = _softmax(net.forward().tolist())
        d = net.d_output  # cross-entropy: softmax - one-hot
        d[...] = proba
        d[k] -= 1.0
        self._check()
        self._commit_inputs()
        self._update(self._monitor.update(y, y_pred, seen))

    def predict_proba_one(self, x: dict) -> dict[Any, float]:
        return self._predictor().predict_proba_one(x)

    def predict_one(self, x: dict) -> Any:
        return self._predictor().predict_one(x)

    def predict_proba_dense(self, X: np.ndarray) -> np.ndarray:
        return self._predictor().predict_proba_dense(X)

    def state_dict(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        tensors, meta = super().state_dict()
        meta["classes"] = list(self._classes)  # JSON keeps str, int and bool apart
        return tensors, meta

    def load_state_dict(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
        for y in meta["classes"]:
            self._add_class(self._label(y)[0])
        super().load_state_dict(tensors, meta)


class LifelongRegressor(_Lifelong, base.Regressor):
    """A regressor that learns forever, on the standardised target (squared error).

    >>> model = LifelongRegressor(LearnerConfig(hidden=(8,), seed=0))
    >>> for i in range(300):
    ...     model.learn_one({"x": i % 3}, 100.0 + 10.0 * (i % 3))
    >>> round(model.predict_one({"x": 2}))
    120

    """

    task: Task = "regression"

    def __init__(self, config: LearnerConfig | None = None) -> None:
        super().__init__(config)
        self._target = TargetScaler(self.config.clip, self.config.scaler_horizon)

    def _label(self, y: Any) -> tuple[float, int]:
        if isinstance(y, bool | np.bool_) or not isinstance(y, Real):
            raise TypeError(f"a regression target must be a number, got {type(y).__name__} {y!r}")
        y = float(y)
        if not math.isfinite(y):
            raise ValueError(f"a regression target must be finite, got {y}")
        return min(max(y, -RAW_LIMIT), RAW_LIMIT), 0

    def _learn(self, raw: np.ndarray, present: np.ndarray | None, y: float, k: int) -> None:
        net = self._network
        self._standardize(raw, present)
        out = float(net.forward()[0])
        if not math.isfinite(out):
            raise LearnerDiverged("non_finite_output")
        z = self._target.prepare(y)  # standardised and clipped; counted at commit
        net.d_output[0] = 2.0 * (out - z)  # d/dout (out - z)²
        self._check()
        self._commit_inputs()
        drift = self._monitor.update(y, self._target.inverse(out))
        self._target.commit()
        self._update(drift)

    @property
    def classes(self) -> tuple[()]:
        return ()

    def predict_one(self, x: dict) -> float:
        return self._predictor().predict_one(x)

    def state_dict(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        tensors, meta = super().state_dict()
        meta["target"] = self._target.state_dict()
        return tensors, meta

    def load_state_dict(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
        super().load_state_dict(tensors, meta)
        self._target.load_state_dict(meta["target"])


def _name_order(name: Hashable) -> tuple[bool, Any]:
    """Sort key of feature names: ints (by value), then strs."""
    return isinstance(name, str), name


def step_ratio(task: str, kappa: float, lr: float, g2: float, error2: float) -> float:
    """m/M of `_Lifelong._step_size`, from ‖g‖² and ‖d‖² (`kernel.c` computes it alike)."""
    if task == "regression":  # m / (‖d‖/(2κ)) with m = lr·g2/‖d‖
        return 2.0 * kappa * lr * g2 / error2
    return kappa * lr * g2 / (math.sqrt(error2) * LOGIT_STEP)


def _softmax(logits: list[float]) -> list[float]:
    """`probabilities`, refusing the step if a logit is not finite."""
    if not math.isfinite(sum(logits)):
        raise LearnerDiverged("non_finite_output")
    return probabilities(logits)


def _upgrade_from_1(tensors: dict[str, Any], meta: dict[str, Any]) -> None:
    """A format-1 state as format 2: its running sums of squares as variances, no regime runs
    or refusals yet (its configuration takes today's defaults for the fields it lacks)."""
    if "scaler.m2" in tensors:
        m2, count = tensors.pop("scaler.m2"), tensors["scaler.count"]
        tensors["scaler.var"] = m2 / count.clamp(min=1.0)
        tensors["scaler.run"] = count.new_zeros(count.shape)
    if "target" in meta:
        n, m2 = meta["target"]["n"], meta["target"].pop("m2")
        meta["target"].update(var=m2 / n if n else 0.0, run=0)
    meta["recovery"] = {
        "refused": {},
        "recoveries": {},
        "step_scale": 1.0,
        "window_index": 0,
        "window_refusals": 0,
    }


state.register("LifelongClassifier", LifelongClassifier.from_state)
state.register("LifelongRegressor", LifelongRegressor.from_state)
