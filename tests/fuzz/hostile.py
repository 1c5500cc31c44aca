"""Hostile inputs for the fuzz tests: hypothesis strategies for the property tests, and a seeded
generator of Kafka records (`HostileStream`) for the bulk runs, where tens of thousands of records
are needed fast and hypothesis' shrinking would cost more than it finds.

Everything here is input: what a producer nobody controls could write to the sample topic, or a
client send over gRPC. The rules the tests check are in the tests.
"""

from __future__ import annotations

import json
import math
import random
import struct
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from hypothesis import strategies as st
from lifelong.ingest.codecs import encode_json, encode_protobuf
from lifelong.samples import FLOAT32_MAX
from lifelong.v1 import lifelong_pb2 as pb

JSON_HEADER = [("content-type", b"application/json")]
PROTOBUF_HEADER = [("content-type", b"application/x-protobuf")]

# Numbers where the rules change: float32's edge (and just past it, where rounding to float32
# still lands on it), double's, int64's and uint64's, subnormals, signed zero, non-finite.
EDGE_FLOATS = [
    0.0, -0.0, 1.0, -1.0, 0.5, 1e-45, 5e-324, 1e-310, FLOAT32_MAX, -FLOAT32_MAX,
    3.4028235677973366e38, 3.4028236e38, np.nextafter(FLOAT32_MAX, math.inf), 1e38, 1e39,
    1e300, 1.7976931348623157e308, -1.7976931348623157e308, math.inf, -math.inf, math.nan,
]  # fmt: skip
EDGE_INTS = [
    0, 1, -1, 2**24 + 1, 2**31, 2**53 + 1, 2**63 - 1, 2**63, -(2**63), -(2**63) - 1, 2**64 - 1,
    2**64, 10**38, 10**39, 10**308, 10**400,
]  # fmt: skip

# -- hypothesis strategies ----------------------------------------------------------------------

names = st.one_of(
    st.sampled_from(["a", "b", "c", "x0", "x1", "", " ", "é", "\u00e9\u0301", "\x00", "label"]),
    st.text(max_size=8),  # includes lone surrogates: JSON can escape them ("\ud800")
)
numbers = st.one_of(
    st.sampled_from(EDGE_FLOATS),
    st.sampled_from(EDGE_INTS),
    st.floats(),  # every double, NaN and infinities included
    st.integers(),
    st.floats(width=32),
)
json_leaves = st.one_of(
    st.none(), st.booleans(), numbers, st.text(max_size=12), st.sampled_from(["1.5", "NaN"])
)
json_values = st.recursive(
    json_leaves,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5), st.dictionaries(st.text(max_size=4), inner, max_size=5)
    ),
    max_leaves=20,
)
labels = st.one_of(
    st.text(max_size=10), st.booleans(), numbers, st.none(), st.lists(st.integers(), max_size=2)
)


@st.composite
def sample_docs(draw) -> object:
    """A JSON document shaped like a sample, or nearly: named or dense features (or both, or
    neither, or of the wrong type), values of every kind, any label or none, extra keys."""
    doc: dict = {}
    shape = draw(st.sampled_from(["named", "dense", "both", "neither", "odd"]))
    if shape in ("named", "both"):
        doc["features"] = draw(st.dictionaries(names, st.one_of(numbers, json_leaves), max_size=6))
    if shape in ("dense", "both"):
        doc["dense"] = draw(st.lists(st.one_of(numbers, numbers, json_values), max_size=6))
    if shape == "odd":
        doc[draw(st.sampled_from(["features", "dense"]))] = draw(json_values)
    if draw(st.booleans()) or shape == "named":
        doc["label"] = draw(labels)
    if draw(st.integers(0, 4)) == 0:
        doc.update(draw(st.dictionaries(st.text(max_size=4), json_values, max_size=2)))
    return doc if draw(st.integers(0, 9)) else draw(json_values)  # now and then not an object


def dumps(doc: object) -> bytes:
    """JSON with Python's liberties: NaN and Infinity literals, integers of any length (as
    text, past Python's 4300-digit conversion limit too), lone surrogates escaped."""
    try:
        return json.dumps(doc, allow_nan=True).encode()
    except ValueError:  # an int too long for str(): say it in digits
        return json.dumps(_shorten(doc)).encode()


def _shorten(doc: object) -> object:
    if isinstance(doc, int) and not isinstance(doc, bool) and doc.bit_length() > 10_000:
        return 10**300
    if isinstance(doc, list):
        return [_shorten(v) for v in doc]
    if isinstance(doc, dict):
        return {k: _shorten(v) for k, v in doc.items()}
    return doc


@st.composite
def json_values_bytes(draw) -> bytes | None:
    """A record value meant as JSON: a sample-like document, sometimes damaged on the way."""
    raw = dumps(draw(sample_docs()))
    damage = draw(st.integers(0, 9))
    if damage == 0:  # truncated
        raw = raw[: draw(st.integers(0, len(raw)))]
    elif damage == 1:  # a byte flipped
        if raw:
            i = draw(st.integers(0, len(raw) - 1))
            raw = raw[:i] + bytes([draw(st.integers(0, 255))]) + raw[i + 1 :]
    elif damage == 2:  # another encoding, a BOM, garbage around it
        raw = draw(
            st.sampled_from(
                [
                    raw.decode().encode("utf-16"),
                    b"\xef\xbb\xbf" + raw,
                    b" \n\t" + raw + b"\n",
                    raw + b"\x00",
                    raw + raw,
                ]
            )
        )
    elif damage == 3:
        return draw(st.one_of(st.none(), st.binary(max_size=64)))
    return raw


