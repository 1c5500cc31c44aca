"""A serving snapshot (`Predictor`) as a file, for prediction replicas in other processes.

safetensors: the weights, biases and input statistics as arrays, everything else as one JSON
metadata entry (task, version, feature names and classes: JSON keeps `"1"`, `1` and `True`
apart, as the learner state does). No pickle: loading runs no code from the file. `write`
replaces the file atomically (a temporary file in the same directory, then `os.replace`), so a
reader sees the previous snapshot or the new one, never part of one. No fsync: the file is a
cache the learner rewrites every `refresh_every_seconds`, typically on a tmpfs.

>>> import tempfile
>>> from lifelong.model import LearnerConfig, LifelongClassifier
>>> model = LifelongClassifier(LearnerConfig(hidden=(4,), seed=0))
>>> model.learn_one({"x": 1.0}, "spam")
>>> path = Path(tempfile.mkdtemp()) / "snapshot.safetensors"
>>> write(path, model.snapshot())
>>> copy = load(path.read_bytes())
>>> copy.version, copy.feature_names, copy.classes
(1, ('x',), ('spam',))

"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import safetensors.numpy
from lifelong.checkpoint import write_atomically
from lifelong.model.learner import Predictor
from lifelong.model.scaler import Standardizer, TargetScaler

FORMAT = 2  # 2: the scaler's variances (1 had sums of squares)
_KEY = "lifelong_snapshot"  # of the safetensors metadata entry holding the JSON
TEMP_PREFIX = ".snapshot-"


def dumps(predictor: Predictor) -> bytes:
    """`predictor` as safetensors bytes."""
    weights, biases = predictor._weights, predictor._biases
    arrays = {f"weight.{i}": W for i, W in enumerate(weights)}
    arrays |= {f"bias.{i}": b for i, b in enumerate(biases)}
    scaler, target = predictor._scaler, predictor._target
    if scaler is not None:
        arrays |= {f"scaler.{k}": v for k, v in scaler.state_dict().items()}
    meta: dict[str, Any] = {
        "format": FORMAT,
        "task": predictor.task,
        "version": predictor.version,
        "layers": len(weights),
        "features": list(predictor.feature_names),
        "classes": list(predictor.classes),
        "scaler_clip": scaler.clip if scaler is not None else None,
        "target": {**target.state_dict(), "clip": target.clip} if target is not None else None,
    }
    # Snapshot arrays are the learner's copies, C-contiguous already; a reader gets them as such.
    arrays = {k: np.ascontiguousarray(v) for k, v in arrays.items()}
    return safetensors.numpy.save(arrays, metadata={_KEY: json.dumps(meta)})


def load(data: bytes) -> Predictor:
    """The `Predictor` `data` (from `dumps`) holds; ValueError if it is not one."""
    try:
        size = int.from_bytes(data[:8], "little")
        meta = json.loads(json.loads(data[8 : 8 + size])["__metadata__"][_KEY])
        if meta.get("format") != FORMAT:
            raise ValueError(f"unsupported snapshot format {meta.get('format')!r}")
        arrays = safetensors.numpy.load(data)
        n = int(meta["layers"])
        weights = [arrays[f"weight.{i}"] for i in range(n)]
        biases = [arrays[f"bias.{i}"] for i in range(n)]
        names = tuple(meta["features"])
        scaler = None
        if meta["scaler_clip"] is not None:
            scaler = Standardizer(float(meta["scaler_clip"]))
            scaler.load_state_dict({k: arrays[f"scaler.{k}"] for k in scaler.state_dict()})
        target = None
        if meta["target"] is not None:
            target = TargetScaler(float(meta["target"]["clip"]))
            target.load_state_dict(meta["target"])
        _check_shapes(weights, biases, len(names), scaler)
        return Predictor(
            meta["task"],
            weights,
            biases,
            {name: i for i, name in enumerate(names)},
            names,
            tuple(meta["classes"]),
            scaler,
            target,
            version=int(meta["version"]),
        )
    except Exception as e:  # a truncated header, a missing key, a wrong type, bad shapes
        raise ValueError(f"not a Lifelong snapshot: {e}") from None


def _check_shapes(weights, biases, n_features: int, scaler: Standardizer | None) -> None:
    inputs = n_features
    for W, b in zip(weights, biases, strict=True):
        if W.dtype != np.float32 or W.ndim != 2 or W.shape[1] != inputs or b.shape != W.shape[:1]:
            raise ValueError("the snapshot's layers do not fit together")
        inputs = W.shape[0]
    if scaler is not None and len({a.shape for a in scaler.state_dict().values()}) != 1:
        raise ValueError("the snapshot's input statistics do not fit together")
    if scaler is not None and len(scaler.count) < n_features:
        raise ValueError("the snapshot's input statistics do not cover its features")


def empty(task: str) -> Predictor:
    """The snapshot of a model that has learned nothing (version 0): what a replica serves before
    it has read a file, answering as a fresh server does."""
    target = TargetScaler() if task == "regression" else None
    return Predictor(task, [], [], {}, (), (), None, target, version=0)


def write(path: Path, predictor: Predictor) -> None:
    """Replace the file at `path` with `predictor`, atomically (not durably: see above)."""
    write_atomically(path, dumps(predictor), prefix=TEMP_PREFIX, durable=False)
