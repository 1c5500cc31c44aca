import json

import numpy as np
import pytest
from kafka.consumer.fetcher import ConsumerRecord
from lifelong.ingest.codecs import (
    decode_json,
    decode_protobuf,
    decode_records,
    decoder_for,
    encode_json,
    encode_protobuf,
)
from lifelong.samples import InvalidSample
from lifelong.v1 import lifelong_pb2


def record(value, offset=0, headers=(), key=None):
    return ConsumerRecord(
        "samples", 0, -1, offset, 0, 0, key, value, list(headers), None, -1, -1, -1
    )


def json_decode(value, task="classification", max_features=4):
    return decode_json(value, task=task, max_features=max_features)


def reason(decode, value, **kwargs):
    with pytest.raises(InvalidSample) as info:
        decode(value, **kwargs)
    return info.value.reason


def test_json_named_and_dense():
    sample = json_decode(b'{"features": {"a": 1, "b": -2.5}, "label": "x"}')
    assert sample.features == {"a": 1.0, "b": -2.5}
    assert sample.dense is None
    assert sample.label == "x"
    sample = json_decode(b'{"dense": [1, 2.5], "label": 3}')
    np.testing.assert_array_equal(sample.dense, np.array([1, 2.5], dtype=np.float32))
    assert sample.label == 3


def test_json_regression_label():
    assert json_decode(b'{"features": {"a": 1}, "label": 2}', task="regression").label == 2.0


def test_json_ignores_unknown_keys():
    assert json_decode(b'{"features": {"a": 1}, "label": "x", "id": 7}').label == "x"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (b"{not json", "undecodable"),
        (b"\xff\xfe\x00", "undecodable"),
        (None, "undecodable"),
        (b"[" * 100_000, "undecodable"),
        (b'{"features": {"a": 1' + b"0" * 5000 + b"}, 'label': 1}", "undecodable"),
        (b"[1, 2]", "invalid_schema"),
        (b'"text"', "invalid_schema"),
        (b'{"features": [1, 2], "label": "x"}', "invalid_schema"),
        (b'{"dense": {"a": 1}, "label": "x"}', "invalid_schema"),
        (b'{"dense": 5, "label": "x"}', "invalid_schema"),
        (b'{"features": 5, "label": "x"}', "invalid_schema"),
        (b'{"features": {"a": "1"}, "label": "x"}', "invalid_schema"),
        (b'{"features": {"a": 1}}', "invalid_schema"),
        (b'{"features": {"a": 1}, "dense": [1], "label": "x"}', "invalid_schema"),
        (b'{"features": {}, "label": "x"}', "empty_features"),
        (b'{"label": "x"}', "empty_features"),
        (b'{"features": {"a": NaN}, "label": "x"}', "non_finite"),
        (b'{"features": {"a": Infinity}, "label": "x"}', "non_finite"),
        (b'{"dense": [1, -Infinity], "label": "x"}', "non_finite"),
        (b'{"features": {"a": 1e999}, "label": "x"}', "non_finite"),
        (b'{"features": {"a": 1' + b"0" * 400 + b"}, " + b'"label": "x"}', "non_finite"),
        (b'{"features": {"a": 1}, "label": 0.5}', "wrong_label_type"),
        (b'{"features": {"a": 1}, "label": [1]}', "wrong_label_type"),
        (b'{"features": {"a": 1}, "label": 1' + b"0" * 30 + b"}", "wrong_label_type"),
        (b'{"features": {"a": 1, "b": 2, "c": 3, "d": 4, "e": 5}, "label": 1}',
         "too_many_features"),
    ],
)  # fmt: skip
def test_json_rejections(value, expected):
    assert reason(json_decode, value) == expected


def test_json_regression_rejections():
    assert reason(json_decode, b'{"features": {"a": 1}, "label": "x"}', task="regression") == (
        "wrong_label_type"
    )
    value = b'{"features": {"a": 1}, "label": NaN}'
    assert reason(json_decode, value, task="regression") == "non_finite"
    huge = b'{"features": {"a": 1}, "label": 1' + b"0" * 400 + b"}"
    assert reason(json_decode, huge, task="regression") == "non_finite"


def test_protobuf_round_trip():
    sample = decode_protobuf(
        encode_protobuf({"a": 1.0}, "x"), task="classification", max_features=4
    )
    assert (sample.features, sample.label) == ({"a": 1.0}, "x")
    sample = decode_protobuf(encode_protobuf([1.0, 2.0], 7), task="classification", max_features=4)
    np.testing.assert_array_equal(sample.dense, [1.0, 2.0])
    assert sample.label == 7


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (b"\xff\xff\xff", "undecodable"),
        (b'{"features": {"a": 1}, "label": 1}', "undecodable"),
        (None, "undecodable"),
        (b"", "invalid_schema"),  # no label
        (lifelong_pb2.Sample(label={"text": "x"}).SerializeToString(), "empty_features"),
        (lifelong_pb2.Sample(features={"named": {"a": 1}}).SerializeToString(), "invalid_schema"),
        (encode_protobuf({"a": float("nan")}, "x"), "non_finite"),
        (encode_protobuf({"a": 1.0}, 0.5), "wrong_label_type"),
    ],
)
def test_protobuf_rejections(value, expected):
    kwargs = {"task": "classification", "max_features": 4}
    assert reason(decode_protobuf, value, **kwargs) == expected


def test_json_and_protobuf_encode_the_same_sample():
    for features, label in [({"a": 0.25}, True), ([0.5, 1.5], "y"), ({"b": 1.0}, 3)]:
        kwargs = {"task": "classification", "max_features": 4}
        from_json = decode_json(encode_json(features, label), **kwargs)
        from_proto = decode_protobuf(encode_protobuf(features, label), **kwargs)
        assert from_json.features == from_proto.features
        assert from_json.label == from_proto.label
        assert type(from_json.label) is type(from_proto.label)
    assert json.loads(encode_json({"a": 1.0}, True))["label"] == 1


def test_content_type_header_selects_the_decoder():
    assert decoder_for([("content-type", b"application/json")], "protobuf") is decode_json
    assert decoder_for([("Content-Type", b"application/x-protobuf; v=1")], "json") is (
        decode_protobuf
    )
    assert decoder_for([("trace", b"1")], "protobuf") is decode_protobuf
    unknown = decoder_for([("content-type", b"text/csv")], "json")
    assert reason(unknown, b"a,b", task="classification", max_features=4) == "undecodable"


def test_decode_records_keeps_order_and_pairs_rejects():
    records = [
        record(encode_json({"a": 1.0}, "x"), 0),
        record(b"nope", 1),
        record(encode_protobuf({"b": 2.0}, "y"), 2, [("content-type", b"application/x-protobuf")]),
        record(encode_json({"c": 3.0}, "z"), 3),
        record(b"x" * 101, 4),
    ]
    decoded = decode_records(
        records, default="json", task="classification", max_features=4, max_bytes=100
    )
    assert [s.label for s in decoded.samples] == ["x", "y", "z"]
    assert [r.offset for r in decoded.records] == [0, 2, 3]
    assert [(r.offset, e.reason) for r, e in decoded.rejected] == [
        (1, "undecodable"),
        (4, "oversized"),
    ]
