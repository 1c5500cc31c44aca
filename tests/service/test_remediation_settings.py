"""The `remediations` setting: rules built for the built-in MLP, refused with the reason."""

from __future__ import annotations

import pytest
from lifelong.app import fresh_learner
from lifelong.config import ConfigError, Settings
from lifelong.model import Remediated


def test_rules_wrap_the_mlp_and_its_challenger():
    settings = Settings(
        challenger=True,
        remediations={
            "dead_fraction": {"threshold": 0.5, "windows": 2, "action": "challenger"},
            "rank_fraction": {"threshold": 0.05},
        },
    )
    learner = fresh_learner(settings)
    assert isinstance(learner, Remediated)
    assert [(r.symptom, r.action) for r in learner.rules] == [
        ("dead_fraction", "challenger"),
        ("rank_fraction", "redo"),
    ]
    assert learner.stats().remediations == {"challenger": 0, "redo": 0}


@pytest.mark.parametrize(
    ("settings", "says"),
    [
        ({"remediations": {"dead": {"threshold": 0.5}}}, "remediations: symptom must be one of"),
        ({"remediations": {"dead_fraction": {"limit": 0.5}}}, "remediations: "),
        ({"remediations": {"dead_fraction": 0.5}}, "remediations: "),
        (
            {"remediations": {"dead_fraction": {"threshold": 0.5, "action": "challenger"}}},
            "needs a learner with one",
        ),
        (
            {
                "model": "river.linear_model:LinearRegression",
                "task": "regression",
                "remediations": {"dead_fraction": {"threshold": 0.5}},
            },
            "only the built-in MLP",
        ),
    ],
)
def test_bad_rules_are_refused_with_the_reason(settings, says):
    with pytest.raises(ConfigError, match=says):
        fresh_learner(Settings(**settings))
