"""Any river estimator or pipeline, learning online with the service's guarantees.

The model is named by import path plus parameters (`"river.linear_model:LogisticRegression"`
with `{"l2": 0.01}`: the class is called with them), or is a factory called with the task and
the parameters (`"mypkg.pipelines:build"`, `build(task, **params)`), or an estimator instance.
It learns each example through `learn_one` after predicting it (test-then-train: prequential
score and loss, drift, as the other learners), and serves from a snapshot: a deep copy of the
estimator with everything it learned. `learn_many` learns rows one at a time, in order.

Feature names are those seen so far (a new example's new names in a fixed order: ints by value,
then strs), classes the labels seen so far, in order of arrival; a river model has no hidden
layers the service can read, so `stats()` has no `layers` (absent, not zero) and no weight or
gradient measures. River models learn whatever finite numbers they are given: no step is refused.

**State.** River models only serialise through pickle, and unpickling runs code named by the
data. So the state is pickle only inside an authenticated envelope: HMAC-SHA256 of the pickle
under a secret key (at least 16 bytes), stored with `lifelong.model.state.dumps` (the pickle as a
uint8 tensor, the MAC in the metadata). Loading checks the MAC before it unpickles anything and
refuses data that is tampered with, written under another key, or not authenticated at all. A
learner without a key learns and serves but cannot be saved; `state.load` uses the key given to
`set_state_key` (the service: `LIFELONG_STATE_KEY` or `state_key_file`).

>>> from river import linear_model, preprocessing
>>> key = b"0123456789abcdef-not-a-real-key"
>>> model = RiverClassifier(preprocessing.StandardScaler() | linear_model.LogisticRegression(),
...                         key=key)
>>> for i in range(200):
...     model.learn_one({"x": float(i % 2)}, i % 2 == 1)
>>> model.predict_one({"x": 1.0}), model.classes, model.samples_learned
(True, (False, True), 200)
>>> copy = load_river(model.to_bytes(), key)
>>> copy.snapshot().predict_one({"x": 0.0}), copy.samples_learned
(False, 200)
>>> load_river(model.to_bytes(), b"another key, 16 bytes or more")
Traceback (most recent call last):
...
ValueError: the RiverClassifier state does not authenticate under this key: ...

"""

from __future__ import annotations

import copy
import hashlib
import hmac
import inspect
import itertools
import math
import pickle
from collections.abc import Callable, Hashable, Mapping, Sequence
from numbers import Real
from typing import Any

import numpy as np
import torch
from lifelong.model import state
from lifelong.model.base import LearnerStats, Task
from lifelong.model.importpath import path_of, resolve
from lifelong.model.prequential import PrequentialMonitor
from lifelong.model.values import labelled_rows, numbers
from river import base, compose

__all__ = [
    "RiverClassifier",
    "RiverPredictor",
    "RiverRegressor",
    "load_river",
    "river_learner",
    "set_state_key",
]

MIN_KEY_BYTES = 16
FORMAT = 1
LABEL_TYPES = (str, int, bool)
_CONTEXT = b"lifelong river state\0"  # domain separation of the MAC
_process_key: bytes | None = None  # what `state.load` authenticates river states with


def state_key(key: bytes | str | None) -> bytes | None:
    """`key` as bytes (a str as UTF-8), checked long enough; None stays None."""
    if key is None:
        return None
    if isinstance(key, str):
        key = key.encode("utf-8")
    if not isinstance(key, bytes | bytearray) or len(key) < MIN_KEY_BYTES:
        raise ValueError(f"a state key must be at least {MIN_KEY_BYTES} bytes")
    return bytes(key)


def set_state_key(key: bytes | str | None) -> None:
    """The key `lifelong.model.state.load` authenticates river states with, in this process."""
    global _process_key
    _process_key = state_key(key)


def load_river(data: bytes, key: bytes | str) -> Any:
    """The river learner or snapshot `data` holds, authenticated with `key` before unpickling."""
    meta = state.metadata(data)
    restore = _RESTORE.get(meta.get("kind"))
    if restore is None:
        raise ValueError(f"not a river model state: it holds a {meta.get('kind')!r}")
    import safetensors.torch

    return restore(safetensors.torch.load(data), meta, state_key(key))


def _mac(key: bytes, kind: str, payload: bytes) -> str:
    return hmac.new(key, _CONTEXT + kind.encode() + b"\0" + payload, hashlib.sha256).hexdigest()


def _seal(kind: str, payload: dict[str, Any], key: bytes | None, meta: dict[str, Any]) -> bytes:
    if key is None:
        raise ValueError(
            "a river model is saved as pickle, only inside an HMAC-authenticated envelope: "
            "give it a state key (LIFELONG_STATE_KEY or state_key_file in the service)"
        )
    data = pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL)
    return state.dumps(
        kind,
        {"pickle": state.as_tensor(data)},
        {"format": FORMAT, "mac": _mac(key, kind, data), **meta},
    )


