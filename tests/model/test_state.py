"""to_bytes / load: a loaded learner continues exactly as the saved one would have."""

import json

import numpy as np
import pytest
import safetensors.torch
import torch
from lifelong.model import LearnerConfig, LifelongClassifier, LifelongRegressor, load
from numerics import assert_same_learned_state

EVERYTHING = ("cbp", "l2_init", "redo", "shrink_perturb")
FAST = {
    "cbp_replacement_rate": 0.02,
    "cbp_maturity_threshold": 10,
    "telemetry_window": 64,
    "redo_every": 25,  # cuts fall inside a ReDo interval: its sums are in the state
    "redo_threshold": 0.5,
}


def stream(n, seed, regression=False):
    """Examples whose feature set and classes keep growing (beyond any spare capacity), with
    features missing now and then."""
    rng = np.random.default_rng(seed)
    for i in range(n):
        n_features = 3 + i // 40
        x = {f"f{j}": float(rng.normal()) for j in range(n_features) if rng.random() > 0.1}
        score = sum(x.values())
        if regression:
            yield x, 10.0 * score + 3.0
        else:
            yield x, int(score > 0) + 2 * (i // 150)  # classes 0, 1, then 2, 3, ...


def assert_identical(a, b):
    # Every persistent slot; scratch ones (the last gradient, noise) are not state.
    (tensors, layout), (tensors_b, layout_b) = a._network.state_dict(), b._network.state_dict()
    assert layout == layout_b and tensors.keys() == tensors_b.keys()
    for name, tensor in tensors.items():
        assert torch.equal(tensor, tensors_b[name]), name
    assert a.feature_names == b.feature_names and a.samples_learned == b.samples_learned
    assert a.stats() == b.stats()
    assert a.to_bytes() == b.to_bytes()  # every other piece of state too


CONFIGS = [
    LearnerConfig(hidden=(16, 8), plasticity=EVERYTHING, **FAST),
    LearnerConfig(
        hidden=(12,),
        optimizer="adam",
        plasticity=EVERYTHING,
        cbp_utility="adaptable_contribution",
        standardize=False,
        **FAST,
    ),
    LearnerConfig(hidden=(8,), momentum=0.9, plasticity=()),
    LearnerConfig(hidden=(), plasticity=("l2_init",)),
]


@pytest.mark.parametrize("config", CONFIGS, ids=["sgd", "adam", "momentum", "linear"])
@pytest.mark.parametrize("cut", [0, 1, 230])
@pytest.mark.parametrize("fast_path", [False, True], ids=["reference", "fast"])
def test_classifier_continues_bit_for_bit(config, cut, fast_path):
    data = list(stream(500, seed=0))
    model = LifelongClassifier(config)
    model.fast_path = fast_path
    for x, y in data[:cut]:
        model.learn_one(x, y)
    copy = load(model.to_bytes())
    copy.fast_path = fast_path
    assert isinstance(copy, LifelongClassifier) and copy.classes == model.classes
    replaced = [layer.units_replaced for layer in copy.stats().layers]
    redo = list(copy._redo.replaced) if "redo" in config.plasticity else []
    for x, y in data[cut:]:
        model.learn_one(x, y)
        copy.learn_one(x, y)
    assert len(model.feature_names) > 12 and len(model.classes) == 8  # grown after the cut
    if "cbp" in config.plasticity:  # units replaced after the cut
        after = [layer.units_replaced for layer in copy.stats().layers]
        assert all(r < s for r, s in zip(replaced, after, strict=True))
    if redo:  # ReDo reset units after the cut too
        assert sum(copy._redo.replaced) > sum(redo)
    assert_identical(model, copy)


@pytest.mark.parametrize("plasticity", [EVERYTHING, ("cbp", "l2_init")])
def test_regressor_continues_bit_for_bit(plasticity):
    config = LearnerConfig(hidden=(16, 8), plasticity=plasticity, **FAST)
    data = list(stream(400, seed=1, regression=True))
    model = LifelongRegressor(config)
    for x, y in data[:150]:
        model.learn_one(x, y)
    copy = load(model.to_bytes())
    assert isinstance(copy, LifelongRegressor)
    for x, y in data[150:]:
        model.learn_one(x, y)
        copy.learn_one(x, y)
    assert_identical(model, copy)
    assert copy.predict_one(data[0][0]) == model.predict_one(data[0][0])


def test_dense_learning_continues_bit_for_bit():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 6)).astype(np.float32)
    model = LifelongClassifier(LearnerConfig(hidden=(8,), plasticity=EVERYTHING, **FAST))
    for x in X[:100]:
        model.learn_dense(x, bool(x.sum() > 0))
    copy = load(model.to_bytes())
    for x in X[100:]:
        model.learn_dense(x, bool(x.sum() > 0))
        copy.learn_dense(x, bool(x.sum() > 0))
    assert copy.classes in ((True, False), (False, True))
    assert_identical(model, copy)


def test_a_state_without_a_noise_stream_keeps_the_fresh_one():
    """States saved while shrink and perturb drew torch noise have no stream (key, steps): the
    loaded learner keeps the one it was built with and learns on."""
    config = LearnerConfig(hidden=(8,), plasticity=("shrink_perturb",))
    model = LifelongClassifier(config)
    for x, y in stream(50, seed=2):
        model.learn_one(x, y)
    tensors, meta = model.state_dict()
    del meta["shrink_perturb"]
    old = LifelongClassifier.from_state(tensors, meta)
    assert old.state_dict()[1]["shrink_perturb"]["steps"] == 0
    for x, y in stream(50, seed=3):
        old.learn_one(x, y)
    assert old.samples_learned == 100 and old.state_dict()[1]["shrink_perturb"]["steps"] == 50


