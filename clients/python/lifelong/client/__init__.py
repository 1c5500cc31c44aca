"""Torch-free Python client for the Lifelong gRPC API (``lifelong.v1``).

>>> from lifelong.client import LifelongClient, NotReadyError
>>> client = LifelongClient("localhost:50051", timeout=0.5, retries=2)  # connects lazily
>>> client.close()
"""

from lifelong.client._client import LifelongClient, tls_credentials
from lifelong.client.errors import (
    DeadlineExceededError,
    InvalidArgumentError,
    LifelongError,
    NotReadyError,
    PermissionDeniedError,
    ProtocolError,
    ResourceExhaustedError,
    UnauthenticatedError,
    UnavailableError,
)
from lifelong.client.results import (
    BatchPrediction,
    CheckpointEntry,
    CheckpointResult,
    FeatureValues,
    FrozenSubmodules,
    LabelValue,
    LayerStats,
    LearningState,
    LearnStreamResult,
    MatrixPrediction,
    ModelInfo,
    ModelReplaced,
    PlasticityStats,
    Prediction,
    Task,
)

__all__ = [
    "BatchPrediction",
    "CheckpointEntry",
    "CheckpointResult",
    "DeadlineExceededError",
    "FeatureValues",
    "FrozenSubmodules",
    "InvalidArgumentError",
    "LabelValue",
    "LayerStats",
    "LearnStreamResult",
    "LearningState",
    "LifelongClient",
    "LifelongError",
    "MatrixPrediction",
    "ModelInfo",
    "ModelReplaced",
    "NotReadyError",
    "PermissionDeniedError",
    "PlasticityStats",
    "Prediction",
    "ProtocolError",
    "ResourceExhaustedError",
    "Task",
    "UnauthenticatedError",
    "UnavailableError",
    "tls_credentials",
]
