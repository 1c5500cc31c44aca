"""lifelong.samples: what every source's validation accepts and rejects (here the checks that are
not exercised through gRPC in test_serving_bad_input.py)."""

import numpy as np
import pytest
from lifelong.ingest.codecs import decode_json
from lifelong.samples import InvalidSample, make_sample


def invalid(**kwargs) -> InvalidSample:
    with pytest.raises(InvalidSample) as info:
        make_sample(label="a", task="classification", max_features=10, **kwargs)
    return info.value


@pytest.mark.parametrize(
    ("dense", "message"),
    [
        (["1.5", 2], "dense[0] is '1.5' (str)"),
        ([1.5, True], "dense[1] is True (bool)"),
        ([0, False], "dense[1] is False (bool)"),
        ([1, None], "dense[1] is None (NoneType)"),
        ([[1, 2]], "dense[0] is [1, 2] (list)"),
        (np.array([True, False]), "an array of bool"),
        (np.array(["1", "2"]), "an array of <U1"),
    ],
)
def test_dense_values_must_be_numbers_not_strings_or_bools(dense, message):
    """NumPy would coerce them ("1.5" -> 1.5, True -> 1.0); named features reject them too."""
    error = invalid(dense=dense)
    assert error.reason == "invalid_schema"
    assert message in error.message


def test_dense_numbers_of_any_numeric_type_are_accepted():
    for dense in ([1, 2.5], [np.float32(1), np.int64(2)], np.array([1, 2]), np.array([1.0, 2.5])):
        sample = make_sample(dense=dense, label="a", task="classification", max_features=10)
        assert sample.dense.dtype == np.float32 and len(sample.dense) == 2


def test_integers_beyond_any_float_are_non_finite_not_a_crash():
    assert invalid(dense=[10**400, 1]).reason == "non_finite"
    assert invalid(features={"x": -(10**400)}).reason == "non_finite"


def test_the_json_codec_rejects_strings_and_bools_in_dense():
    for value in (b'{"dense": ["1.5", true], "label": "a"}', b'{"dense": [1, true], "label": "a"}'):
        with pytest.raises(InvalidSample) as info:
            decode_json(value, task="classification", max_features=10)
        assert info.value.reason == "invalid_schema"
        assert "dense features are numbers" in info.value.message
