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
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import chain
from operator import itemgetter
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import orjson
from google.protobuf.message import DecodeError
from lifelong.samples import (
    FLOAT32_MAX,
    InvalidSample,
    Label,
    Rows,
    Sample,
    Task,
    make_sample,
    sample_from_proto,
)
from lifelong.v1 import lifelong_pb2

if TYPE_CHECKING:  # a type only: decoding works on any object with Message's methods
    from confluent_kafka import Message

__all__ = [
    "CONTENT_TYPES",
    "Decoded",
    "Format",
    "Poll",
    "decode_json",
    "decode_poll",
    "decode_protobuf",
    "decode_record",
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
    if b"\\u" in value:  # only an escape can make a lone surrogate
        _check_text(doc)
    return make_sample(
        features=doc.get("features"),
        dense=dense,
        label=doc.get("label"),
        task=task,
        max_features=max_features,
    )


def _check_text(doc: dict) -> None:
    # JSON can escape a lone surrogate ("\ud800"), which Python keeps in a str but UTF-8 cannot
    # encode: a feature or class named so would fail every gRPC answer that carries its name
    # (GetModelInfo, Predict's classes). orjson and protobuf refuse such strings themselves.
    features, label = doc.get("features"), doc.get("label")
    texts = [*features] if isinstance(features, dict) else []
    if isinstance(label, str):
        texts.append(label)
    for text in texts:
        try:
            text.encode()
        except UnicodeEncodeError:
            raise InvalidSample(
                "invalid_schema",
                f"{text!r} is not Unicode text (it has a lone surrogate escape); feature names "
                "and labels must be valid Unicode",
            ) from None


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
    records: list[Message] = field(default_factory=list)
    rejected: list[tuple[Message, InvalidSample]] = field(default_factory=list)


def decode_record(
    record: Message, *, default: Format, task: Task, max_features: int, max_bytes: int
) -> Sample:
    """One record's (a `confluent_kafka.Message`) value as a `Sample`; `InvalidSample` says
    why not."""
    value = record.value()
    if value is not None and len(value) > max_bytes:
        raise InvalidSample(
            "oversized", f"{len(value)} bytes, more than max_record_bytes={max_bytes}"
        )
    headers = record.headers()  # None when it has none
    decode = decoder_for(headers, default) if headers else DECODERS[default]
    return decode(value, task=task, max_features=max_features)


def decode_records(
    records: Iterable[Message], *, default: Format, task: Task, max_features: int, max_bytes: int
) -> Decoded:
    """Decode records (`confluent_kafka.Message`s) in one pass; a bad record never stops the
    others."""
    out = Decoded()
    samples, kept, rejected = out.samples, out.records, out.rejected
    for record in records:
        try:
            samples.append(
                decode_record(
                    record, default=default, task=task, max_features=max_features,
                    max_bytes=max_bytes,
                )
            )  # fmt: skip
        except InvalidSample as e:
            rejected.append((record, e.detached()))
        else:
            kept.append(record)
    return out


@dataclass(slots=True)
class Poll:
    """A poll's records, decoded in stream order: `items` are `Sample`s and `Rows`, and
    `records[k]` is the record of the k-th sample they hold (a `Rows` holds one per row);
    `rejected` pairs each invalid record with the reason."""

    items: list[Sample | Rows] = field(default_factory=list)
    records: list[Message] = field(default_factory=list)
    rejected: list[tuple[Message, InvalidSample]] = field(default_factory=list)


_INT64 = 2**63
_NUMBER_TYPES = frozenset((float, int))


def _fast_label(label: object, classification: bool) -> tuple[bool, Label | None]:
    # The label `validate_label` gives, for the types it accepts unchanged; anything else takes
    # the per-record path, which says what is wrong. (Integers beyond int64 are doubles there.)
    t = type(label)
    if classification:
        if t is str or t is bool:
            return True, label
        if t is int and -_INT64 <= label < _INT64:
            return True, label
        return False, None
    if t is float:
        return (True, label) if math.isfinite(label) else (False, None)
    if t is int and -_INT64 <= label < _INT64:
        return True, float(label)
    return False, None


def decode_poll(
    records: Sequence[Message],
    *,
    default: Format,
    task: Task,
    max_features: int,
    max_bytes: int,
    names: tuple,
) -> Poll:
    """`decode_records` for a whole poll, with the same outcome per record, faster: JSON records
    of the common shape (named features exactly `names`, in any order, or `dense` of their
    number, and a label) become `Rows`, one float64 matrix per run, validated with NumPy; every
    other record takes the per-record path, in stream order."""
    out = Poll()
    width = len(names)
    if not width or width > max_features:
        decoded = decode_records(
            records, default=default, task=task, max_features=max_features, max_bytes=max_bytes
        )
        out.items, out.records, out.rejected = decoded.samples, decoded.records, decoded.rejected
        return out
    json_default = default == "json"
    classification = task == "classification"
    pick = itemgetter(*names) if width > 1 else (lambda f, n=names[0]: (f[n],))
    # orjson parses several times faster than json (benchmarks/speed); anything it refuses (NaN,
    # lone surrogates, integers beyond 64 bits) takes the per-record path
    loads = orjson.loads
    # Pass 1, per record: parse, check the shape, pick the values in the model's order.
    fast: list[bool] = []
    rows: list[Any] = []
    labels: list[Label] = []
    dense: list[bool] = []
    # A producer sends the same headers on every record: look for the content type once per run
    # of equal headers, not per record.
    last_headers, last_json = None, json_default
    for record in records:
        value, headers = record.value(), record.headers()
        if headers != last_headers:
            last_headers = headers
            last_json = decoder_for(headers, default) is decode_json if headers else json_default
        ok = last_json and value is not None and len(value) <= max_bytes
        if ok:
            try:
                doc = loads(value)
            except (ValueError, TypeError, RecursionError):
                ok = False
        if ok and type(doc) is dict:
            ok, label = _fast_label(doc.get("label"), classification)
            features = doc.get("features")
            values = doc.get("dense")
            if not ok:
                pass
            elif type(features) is dict and values is None and len(features) == width:
                try:
                    rows.append(pick(features))
                except KeyError:
                    ok = False
                else:
                    dense.append(False)
            elif features is None and type(values) is list and len(values) == width:
                rows.append(values)
                dense.append(True)
            else:
                ok = False
            if ok:
                labels.append(label)
        else:
            ok = False
        fast.append(ok)
    # Pass 2, per poll: value types, then finite and within float32, in bulk.
    good = np.zeros(len(rows), dtype=bool)
    matrix = np.empty((0, width))
    if rows:
        if _NUMBER_TYPES.issuperset(map(type, chain.from_iterable(rows))):
            numeric = [True] * len(rows)
        else:  # bool is not a number here (nor "1.5", nor null): find the rows
            numeric = [_NUMBER_TYPES.issuperset(map(type, row)) for row in rows]
        try:
            matrix = np.array(
                [row if ok else (0.0,) * width for row, ok in zip(rows, numeric, strict=True)],
                dtype=np.float64,
            )
        except (OverflowError, ValueError, TypeError):  # an integer beyond any double
            matrix = np.empty((0, width))
        else:
            with np.errstate(invalid="ignore"):
                good = (np.abs(matrix) <= FLOAT32_MAX).all(axis=1) & np.array(numeric, dtype=bool)
            is_dense = np.array(dense, dtype=bool)
            if is_dense.any():  # dense values are float32 on the per-record path
                with np.errstate(over="ignore"):  # rows beyond float32 are not good: not used
                    matrix[is_dense] = matrix[is_dense].astype(np.float32)
    if len(good) == len(records) and good.all():  # the common poll: one run
        out.items.append(Rows(names, matrix, labels, dense))
        out.records.extend(records)
        return out
    # Pass 3, in stream order: runs of good rows become Rows, every other record a Sample.
    run: list[int] = []  # row indices of the current run
    run_records: list[Message] = []

    def close_run() -> None:
        if run:
            out.items.append(
                Rows(names, matrix[run], [labels[j] for j in run], [dense[j] for j in run])
            )
            out.records.extend(run_records)
            run.clear()
            run_records.clear()

    j = 0  # index into rows
    for record, ok in zip(records, fast, strict=True):
        if ok:
            row_ok = bool(good[j]) if len(good) else False
            j += 1
            if row_ok:
                run.append(j - 1)
                run_records.append(record)
                continue
        try:
            sample = decode_record(
                record, default=default, task=task, max_features=max_features, max_bytes=max_bytes
            )
        except InvalidSample as e:
            # Learns nothing: the run goes on across it.
            out.rejected.append((record, e.detached()))
        else:
            close_run()
            out.items.append(sample)
            out.records.append(record)
    close_run()
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
