"""A learner's complete state as bytes, and back: safetensors (tensors) with a JSON metadata
string (everything else). No pickle: loading runs no code from the data.

The state holds every parameter-shaped buffer (parameters, gradient, optimizer state, initial
weights), the memory layout they were learned in, scaler and target statistics, continual
backprop's per-unit statistics and counters, telemetry sums, the prequential monitor and the
random generator; a loaded learner continues bit for bit as the saved one would have.

>>> from lifelong.model import LifelongRegressor, LearnerConfig
>>> model = LifelongRegressor(LearnerConfig(hidden=(4,)))
>>> model.learn_one({"x": 1.0}, 2.0)
>>> copy = load(model.to_bytes())
>>> type(copy).__name__, copy.samples_learned, copy.feature_names
('LifelongRegressor', 1, ('x',))

"""

from __future__ import annotations

import json
from typing import Any

import safetensors.torch

# 2: forgetting scaler statistics (a variance where 1 had a sum of squares) and the refusal and
# recovery counters; a format-1 state is upgraded on load.
FORMAT = 2
_KEY = "lifelong"  # of the safetensors metadata entry holding the JSON
_KINDS = ("LifelongClassifier", "LifelongRegressor")


def dumps(learner: Any) -> bytes:
    """`learner`'s state (a `LifelongClassifier` or `LifelongRegressor`) as bytes."""
    tensors, meta = learner._state()
    meta = {"format": FORMAT, "kind": type(learner).__name__, **meta}
    return safetensors.torch.save(tensors, metadata={_KEY: json.dumps(meta)})


def load(data: bytes) -> Any:
    """The learner whose state `data` is (from `to_bytes`)."""
    from lifelong.model import learner as learners
    from lifelong.model.config import LearnerConfig

    meta = _metadata(data)
    if meta.get("format") not in (1, FORMAT):
        raise ValueError(f"unsupported state format {meta.get('format')!r}, expected {FORMAT}")
    if meta.get("kind") not in _KINDS:
        raise ValueError(f"unknown learner kind {meta.get('kind')!r}")
    tensors = safetensors.torch.load(data)
    if meta["format"] == 1:
        _upgrade_from_1(tensors, meta)
    model = getattr(learners, meta["kind"])(LearnerConfig.from_dict(meta["config"]))
    model._restore(tensors, meta)
    return model


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


def _metadata(data: bytes) -> dict[str, Any]:
    """The JSON metadata, read from the safetensors header (8-byte length, then JSON)."""
    try:
        size = int.from_bytes(data[:8], "little")
        header = json.loads(data[8 : 8 + size])
        return json.loads(header["__metadata__"][_KEY])
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(f"not a Lifelong learner state: {e}") from None