@st.composite
def proto_values(draw) -> bytes | None:
    """A record value meant as a serialized `lifelong.v1.Sample`: a valid message of any content,
    one damaged on the way, or bytes."""
    kind = draw(st.integers(0, 5))
    if kind == 0:
        return draw(st.one_of(st.none(), st.binary(max_size=64)))
    msg = pb.Sample()
    if draw(st.booleans()):
        msg.features.named.update(
            draw(st.dictionaries(st.text(max_size=6), st.floats(), max_size=6))
        )
    if draw(st.booleans()):
        msg.features.dense.extend(draw(st.lists(st.floats(), max_size=6)))
    which = draw(st.sampled_from(["text", "integer", "number", "none"]))
    if which == "text":
        msg.label.text = draw(st.text(max_size=8))
    elif which == "integer":
        msg.label.integer = draw(st.integers(-(2**63), 2**63 - 1))
    elif which == "number":
        msg.label.number = draw(st.floats())
    raw = msg.SerializeToString()
    if kind == 1 and raw:
        i = draw(st.integers(0, len(raw) - 1))
        raw = raw[:i] + bytes([draw(st.integers(0, 255))]) + raw[i + 1 :]
    elif kind == 2:
        raw = raw[: draw(st.integers(0, len(raw)))]
    return raw


content_types = st.sampled_from(
    [
        None,  # no header: the configured format
        b"application/json",
        b"application/x-protobuf",
        b"Application/JSON; charset=utf-8",
        b"text/csv",
        b"",
        b"\xff\xfe",
        b"application/x-protobuf;v=2",
    ]
)


@st.composite
def record_parts(draw) -> tuple[bytes | None, list[tuple[str, bytes | None]]]:
    """(value, headers) of a Kafka record: JSON or protobuf, under any content type."""
    value = draw(st.one_of(json_values_bytes(), proto_values()))
    content_type = draw(content_types)
    headers = []
    if draw(st.integers(0, 5)) == 0:
        headers.append((draw(st.sampled_from(["trace", "lifelong-error-reason"])), b"x"))
    if content_type is not None:
        headers.append((draw(st.sampled_from(["content-type", "Content-Type"])), content_type))
    return value, headers


# -- the bulk generator -------------------------------------------------------------------------


