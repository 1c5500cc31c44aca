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

from lifelong.model.base import (
    ChallengerStats,
    LayerStats,
    Learner,
    LearnerStats,
    Predictor,
    Task,
)
from lifelong.model.challenger import Challenged, ChallengerConfig
from lifelong.model.config import LearnerConfig
from lifelong.model.learner import LearnerDiverged, LifelongClassifier, LifelongRegressor
from lifelong.model.network import one_thread
from lifelong.model.predictor import MLPPredictor
from lifelong.model.remediation import Remediated, Rule
from lifelong.model.river_model import RiverClassifier, RiverRegressor, river_learner
from lifelong.model.state import load
from lifelong.model.torch_module import (
    TorchModuleClassifier,
    TorchModuleConfig,
    TorchModuleRegressor,
    torch_module_learner,
)

__all__ = [
    "Challenged",
    "ChallengerConfig",
    "ChallengerStats",
    "LayerStats",
    "Learner",
    "LearnerConfig",
    "LearnerDiverged",
    "LearnerStats",
    "LifelongClassifier",
    "LifelongRegressor",
    "MLPPredictor",
    "Predictor",
    "Remediated",
    "RiverClassifier",
    "RiverRegressor",
    "Rule",
    "Task",
    "TorchModuleClassifier",
    "TorchModuleConfig",
    "TorchModuleRegressor",
    "load",
    "one_thread",
    "river_learner",
    "torch_module_learner",
]
