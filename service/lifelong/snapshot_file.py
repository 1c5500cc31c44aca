"""A serving snapshot (`Predictor`) as a file, for prediction replicas in other processes.

The file holds the snapshot's bytes (`Predictor.to_bytes`: the state codec, no pickle: loading
runs no code from the file). `write` replaces the file atomically (a temporary file in the same
directory, then `os.replace`), so a reader sees the previous snapshot or the new one, never part
of one. No fsync: the file is a cache the learner rewrites every `refresh_every_seconds`,
typically on a tmpfs.

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

from pathlib import Path

from lifelong.checkpoint import write_atomically
from lifelong.model import Predictor, state

TEMP_PREFIX = ".snapshot-"


def load(data: bytes) -> Predictor:
    """The `Predictor` `data` holds; ValueError if it is not one."""
    try:
        predictor = state.load(data)
    except Exception as e:  # a truncated header, a missing key, a wrong type, bad shapes
        raise ValueError(f"not a Lifelong snapshot: {e}") from None
    if not isinstance(predictor, Predictor):
        raise ValueError(f"not a Lifelong snapshot: it holds a {type(predictor).__name__}")
    return predictor


def write(path: Path, predictor: Predictor, data: bytes | None = None) -> None:
    """Replace the file at `path` with `predictor` (whose bytes `data` are, if taken already),
    atomically (not durably: see above)."""
    data = predictor.to_bytes() if data is None else data
    write_atomically(path, data, prefix=TEMP_PREFIX, durable=False)
