import gc
import json

import numpy as np
import pytest
from confluent_kafka import Message
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
    # As the consumer hands them over: no headers is None, not [].
    return Message(
        topic="samples", partition=0, offset=offset, key=key, value=value,
        headers=list(headers) or None,
    )  # fmt: skip


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
    assert [r.offset() for r in decoded.records] == [0, 2, 3]
    assert [(r.offset(), e.reason) for r, e in decoded.rejected] == [
        (1, "undecodable"),
        (4, "oversized"),
    ]


def _poll_stream(seed: int = 0) -> list:
    """JSON records of the common shape, with every kind of misfit in between."""
    import random

    rng = random.Random(seed)
    out = []
    misfits = [
        b'{"features": {"a": NaN, "b": 1, "c": 2}, "label": "p"}',
        b'{"features": {"a": true, "b": 1, "c": 2}, "label": "p"}',
        b'{"features": {"a": "1.5", "b": 1, "c": 2}, "label": "p"}',
        b'{"features": {"a": null, "b": 1, "c": 2}, "label": "p"}',
        b'{"features": {"a": 1e39, "b": 1, "c": 2}, "label": "p"}',
        b'{"features": {"a": 1e400, "b": 1, "c": 2}, "label": "p"}',
        b'{"features": {"a": 1' + b"0" * 400 + b', "b": 1, "c": 2}, "label": "p"}',
        b'{"features": {"a": 1, "b": 1, "c": 2}}',
        b'{"features": {"a": 1, "b": 1, "c": 2}, "label": 0.5}',
        b'{"features": {"a": 1, "b": 1, "c": 2}, "label": 99999999999999999999}',
        b'{"features": {"a": 1, "b": 1, "c": 2}, "label": [1]}',
        b'{"features": {"a": 1, "b": 1, "c": 2}, "dense": [1, 2, 3], "label": "p"}',
        b'{"features": {"a": 1, "b": 1, "c": 2}, "dense": [], "label": "p"}',
        b'{"features": {}, "dense": [1, 2, 3], "label": "q"}',
        b'{"dense": [1, 2], "label": "q"}',
        b'{"dense": [1, 2, 3e38, 4], "label": "q"}',
        b'{"dense": [1, true, 3], "label": "q"}',
        b'{"dense": [1, [2], 3], "label": "q"}',
        b'{"dense": [0.1, 0.2, 0.30000001], "label": "q"}',
        b'{"dense": [1, 2, 3.4028235e38], "label": "q"}',
        b'{"features": {"a": 1, "b": 2}, "label": "q"}',
        b'{"features": {"a": 1, "b": 2, "c": 3, "z": 4}, "label": "q"}',
        b'{"features": {"a": 1, "b": 2, "z": 4}, "label": "q"}',
        b'{"features": [1, 2, 3], "label": "q"}',
        b'{"features": {"a": 1, "b": 2, "c": 3}, "label": true}',
        b'{"features": {"a": 1, "b": 2, "c": 3}, "label": 1}',
        b"[1, 2, 3]",
        b"not json",
        b"\xff\xfe",
        None,
        b'{"features": {"a": 1, "b": 2, "c": 3}, "label": "' + b"x" * 400 + b'"}',
    ]
    for t in range(1500):
        x = {name: rng.uniform(-1, 1) for name in rng.sample("abc", 3)}
        if rng.random() < 0.2:
            value = encode_json([x["a"], x["b"], x["c"]], rng.choice("pqr"))
        else:
            value = encode_json(x, rng.choice("pq" if t < 700 else "pqr"))
        headers = [("content-type", b"application/json")] if rng.random() < 0.5 else []
        if rng.random() < 0.05:
            value = rng.choice(misfits)
        elif rng.random() < 0.01:
            value, headers = encode_protobuf(x, "p"), [("content-type", b"application/x-protobuf")]
        if t % 97 == 0:  # a run of equal headers broken by an unknown content type
            headers = [("Content-Type", b"text/csv")]
        out.append(record(value, t, headers))
    return out


def _expand(items):
    from lifelong.samples import Rows

    for item in items:
        yield from (item.samples() if isinstance(item, Rows) else [item])


