"""The rules the fuzz tests check on whatever validation lets through."""

from __future__ import annotations

import numpy as np
from lifelong.samples import FLOAT32_MAX, Sample


def is_text(s: str) -> bool:
    """Whether `s` is Unicode text (no lone surrogate): what protobuf, gRPC answers, dead-letter
    headers and logs can carry."""
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def assert_learnable(sample: Sample, *, task: str, max_features: int) -> None:
    """A decoded sample is one the learner can take as it is."""
    assert isinstance(sample, Sample)
    assert (sample.features is None) != (sample.dense is None), sample
    if sample.features is not None:
        assert 0 < len(sample.features) <= max_features
        for name, value in sample.features.items():
            assert type(name) is str and is_text(name), repr(name)
            assert type(value) is float and abs(value) <= FLOAT32_MAX, (name, value)
    else:
        dense = sample.dense
        assert isinstance(dense, np.ndarray) and dense.dtype == np.float32 and dense.ndim == 1
        assert 0 < dense.size <= max_features
        assert np.isfinite(dense).all(), dense
    label = sample.label
    if task == "classification":
        assert type(label) in (str, int, bool), repr(label)
        if type(label) is str:
            assert is_text(label), repr(label)
        elif type(label) is int:
            assert -(2**63) <= label < 2**63
    else:
        assert type(label) is float and np.isfinite(label), repr(label)
