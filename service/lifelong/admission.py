"""What a sample may do to the model, decided at its turn (the samples before it may have
grown the model): the growth limits. Pure: no gRPC, Kafka or Prometheus.

>>> from lifelong.samples import Sample
>>> class Model:
...     feature_names, classes = ("a", "b"), ()
>>> admit(Sample({"a": 1.0, "c": 2.0}, None, "x"), Model(), Limits(max_model_features=2))
Traceback (most recent call last):
...
lifelong.samples.InvalidSample: too_many_features: the sample brings 1 new features ...

"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lifelong.samples import InvalidSample, Sample, dense_size_mismatch


@dataclass(frozen=True)
class Limits:
    """How far samples may grow the model."""

    max_model_features: int = 10_000  # a sample bringing features beyond it is refused


def admit(sample: Sample, model: Any, limits: Limits) -> None:
    """Raise `InvalidSample` if `sample` cannot be learned by `model` (its `feature_names` and
    `classes` as they are now) within `limits`."""
    names = model.feature_names
    n, limit = len(names), limits.max_model_features
    if sample.dense is not None:
        if len(sample.dense) < n:
            raise dense_size_mismatch(len(sample.dense), n)
        new = len(sample.dense) - n
    elif n + len(sample.features) > limit:  # only then can it matter: count the new ones
        new = len(set(sample.features).difference(names))
    else:
        return
    if new > 0 and n + new > limit:  # a model loaded with more still learns its own
        raise InvalidSample(
            "too_many_features",
            f"the sample brings {new} new features but the model has {n} of at most "
            f"max_model_features={limit}; send the model's features (ModelInfo.feature_names) "
            "or raise the server's max_model_features",
        )
