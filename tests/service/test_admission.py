"""`lifelong.admission`: what a sample may add to the model, decided at its turn, and the same
decisions whatever the batches and restarts (`ModelHost`)."""

from __future__ import annotations

import pytest
from lifelong.admission import Admission, Limits
from lifelong.host import ModelHost
from lifelong.model import load
from lifelong.samples import InvalidSample, Sample
from testsupport import small_learner


def refused(check, *args, **kwargs) -> str | None:
    try:
        check(*args, **kwargs)
    except InvalidSample as e:
        return e.reason
    return None


def test_labels_have_the_type_of_the_first_class():
    admission = Admission()
    assert refused(admission.check_label, True, ()) is None  # the first decides
    assert refused(admission.check_label, 1, (True,)) == "wrong_label_type"
    assert refused(admission.check_label, True, (1, 2)) == "wrong_label_type"
    assert refused(admission.check_label, "1", (1,)) == "wrong_label_type"
    assert refused(admission.check_label, 3, (1, 2)) is None
    assert refused(admission.check_label, False, (True,)) is None


def test_new_classes_are_bounded_and_known_ones_always_admitted():
    admission = Admission(Limits(max_classes=2, max_label_length=3))
    assert refused(admission.check_label, "c", ("a", "b")) == "too_many_classes"
    assert refused(admission.check_label, "b", ("a", "b")) is None
    assert refused(admission.check_label, "long", ("a",)) == "label_too_long"
    assert refused(admission.check_label, "long", ()) == "label_too_long"
    assert refused(admission.check_label, "long", ("long",)) is None  # a class it has


def test_known_prefix_tells_true_from_1():
    admission = Admission()
    assert admission.known_prefix([True, False, True], (True, False)) == 3
    assert admission.known_prefix([True, 1, True], (True, False)) == 1
    assert admission.known_prefix([1, 0], (True, False)) == 0
    assert admission.known_prefix(["a", "z"], ("a",)) == 1
    assert admission.known_prefix(["a"], ()) == 0


def test_new_features_per_sample_and_growth_rate():
    limits = Limits(max_new_features_per_sample=5, feature_growth_burst=10,
                    feature_growth_per_1000_samples=2)  # fmt: skip
    admission = Admission(limits)
    names = tuple(f"f{i}" for i in range(8))

    def wide(n_new: int) -> Sample:
        return Sample({**dict.fromkeys(names, 1.0), **{f"n{i}": 1.0 for i in range(n_new)}},
                      None, "a")  # fmt: skip

    assert refused(admission.check_features, wide(6), names, 10**6) == "too_many_new_features"
    assert refused(admission.check_features, wide(2), names, 0) is None  # 10 = the burst
    assert refused(admission.check_features, wide(3), names, 0) == "feature_growth_limited"
    assert refused(admission.check_features, wide(3), names, 499) == "feature_growth_limited"
    assert refused(admission.check_features, wide(3), names, 500) is None  # 10 + 1
    dense = Sample(None, [0.0] * 14, "a")
    assert refused(admission.check_features, dense, names, 0) == "too_many_new_features"
    assert limits.feature_allowance(1500) == 13


def test_the_host_refuses_a_record_of_9990_new_features_by_default():
    """Finding 3: one record grew a 9-feature model to 9,999 and slowed learning 80-fold."""
    learner = small_learner()
    host = ModelHost(learner)
    names = [f"x{i}" for i in range(9)]
    host.learn([Sample(dict.fromkeys(names, 1.0), None, "a")], source="kafka")
    rejected = []
    wide = Sample({**dict.fromkeys(names, 1.0), **{f"n{i}": 1.0 for i in range(9_990)}}, None, "b")
    before = learner.to_bytes()
    assert host.learn([wide], source="kafka", on_rejected=lambda _, e: rejected.append(e)) == 0
    assert [e.reason for e in rejected] == ["too_many_new_features"]
    assert learner.to_bytes() == before and len(learner.feature_names) == 9


@pytest.mark.parametrize("split", [1, 7, 50, 1000])
def test_admission_decides_the_same_whatever_the_batches_and_restarts(split):
    """Everything the rules read is in the learner's state: batches of any size, and a restart
    from the state at every batch, give the same model and the same refusals."""
    limits = Limits(max_new_features_per_sample=3, feature_growth_burst=4,
                    feature_growth_per_1000_samples=20, max_classes=3)  # fmt: skip
    stream = []
    for t in range(600):
        x = {f"f{j}": float((t * 7 + j) % 5) for j in range(t // 40 + 1)}  # ever wider
        label = ["a", "b", "c", "d", 1][t % 5] if t % 11 == 0 else ["a", "b"][t % 2]
        stream.append(Sample(x, None, label))

    def run(split: int, restart: bool):
        learner, rejected = small_learner(seed=1), []
        for start in range(0, len(stream), split):
            if restart:
                learner = load(learner.to_bytes())
            host = ModelHost(learner, limits=limits)
            host.learn(
                stream[start : start + split],
                source="kafka",
                on_rejected=lambda k, e, start=start: rejected.append((start + k, e.reason)),
            )
        return learner, rejected

    reference, expected = run(len(stream), restart=False)
    learner, rejected = run(split, restart=True)
    assert rejected == expected
    assert {r for _, r in expected} >= {"too_many_classes", "feature_growth_limited",
                                        "wrong_label_type"}  # fmt: skip
    assert learner.to_bytes() == reference.to_bytes()
