import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Task(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TASK_UNSPECIFIED: _ClassVar[Task]
    TASK_CLASSIFICATION: _ClassVar[Task]
    TASK_REGRESSION: _ClassVar[Task]
TASK_UNSPECIFIED: Task
TASK_CLASSIFICATION: Task
TASK_REGRESSION: Task

class Features(_message.Message):
    __slots__ = ("named", "dense")
    class NamedEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    NAMED_FIELD_NUMBER: _ClassVar[int]
    DENSE_FIELD_NUMBER: _ClassVar[int]
    named: _containers.ScalarMap[str, float]
    dense: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, named: _Optional[_Mapping[str, float]] = ..., dense: _Optional[_Iterable[float]] = ...) -> None: ...

class Label(_message.Message):
    __slots__ = ("text", "integer", "number", "boolean")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    INTEGER_FIELD_NUMBER: _ClassVar[int]
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    BOOLEAN_FIELD_NUMBER: _ClassVar[int]
    text: str
    integer: int
    number: float
    boolean: bool
    def __init__(self, text: _Optional[str] = ..., integer: _Optional[int] = ..., number: _Optional[float] = ..., boolean: _Optional[bool] = ...) -> None: ...

class Sample(_message.Message):
    __slots__ = ("features", "label")
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    features: Features
    label: Label
    def __init__(self, features: _Optional[_Union[Features, _Mapping]] = ..., label: _Optional[_Union[Label, _Mapping]] = ...) -> None: ...

class ClassProbability(_message.Message):
    __slots__ = ("label", "probability")
    LABEL_FIELD_NUMBER: _ClassVar[int]
    PROBABILITY_FIELD_NUMBER: _ClassVar[int]
    label: Label
    probability: float
    def __init__(self, label: _Optional[_Union[Label, _Mapping]] = ..., probability: _Optional[float] = ...) -> None: ...

class Prediction(_message.Message):
    __slots__ = ("label", "probabilities", "no_known_features")
    LABEL_FIELD_NUMBER: _ClassVar[int]
    PROBABILITIES_FIELD_NUMBER: _ClassVar[int]
    NO_KNOWN_FEATURES_FIELD_NUMBER: _ClassVar[int]
    label: Label
    probabilities: _containers.RepeatedCompositeFieldContainer[ClassProbability]
    no_known_features: bool
    def __init__(self, label: _Optional[_Union[Label, _Mapping]] = ..., probabilities: _Optional[_Iterable[_Union[ClassProbability, _Mapping]]] = ..., no_known_features: _Optional[bool] = ...) -> None: ...

class PredictRequest(_message.Message):
    __slots__ = ("features",)
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    features: Features
    def __init__(self, features: _Optional[_Union[Features, _Mapping]] = ...) -> None: ...

class PredictResponse(_message.Message):
    __slots__ = ("prediction", "model_version")
    PREDICTION_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    prediction: Prediction
    model_version: int
    def __init__(self, prediction: _Optional[_Union[Prediction, _Mapping]] = ..., model_version: _Optional[int] = ...) -> None: ...

class Matrix(_message.Message):
    __slots__ = ("columns", "values")
    COLUMNS_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    columns: int
    values: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, columns: _Optional[int] = ..., values: _Optional[_Iterable[float]] = ...) -> None: ...

class MatrixPredictions(_message.Message):
    __slots__ = ("classes", "probabilities", "values")
    CLASSES_FIELD_NUMBER: _ClassVar[int]
    PROBABILITIES_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    classes: _containers.RepeatedCompositeFieldContainer[Label]
    probabilities: _containers.RepeatedScalarFieldContainer[float]
    values: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, classes: _Optional[_Iterable[_Union[Label, _Mapping]]] = ..., probabilities: _Optional[_Iterable[float]] = ..., values: _Optional[_Iterable[float]] = ...) -> None: ...

class PredictBatchRequest(_message.Message):
    __slots__ = ("examples", "matrix")
    EXAMPLES_FIELD_NUMBER: _ClassVar[int]
    MATRIX_FIELD_NUMBER: _ClassVar[int]
    examples: _containers.RepeatedCompositeFieldContainer[Features]
    matrix: Matrix
    def __init__(self, examples: _Optional[_Iterable[_Union[Features, _Mapping]]] = ..., matrix: _Optional[_Union[Matrix, _Mapping]] = ...) -> None: ...

class PredictBatchResponse(_message.Message):
    __slots__ = ("predictions", "model_version", "matrix_predictions")
    PREDICTIONS_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    MATRIX_PREDICTIONS_FIELD_NUMBER: _ClassVar[int]
    predictions: _containers.RepeatedCompositeFieldContainer[Prediction]
    model_version: int
    matrix_predictions: MatrixPredictions
    def __init__(self, predictions: _Optional[_Iterable[_Union[Prediction, _Mapping]]] = ..., model_version: _Optional[int] = ..., matrix_predictions: _Optional[_Union[MatrixPredictions, _Mapping]] = ...) -> None: ...

