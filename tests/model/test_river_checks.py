"""river's own estimator checks (`river.checks.yield_checks`), the contract river users rely on:
pickling, clones that share nothing, feature order without effect, predictions before learning,
and the rest, on both learners as shipped and with every plasticity method."""

import pytest
from lifelong.model import LearnerConfig, LifelongClassifier, LifelongRegressor
from river import checks

EVERY_METHOD = LearnerConfig(
    hidden=(16, 16), plasticity=("cbp", "shrink_perturb", "l2_init", "redo"), redo_every=50
)


def cases():
    for estimator, config in (
        (LifelongClassifier, None),
        (LifelongRegressor, None),
        (LifelongClassifier, EVERY_METHOD),
        (LifelongRegressor, EVERY_METHOD),
    ):
        model = estimator(config)
        label = f"{estimator.__name__}-{'default' if config is None else 'every method'}"
        for check in checks.yield_checks(model):
            name = getattr(check, "__name__", None) or check.func.__name__
            yield pytest.param(model, check, id=f"{label}-{name}")


@pytest.mark.parametrize(("model", "check"), list(cases()))
def test_river_estimator_check(model, check):
    check(model.clone())
