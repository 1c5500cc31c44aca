"""Any river model as a learner: the interface, learning, and its authenticated pickle state."""

import pickle
import sys
from pathlib import Path

import numpy as np
import pytest
import safetensors.torch
import torch
from lifelong.app import load_learner
from lifelong.checkpoint import CheckpointStore
from lifelong.config import ConfigError, load_settings
from lifelong.model import Learner, Predictor, load, state
from lifelong.model.river_model import (
    RiverClassifier,
    RiverRegressor,
    load_river,
    river_learner,
    set_state_key,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))

KEY = b"a test key of at least 16 bytes"
PIPELINE = "river_pipelines:scaled_linear"


@pytest.fixture(autouse=True)
def process_key():
    set_state_key(KEY)
    yield
    set_state_key(None)


def stream(n, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4))
    return X, (X[:, 0] + 0.5 * X[:, 1] > 0).tolist()


def test_interface_conformance():
    for task, model in (
        ("classification", "river.linear_model:LogisticRegression"),
        ("regression", "river.linear_model:LinearRegression"),
    ):
        learner = river_learner(model, task=task, key=KEY)
        assert isinstance(learner, Learner) and learner.task == task
        learner.learn_one({"a": 1.0}, True if task == "classification" else 2.0)
        snapshot = learner.snapshot()
        assert isinstance(snapshot, Predictor) and snapshot.version == 1
        assert isinstance(load(snapshot.to_bytes()), Predictor)
        assert learner.stats().layers == () and learner.stats().gradient_norm is None


def test_learns_and_serves():
    learner = river_learner(PIPELINE, {"lr": 0.1}, "classification", KEY)
    X, y = stream(2000)
    assert learner.learn_many(X, y) == []
    assert learner.feature_names == ("0", "1", "2", "3") and set(learner.classes) == {True, False}
    assert learner.stats().prequential_score > 0.9
    snapshot = learner.snapshot()
    Xt, yt = stream(300, seed=1)
    assert np.mean(snapshot.predict_dense(Xt) == np.array(yt, dtype=object)) > 0.9
    proba = snapshot.predict_proba_dense(Xt[:3])
    assert proba.shape == (3, 2) and np.allclose(proba.sum(1), 1)
    assert np.array_equal(snapshot.row_function()(Xt[0].tolist()), proba[:1])
    before = snapshot.predict_proba_dense(Xt)
    learner.learn_many(X[:200], [not v for v in y[:200]])  # the snapshot is a copy
    assert np.array_equal(before, snapshot.predict_proba_dense(Xt))


def test_regression_and_a_river_class_with_parameters():
    learner = river_learner("river.linear_model:LinearRegression", {"l2": 0.0}, "regression", KEY)
    assert isinstance(learner, RiverRegressor)
    rng = np.random.default_rng(0)
    for _ in range(2000):
        x = {"a": float(rng.normal())}
        learner.learn_one(x, 3.0 * x["a"] + 1.0)
    assert abs(learner.snapshot().predict_one({"a": 1.0}) - 4.0) < 0.1
    with pytest.raises(ValueError, match="is a regression model, task is classification"):
        river_learner("river.linear_model:LinearRegression", task="classification")


def test_state_round_trip_predicts_the_same():
    X, y = stream(900)
    uninterrupted = river_learner(PIPELINE, {"lr": 0.05}, "classification", KEY)
    uninterrupted.learn_many(X, y)
    first = river_learner(PIPELINE, {"lr": 0.05}, "classification", KEY)
    first.learn_many(X[:400], y[:400])
    resumed = load(first.to_bytes())
    assert isinstance(resumed, RiverClassifier) and resumed.samples_learned == 400
    resumed.learn_many(X[400:], y[400:])
    Xt, _ = stream(200, seed=5)
    assert np.array_equal(
        resumed.snapshot().predict_proba_dense(Xt), uninterrupted.snapshot().predict_proba_dense(Xt)
    )
    assert resumed.stats() == uninterrupted.stats()
    assert resumed.feature_names == uninterrupted.feature_names


