import itertools

import pytest
from lifelong.ingest.produce import STREAMS, samples_from_csv, samples_from_stream


def test_csv_rows_become_samples(tmp_path):
    path = tmp_path / "data.csv"
    path.write_text("a,b,y\n1,2.5,spam\n-1,0,3\n0,1e3,0.5\n")
    assert list(samples_from_csv(path, target="y", count=None)) == [
        ({"a": 1.0, "b": 2.5}, "spam"),
        ({"a": -1.0, "b": 0.0}, 3),
        ({"a": 0.0, "b": 1000.0}, 0.5),
    ]
    assert len(list(samples_from_csv(path, target="y", count=2))) == 2


def test_csv_features_must_be_numbers(tmp_path):
    path = tmp_path / "data.csv"
    path.write_text("a,y\n1,x\nred,y\n")
    with pytest.raises(SystemExit, match=r"data\.csv:3"):
        list(samples_from_csv(path, target="y", count=None))


@pytest.mark.parametrize("name", STREAMS)
def test_synthetic_streams_are_seeded_with_string_feature_names(name):
    first = list(samples_from_stream(name, seed=3, count=5))
    assert first == list(samples_from_stream(name, seed=3, count=5))
    assert len(first) == 5
    assert all(isinstance(k, str) for x, _ in first for k in x)


def test_endless_without_count():
    assert len(list(itertools.islice(samples_from_stream("sine", seed=0, count=None), 20))) == 20