def test_state_is_safetensors_with_json_metadata():
    model = LifelongClassifier(LearnerConfig(hidden=(4,)))
    model.learn_one({"x": 1.0, 7: 2.0}, True)
    model.learn_one({"x": 1.0}, "no")
    data = model.to_bytes()
    tensors = safetensors.torch.load(data)
    assert tensors["network.param.W0"].shape == (4, 2)
    assert tensors["generator"].dtype == torch.uint8
    size = int.from_bytes(data[:8], "little")
    meta = json.loads(json.loads(data[8 : 8 + size])["__metadata__"]["lifelong"])
    assert meta["kind"] == "LifelongClassifier" and meta["samples_learned"] == 2
    assert meta["features"] == [7, "x"] and meta["classes"] == [True, "no"]
    assert load(data).feature_names == (7, "x")  # ints first: not the dict's order


@pytest.mark.parametrize("data", [b"", b"not a state", b"\x08" + b"\x00" * 7 + b"{}" * 4])
def test_load_refuses_what_is_not_a_state(data):
    with pytest.raises(ValueError, match="not a Lifelong model state"):
        load(data)


def test_load_refuses_another_format():
    data = LifelongRegressor(LearnerConfig(hidden=(2,))).to_bytes()
    size = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + size])
    meta = json.loads(header["__metadata__"]["lifelong"])
    meta["format"] = 99
    header["__metadata__"]["lifelong"] = json.dumps(meta)
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    with pytest.raises(ValueError, match="format 99"):
        load(len(raw).to_bytes(8, "little") + raw + data[8 + size :])


def as_format_1(data: bytes) -> bytes:
    """`data` written as format 1 wrote it: sums of squares where format 2 has variances, no
    refusal counters (what checkpoints made before format 2 hold)."""
    tensors = safetensors.torch.load(data)
    size = int.from_bytes(data[:8], "little")
    meta = json.loads(json.loads(data[8 : 8 + size])["__metadata__"]["lifelong"])
    meta["format"] = 1
    del meta["recovery"]
    tensors["scaler.m2"] = tensors.pop("scaler.var") * tensors["scaler.count"]
    del tensors["scaler.run"]
    target = meta["target"]
    target["m2"] = target.pop("var") * target["n"]
    del target["run"]
    return safetensors.torch.save(tensors, metadata={"lifelong": json.dumps(meta)})


def test_a_format_1_state_is_upgraded_and_continues():
    examples = list(stream(400, seed=5, regression=True))
    model = LifelongRegressor(LearnerConfig(hidden=(8,)))
    for x, y in examples[:200]:
        model.learn_one(x, y)
    old = load(as_format_1(model.to_bytes()))
    assert old.samples_learned == 200 and old.feature_names == model.feature_names
    assert old.stats().updates_refused == {"non_finite_output": 0, "gradient_limit": 0}
    for x, y in examples[200:]:
        model.learn_one(x, y)
        old.learn_one(x, y)
    # var -> m2 -> var rounds once each way: the continuations agree to float64 rounding
    x = examples[-1][0]
    assert old.predict_one(x) == pytest.approx(model.predict_one(x), rel=1e-9)


def test_learned_state_is_bit_for_bit_but_the_effective_rank_lapack_derives():
    """What a resumed run equals across processes (docs/kafka.md): every learned number, bit for
    bit; each layer's last-window effective rank, an eigendecomposition whose last bits depend
    on LAPACK's thread count, within its rounding bound."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 20))
    y = (X[:, :3].sum(axis=1) > 0).astype(int)
    states, threads = [], torch.get_num_threads()
    try:
        for n in (1, 2):
            model = LifelongClassifier(LearnerConfig(hidden=(256,), telemetry_window=300))
            model.learn_many(X, y)
            torch.set_num_threads(n)
            states.append(model.to_bytes())  # computes the rank of the window closed at 300
    finally:
        torch.set_num_threads(threads)
    assert_same_learned_state(*states)
    W = model._network.layers("param")[0][0]
    W[0, 0] = np.nextafter(W[0, 0], np.float32(np.inf))
    with pytest.raises(AssertionError, match=r"network\.param\.W0"):
        assert_same_learned_state(states[0], model.to_bytes())  # one ulp of one weight


@pytest.fixture
def guidance_file(tmp_path):
    """Guidance for hidden (16, 8) naming some of `stream`'s features and classes (the others
    arrive later and are free), with values spread over [0, 1]."""
    from lifelong.model import guidance

    rng = np.random.default_rng(5)
    features, classes = [f"f{j}" for j in range(6)], [1, 0, 2]
    sizes = [len(features), 16, 8, len(classes)]
    tensors = {}
    for i in range(3):
        tensors[f"W{i}"] = rng.random((sizes[i + 1], sizes[i]))
        tensors[f"b{i}"] = rng.random(sizes[i + 1])
    path = tmp_path / "guide.safetensors"
    guidance.save(path, tensors, task="classification", features=features, classes=classes)
    return str(path)


@pytest.mark.parametrize("methods", [("upgd", "cbp"), ("guided", "cbp"), ("upgd", "guided")])
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize("cut", [0, 1, 230])
def test_guided_updates_continue_bit_for_bit(methods, optimizer, cut, guidance_file):
    file = guidance_file if "guided" in methods else ""
    config = LearnerConfig(
        hidden=(16, 8), optimizer=optimizer, plasticity=methods, guidance_file=file, **FAST
    )
    data = list(stream(500, seed=2))
    model = LifelongClassifier(config)
    for x, y in data[:cut]:
        model.learn_one(x, y)
    copy = load(model.to_bytes())
    for x, y in data[cut:]:
        model.learn_one(x, y)
        copy.learn_one(x, y)
    assert model.fast_path_unavailable and len(model.classes) == 8
    assert_identical(model, copy)
