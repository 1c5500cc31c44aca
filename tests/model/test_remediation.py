"""Remediation from telemetry (issue 13): a sustained symptom, read once per telemetry window,
maps to an action taken at a row that does not depend on how the stream is split."""

from __future__ import annotations

import numpy as np
import pytest
from lifelong.model import (
    Challenged,
    ChallengerConfig,
    LearnerConfig,
    LifelongClassifier,
    LifelongRegressor,
    Remediated,
    Rule,
    load,
)

WINDOW = 50


def stream(n: int, seed: int = 0) -> tuple[np.ndarray, list[float]]:
    X = np.random.default_rng(seed).normal(size=(n, 3))
    return X, (X[:, 0] - 2 * X[:, 1]).tolist()


def with_dead_units(dead: int, width: int = 8) -> LifelongRegressor:
    """A regressor (no continual backprop, which would replace them) whose first `dead` hidden
    units never fire: zero incoming weights and a large negative bias."""
    learner = LifelongRegressor(
        LearnerConfig(hidden=(width,), plasticity=(), telemetry_window=WINDOW, seed=1)
    )
    learner.learn_one({"a": 0.0, "b": 0.0, "c": 0.0}, 0.0)  # the inputs exist
    tensors, meta = learner.state_dict()
    tensors["network.param.W0"][:dead] = 0.0
    tensors["network.param.b0"][:dead] = -1e3
    learner.load_state_dict(tensors, meta)
    return learner


def test_redo_resets_the_units_dead_for_the_rules_windows_and_counts_it():
    model = Remediated(with_dead_units(4), [Rule("dead_fraction", 0.5, windows=2, action="redo")])
    X, y = stream(2 * WINDOW - 1)  # one row was learned: readings fall at rows 50 and 100
    model.learn_many(X, y)
    assert model.stats().remediations == {"redo": 1}
    tensors, _ = model.learner.state_dict()
    # Reset at row 100, and nothing learned since: zero bias and outgoing weights, fresh inputs.
    assert tensors["network.param.b0"][:4].tolist() == [0.0] * 4
    assert tensors["network.param.W1"][0, :4].tolist() == [0.0] * 4
    assert (tensors["network.param.W0"][:4] != 0).all()
    # The units that fired were left as they were: their bias is not the reset's 0.
    assert (tensors["network.param.b0"][4:] != 0).all()
    model.learn_many(*stream(WINDOW, seed=1))
    assert model.learner.stats().layers[0].dead_fraction < 0.5  # they fire again


def test_a_symptom_must_last_the_rules_windows_in_a_row():
    healthy = Remediated(with_dead_units(1), [Rule("dead_fraction", 0.5, windows=1, action="redo")])
    healthy.learn_many(*stream(10 * WINDOW))
    assert healthy.stats().remediations == {"redo": 0}  # 1 dead unit of 8 is no symptom
    always = Remediated(
        LifelongRegressor(LearnerConfig(hidden=(8,), telemetry_window=WINDOW)),
        [Rule("rank_fraction", 1.0, windows=3), Rule("dead_fraction", 0.0, windows=4)],
    )
    always.learn_many(*stream(12 * WINDOW))  # 12 readings: every 3rd, every 4th
    assert always.stats().remediations == {"redo": 4 + 3}


def test_the_state_continues_bit_for_bit_however_the_stream_is_split():
    rules = [Rule("dead_fraction", 0.5, windows=2), Rule("tau_dormant_fraction", 0.0, windows=3)]
    X, y = stream(7 * WINDOW + 13)
    whole = Remediated(with_dead_units(4), rules)
    whole.learn_many(X, y)
    parts = Remediated(with_dead_units(4), rules)
    cut = 2 * WINDOW + 7  # mid-streak
    parts.learn_many(X[:cut], y[:cut])
    parts = load(parts.to_bytes())
    for start in range(cut, len(X), 37):
        parts.learn_many(X[start : start + 37], y[start : start + 37])
    assert whole.stats().remediations["redo"] > 0
    assert parts.to_bytes() == whole.to_bytes()


def test_the_challenger_action_starts_one_and_counts_only_what_started():
    learner = LifelongClassifier(LearnerConfig(hidden=(8,), telemetry_window=WINDOW))
    quiet = ChallengerConfig(
        on_drift=False, score_drop=None, dead_fraction=None, rank_fraction=None,
        check_every=WINDOW, plasticity_every=WINDOW,
    )  # fmt: skip
    challenged = Challenged(learner, settings=quiet)  # only the remediation starts one
    model = Remediated(challenged, [Rule("dead_fraction", 0.0, windows=1, action="challenger")])
    X, _ = stream(5 * WINDOW)
    model.learn_many(X, (X[:, 0] > 0).tolist())
    stats = model.stats()
    assert stats.challenger.active and stats.challenger.started["plasticity"] == 1
    assert stats.remediations == {"challenger": 1}  # later readings found one learning


def test_rules_are_checked():
    learner = LifelongRegressor(LearnerConfig(hidden=(4,)))
    with pytest.raises(ValueError, match="symptom"):
        Rule("dead", 0.5)
    with pytest.raises(ValueError, match="action"):
        Rule("dead_fraction", 0.5, action="reboot")
    with pytest.raises(ValueError, match="fractions"):
        Rule("dead_fraction", 2.0)
    with pytest.raises(ValueError, match="challenger"):
        Remediated(learner, [Rule("dead_fraction", 0.5, action="challenger")])
    with pytest.raises(ValueError, match="no remediation rules"):
        Remediated(learner, [])
