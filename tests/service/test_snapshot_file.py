"""lifelong.snapshot_file: a snapshot read back predicts bit for bit what the original does; a
file that is not one is refused."""

import random
import time

import numpy as np
import pytest
from lifelong import snapshot_file
from lifelong.model import MLPPredictor
from testsupport import line_sample, small_learner


def learned(task: str, n: int = 300, **config):
    model, rng = small_learner(task, **config), random.Random(0)
    for _ in range(n):
        x, y = line_sample(rng)
        model.learn_one(x, y if task == "classification" else x["x0"] * 100 + 7)
    return model


def assert_same_predictions(original, copy, rows: np.ndarray) -> None:
    assert copy.version == original.version
    assert copy.feature_names == original.feature_names
    assert copy.classes == original.classes
    if original.task == "classification":
        assert np.array_equal(copy.predict_proba_dense(rows), original.predict_proba_dense(rows))
    assert np.array_equal(copy.predict_dense(rows), original.predict_dense(rows))
    named = {"x1": 0.3, "x0": -0.2, "unknown": 5.0}
    assert copy.predict_one(named) == original.predict_one(named)
    assert copy.predict_one({"x1": 0.3}) == original.predict_one({"x1": 0.3})  # x0 as its mean
    one, other = copy.row_function(), original.row_function()
    for row in rows.tolist():
        assert np.array_equal(np.asarray(one(row)), np.asarray(other(row)))


@pytest.mark.parametrize("task", ["classification", "regression"])
@pytest.mark.parametrize("standardize", [True, False])
def test_a_written_snapshot_predicts_bit_for_bit_what_the_original_does(
    tmp_path, task, standardize
):
    original = learned(task, standardize=standardize).snapshot()
    path = tmp_path / "snapshot.safetensors"
    snapshot_file.write(path, original)
    rows = np.random.default_rng(1).normal(scale=3, size=(64, 2))
    assert_same_predictions(original, snapshot_file.load(path.read_bytes()), rows)
    assert [p.name for p in tmp_path.iterdir()] == ["snapshot.safetensors"]  # no temp file left


def test_labels_and_feature_names_keep_their_types():
    model = small_learner()
    for i in range(20):
        model.learn_one({"a": float(i % 2), 7: 1.0}, 1 if i % 3 else "1")
    copy = snapshot_file.load(model.snapshot().to_bytes())
    assert copy.classes == model.snapshot().classes
    assert [type(c) for c in copy.classes] == [type(c) for c in model.snapshot().classes]
    assert copy.feature_names == (7, "a")  # ints first, as the learner adds them


def test_write_replaces_the_previous_snapshot(tmp_path):
    model, path = learned("classification", n=10), tmp_path / "snapshot"
    snapshot_file.write(path, model.snapshot())
    model.learn_one({"x0": 0.5, "x1": 0.5}, "above")
    snapshot_file.write(path, model.snapshot())
    assert snapshot_file.load(path.read_bytes()).version == 11


@pytest.mark.parametrize(
    "data",
    [b"", b"garbage" * 100, b"\xff" * 8 + b"{}"],
    ids=["empty", "garbage", "huge header length"],
)
def test_what_is_not_a_snapshot_is_refused(data):
    with pytest.raises(ValueError, match="snapshot"):
        snapshot_file.load(data)


def test_a_truncated_or_foreign_safetensors_file_is_refused():
    import safetensors.numpy

    data = learned("classification", n=10).snapshot().to_bytes()
    with pytest.raises(ValueError, match="snapshot"):
        snapshot_file.load(data[: len(data) - 5])
    foreign = safetensors.numpy.save({"w": np.zeros(3, dtype=np.float32)})
    with pytest.raises(ValueError, match="snapshot"):
        snapshot_file.load(foreign)


def test_layers_that_do_not_fit_together_are_refused():
    import json

    import safetensors.numpy

    data = learned("classification", n=10).snapshot().to_bytes()
    arrays = safetensors.numpy.load(data)
    size = int.from_bytes(data[:8], "little")
    metadata = json.loads(data[8 : 8 + size])["__metadata__"]
    arrays["weight.1"] = arrays["weight.1"][:, :3].copy()
    with pytest.raises(ValueError, match="do not fit together"):
        snapshot_file.load(safetensors.numpy.save(arrays, metadata=metadata))


def test_the_empty_snapshot_is_version_0():
    for task in ("classification", "regression"):
        empty = MLPPredictor.empty(task)
        assert (empty.task, empty.version, empty.feature_names, empty.classes) == (task, 0, (), ())
        empty.row_function()  # a servicer builds it for every snapshot it serves


def test_the_host_writes_its_snapshots_to_the_file(tmp_path):
    from lifelong.host import ModelHost
    from lifelong.samples import Sample

    path, rng = tmp_path / "snapshot", random.Random(0)
    host = ModelHost(
        small_learner(), refresh_every_samples=1, refresh_every_seconds=0, snapshot_file=path
    )
    assert snapshot_file.load(path.read_bytes()).version == 0  # written at start
    for _ in range(5):
        x, y = line_sample(rng)
        host.learn([Sample(x, None, y)], source="grpc")
        on_file = snapshot_file.load(path.read_bytes())
        assert on_file.version == host.predictor.version == host.samples_learned
    rows = np.random.default_rng(1).normal(size=(8, 2))
    assert_same_predictions(host.predictor, on_file, rows)


def test_the_host_writes_at_most_once_per_refresh_interval_and_refresh_writes_the_last(tmp_path):
    from lifelong.host import ModelHost
    from lifelong.samples import Sample

    path, rng = tmp_path / "snapshot", random.Random(0)
    host = ModelHost(
        small_learner(), refresh_every_samples=1, refresh_every_seconds=0.5, snapshot_file=path
    )
    for _ in range(5):
        x, y = line_sample(rng)
        host.learn([Sample(x, None, y)], source="grpc")
    assert host.predictor.version == 5
    assert snapshot_file.load(path.read_bytes()).version == 0  # the start's, under 0.5 s ago
    time.sleep(0.5)
    host.refresh()  # what the app's housekeeping calls periodically
    assert snapshot_file.load(path.read_bytes()).version == 5