@dataclass
class HostileStream:
    """Kafka records (key, value, headers) for the bulk fuzz runs, from a seed: mostly samples of
    a learnable stream over `names`, with every kind of hostile record among them. `huge` sets
    the size of the largest records (huge JSON, deep nesting, many keys): several MB in the live
    run, less in CI's in-process one."""

    seed: int = 0
    names: tuple[str, ...] = ("x0", "x1", "x2")
    huge: int = 200_000
    hostile_fraction: float = 0.5

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.kinds = [
            (name[len("_r_") :], getattr(self, name))
            for name in sorted(dir(self))
            if name.startswith("_r_")
        ]

    def records(self, n: int) -> Iterator[tuple[str, bytes | None, list]]:
        """`n` records as (kind, value, headers). Kind "valid" ones are meant to be learned (by a
        model of these features, or more, and text classes), "dense" ones too while the model
        has exactly these features; every other kind may be refused."""
        rng = self.rng
        for _ in range(n):
            if rng.random() >= self.hostile_fraction:
                yield self.valid_record()
            else:
                kind, make = rng.choice(self.kinds)
                yield kind, *make()

    def point(self) -> tuple[dict[str, float], str]:
        x = {name: self.rng.uniform(-1, 1) for name in self.names}
        return x, "above" if x[self.names[0]] + 2 * x[self.names[1]] > 0 else "below"

    def valid_record(self) -> tuple[str, bytes, list]:
        rng = self.rng
        x, y = self.point()
        roll = rng.random()
        if roll < 0.15:
            return "dense", encode_json([x[n] for n in self.names], y), JSON_HEADER
        if roll < 0.2:
            return "valid", encode_protobuf(x, y), PROTOBUF_HEADER
        shuffled = dict(rng.sample(list(x.items()), len(x)))  # any key order
        return "valid", encode_json(shuffled, y), (JSON_HEADER if rng.random() < 0.3 else [])

    def valid(self) -> tuple[bytes, list]:
        return self.valid_record()[1:]

    # Each _r_* method is one kind of hostile record: (value, headers).

    def _r_truncated(self):
        value, _ = self.valid()
        return value[: self.rng.randrange(len(value))], []

    def _r_garbage(self):
        return self.rng.randbytes(self.rng.randrange(1, 200)), []

    def _r_tombstone(self):
        return None, []

    def _r_not_an_object(self):
        return self.rng.choice([b"[1, 2, 3]", b'"text"', b"42", b"null", b"true", b"{}"]), []

    def _r_extreme_values(self):
        x, y = self.point()
        name = self.rng.choice(self.names)
        x[name] = self.rng.choice(EDGE_FLOATS + EDGE_INTS)
        return dumps({"features": x, "label": y}), []

    def _r_extreme_dense(self):
        x, y = self.point()
        values = list(x.values())
        values[self.rng.randrange(len(values))] = self.rng.choice(EDGE_FLOATS + EDGE_INTS)
        return dumps({"dense": values, "label": y}), []

    def _r_value_types(self):
        x, y = self.point()
        x[self.rng.choice(self.names)] = self.rng.choice([True, None, "1.5", [1.0], {"v": 1}])
        return dumps({"features": x, "label": y}), []

    def _r_bad_label(self):
        x, _ = self.point()
        label = self.rng.choice([None, 0.5, [1], {"a": 1}, 1e300, math.nan, 10**30])
        doc = {"features": x} if label is None else {"features": x, "label": label}
        return dumps(doc), []

    def _r_other_label_type(self):
        # Integers and booleans among text classes: refused at their turn by the model.
        x, _ = self.point()
        return dumps({"features": x, "label": self.rng.choice([0, 1, True, False, 7])}), []

    def _r_shape(self):
        x, y = self.point()
        return self.rng.choice(
            [
                dumps({"features": x, "dense": list(x.values()), "label": y}),
                dumps({"features": {}, "label": y}),
                dumps({"dense": [], "label": y}),
                dumps({"label": y}),
                dumps({"dense": list(x.values())[:-1], "label": y}),
                dumps({"features": list(x.values()), "label": y}),
                dumps({"dense": {"a": 1}, "label": y}),
            ]
        ), []

    def _r_new_features(self):
        # A few new features: learnable, they widen the model (within max_model_features).
        x, y = self.point()
        x[f"n{self.rng.randrange(20)}"] = self.rng.uniform(-1, 1)
        return encode_json(x, y), []

    def _r_many_keys(self):
        n = self.rng.choice([100, 10_001, max(10_001, self.huge // 12)])  # 100: learned
        features = {f"k{i}": 1.0 for i in range(n)}
        return json.dumps({"features": features, "label": "above"}).encode(), []

    def _r_deep_nesting(self):
        depth = self.rng.choice([1_000, 100_000, self.huge])
        return self.rng.choice([b"[" * depth, b'{"a":' * depth, b"[" * depth + b"]" * depth]), []

    def _r_deep_label(self):
        x, _ = self.point()
        depth = self.rng.choice([500, 5_000])
        body = encode_json(x, "a")[:-5]  # ..."label":
        return body + b"[" * depth + b"1" + b"]" * depth + b"}", []

    def _r_huge_json(self):
        # A long array of numbers, or a long string label: parsed, then refused or learned.
        n = self.huge // 20
        return self.rng.choice(
            [
                json.dumps({"dense": [0.5] * n, "label": "above"}).encode(),
                json.dumps({"features": {"x0": 1.0}, "label": "a" * self.huge}).encode(),
                json.dumps(
                    {"features": {"x0": 1.0}, "label": "b", "pad": "z" * self.huge}
                ).encode(),
            ]
        ), []

    def _r_long_number(self):
        digits = self.rng.choice([400, 4_299, 4_301, 50_000])
        x, y = self.point()
        body = json.dumps({"features": x, "label": y}).encode()
        return body.replace(b"{", b'{"x9": 1' + b"0" * digits + b", ", 1)[: self.huge * 2], []

    def _r_surrogates(self):
        x, _ = self.point()
        return self.rng.choice(
            [
                json.dumps({"features": x, "label": "\ud800"}).encode(),
                json.dumps({"features": {"\udcff": 1.0}, "label": "above"}).encode(),
            ]
        ), []

    def _r_unknown_content_type(self):
        value, _ = self.valid()
        content_type = self.rng.choice([b"text/csv", b"application/avro", b"", b"\xff"])
        return value, [("content-type", content_type)]

    def _r_protobuf_garbage(self):
        x, y = self.point()
        raw = bytearray(encode_protobuf(x, y))
        for _ in range(self.rng.randrange(1, 4)):
            raw[self.rng.randrange(len(raw))] = self.rng.randrange(256)
        choice = self.rng.choice([bytes(raw), self.rng.randbytes(40), b"\x0a\xff\xff\xff\x0f"])
        return choice, PROTOBUF_HEADER

    def _r_protobuf_extreme(self):
        x, y = self.point()
        x[self.rng.choice(self.names)] = self.rng.choice([math.nan, math.inf, 1e39, 3e38])
        return encode_protobuf(x, y), PROTOBUF_HEADER

    def _r_json_as_protobuf(self):
        value, _ = self.valid()
        return value, PROTOBUF_HEADER

    def _r_protobuf_as_json(self):
        x, y = self.point()
        return encode_protobuf(x, y), JSON_HEADER

    def _r_float_bytes(self):
        return struct.pack("<4d", math.nan, math.inf, -0.0, 1e308), []