def _tampered(data: bytes, edit) -> bytes:
    tensors = safetensors.torch.load(data)
    meta = state.metadata(data)
    kind = meta.pop("kind")
    edit(tensors, meta)
    return state.dumps(kind, tensors, meta)


class Boom:
    """Unpickling it would run code: it must never happen."""

    ran = False

    def __reduce__(self):
        return (Boom._run, ())

    @staticmethod
    def _run():
        Boom.ran = True


def test_tampered_or_unauthenticated_state_is_refused():
    learner = river_learner(PIPELINE, task="classification", key=KEY)
    learner.learn_many(*stream(50))
    data = learner.to_bytes()

    def flip(tensors, meta):
        tensors["pickle"][-10] ^= 1

    def evil(tensors, meta):  # a pickle that runs code, with the old MAC
        tensors["pickle"] = torch.frombuffer(bytearray(pickle.dumps(Boom())), dtype=torch.uint8)

    def no_mac(tensors, meta):
        del meta["mac"]

    for edit in (flip, evil, no_mac):
        with pytest.raises(ValueError, match=r"does not authenticate.*refusing to unpickle"):
            load(_tampered(data, edit))
    assert not Boom.ran
    with pytest.raises(ValueError, match="does not authenticate"):
        load_river(data, b"another key of 16 bytes or more")
    set_state_key(None)
    with pytest.raises(ValueError, match="no state key is set"):
        load(data)
    assert load_river(data, KEY).samples_learned == 50


def test_no_key_learns_and_serves_but_cannot_be_saved():
    learner = river_learner(PIPELINE, task="classification")
    learner.learn_many(*stream(20))
    assert learner.snapshot().predict_one({"0": 1.0}) in (True, False)
    with pytest.raises(ValueError, match="HMAC-authenticated envelope"):
        learner.to_bytes()
    with pytest.raises(ValueError, match="at least 16 bytes"):
        set_state_key("short")
    assert "key" not in repr(learner)


def test_service_refuses_a_river_model_with_checkpoints_and_no_key(tmp_path, caplog):
    set_state_key(None)
    flags = {"model": PIPELINE, "checkpoint_dir": str(tmp_path)}
    settings = load_settings(flags=flags, environ={})
    with pytest.raises(ConfigError, match=r"river model.*LIFELONG_STATE_KEY"):
        load_learner(settings, CheckpointStore(tmp_path))
    # Without checkpoints (or a snapshot file) it may run: nothing is ever unpickled.
    fresh, offsets = load_learner(load_settings(flags={"model": PIPELINE}, environ={}), None)
    assert isinstance(fresh, RiverClassifier) and offsets == {}
    # With a key: it starts, checkpoints, and resumes from the authenticated state.
    (tmp_path / "key").write_bytes(KEY)
    settings = load_settings(flags=flags | {"state_key_file": str(tmp_path / "key")}, environ={})
    store = CheckpointStore(tmp_path)
    learner, _ = load_learner(settings, store)
    learner.learn_many(*stream(30))
    store.save(learner.to_bytes(), {"t:0": 30}, learner.samples_learned)
    resumed, offsets = load_learner(settings, store)
    assert resumed.samples_learned == 30 and offsets == {"t:0": 30}
    # The checkpoint decides what goes on, whatever the model setting now names (with a warning);
    # without the key it is refused.
    flags = {"checkpoint_dir": str(tmp_path)}
    with pytest.raises(ConfigError, match="no state key is set"):
        load_learner(load_settings(flags=flags, environ={}), store)
    mlp = load_settings(flags=flags | {"state_key_file": str(tmp_path / "key")}, environ={})
    with caplog.at_level("WARNING", logger="lifelong.app"):
        resumed, _ = load_learner(mlp, store)
    assert isinstance(resumed, RiverClassifier)
    assert "holds a river model but the model setting names a mlp one" in caplog.text
