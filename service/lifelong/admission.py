"""Admission: whether a sample may grow the model, decided at its turn.

A sample that passed `lifelong.samples`' checks may still be one the model must not learn as it is
now: it would give the model a class whose label has another type than its classes, a class past
`max_classes`, a label longer than `max_label_length`, more new features than a sample may bring,
or more than the model may have (in all, or yet). Only the writer knows the model as it is at the
sample's turn (the batch before it may have added features or classes), so the host asks here,
under its lock; a refusal raises `InvalidSample` with its reason and what to do.

Pure: no gRPC, Kafka or Prometheus, and no clock. Every rule reads the sample, the limits and what
the learner's state holds (feature names, classes, samples learned), all in its checkpoints, so a
replay from a checkpoint admits exactly what the uninterrupted run admitted (exactly-once restarts
give the same model).

>>> from lifelong.samples import Sample
>>> admission = Admission(Limits(max_classes=2))
>>> admission.check_label(True, classes=(0, 1))
Traceback (most recent call last):
...
lifelong.samples.InvalidSample: wrong_label_type: label True (bool) is not of this model's label \
type, int (decided by its first class, 0); send int labels (True is not 1)
>>> admission.check_label("c", classes=("a", "b"))
Traceback (most recent call last):
...
lifelong.samples.InvalidSample: too_many_classes: the label 'c' would be class 3 of a model \
that may have max_classes=2; send a known class (ModelInfo.classes) or raise the server's \
max_classes
>>> admission.known_prefix(["a", "b", "c", "a"], classes=("a", "b"))
2

"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass, fields
from typing import Any

from lifelong.samples import InvalidSample, Sample


@dataclass(frozen=True)
class Limits:
    """What one sample may add to the model. Defaults are `lifelong.config.Settings`'."""

    max_model_features: int = 10_000
    max_new_features_per_sample: int = 1_000
    feature_growth_burst: int = 1_000
    feature_growth_per_1000_samples: int = 10
    max_classes: int = 1_000
    max_label_length: int = 256

    @classmethod
    def from_settings(cls, settings: Any) -> Limits:
        """The limits among `settings` (a `Settings`, or anything with these attributes)."""
        return cls(**{f.name: getattr(settings, f.name) for f in fields(cls)})

    def feature_allowance(self, samples_learned: int) -> int:
        """How many features a model that learned `samples_learned` samples may have now:
        `feature_growth_burst`, plus `feature_growth_per_1000_samples` per 1000 samples learned
        (within `max_model_features`, checked apart)."""
        grown = samples_learned * self.feature_growth_per_1000_samples // 1000
        return self.feature_growth_burst + grown


