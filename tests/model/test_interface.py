"""The learner interface (`lifelong.model.base`): what the service relies on, checked on the
built-in learners; `tests/service` checks the host with a learner of another kind."""

import numpy as np
import pytest
from lifelong.model import (
    LearnerConfig,
    LearnerStats,
    LifelongClassifier,
    LifelongRegressor,
    load,
    state,
)
from lifelong.model.base import Learner, Predictor


def make(task: str) -> Learner:
    config = LearnerConfig(hidden=(8, 8), seed=0)
    return LifelongClassifier(config) if task == "classification" else LifelongRegressor(config)


def rows(n: int, task: str, seed: int = 0) -> tuple[np.ndarray, list]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    y = [("a", "b", "c")[i % 3] for i in range(n)] if task == "classification" else list(X[:, 0])
    return X, y


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_the_built_in_learners_implement_the_interface(task):
    model = make(task)
    assert isinstance(model, Learner) and model.task == task
    X, y = rows(50, task)
    assert model.learn_many(X, y) == [] and model.samples_learned == 50
    assert model.feature_names == ("0", "1", "2")
    assert model.classes == (("a", "b", "c") if task == "classification" else ())
    stats = model.stats()
    assert isinstance(stats, LearnerStats) and stats.samples_learned == 50
    assert len(stats.layers) == 2 and stats.gradient_norm is not None


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_a_snapshot_is_frozen_and_round_trips_through_the_codec(task):
    model = make(task)
    X, y = rows(40, task)
    model.learn_many(X, y)
    snapshot = model.snapshot()
    assert isinstance(snapshot, Predictor) and snapshot.version == 40
    before = snapshot.predict_dense(X[:5])
    model.learn_many(*rows(40, task, seed=1))
    np.testing.assert_array_equal(snapshot.predict_dense(X[:5]), before)  # bit for bit: a copy
    copy = load(snapshot.to_bytes())
    assert (copy.version, copy.feature_names, copy.classes) == (40, snapshot.feature_names,
                                                                 snapshot.classes)  # fmt: skip
    np.testing.assert_array_equal(copy.predict_dense(X[:5]), before)


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_state_restored_through_the_registry_continues_bit_for_bit(task):
    model, twin = make(task), make(task)
    first, second = rows(30, task), rows(30, task, seed=1)
    model.learn_many(*first)
    twin.learn_many(*first)
    restored = load(model.to_bytes())
    assert state.kind(model.to_bytes()) == type(model).__name__
    restored.learn_many(*second)
    twin.learn_many(*second)
    assert restored.to_bytes() == twin.to_bytes()


def test_learn_many_reports_refused_rows_and_the_rows_before_a_bad_label():
    model = make("classification")
    X, y = rows(10, "classification")
    refused: list[int] = []
    with pytest.raises(TypeError):
        model.learn_many(X, [*y[:4], 1.5, *y[5:]], refused=refused)
    assert model.samples_learned + len(refused) == 4  # the rows before the bad label


def test_an_unknown_kind_is_refused_with_what_to_do():
    data = state.dumps("NoSuchLearner", {}, {})
    with pytest.raises(ValueError, match=r"unknown model kind 'NoSuchLearner'.*import the module"):
        load(data)
