"""Property-based tests of the gRPC request validation on generated requests: a `Sample` to learn
(`sample_from_proto`), prediction rows (`features_matrix`) and a packed matrix (`matrix_inputs`).
Whatever a client sends, validation gives inputs the model can take (finite float32 values, the
model's shape) or raises `InvalidSample` with a reason among `REASONS`; nothing else escapes.
"""

from __future__ import annotations

import numpy as np
from fuzz.hostile import EDGE_FLOATS
from fuzz.rules import assert_learnable, is_text
from google.protobuf.message import DecodeError
from hypothesis import given
from hypothesis import strategies as st
from lifelong.samples import FLOAT32_MAX, REASONS, InvalidSample, sample_from_proto
from lifelong.serving.inputs import features_matrix
from lifelong.serving.matrix import matrix_inputs
from lifelong.v1 import lifelong_pb2 as pb

doubles = st.one_of(st.sampled_from(EDGE_FLOATS), st.floats(), st.floats(-3, 3))
# Protobuf strings are UTF-8: hypothesis' text() leaves out surrogates, which protobuf refuses.
feature_names = st.one_of(st.sampled_from(["a", "b", "c", "", "0", "1"]), st.text(max_size=6))
named = st.dictionaries(feature_names, doubles, max_size=6)
dense = st.lists(doubles, max_size=6)
tasks = st.sampled_from(["classification", "regression"])


@st.composite
def labels(draw) -> pb.Label:
    which = draw(st.sampled_from(["text", "integer", "number", "none"]))
    if which == "text":
        return pb.Label(text=draw(st.text(max_size=8)))
    if which == "integer":
        return pb.Label(integer=draw(st.integers(-(2**63), 2**63 - 1)))
    if which == "number":
        return pb.Label(number=draw(doubles))
    return pb.Label()


@st.composite
def features(draw) -> pb.Features:
    shape = draw(st.sampled_from(["named", "dense", "both", "neither"]))
    return pb.Features(
        named=draw(named) if shape in ("named", "both") else {},
        dense=draw(dense) if shape in ("dense", "both") else [],
    )


def refused(error: InvalidSample) -> str:
    assert error.reason in REASONS, error.reason
    assert error.message and is_text(error.message)
    return error.reason


@given(
    sample=st.one_of(
        st.builds(pb.Sample, features=features(), label=labels()),
        st.builds(pb.Sample, features=features()),  # no label at all
        st.binary(max_size=80),  # what arrives on the wire, parsed as the server would
    ),
    task=tasks,
    max_features=st.integers(1, 8),
)
def test_sample_from_proto_gives_a_learnable_sample_or_a_reason(sample, task, max_features):
    if isinstance(sample, bytes):
        try:
            sample = pb.Sample.FromString(sample)
        except DecodeError:  # the server's deserializer answers INVALID_ARGUMENT (finding 5)
            return
    try:
        got = sample_from_proto(sample, task=task, max_features=max_features)
    except InvalidSample as e:
        refused(e)
        return
    assert_learnable(got, task=task, max_features=max_features)


@given(
    rows=st.lists(features(), max_size=6),
    columns=st.lists(feature_names, unique=True, max_size=5),
    max_features=st.integers(1, 8),
)
def test_features_matrix_gives_finite_rows_of_the_models_width_or_a_reason(
    rows, columns, max_features
):
    columns = {name: j for j, name in enumerate(columns)}
    try:
        X, partial = features_matrix(rows, columns, max_features=max_features)
    except InvalidSample as e:
        refused(e)
        return
    assert X.shape == (len(rows), len(columns)) and X.dtype == np.float64
    assert (np.abs(X) <= FLOAT32_MAX).all()
    assert partial == sorted(set(partial)) and all(0 <= i < len(rows) for i in partial)
    for i, row in enumerate(rows):
        if row.dense:  # the model's width first, the rest ignored
            assert X[i].tolist() == list(row.dense)[: len(columns)]
            assert i not in partial
        else:  # known names in their columns, the rest 0 and the row partial
            for name, j in columns.items():
                assert X[i, j] == row.named.get(name, 0.0)
            assert (i in partial) == (not set(columns) <= set(row.named))


@given(
    columns=st.one_of(st.integers(0, 6), st.sampled_from([2**32 - 1])),
    values=st.lists(doubles, max_size=24),
    with_examples=st.integers(0, 5),
    names=st.lists(feature_names, unique=True, min_size=1, max_size=5),
    stream=st.booleans(),
)
def test_matrix_inputs_gives_finite_rows_of_the_models_width_or_a_reason(
    columns, values, with_examples, names, stream
):
    kind = pb.PredictStreamRequest if stream else pb.PredictBatchRequest
    request = kind(matrix=pb.Matrix(columns=columns, values=values))
    if with_examples == 0:
        request.examples.append(pb.Features(dense=[1.0]))
    try:
        X = matrix_inputs(request, tuple(names))
    except InvalidSample as e:
        refused(e)
        return
    assert X.ndim == 2 and X.shape[1] == len(names) and X.dtype == np.float64
    assert X.size == len(values)
    assert (np.abs(X) <= FLOAT32_MAX).all()
    assert X.ravel().tolist() == list(values)