def _open(tensors: dict[str, torch.Tensor], meta: dict[str, Any], key: bytes | None) -> Any:
    """The payload, once its MAC is checked (nothing is unpickled before)."""
    kind = meta.get("kind", "?")
    if key is None:
        raise ValueError(
            f"the {kind} state is pickle and no state key is set: it can only be loaded with "
            "the key that authenticated it (LIFELONG_STATE_KEY or state_key_file)"
        )
    if meta.get("format") != FORMAT or "pickle" not in tensors:
        raise ValueError(f"unsupported river state format {meta.get('format')!r}")
    data = state.as_bytes(tensors["pickle"])
    mac = meta.get("mac")
    if not isinstance(mac, str) or not hmac.compare_digest(mac, _mac(key, kind, data)):
        raise ValueError(
            f"the {kind} state does not authenticate under this key: it was tampered with or "
            "written with another key; refusing to unpickle it"
        )
    return pickle.loads(data)


def river_learner(
    model: str | base.Estimator | Callable[..., base.Estimator],
    params: Mapping[str, Any] | None = None,
    task: Task | None = None,
    key: bytes | str | None = None,
) -> RiverClassifier | RiverRegressor:
    """The learner around `model` (see the module's docs); `task`, if given, must match it."""
    estimator, spec = build_estimator(model, params, task)
    kind = "classification" if _is(estimator, base.Classifier) else "regression"
    if task is not None and task != kind:
        raise ValueError(f"{spec or type(estimator).__name__} is a {kind} model, task is {task}")
    cls = RiverClassifier if kind == "classification" else RiverRegressor
    return cls(estimator, key=key, spec=spec)


def build_estimator(
    model: str | base.Estimator | Callable[..., base.Estimator],
    params: Mapping[str, Any] | None,
    task: Task | None,
) -> tuple[base.Estimator, str | None]:
    """The estimator `model` names or builds, and its import path (None for an instance)."""
    params = dict(params or {})
    spec = model if isinstance(model, str) else path_of(model)
    obj = resolve(model) if isinstance(model, str) else model
    if isinstance(obj, base.Estimator):
        if params:
            raise ValueError("parameters go with a class or a factory, not an estimator instance")
        estimator = copy.deepcopy(obj)
        spec = None
    elif inspect.isclass(obj) and issubclass(obj, base.Estimator):
        estimator = obj(**params)
    elif callable(obj):
        estimator = obj(task, **params)
    else:
        raise TypeError(f"{model!r} is not a river estimator, estimator class or factory")
    if not isinstance(estimator, base.Estimator):
        raise TypeError(f"{spec or model!r} gave {type(estimator).__name__}, not a river estimator")
    if not (_is(estimator, base.Classifier) or _is(estimator, base.Regressor)):
        raise TypeError(f"{type(estimator).__name__} is neither a classifier nor a regressor")
    return estimator, spec


def _is(estimator: base.Estimator, kind: type) -> bool:
    """Whether `estimator`, or the last step of the pipeline it is, is a `kind`."""
    while isinstance(estimator, compose.Pipeline):
        estimator = list(estimator.steps.values())[-1]
    return isinstance(estimator, kind)


