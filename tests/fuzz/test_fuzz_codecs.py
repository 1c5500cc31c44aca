"""Property-based tests of the Kafka codecs (`lifelong.ingest.codecs`) on generated hostile
records: whatever a producer writes, decoding either gives a sample the learner can take (finite
float32 values, a label of the task's type, text that is Unicode) or raises `InvalidSample` with
a reason among `REASONS`; nothing else escapes. The bulk decoder (`decode_poll`) agrees with the
per-record path, record by record: the same samples, the same rejections with the same reasons.
"""

from __future__ import annotations

import numpy as np
import pytest
from confluent_kafka import Message
from fuzz.hostile import (
    JSON_HEADER,
    PROTOBUF_HEADER,
    dumps,
    json_values_bytes,
    names,
    numbers,
    proto_values,
    record_parts,
)
from fuzz.rules import assert_learnable, is_text
from hypothesis import example, given
from hypothesis import strategies as st
from lifelong.ingest.codecs import (
    decode_json,
    decode_poll,
    decode_protobuf,
    decode_record,
    decode_records,
    encode_json,
)
from lifelong.samples import REASONS, InvalidSample, Rows, Sample

tasks = st.sampled_from(["classification", "regression"])
max_features = st.integers(1, 8)


def record(value, headers=(), offset=0) -> Message:
    # As the consumer hands them over: no headers is None, not [].
    return Message(
        topic="samples", partition=0, offset=offset, value=value, headers=list(headers) or None
    )


def outcome(decode, *args, task: str, max_features: int, **kwargs) -> Sample | str:
    """The sample, or the reason of the refusal; any other exception fails the test."""
    try:
        sample = decode(*args, task=task, max_features=max_features, **kwargs)
    except InvalidSample as e:
        assert e.reason in REASONS, e.reason
        assert e.message and is_text(e.message), repr(e.message)  # a dead-letter header
        return e.reason
    assert_learnable(sample, task=task, max_features=max_features)
    return sample


@given(value=json_values_bytes(), task=tasks, max_features=max_features)
@example(value=b'{"features": {"a": 1}, "label": "\\ud800"}', task="classification", max_features=4)
@example(value=b'{"features": {"\\udfff": 1}, "label": 1}', task="regression", max_features=4)
@example(value=b"[" * 100_000, task="classification", max_features=4)
@example(value=b'{"dense": [1' + b"0" * 5000 + b'], "label": 1}', task="regression", max_features=4)
def test_decode_json_gives_a_learnable_sample_or_a_reason(value, task, max_features):
    outcome(decode_json, value, task=task, max_features=max_features)


@given(value=proto_values(), task=tasks, max_features=max_features)
@example(value=b"\x0a\x03\x0a\x01\xff", task="classification", max_features=4)  # bad UTF-8 name
def test_decode_protobuf_gives_a_learnable_sample_or_a_reason(value, task, max_features):
    outcome(decode_protobuf, value, task=task, max_features=max_features)


@given(parts=record_parts(), task=tasks, max_features=max_features, max_bytes=st.integers(0, 300))
def test_decode_record_gives_a_learnable_sample_or_a_reason(parts, task, max_features, max_bytes):
    value, headers = parts
    got = outcome(
        decode_record,
        record(value, headers),
        default="json",
        task=task,
        max_features=max_features,
        max_bytes=max_bytes,
    )
    if value is not None and len(value) > max_bytes:
        assert got == "oversized"


# -- decode_poll against the per-record path ---------------------------------------------------

NAMES = ("a", "b", "c")


@st.composite
def poll_values(draw) -> tuple[bytes | None, list]:
    """Records of the model's shape (named in any order, or dense of its width), with values and
    labels of every kind; or any hostile record."""
    kind = draw(st.integers(0, 3))
    if kind == 3:
        return draw(record_parts())
    keys = draw(st.permutations(NAMES))
    values = draw(st.lists(st.one_of(numbers, st.floats(-2, 2)), min_size=3, max_size=3))
    if draw(st.integers(0, 6)) == 0:  # a value of another type
        values[draw(st.integers(0, 2))] = draw(st.sampled_from([True, None, "1", [1.0], {}]))
    if draw(st.integers(0, 6)) == 0:  # a name missing, another or one more
        keys = [*keys[:2], draw(names)] if draw(st.booleans()) else [*keys, draw(names)]
        values = [*values, 1.0][: len(keys)]
    label = draw(
        st.one_of(st.sampled_from(["p", "q", 0, 1, True, 2.5]), numbers, st.text(max_size=3))
    )
    doc = (
        {"dense": values, "label": label}
        if kind == 0
        else {"features": dict(zip(keys, values, strict=True)), "label": label}
    )
    if draw(st.integers(0, 8)) == 0:
        del doc["label"]
    headers = draw(st.sampled_from([[], [], JSON_HEADER, PROTOBUF_HEADER, [("trace", b"1")]]))
    return dumps(doc), headers


