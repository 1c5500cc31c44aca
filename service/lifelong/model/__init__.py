"""The learner: a neural network that learns from a stream, one example at a time, forever,
and keeps its plasticity. Pure: no Kafka, gRPC, Prometheus or files.

>>> from lifelong.model import LifelongClassifier, LearnerConfig, load
>>> model = LifelongClassifier(LearnerConfig(hidden=(8,)))
>>> model.learn_one({"x1": 0.3, "x2": -1.0}, "spam")
>>> model.predict_proba_one({"x1": 0.3})
{'spam': 1.0}
>>> load(model.to_bytes()).classes
('spam',)

"""

from lifelong.model.config import LearnerConfig
from lifelong.model.learner import (
    LayerStats,
    LearnerDiverged,
    LifelongClassifier,
    LifelongRegressor,
    PlasticityStats,
    Predictor,
)
from lifelong.model.network import one_thread
from lifelong.model.state import load

__all__ = [
    "LayerStats",
    "LearnerConfig",
    "LearnerDiverged",
    "LifelongClassifier",
    "LifelongRegressor",
    "PlasticityStats",
    "Predictor",
    "load",
    "one_thread",
]
