"""LearnerConfig: defaults, normalisation, validation, round trip."""

import dataclasses

import pytest
from lifelong.model import LearnerConfig


def test_defaults_are_continual_backprop_on_two_hidden_layers():
    cfg = LearnerConfig()
    assert cfg.hidden == (64, 64) and cfg.plasticity == ("cbp",) and cfg.optimizer == "sgd"


def test_lists_become_tuples_and_methods_are_sorted():
    cfg = LearnerConfig(hidden=[8, 4], plasticity=["shrink_perturb", "cbp", "cbp"])
    assert cfg.hidden == (8, 4) and cfg.plasticity == ("cbp", "shrink_perturb")
    assert hash(cfg) == hash(LearnerConfig(hidden=(8, 4), plasticity=("cbp", "shrink_perturb")))


def test_round_trip_through_json_values():
    cfg = LearnerConfig(hidden=(3,), optimizer="adam", plasticity=(), seed=9)
    assert LearnerConfig.from_dict(cfg.to_dict()) == cfg
    assert cfg.to_dict()["hidden"] == [3]


@pytest.mark.parametrize(
    "change",
    [
        {"hidden": (0,)},
        {"hidden": (2.5,)},
        {"optimizer": "rmsprop"},
        {"activation": "tanh"},
        {"plasticity": ("dropout",)},
        {"lr": 0.0},
        {"lr": float("inf")},
        {"momentum": 1.0},
        {"cbp_decay_rate": -0.1},
        {"cbp_utility": "weight"},
        {"cbp_maturity_threshold": 1.5},
        {"perturb_std": float("nan")},
        {"telemetry_window": 0},
        {"redo_every": 0},
        {"redo_every": 10.0},
        {"redo_threshold": -0.1},
        {"redo_threshold": 1.5},
        {"standardize": "yes"},
        {"seed": -1},
    ],
)
def test_invalid_values_are_refused(change):
    with pytest.raises(ValueError):
        dataclasses.replace(LearnerConfig(), **change)


def test_unknown_fields_are_refused():
    with pytest.raises(TypeError):
        LearnerConfig(learning_rate=0.1)