class _RiverLearner:
    """What both tasks share."""

    task: Task

    def __init__(
        self,
        model: base.Estimator,
        key: bytes | str | None = None,
        spec: str | None = None,
        fading: float = 0.999,
        delta: float = 0.002,
    ) -> None:
        self.model = model
        self._key = state_key(key)  # never shown: `__repr__` and `_get_params` leave it out
        self.spec = spec
        self.fading, self.delta = fading, delta
        self._monitor = PrequentialMonitor(self.task, fading, delta)
        self._names: list[Hashable] = []
        self._index: set[Hashable] = set()
        self.samples_learned = 0
        self._last_drift = -1
        self.config = _Spec(spec, type(model).__name__)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.spec or type(self.model).__name__})"

    def _get_params(self) -> dict[str, Any]:
        return {"model": self.model, "spec": self.spec, "fading": self.fading, "delta": self.delta}

    @property
    def feature_names(self) -> tuple[Hashable, ...]:
        return tuple(self._names)

    @property
    def recoveries(self) -> dict[str, int]:
        return {}

    @property
    def step_scale(self) -> float:
        return 1.0

    def learn_one(self, x: dict, y: Any) -> None:
        y = self._label(y)
        x = self._features(x)
        new = [n for n in x if n not in self._index]
        new.sort(key=lambda n: (isinstance(n, str), n))
        if new or list(x) != self._names:
            # One order for the model whatever the dict's (river sums in it): known features in
            # their order, then the new ones; so by name and by dense row learn alike.
            x = {n: x[n] for n in itertools.chain(self._names, new) if n in x}
        drift = self._test(x, y)
        self.model.learn_one(x, y)
        self._learned(y)
        if new:
            self._names += new
            self._index.update(new)
        if drift:
            self._last_drift = self.samples_learned
        self.samples_learned += 1

    def learn_dense(self, x: np.ndarray | Sequence[float], y: Any) -> None:
        self.learn_many([x], [y])

    def learn_many(
        self,
        X: np.ndarray | Sequence[Sequence[float]],
        y: Sequence[Any],
        refused: list[int] | None = None,
    ) -> list[int]:
        """Each row (in the order of `feature_names`; columns beyond are new features named by
        position) through `learn_one`, in order. Nothing is refused: returns []."""
        X = labelled_rows(X, y)
        if X.shape[1] < len(self._names):
            raise ValueError(
                f"got {X.shape[1]} values per row, the model has {len(self._names)} features"
            )
        for row, label in zip(X.tolist(), y, strict=True):
            names = self._names + [str(i) for i in range(len(self._names), len(row))]
            self.learn_one(dict(zip(names, row, strict=True)), label)
        return [] if refused is None else refused

    def _features(self, x: dict) -> dict:
        for name in x:
            if not isinstance(name, str | int) or isinstance(name, bool):
                raise TypeError(f"feature names are str or int, got {name!r}")
        values = numbers(list(x.values()), list(x))
        return dict(zip(x, values.tolist(), strict=True))

    def snapshot(self) -> RiverPredictor:
        return RiverPredictor(
            self.task,
            copy.deepcopy(self.model),
            self.feature_names,
            self.classes,
            self.samples_learned,
            self._key,
        )

    def stats(self) -> LearnerStats:
        return LearnerStats(
            samples_learned=self.samples_learned,
            prequential_score=self._monitor.score,
            prequential_loss=self._monitor.loss,
            drifts_detected=self._monitor.drifts_detected,
            drift_in_last_window=self._last_drift >= 0
            and self.samples_learned - self._last_drift < 1000,
            updates_refused={},
            recoveries={},
            step_scale=1.0,
        )

    def to_bytes(self) -> bytes:
        """The state as authenticated pickle (see the module's docs); needs the key."""
        payload = {
            "model": self.model,
            "spec": self.spec,
            "fading": self.fading,
            "delta": self.delta,
            "names": self._names,
            "classes": list(self.classes),
            "samples_learned": self.samples_learned,
            "last_drift": self._last_drift,
            "monitor": self._monitor.state_dict(),
        }
        meta = {"task": self.task, "samples_learned": self.samples_learned, "spec": self.spec}
        return _seal(type(self).__name__, payload, self._key, meta)

    @classmethod
    def from_state(cls, tensors, meta, key: bytes | None = None):
        d = _open(tensors, meta, key if key is not None else _process_key)
        model = cls(
            d["model"],
            key=key if key is not None else _process_key,
            spec=d["spec"],
            fading=d["fading"],
            delta=d["delta"],
        )
        model._names = list(d["names"])
        model._index = set(model._names)
        for c in d["classes"]:
            model._learned(c)
        model.samples_learned = int(d["samples_learned"])
        model._last_drift = int(d["last_drift"])
        model._monitor.load_state_dict(d["monitor"])
        return model


class RiverClassifier(_RiverLearner, base.Classifier):
    """A river classifier (or pipeline ending in one) as a Lifelong learner."""

    task: Task = "classification"

    def __init__(self, model, key=None, spec=None, fading=0.999, delta=0.002) -> None:
        self._classes: list[Any] = []
        self._class_set: set[Any] = set()
        super().__init__(model, key, spec, fading, delta)

    @property
    def _multiclass(self) -> bool:
        return True

    @property
    def classes(self) -> tuple[Any, ...]:
        return tuple(self._classes)

    def _label(self, y: Any) -> Any:
        if type(y) not in LABEL_TYPES:
            if isinstance(y, np.bool_):
                return bool(y)
            if isinstance(y, np.integer):
                return int(y)
            if isinstance(y, str):
                return str(y)
            raise TypeError(
                f"a class label must be a str, int or bool, got {type(y).__name__} {y!r}"
            )
        return y

    def _test(self, x: dict, y: Any) -> bool:
        proba = self.model.predict_proba_one(x) if self._classes else {}
        y_pred = max(proba, key=proba.get) if proba else None
        return self._monitor.update(y, y_pred, proba)

    def _learned(self, y: Any) -> None:
        if y not in self._class_set:
            self._class_set.add(y)
            self._classes.append(y)

    def predict_proba_one(self, x: dict) -> dict[Any, float]:
        return self.model.predict_proba_one(x)

    def predict_one(self, x: dict) -> Any:
        return self.model.predict_one(x)


