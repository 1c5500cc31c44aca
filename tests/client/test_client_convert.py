import json

import numpy as np
import pytest
from lifelong.client import LayerStats, Prediction
from lifelong.client.convert import (
    features_from_proto,
    features_to_proto,
    label_from_proto,
    label_to_proto,
    model_info_from_proto,
    prediction_from_proto,
    sample_to_proto,
    stats_from_proto,
)
from lifelong.v1 import lifelong_pb2 as pb


def test_mapping_becomes_named_features_and_round_trips():
    proto = features_to_proto({"x1": 0.5, "x2": -2})
    assert dict(proto.named) == {"x1": 0.5, "x2": -2.0}
    assert list(proto.dense) == []
    assert features_from_proto(proto) == {"x1": 0.5, "x2": -2.0}


@pytest.mark.parametrize(
    "values",
    [[0.5, -1.0, 3.0], (0.5, -1.0, 3), np.array([0.5, -1.0, 3.0], dtype=np.float32), range(3)],
    ids=["list", "tuple", "ndarray", "range"],
)
def test_sequences_and_arrays_become_dense_features_and_round_trip(values):
    proto = features_to_proto(values)
    assert dict(proto.named) == {}
    assert features_from_proto(proto) == [float(v) for v in values]


def test_numpy_named_values_are_accepted():
    proto = features_to_proto({"x1": np.float64(0.25), "x2": np.int64(3)})
    assert features_from_proto(proto) == {"x1": 0.25, "x2": 3.0}


@pytest.mark.parametrize(
    ("features", "message"),
    [
        ({"x1": 1.0, "x2": "high"}, "feature 'x2' is 'high', not a number"),
        ({1: 1.0}, "feature name 1 is not a str"),
        ([1.0, None], "feature 1 is None, not a number"),
        (np.zeros((2, 2)), "feature 0 is array"),
        ("1.0", "not str"),
        (b"\x01\x02", "not bytes"),
    ],
)
def test_bad_features_raise_type_error_naming_the_culprit(features, message):
    with pytest.raises(TypeError, match=message.replace("(", r"\(")):
        features_to_proto(features)


def test_features_given_both_ways_are_rejected_when_decoding():
    with pytest.raises(ValueError, match="both"):
        features_from_proto(pb.Features(named={"x1": 1.0}, dense=[1.0]))


@pytest.mark.parametrize(
    ("label", "field", "decoded"),
    [
        ("spam", "text", "spam"),
        ("", "text", ""),
        (7, "integer", 7),
        (-(2**63), "integer", -(2**63)),
        (True, "boolean", True),
        (np.bool_(False), "boolean", False),
        (np.int64(4), "integer", 4),
        (2.5, "number", 2.5),
        (np.float32(0.5), "number", 0.5),
    ],
)
def test_labels_round_trip_through_the_right_field(label, field, decoded):
    proto = label_to_proto(label)
    assert proto.WhichOneof("value") == field
    back = label_from_proto(proto)
    assert back == decoded
    assert type(back) is type(decoded)


@pytest.mark.parametrize("label", [None, [1], {"a": 1}, b"spam"])
def test_unsupported_label_types_raise_type_error(label):
    with pytest.raises(TypeError, match="a label is a str, int, bool or float"):
        label_to_proto(label)


def test_integer_label_outside_int64_is_rejected():
    with pytest.raises(ValueError):
        label_to_proto(2**63)


def test_unset_label_cannot_be_decoded():
    with pytest.raises(ValueError, match="no value"):
        label_from_proto(pb.Label())


def test_sample_holds_features_and_label():
    sample = sample_to_proto([1.0, 2.0], "spam")
    assert list(sample.features.dense) == [1.0, 2.0]
    assert sample.label.text == "spam"
    assert pb.Sample.FromString(sample.SerializeToString()) == sample


def test_prediction_probabilities_are_ordered_most_probable_first():
    proto = pb.Prediction(
        label=pb.Label(integer=2),
        probabilities=[
            pb.ClassProbability(label=pb.Label(integer=1), probability=0.2),
            pb.ClassProbability(label=pb.Label(integer=2), probability=0.7),
            pb.ClassProbability(label=pb.Label(integer=3), probability=0.1),
        ],
    )
    prediction = prediction_from_proto(proto, model_version=9)
    assert prediction == Prediction(
        label=2, probabilities={2: 0.7, 1: 0.2, 3: 0.1}, model_version=9
    )
    assert list(prediction.probabilities) == [2, 1, 3]


def test_regression_prediction_has_a_number_and_no_probabilities():
    prediction = prediction_from_proto(pb.Prediction(label=pb.Label(number=3.25)), model_version=1)
    assert prediction == Prediction(label=3.25, probabilities={}, model_version=1)


def test_model_info_decodes_task_classes_and_config():
    info = model_info_from_proto(
        pb.GetModelInfoResponse(
            task=pb.TASK_REGRESSION,
            feature_names=["a", "b"],
            samples_learned=5,
            model_version=4,
            config_json=json.dumps({"hidden": [8]}),
        )
    )
    assert (info.task, info.feature_names, info.classes) == ("regression", ("a", "b"), ())
    assert (info.samples_learned, info.model_version, info.config) == (5, 4, {"hidden": [8]})
    assert model_info_from_proto(pb.GetModelInfoResponse()).task == "unspecified"
    assert model_info_from_proto(pb.GetModelInfoResponse()).config == {}


def test_stats_keep_layer_order_and_values():
    stats = stats_from_proto(
        pb.GetPlasticityStatsResponse(
            layers=[pb.LayerStats(layer=0, width=4, effective_rank=2.5, units_replaced=1)],
            drifts_detected=2,
        )
    )
    assert stats.layers == (
        LayerStats(
            layer=0,
            width=4,
            dead_fraction=0.0,
            dormant_fraction=0.0,
            tau_dormant_fraction=0.0,
            effective_rank=2.5,
            mean_abs_weight=0.0,
            units_replaced=1,
        ),
    )
    assert stats.drifts_detected == 2