def expand(items: list) -> list[Sample]:
    out: list[Sample] = []
    for item in items:
        out.extend(item.samples() if type(item) is Rows else [item])
    return out


def assert_same(a: Sample, b: Sample) -> None:
    assert type(a.label) is type(b.label) and (a.label == b.label or a.label != a.label), (a, b)
    assert a.features == b.features
    assert (a.dense is None) == (b.dense is None)
    if a.dense is not None:
        assert a.dense.dtype == b.dense.dtype
        np.testing.assert_array_equal(a.dense, b.dense)


@given(
    polled=st.lists(poll_values(), max_size=40),
    task=tasks,
    names=st.sampled_from([NAMES, ("c", "a", "b"), ("a", "b"), ()]),
    default=st.sampled_from(["json", "json", "protobuf"]),
    max_features=st.integers(1, 5),
    max_bytes=st.sampled_from([60, 1000]),
)
def test_decode_poll_agrees_with_the_per_record_path(
    polled, task, names, default, max_features, max_bytes
):
    records = [record(value, headers, offset) for offset, (value, headers) in enumerate(polled)]
    kwargs = dict(default=default, task=task, max_features=max_features, max_bytes=max_bytes)
    reference = decode_records(records, **kwargs)
    poll = decode_poll(records, names=names, **kwargs)

    got = expand(poll.items)
    assert len(got) == len(poll.records) == len(reference.samples)
    assert [r.offset() for r in poll.records] == [r.offset() for r in reference.records]
    for a, b in zip(got, reference.samples, strict=True):
        assert_same(a, b)
        assert_learnable(a, task=task, max_features=max_features)
    assert [(r.offset(), e.reason, e.message) for r, e in poll.rejected] == [
        (r.offset(), e.reason, e.message) for r, e in reference.rejected
    ]
    assert all(e.reason in REASONS for _, e in poll.rejected)
    assert len(got) + len(poll.rejected) == len(records)  # every record once


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_a_poll_of_the_models_shape_is_decoded_in_bulk(task):
    """The property above covers the bulk path only if it is taken: it is, for the common poll."""
    records = [record(encode_json({"b": 0.5, "a": 1.0, "c": -2.0}, 1)) for _ in range(5)]
    kwargs = dict(default="json", task=task, max_features=4, max_bytes=1000)
    assert [type(item) for item in decode_poll(records, names=NAMES, **kwargs).items] == [Rows]


@pytest.mark.parametrize(
    "value",
    [
        b'{"features": {"a": 1, "b": 2, "c": 3}, "label": "\\ud800"}',
        b'{"features": {"a": 1, "b": 2, "c": 3}, "label": "x\\udfffy"}',
        b'{"features": {"a": 1, "\\udc00": 2}, "label": "p"}',
        b'{"features": {"a": 1, "b": 2, "\\udbff": 3}, "label": "p"}',
    ],
)
def test_a_name_or_label_with_a_lone_surrogate_is_refused(value):
    """Found by the property above: JSON may escape a lone surrogate, Python's json keeps it, and
    the model learned it as a class or feature name, which no gRPC answer can then carry (protobuf
    strings are UTF-8): GetModelInfo and every Predict listing the classes would fail."""
    kwargs = dict(default="json", task="classification", max_features=4, max_bytes=1000)
    for model_names in [(), NAMES]:
        poll = decode_poll([record(value)], names=model_names, **kwargs)
        assert [(e.reason, "lone surrogate" in e.message) for _, e in poll.rejected] == [
            ("invalid_schema", True)
        ]
    # A pair that makes one character is text, and learned.
    ok = b'{"features": {"a": 1, "b": 2, "c": 3}, "label": "\\ud83d\\ude00"}'
    assert decode_poll([record(ok)], names=(), **kwargs).items[0].label == "\U0001f600"