class RiverRegressor(_RiverLearner, base.Regressor):
    """A river regressor (or pipeline ending in one) as a Lifelong learner."""

    task: Task = "regression"

    @property
    def classes(self) -> tuple[()]:
        return ()

    def _label(self, y: Any) -> float:
        if isinstance(y, bool | np.bool_) or not isinstance(y, Real):
            raise TypeError(f"a regression target must be a number, got {type(y).__name__} {y!r}")
        y = float(y)
        if not math.isfinite(y):
            raise ValueError(f"a regression target must be finite, got {y}")
        return y

    def _test(self, x: dict, y: float) -> bool:
        estimate = self.model.predict_one(x) if self.samples_learned else 0.0
        return self._monitor.update(y, float(estimate))

    def _learned(self, y: Any) -> None:
        pass

    def predict_one(self, x: dict) -> float:
        return self.model.predict_one(x)


class RiverPredictor:
    """Predictions from a deep copy of a river estimator: what `snapshot()` returns. Any number
    of threads may read it; it never learns."""

    def __init__(
        self,
        task: Task,
        model: base.Estimator,
        feature_names: tuple[Hashable, ...],
        classes: tuple[Any, ...],
        version: int,
        key: bytes | None = None,
    ) -> None:
        self.task = task
        self._model = model
        self.feature_names = feature_names
        self.classes = classes
        self.version = version
        self._key = key

    def predict_proba_one(self, x: dict) -> dict[Any, float]:
        self._classifier_only()
        if not self.classes:
            return {}
        proba = self._model.predict_proba_one(x)
        return {c: float(proba.get(c, 0.0)) for c in self.classes}

    def predict_one(self, x: dict) -> Any:
        if self.task == "classification" and not self.classes:
            return None
        y = self._model.predict_one(x)
        return float(y) if self.task == "regression" else y

    def _dicts(self, X: np.ndarray) -> list[dict]:
        X = np.asarray(X, dtype=np.float64)
        n = len(self.feature_names)
        if X.ndim != 2 or X.shape[1] < n:
            raise ValueError(
                f"X must be (rows, {n}) in the order of feature_names, got shape {X.shape}"
            )
        names = self.feature_names
        return [dict(zip(names, row, strict=False)) for row in X[:, :n].tolist()]

    def predict_proba_dense(self, X: np.ndarray) -> np.ndarray:
        self._classifier_only()
        rows = self._dicts(X)
        out = np.zeros((len(rows), len(self.classes)))
        for r, x in enumerate(rows):
            out[r] = list(self.predict_proba_one(x).values()) if self.classes else []
        return out

    def predict_dense(self, X: np.ndarray) -> np.ndarray:
        rows = self._dicts(X)
        if self.task == "regression":
            return np.array([self.predict_one(x) for x in rows], dtype=np.float64)
        labels = np.empty(len(rows), dtype=object)
        labels[:] = [self.predict_one(x) for x in rows]
        return labels

    def row_function(self) -> Callable[[list[float]], np.ndarray | float]:
        names = self.feature_names
        if self.task == "regression":
            return lambda values: self.predict_one(dict(zip(names, values, strict=True)))
        return lambda values: np.array(
            [list(self.predict_proba_one(dict(zip(names, values, strict=True))).values())]
        )

    def _classifier_only(self) -> None:
        if self.task != "classification":
            raise TypeError("a regressor has no class probabilities; use predict_one / _dense")

    def to_bytes(self) -> bytes:
        payload = {
            "task": self.task,
            "model": self._model,
            "names": list(self.feature_names),
            "classes": list(self.classes),
            "version": self.version,
        }
        meta = {"task": self.task, "version": self.version}
        return _seal("RiverPredictor", payload, self._key, meta)

    @classmethod
    def from_state(cls, tensors, meta, key: bytes | None = None) -> RiverPredictor:
        key = key if key is not None else _process_key
        d = _open(tensors, meta, key)
        return cls(
            d["task"], d["model"], tuple(d["names"]), tuple(d["classes"]), int(d["version"]), key
        )


class _Spec:
    """What `config` says of a river learner (`to_dict` for the service's model info)."""

    def __init__(self, spec: str | None, name: str) -> None:
        self.spec, self.name = spec, name

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.spec, "estimator": self.name}


_RESTORE = {
    "RiverClassifier": RiverClassifier.from_state,
    "RiverRegressor": RiverRegressor.from_state,
    "RiverPredictor": RiverPredictor.from_state,
}
for _kind, _restore in _RESTORE.items():
    state.register(_kind, _restore)