class Admission:
    """The admission rules with `limits`, for a classifier or (`classification=False`) a regressor,
    whose labels are numbers and need no rule here."""

    def __init__(self, limits: Limits | None = None, *, classification: bool = True) -> None:
        self.limits = limits if limits is not None else Limits()
        self.classification = classification
        self._classes: tuple = ()  # the classes `_known` was built from (they only grow)
        self._known: frozenset = frozenset()  # (type, value) of each class: True is not 1
        self._values: frozenset = frozenset()  # the classes themselves
        self._kind: type | None = None  # the type of every class, if they have one type
        self._names: tuple = ()  # the feature names `_known_names` was built from (they only grow)
        self._known_names: frozenset = frozenset()

    def check(self, sample: Sample, *, feature_names: tuple, classes: tuple, samples_learned: int):
        """Raise `InvalidSample` if `sample` must not be learned by the model as it is."""
        self.check_features(sample, feature_names, samples_learned)
        if self.classification:
            self.check_label(sample.label, classes)

    # -- features

    def check_features(self, sample: Sample, names: tuple, samples_learned: int) -> None:
        """Refuse `sample` if its new features (names the model lacks, or values of a dense vector
        beyond its features) are too many: for the model (`too_many_features`), for one sample
        (`too_many_new_features`) or for now (`feature_growth_limited`). A model that has more
        (loaded, or limits lowered since) still learns its own."""
        limits, n = self.limits, len(names)
        allowance = limits.feature_allowance(samples_learned)
        if sample.dense is not None:
            new = len(sample.dense) - n  # shorter: the host says dense_size_mismatch
        else:
            width = len(sample.features)
            if width <= limits.max_new_features_per_sample and n + width <= min(
                allowance, limits.max_model_features
            ):
                return  # however many of them are new: the common case, with no set built
            if len(names) != len(self._names) or names[-1:] != self._names[-1:]:
                self._names, self._known_names = names, frozenset(names)
            known = self._known_names
            new = width - len(known.intersection(sample.features))
        if new <= 0:
            return
        if n + new > limits.max_model_features:
            raise InvalidSample(
                "too_many_features",
                f"the sample brings {new} new features but the model has {n} of at most "
                f"max_model_features={limits.max_model_features}; send the model's features "
                "(ModelInfo.feature_names) or raise the server's max_model_features",
            )
        if new > limits.max_new_features_per_sample:
            raise InvalidSample(
                "too_many_new_features",
                f"the sample brings {new} new features, more than "
                f"max_new_features_per_sample={limits.max_new_features_per_sample}; send the "
                "model's features (ModelInfo.feature_names) and few new ones, or raise the "
                "server's max_new_features_per_sample",
            )
        if n + new > allowance:
            raise InvalidSample(
                "feature_growth_limited",
                f"the sample brings {new} new features but the model, with {n} after "
                f"{samples_learned} samples learned, may have {allowance} now "
                f"(feature_growth_burst={limits.feature_growth_burst} plus "
                f"feature_growth_per_1000_samples={limits.feature_growth_per_1000_samples} per "
                "1000 samples learned); send known features, or raise those settings",
            )

    # -- labels (classification)

    def check_label(self, label: Any, classes: tuple) -> None:
        """Refuse `label` unless it is a class of the model (same type and value) or may become
        one: of the model's label type (its first class's: str, int or bool; `True` is not `1`),
        at most `max_label_length` characters, within `max_classes`."""
        self._update(classes)
        if (type(label), label) in self._known:
            return
        limits = self.limits
        if classes and type(label) is not type(classes[0]):
            kind = type(classes[0]).__name__
            raise InvalidSample(
                "wrong_label_type",
                f"label {_short(label)} ({type(label).__name__}) is not of this model's label "
                f"type, {kind} (decided by its first class, {_short(classes[0])}); send {kind} "
                "labels"
                + (" (True is not 1)" if isinstance(label, bool) or kind == "bool" else ""),
            )
        if isinstance(label, str) and len(label) > limits.max_label_length:
            raise InvalidSample(
                "label_too_long",
                f"the label has {len(label)} characters, more than "
                f"max_label_length={limits.max_label_length}; send a shorter class name",
            )
        if len(classes) >= limits.max_classes:
            raise InvalidSample(
                "too_many_classes",
                f"the label {_short(label)} would be class {len(classes) + 1} of a model that may "
                f"have max_classes={limits.max_classes}; send a known class (ModelInfo.classes) "
                "or raise the server's max_classes",
            )

    def known_prefix(self, labels: Sequence[Any], classes: tuple) -> int:
        """How many of `labels`, from the first, are classes of the model (same type and value):
        those need no `check_label`, and learning them grows nothing."""
        self._update(classes)
        kind = self._kind
        one_type = kind is not None and set(map(type, labels)) <= {kind}
        if one_type and self._values.issuperset(labels):  # one type: plain membership will do
            return len(labels)
        known = self._known
        for i, label in enumerate(labels):
            if (type(label), label) not in known:
                return i
        return len(labels)

    def admit_labels(self, labels: Sequence[Any], classes: tuple) -> int:
        """How many of `labels`, from the first, may be learned in one go before the classes
        change: the known ones, or the first alone if it is a new class `check_label` admits
        (which raises `InvalidSample` if not). At least 1 for a non-empty `labels`.

        >>> Admission().admit_labels(["a", "b", "a"], classes=("a",))
        1
        >>> Admission().admit_labels(["b", "a"], classes=("a",))
        1
        >>> Admission().admit_labels(["a", "a", "b"], classes=("a", "b"))
        3
        """
        known = self.known_prefix(labels, classes)
        if known or not labels:
            return known
        self.check_label(labels[0], classes)
        return 1

    def _update(self, classes: tuple) -> None:
        """Index `classes` if they changed (they only grow: the length and the last one tell)."""
        seen = self._classes
        if len(classes) == len(seen) and (
            not seen or (type(classes[-1]) is type(seen[-1]) and classes[-1] == seen[-1])
        ):
            return
        self._classes = tuple(classes)
        self._known = frozenset((type(c), c) for c in classes)
        self._values = frozenset(classes)
        kinds = {type(c) for c in classes}
        self._kind = kinds.pop() if len(kinds) == 1 else None


def _short(label: Hashable) -> str:
    text = repr(label)
    return text if len(text) <= 80 else text[:77] + "..."