def _same_sample(a, b):
    assert a.label == b.label and type(a.label) is type(b.label)
    assert a.features == b.features
    if a.dense is None or b.dense is None:
        assert a.dense is None and b.dense is None
    else:
        assert a.dense.dtype == b.dense.dtype
        np.testing.assert_array_equal(a.dense, b.dense)


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_decode_poll_decodes_what_decode_records_does(task):
    from lifelong.ingest.codecs import decode_poll

    records = _poll_stream()
    kwargs = dict(default="json", task=task, max_features=4, max_bytes=300)
    reference = decode_records(records, **kwargs)
    for names in [("a", "b", "c"), ("c", "a", "b"), ("a", "b"), ()]:
        poll = decode_poll(records, names=names, **kwargs)
        if names == ("a", "b", "c"):
            assert any(type(item).__name__ == "Rows" for item in poll.items)
        got = list(_expand(poll.items))
        assert len(got) == len(reference.samples)
        for a, b in zip(got, reference.samples, strict=True):
            _same_sample(a, b)
        assert [(r.offset(), e.reason, e.message) for r, e in poll.rejected] == [
            (r.offset(), e.reason, e.message) for r, e in reference.rejected
        ]


@pytest.mark.parametrize("names", [("a", "b", "c"), ()])
def test_a_decoded_poll_with_rejects_is_freed_as_soon_as_it_is_dropped(names):
    """A rejected record's error keeps no traceback: it would hold the decoding frame, so the
    whole poll, in a reference cycle that only the cyclic collector frees, long after
    (issue 16, finding 7: the service's memory grew by such polls)."""
    from lifelong.ingest.codecs import decode_poll

    records = _poll_stream()
    gc.collect()
    gc.disable()
    try:
        poll = decode_poll(
            records, names=names, default="json", task="classification", max_features=4,
            max_bytes=300,
        )  # fmt: skip
        assert poll.rejected
        del poll
        assert gc.collect() == 0  # nothing was left for it
    finally:
        gc.enable()


def test_a_poll_decoded_in_bulk_learns_what_sample_by_sample_learning_does():
    """Through Rows (model's features in any order, dense of its width), records that fall back
    in between, a label of another type rejected within Rows, and names changing mid-poll."""
    import random

    from lifelong.host import ModelHost
    from lifelong.ingest.codecs import decode_poll
    from testsupport import small_learner

    records = _poll_stream(1)
    # "d" appears mid-stream: Rows decoded for ("a", "b", "c") must fall back after it.
    records.insert(900, record(encode_json({"a": 1, "b": 2, "c": 3, "d": 4}, "p"), 10_000))
    records.insert(200, record(b'{"features": {"a": 1, "b": 2, "c": 3}, "label": true}', 10_001))
    records.insert(300, record(b'{"features": {"a": 1, "b": 2, "c": 3}, "label": 1}', 10_002))
    kwargs = dict(default="json", task="classification", max_features=4, max_bytes=300)

    reference = small_learner(seed=3)
    ref_host, ref_rejected = ModelHost(reference), []
    bulk = small_learner(seed=3)
    host, rejected = ModelHost(bulk), []
    rng, start = random.Random(0), 0
    while start < len(records):
        end = start + rng.randint(1, 300)
        poll = records[start:end]
        decoded = decode_records(poll, **kwargs)
        ref_rejected.extend((r.offset(), e.reason, e.message) for r, e in decoded.rejected)
        ref_host.learn(
            decoded.samples,
            source="kafka",
            on_rejected=lambda k, e, d=decoded: ref_rejected.append(
                (d.records[k].offset(), e.reason, e.message)
            ),
        )
        fast = decode_poll(poll, names=host.feature_names, **kwargs)
        rejected.extend((r.offset(), e.reason, e.message) for r, e in fast.rejected)
        host.learn(
            fast.items,
            source="kafka",
            on_rejected=lambda k, e, p=fast: rejected.append(
                (p.records[k].offset(), e.reason, e.message)
            ),
        )
        start = end
    assert rejected == ref_rejected
    assert any(r[1] == "wrong_label_type" and r[0] == 10_002 for r in rejected)
    assert bulk.samples_learned == reference.samples_learned > 1000
    assert bulk.to_bytes() == reference.to_bytes()
