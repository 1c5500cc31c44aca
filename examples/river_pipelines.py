"""Example river pipeline factories for `model = "river_pipelines:..."` (with `examples/` on
`PYTHONPATH`). A factory is called with the task and the settings' `model_args`; a river class
(`model = "river.linear_model:LogisticRegression"`) is called with `model_args` alone.
See docs/models.md (a river model's checkpoints need a state key).
"""

from __future__ import annotations

from river import compose, linear_model, optim, preprocessing, tree


def scaled_linear(task: str, lr: float = 0.01, l2: float = 0.0) -> compose.Pipeline:
    """Standardised inputs, then logistic or linear regression."""
    if task == "classification":
        model = linear_model.LogisticRegression(optimizer=optim.SGD(lr), l2=l2)
    else:
        model = linear_model.LinearRegression(optimizer=optim.SGD(lr), l2=l2)
    return preprocessing.StandardScaler() | model


def hoeffding_tree(task: str, grace_period: int = 200) -> compose.Pipeline:
    """A Hoeffding tree (adaptive, for drifting streams)."""
    if task == "classification":
        return compose.Pipeline(tree.HoeffdingAdaptiveTreeClassifier(grace_period=grace_period))
    return compose.Pipeline(tree.HoeffdingAdaptiveTreeRegressor(grace_period=grace_period))
