"""A model's state as bytes, and back: safetensors (tensors) with one JSON metadata string
(everything else). No pickle: loading runs no code from the data. This module is the codec and
the registry of kinds; what a state holds is each kind's business (its `state_dict`).

Each kind registers the function that restores it from `(tensors, metadata)`: the built-in
learners and their `MLPPredictor` when `lifelong.model` is imported, any other kind when its
module is.

>>> from lifelong.model import LifelongRegressor, LearnerConfig
>>> model = LifelongRegressor(LearnerConfig(hidden=(4,)))
>>> model.learn_one({"x": 1.0}, 2.0)
>>> copy = load(model.to_bytes())
>>> type(copy).__name__, copy.samples_learned, copy.feature_names
('LifelongRegressor', 1, ('x',))
>>> kind(model.snapshot().to_bytes())
'MLPPredictor'

"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import safetensors.torch
import torch

_KEY = "lifelong"  # of the safetensors metadata entry holding the JSON
Restore = Callable[[dict[str, torch.Tensor], dict[str, Any]], Any]
_KINDS: dict[str, Restore] = {}


def register(kind: str, restore: Restore) -> None:
    """Make `load` restore states of `kind` with `restore(tensors, metadata)`."""
    _KINDS[kind] = restore


def dumps(kind: str, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> bytes:
    """A state of `kind` as bytes; `meta` must be JSON (it keeps `"1"`, `1` and `True` apart)."""
    return safetensors.torch.save(
        {k: v.contiguous() for k, v in tensors.items()},
        metadata={_KEY: json.dumps({"kind": kind, **meta})},
    )


def load(data: bytes) -> Any:
    """The model whose state `data` is (from `dumps`); ValueError if it is none."""
    meta = metadata(data)
    restore = _KINDS.get(meta.get("kind"))
    if restore is None:
        raise ValueError(
            f"unknown model kind {meta.get('kind')!r} (known: {', '.join(sorted(_KINDS))}); "
            "import the module that defines it first"
        )
    return restore(safetensors.torch.load(data), meta)


def as_tensor(data: bytes) -> torch.Tensor:
    """`data` as a uint8 tensor: bytes nested in a state (another learner's, a pickle).

    >>> as_bytes(as_tensor(b"state")) == b"state"
    True
    """
    return torch.frombuffer(bytearray(data), dtype=torch.uint8)


def as_bytes(tensor: torch.Tensor) -> bytes:
    """The bytes `as_tensor` nested."""
    return tensor.numpy().tobytes()


def prefixed(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The tensors whose names start with `prefix`, named without it (a part's state)."""
    return {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}


def kind(data: bytes) -> str:
    """The kind of model `data` holds, read from its header only."""
    return metadata(data)["kind"]


def metadata(data: bytes) -> dict[str, Any]:
    """The JSON metadata, read from the safetensors header (8-byte length, then JSON)."""
    try:
        size = int.from_bytes(data[:8], "little")
        header = json.loads(data[8 : 8 + size])
        return json.loads(header["__metadata__"][_KEY])
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(f"not a Lifelong model state: {e}") from None