class PredictStreamRequest(_message.Message):
    __slots__ = ("request_id", "examples", "matrix")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    EXAMPLES_FIELD_NUMBER: _ClassVar[int]
    MATRIX_FIELD_NUMBER: _ClassVar[int]
    request_id: int
    examples: _containers.RepeatedCompositeFieldContainer[Features]
    matrix: Matrix
    def __init__(self, request_id: _Optional[int] = ..., examples: _Optional[_Iterable[_Union[Features, _Mapping]]] = ..., matrix: _Optional[_Union[Matrix, _Mapping]] = ...) -> None: ...

class PredictStreamResponse(_message.Message):
    __slots__ = ("request_id", "predictions", "model_version", "matrix_predictions")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    PREDICTIONS_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    MATRIX_PREDICTIONS_FIELD_NUMBER: _ClassVar[int]
    request_id: int
    predictions: _containers.RepeatedCompositeFieldContainer[Prediction]
    model_version: int
    matrix_predictions: MatrixPredictions
    def __init__(self, request_id: _Optional[int] = ..., predictions: _Optional[_Iterable[_Union[Prediction, _Mapping]]] = ..., model_version: _Optional[int] = ..., matrix_predictions: _Optional[_Union[MatrixPredictions, _Mapping]] = ...) -> None: ...

class LearnRequest(_message.Message):
    __slots__ = ("sample",)
    SAMPLE_FIELD_NUMBER: _ClassVar[int]
    sample: Sample
    def __init__(self, sample: _Optional[_Union[Sample, _Mapping]] = ...) -> None: ...

class LearnResponse(_message.Message):
    __slots__ = ("samples_learned",)
    SAMPLES_LEARNED_FIELD_NUMBER: _ClassVar[int]
    samples_learned: int
    def __init__(self, samples_learned: _Optional[int] = ...) -> None: ...

class LearnStreamRequest(_message.Message):
    __slots__ = ("sample",)
    SAMPLE_FIELD_NUMBER: _ClassVar[int]
    sample: Sample
    def __init__(self, sample: _Optional[_Union[Sample, _Mapping]] = ...) -> None: ...

class LearnStreamResponse(_message.Message):
    __slots__ = ("samples_accepted", "samples_learned")
    SAMPLES_ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_LEARNED_FIELD_NUMBER: _ClassVar[int]
    samples_accepted: int
    samples_learned: int
    def __init__(self, samples_accepted: _Optional[int] = ..., samples_learned: _Optional[int] = ...) -> None: ...

class GetModelInfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetModelInfoResponse(_message.Message):
    __slots__ = ("task", "feature_names", "classes", "samples_learned", "model_version", "config_json")
    TASK_FIELD_NUMBER: _ClassVar[int]
    FEATURE_NAMES_FIELD_NUMBER: _ClassVar[int]
    CLASSES_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_LEARNED_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    CONFIG_JSON_FIELD_NUMBER: _ClassVar[int]
    task: Task
    feature_names: _containers.RepeatedScalarFieldContainer[str]
    classes: _containers.RepeatedCompositeFieldContainer[Label]
    samples_learned: int
    model_version: int
    config_json: str
    def __init__(self, task: _Optional[_Union[Task, str]] = ..., feature_names: _Optional[_Iterable[str]] = ..., classes: _Optional[_Iterable[_Union[Label, _Mapping]]] = ..., samples_learned: _Optional[int] = ..., model_version: _Optional[int] = ..., config_json: _Optional[str] = ...) -> None: ...

class LayerStats(_message.Message):
    __slots__ = ("layer", "width", "dead_fraction", "dormant_fraction", "tau_dormant_fraction", "effective_rank", "mean_abs_weight", "units_replaced")
    LAYER_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    DEAD_FRACTION_FIELD_NUMBER: _ClassVar[int]
    DORMANT_FRACTION_FIELD_NUMBER: _ClassVar[int]
    TAU_DORMANT_FRACTION_FIELD_NUMBER: _ClassVar[int]
    EFFECTIVE_RANK_FIELD_NUMBER: _ClassVar[int]
    MEAN_ABS_WEIGHT_FIELD_NUMBER: _ClassVar[int]
    UNITS_REPLACED_FIELD_NUMBER: _ClassVar[int]
    layer: int
    width: int
    dead_fraction: float
    dormant_fraction: float
    tau_dormant_fraction: float
    effective_rank: float
    mean_abs_weight: float
    units_replaced: int
    def __init__(self, layer: _Optional[int] = ..., width: _Optional[int] = ..., dead_fraction: _Optional[float] = ..., dormant_fraction: _Optional[float] = ..., tau_dormant_fraction: _Optional[float] = ..., effective_rank: _Optional[float] = ..., mean_abs_weight: _Optional[float] = ..., units_replaced: _Optional[int] = ...) -> None: ...

class GetPlasticityStatsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetPlasticityStatsResponse(_message.Message):
    __slots__ = ("layers", "gradient_norm", "mean_abs_weight", "prequential_score", "prequential_loss", "drifts_detected", "samples_learned")
    LAYERS_FIELD_NUMBER: _ClassVar[int]
    GRADIENT_NORM_FIELD_NUMBER: _ClassVar[int]
    MEAN_ABS_WEIGHT_FIELD_NUMBER: _ClassVar[int]
    PREQUENTIAL_SCORE_FIELD_NUMBER: _ClassVar[int]
    PREQUENTIAL_LOSS_FIELD_NUMBER: _ClassVar[int]
    DRIFTS_DETECTED_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_LEARNED_FIELD_NUMBER: _ClassVar[int]
    layers: _containers.RepeatedCompositeFieldContainer[LayerStats]
    gradient_norm: float
    mean_abs_weight: float
    prequential_score: float
    prequential_loss: float
    drifts_detected: int
    samples_learned: int
    def __init__(self, layers: _Optional[_Iterable[_Union[LayerStats, _Mapping]]] = ..., gradient_norm: _Optional[float] = ..., mean_abs_weight: _Optional[float] = ..., prequential_score: _Optional[float] = ..., prequential_loss: _Optional[float] = ..., drifts_detected: _Optional[int] = ..., samples_learned: _Optional[int] = ...) -> None: ...

class CheckpointRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class CheckpointResponse(_message.Message):
    __slots__ = ("path", "samples_learned")
    PATH_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_LEARNED_FIELD_NUMBER: _ClassVar[int]
    path: str
    samples_learned: int
    def __init__(self, path: _Optional[str] = ..., samples_learned: _Optional[int] = ...) -> None: ...

class CheckpointInfo(_message.Message):
    __slots__ = ("sequence", "path", "samples_learned", "offsets", "create_time")
    class OffsetsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_LEARNED_FIELD_NUMBER: _ClassVar[int]
    OFFSETS_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    sequence: int
    path: str
    samples_learned: int
    offsets: _containers.ScalarMap[str, int]
    create_time: _timestamp_pb2.Timestamp
    def __init__(self, sequence: _Optional[int] = ..., path: _Optional[str] = ..., samples_learned: _Optional[int] = ..., offsets: _Optional[_Mapping[str, int]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListCheckpointsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListCheckpointsResponse(_message.Message):
    __slots__ = ("checkpoints",)
    CHECKPOINTS_FIELD_NUMBER: _ClassVar[int]
    checkpoints: _containers.RepeatedCompositeFieldContainer[CheckpointInfo]
    def __init__(self, checkpoints: _Optional[_Iterable[_Union[CheckpointInfo, _Mapping]]] = ...) -> None: ...

class PauseLearningRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ResumeLearningRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class LearningState(_message.Message):
    __slots__ = ("paused", "samples_learned")
    PAUSED_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_LEARNED_FIELD_NUMBER: _ClassVar[int]
    paused: bool
    samples_learned: int
    def __init__(self, paused: _Optional[bool] = ..., samples_learned: _Optional[int] = ...) -> None: ...

class RollBackRequest(_message.Message):
    __slots__ = ("sequence",)
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    sequence: int
    def __init__(self, sequence: _Optional[int] = ...) -> None: ...

class ResetModelRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ModelReplaced(_message.Message):
    __slots__ = ("samples_learned", "checkpoint")
    SAMPLES_LEARNED_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    samples_learned: int
    checkpoint: CheckpointInfo
    def __init__(self, samples_learned: _Optional[int] = ..., checkpoint: _Optional[_Union[CheckpointInfo, _Mapping]] = ...) -> None: ...

class FreezeSubmodulesRequest(_message.Message):
    __slots__ = ("names",)
    NAMES_FIELD_NUMBER: _ClassVar[int]
    names: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, names: _Optional[_Iterable[str]] = ...) -> None: ...

class UnfreezeSubmodulesRequest(_message.Message):
    __slots__ = ("names",)
    NAMES_FIELD_NUMBER: _ClassVar[int]
    names: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, names: _Optional[_Iterable[str]] = ...) -> None: ...

class FrozenSubmodules(_message.Message):
    __slots__ = ("frozen", "samples_learned", "checkpoint")
    FROZEN_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_LEARNED_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    frozen: _containers.RepeatedScalarFieldContainer[str]
    samples_learned: int
    checkpoint: CheckpointInfo
    def __init__(self, frozen: _Optional[_Iterable[str]] = ..., samples_learned: _Optional[int] = ..., checkpoint: _Optional[_Union[CheckpointInfo, _Mapping]] = ...) -> None: ...
