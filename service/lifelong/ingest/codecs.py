"""Kafka record values to `Sample`s and back: JSON and protobuf (`lifelong.v1.Sample`).

Both formats go through `lifelong.samples` validation, so a record is learned exactly when the
same sample sent over gRPC would be. The JSON schema (docs/kafka.md)::

    {"features": {"name": number, ...}, "label": "text" | integer | number}
    {"dense": [number, ...], "label": ...}

>>> value = encode_json({"x": 0.5}, "spam")
>>> value
b'{"features":{"x":0.5},"label":"spam"}'
>>> decode_json(value, task="classification", max_features=10)
Sample(features={'x': 0.5}, dense=None, label='spam')
>>> decode_protobuf(encode_protobuf({"x": 0.5}, 2.5), task="regression", max_features=10)
Sample(features={'x': 0.5}, dense=None, label=2.5)

"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from google.protobuf.message import DecodeError
from lifelong.samples import InvalidSample, Label, Sample, Task, make_sample, sample_from_proto
from lifelong.v1 import lifelong_pb2

__all__ = [
    "CONTENT_TYPES",
    "Decoded",
    "Format",
    "decode_json",
    "decode_protobuf",
    "decode_records",
    "decoder_for",
    "encode_json",
    "encode_protobuf",
]

Format = Literal["json", "protobuf"]
Decoder = Callable[..., Sample]

# Values of the `content-type` record header, which overrides the configured format per record.
CONTENT_TYPES: dict[str, Format] = {
    "application/json": "json",
    "application/x-protobuf": "protobuf",
}


def _parse_int(text: str) -> int | float:
    # Python's JSON integers are unbounded; the wire's are int64 (protobuf) or doubles. Beyond
    # int64 an integer is read as a double, which validation then judges like any number.
    value = int(text)
    return value if -(2**63) <= value < 2**63 else float(text)


def decode_json(value: bytes | None, *, task: Task, max_features: int) -> Sample:
    """A JSON record value as a validated `Sample`. `NaN` and `Infinity` literals parse, then
    fail validation as `non_finite`."""
    if value is None:
        raise InvalidSample("undecodable", "the record has no value")
    try:
        doc = json.loads(value, parse_int=_parse_int)
    except ValueError as e:  # JSONDecodeError, UnicodeDecodeError, a 5000-digit integer
        raise InvalidSample("undecodable", f"not JSON: {e}") from None
    except RecursionError:
        raise InvalidSample("undecodable", "JSON nested too deeply") from None
    if not isinstance(doc, dict):
        raise InvalidSample("invalid_schema", f"expected a JSON object, got {type(doc).__name__}")
    dense = doc.get("dense")
    if dense is not None and not isinstance(dense, list):  # a JSON number or true has no len()
        raise InvalidSample("invalid_schema", '"dense" must be an array of numbers')
    return make_sample(
        features=doc.get("features"),
        dense=dense,
        label=doc.get("label"),
        task=task,
        max_features=max_features,
    )


def decode_protobuf(value: bytes | None, *, task: Task, max_features: int) -> Sample:
    """A serialized `lifelong.v1.Sample` as a validated `Sample`."""
    if value is None:
        raise InvalidSample("undecodable", "the record has no value")
    try:
        msg = lifelong_pb2.Sample.FromString(value)
    except DecodeError as e:
        raise InvalidSample("undecodable", f"not a lifelong.v1.Sample: {e}") from None
    return sample_from_proto(msg, task=task, max_features=max_features)


DECODERS: dict[Format, Decoder] = {"json": decode_json, "protobuf": decode_protobuf}


def _unknown_content_type(content_type: str) -> Decoder:
    def reject(value: bytes | None, *, task: Task, max_features: int) -> Sample:
        raise InvalidSample(
            "undecodable",
            f"unknown content-type {content_type!r}; use one of {', '.join(CONTENT_TYPES)}",
        )

    return reject


def decoder_for(headers: Sequence[tuple[str, bytes]], default: Format) -> Decoder:
    """The decoder a record's headers ask for (`content-type`), else the default format's.

    >>> decoder_for([("content-type", b"application/x-protobuf")], "json") is decode_protobuf
    True
    >>> decoder_for([], "json") is decode_json
    True

    """
    for key, raw in headers:
        if key.lower() == "content-type":
            content_type = (raw or b"").decode("latin-1").partition(";")[0].strip().lower()
            fmt = CONTENT_TYPES.get(content_type)
            return DECODERS[fmt] if fmt else _unknown_content_type(content_type)
    return DECODERS[default]


@dataclass(slots=True)
class Decoded:
    """A poll's records, decoded: `samples[i]` came from `records[i]`; `rejected` pairs each
    invalid record with the reason."""

    samples: list[Sample] = field(default_factory=list)
    records: list[Any] = field(default_factory=list)
    rejected: list[tuple[Any, InvalidSample]] = field(default_factory=list)


def decode_records(
    records: Iterable[Any], *, default: Format, task: Task, max_features: int, max_bytes: int
) -> Decoded:
    """Decode kafka-python `ConsumerRecord`s in one pass; a bad record never stops the others."""
    out = Decoded()
    samples, kept, rejected = out.samples, out.records, out.rejected
    default_decoder = DECODERS[default]
    for record in records:
        value = record.value
        try:
            if value is not None and len(value) > max_bytes:
                raise InvalidSample(
                    "oversized", f"{len(value)} bytes, more than max_request_bytes={max_bytes}"
                )
            decode = decoder_for(record.headers, default) if record.headers else default_decoder
            samples.append(decode(value, task=task, max_features=max_features))
        except InvalidSample as e:
            rejected.append((record, e))
        else:
            kept.append(record)
    return out


def _plain_label(label: Label) -> Label:
    # Same label on either wire format: bool (river's SEA) is sent as an integer.
    return int(label) if isinstance(label, bool) else label


def encode_json(features: Mapping[str, float] | Sequence[float], label: Label) -> bytes:
    """A JSON record value: named features for a mapping, `dense` for a sequence."""
    key = "features" if isinstance(features, Mapping) else "dense"
    doc = {key: dict(features) if key == "features" else list(features)}
    doc["label"] = _plain_label(label)
    return json.dumps(doc, separators=(",", ":"), allow_nan=False).encode()


def encode_protobuf(features: Mapping[str, float] | Sequence[float], label: Label) -> bytes:
    """A serialized `lifelong.v1.Sample`: named features for a mapping, dense for a sequence."""
    msg = lifelong_pb2.Sample()
    if isinstance(features, Mapping):
        msg.features.named.update(features)
    else:
        msg.features.dense.extend(features)
    label = _plain_label(label)
    if isinstance(label, str):
        msg.label.text = label
    elif isinstance(label, int):
        msg.label.integer = label
    else:
        msg.label.number = label
    return msg.SerializeToString()
