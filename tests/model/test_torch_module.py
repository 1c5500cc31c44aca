"""The torch module learner: the Learner interface, learning, bit-for-bit state, refusals."""

import sys
from pathlib import Path

import numpy as np
import pytest
import safetensors.torch
import torch
from lifelong.model import Learner, Predictor, load, state
from lifelong.model.torch_module import (
    ClassLimitExceeded,
    TorchModuleClassifier,
    TorchModuleConfig,
    torch_module_learner,
)
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))

MLP = "torch_models:mlp"
FEATURES = tuple(f"x{i}" for i in range(6))


def dropout_net(task, n_inputs, n_outputs=1):
    """A module with randomness in its forward pass: dropout."""
    return nn.Sequential(
        nn.Linear(n_inputs, 16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, n_outputs)
    )


def shared_relu(task, n_inputs, n_outputs=2):
    """One ReLU module used twice: the hooks cannot tell its layers apart."""

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(n_inputs, 8), nn.Linear(8, 8)
            self.relu, self.out = nn.ReLU(), nn.Linear(8, n_outputs)

        def forward(self, x):
            return self.out(self.relu(self.b(self.relu(self.a(x)))))

    return Net()


def stream(n, seed=0, classes=3):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, len(FEATURES)))
    y = np.digitize(X[:, 0] + 0.5 * X[:, 1], [-0.5, 0.5][: classes - 1])
    return X, y.tolist()


def classifier(**config):
    cfg = TorchModuleConfig(features=FEATURES, **({"lr": 0.05} | config))
    return torch_module_learner(MLP, "classification", cfg, {"n_inputs": 6, "n_outputs": 3})


def test_interface_conformance():
    for task in ("classification", "regression"):
        args = {"n_inputs": 6, "n_outputs": 3} if task == "classification" else {"n_inputs": 6}
        model = torch_module_learner(MLP, task, {"features": FEATURES}, args)
        assert isinstance(model, Learner) and model.task == task
        model.learn_one({"x0": 1.0}, 1 if task == "classification" else 2.5)
        snapshot = model.snapshot()
        assert isinstance(snapshot, Predictor) and snapshot.version == 1
        assert snapshot.feature_names == FEATURES
        assert isinstance(load(snapshot.to_bytes()), Predictor)


def test_learns_and_serves():
    model = classifier()
    X, y = stream(3000)
    assert model.learn_many(X, y) == []
    assert model.samples_learned == 3000 and sorted(model.classes) == [0, 1, 2]
    stats = model.stats()
    assert stats.prequential_score > 0.8
    assert [layer.width for layer in stats.layers] == [64, 64]
    assert all(0 <= layer.dead_fraction <= 1 for layer in stats.layers)
    snapshot = model.snapshot()
    Xt, yt = stream(500, seed=1)
    labels = snapshot.predict_dense(Xt)
    assert np.mean(labels == np.array(yt, dtype=object)) > 0.85
    proba = snapshot.predict_proba_dense(Xt[:5])
    assert proba.shape == (5, 3) and np.allclose(proba.sum(1), 1)
    row = snapshot.row_function()(Xt[0].tolist())
    assert np.array_equal(row, snapshot.predict_proba_dense(Xt[:1]))
    # By name: the same numbers; unknown names ignored; a missing feature is its mean.
    x = dict(zip(FEATURES, Xt[0].tolist(), strict=True))
    one = snapshot.predict_proba_dense(Xt[:1])  # a batch of 1 (a batch of 5 rounds apart)
    assert np.allclose(one, proba[:1], rtol=1e-5, atol=1e-7)
    assert snapshot.predict_proba_one(x | {"other": 5.0}) == dict(
        zip(snapshot.classes, one[0].tolist(), strict=True)
    )
    assert snapshot.predict_one({}) in snapshot.classes
    # The snapshot is a copy: learning goes on without changing it.
    before = snapshot.predict_proba_dense(Xt[:5])
    model.learn_many(X[:100], y[:100])
    assert np.array_equal(before, snapshot.predict_proba_dense(Xt[:5]))


def test_regression_learns():
    cfg = TorchModuleConfig(features=FEATURES, lr=0.01)
    model = torch_module_learner(MLP, "regression", cfg, {"n_inputs": 6})
    rng = np.random.default_rng(0)
    X = rng.normal(size=(3000, 6))
    model.learn_many(X, (100 + 10 * X[:, 0] - 5 * X[:, 1]).tolist())
    assert model.stats().prequential_score < 2.0  # MAE, targets spread ~11
    assert abs(model.snapshot().predict_one({"x0": 1.0}) - 110) < 3


CONFIGS = {
    "sgd": {},
    "adam+methods": {
        "optimizer": "adam",
        "lr": 0.001,
        "plasticity": ["l2_init", "shrink_perturb"],
        "telemetry_window": 64,
    },
    "momentum": {"momentum": 0.9, "weight_decay": 1e-4, "standardize": False},
    "cbp+adam": {
        "optimizer": "adam",
        "lr": 0.001,
        "plasticity": ["cbp", "l2_init"],
        "cbp_replacement_rate": 0.01,
        "cbp_maturity_threshold": 20,
    },
}


@pytest.mark.parametrize("config", CONFIGS.values(), ids=CONFIGS.keys())
@pytest.mark.parametrize("cut", [0, 1, 333])
def test_state_continues_bit_for_bit(config, cut):
    X, y = stream(600)
    uninterrupted = classifier(**config)
    uninterrupted.learn_many(X, y)
    first = classifier(**config)
    first.learn_many(X[:cut], y[:cut])
    resumed = load(first.to_bytes())
    assert type(resumed) is TorchModuleClassifier
    resumed.learn_many(X[cut:], y[cut:])
    assert resumed.to_bytes() == uninterrupted.to_bytes()
    assert resumed.stats() == uninterrupted.stats()
    for a, b in zip(resumed.module.parameters(), uninterrupted.module.parameters(), strict=True):
        assert torch.equal(a, b)


def test_dropout_and_regression_continue_bit_for_bit():
    """The learner's own generator drives dropout; the target statistics are saved."""
    rng = np.random.default_rng(3)
    X = rng.normal(size=(400, 6))
    y = (X @ np.arange(6.0)).tolist()
    cfg = TorchModuleConfig(features=FEATURES, plasticity=["shrink_perturb"], seed=7)

    def make():
        return torch_module_learner(
            "model.test_torch_module:dropout_net", "regression", cfg, {"n_inputs": 6}
        )

    a, b = make(), make()
    a.learn_many(X, y)
    b.learn_many(X[:150], y[:150])
    torch.rand(3)  # other users of torch's global generator change nothing
    b = load(b.to_bytes())
    b.learn_many(X[150:], y[150:])
    assert a.to_bytes() == b.to_bytes()


def test_categorical_fields():
    cfg = TorchModuleConfig(features=("x",), categorical={"city": 4}, lr=0.05)
    model = torch_module_learner(
        "torch_models:embedding_mlp",
        "classification",
        cfg,
        {"n_inputs": 1, "vocabulary": 4, "n_outputs": 2, "hidden": [16]},
    )
    assert model.feature_names == ("x", "city")
    for i in range(600):  # the label is the city's: learnable only through the embedding
        city = ["paris", "rome", "oslo", "lima", "kyiv"][i % 5]
        model.learn_one({"x": 0.0, "city": city}, int(city in ("rome", "oslo")))
    # three codes for five cities: 1-3 in order of arrival, the rest share the reserved 0
    assert model._vocab == [{"paris": 1, "rome": 2, "oslo": 3}]
    snapshot = model.snapshot()
    assert snapshot.predict_one({"x": 0.0, "city": "rome"}) == 1
    assert snapshot.predict_one({"x": 0.0, "city": "paris"}) == 0
    assert snapshot.predict_one({"x": 0.0}) == 0  # missing: code 0, as lima and kyiv (0)
    # Numbers are categories too (the service sends numbers): 7, 7.0 and "7" are one.
    model.learn_many([[0.0, 7.0]], [1])
    assert model._vocab[0] == {"paris": 1, "rome": 2, "oslo": 3}  # full: 7 takes code 0
    copy = load(model.to_bytes())
    assert copy._vocab == model._vocab and copy.to_bytes() == model.to_bytes()


def test_module_without_hookable_layers_has_no_layers():
    for factory in ("torch_models:functional_mlp", "model.test_torch_module:shared_relu"):
        cfg = TorchModuleConfig(features=FEATURES, lr=0.05)
        model = torch_module_learner(
            factory, "classification", cfg, {"n_inputs": 6, "n_outputs": 3}
        )
        X, y = stream(1500)
        model.learn_many(X, y)
        stats = model.stats()
        assert stats.layers == ()  # absent, not zero
        assert stats.prequential_score > 0.75 and stats.gradient_norm > 0
        assert model.snapshot().predict_one(dict(zip(FEATURES, X[0], strict=True))) in (0, 1, 2)
        assert load(model.to_bytes()).stats() == stats


def test_classes_bounded_by_the_outputs():
    model = torch_module_learner(MLP, "classification", {"features": FEATURES},
                                 {"n_inputs": 6, "n_outputs": 2})  # fmt: skip
    model.learn_one({"x0": 1.0}, "a")
    model.learn_one({"x0": -1.0}, "b")
    before = model.to_bytes()
    with pytest.raises(ClassLimitExceeded, match="module has 2 outputs") as error:
        model.learn_one({"x0": 0.0}, "c")
    assert isinstance(error.value, TypeError)  # the service rejects the sample and goes on
    with pytest.raises(TypeError):
        model.learn_many([[0.0] * 6, [1.0] * 6], ["a", "c"])
    assert model.samples_learned == 3  # the row before the bad label was learned
    assert load(before).samples_learned == 2


def test_declared_classes():
    cfg = TorchModuleConfig(features=FEATURES, classes=("no", "yes"))
    model = torch_module_learner(MLP, "classification", cfg, {"n_inputs": 6, "n_outputs": 2})
    assert model.classes == ("no", "yes")
    assert set(model.snapshot().predict_proba_one({"x0": 1.0})) == {"no", "yes"}
    with pytest.raises(ClassLimitExceeded, match="not one of the declared classes"):
        model.learn_one({"x0": 1.0}, "maybe")
    with pytest.raises(ValueError, match="3 classes declared"):
        torch_module_learner(MLP, "classification", {"features": FEATURES, "classes": [1, 2, 3]},
                             {"n_inputs": 6, "n_outputs": 2})  # fmt: skip


def test_non_finite_step_is_refused():
    model = classifier(standardize=False)
    X, y = stream(50)
    model.learn_many(X, y)
    before = model.to_bytes()
    refused = model.learn_many([[1e100] + [0.0] * 5], [0])  # inf in float32
    assert refused == [0] and model.samples_learned == 50
    assert model.stats().updates_refused == {"non_finite_output": 1, "gradient_limit": 0}
    after = state.load(model.to_bytes())
    after._refused = dict.fromkeys(after._refused, 0)
    assert after.to_bytes() == before  # nothing else changed


def test_shape_mismatch_is_refused(tmp_path):
    model = classifier()
    model.learn_many(*stream(10))
    tensors = safetensors.torch.load(model.to_bytes())
    meta = state.metadata(model.to_bytes())
    kind = meta.pop("kind")
    meta["model_args"] = {"n_inputs": 6, "n_outputs": 3, "hidden": [32, 64]}
    with pytest.raises(ValueError, match=r"0.weight has shape \(64, 6\) there, \(32, 6\) in"):
        load(state.dumps(kind, tensors, meta))
    # Weights for a submodule must fit it too.
    safetensors.torch.save_file({"weight": torch.zeros(3, 3), "bias": torch.zeros(3)},
                                tmp_path / "w.safetensors")  # fmt: skip
    with pytest.raises(ValueError, match="weight has shape"):
        model.load_weights(tmp_path / "w.safetensors", into="0")


def test_pretrained_weights_and_freezing(tmp_path):
    source = classifier()
    source.learn_many(*stream(300))
    safetensors.torch.save_file(source.module[0].state_dict(), tmp_path / "first.safetensors")
    cfg = {"weights": {"0": str(tmp_path / "first.safetensors")}, "freeze": ["0"]}
    model = classifier(**cfg)
    assert torch.equal(model.module[0].weight, source.module[0].weight)
    frozen = model.module[0].weight.clone()
    model.learn_many(*stream(200, seed=2))
    assert torch.equal(model.module[0].weight, frozen)  # frozen: not learned
    resumed = load(model.to_bytes())  # the state holds the weights and what is frozen
    assert resumed.frozen == ("0",) and not resumed.module[0].weight.requires_grad
    model.unfreeze(["0"])
    model.learn_many(*stream(50, seed=3))
    assert not torch.equal(model.module[0].weight, frozen)


def test_factory_and_inputs_are_checked():
    with pytest.raises(ValueError, match="not an import path"):
        torch_module_learner("torch_models.mlp", "classification", {"features": FEATURES})
    with pytest.raises(ValueError, match=r"does not take the declared inputs \(\(1, 6\)"):
        torch_module_learner(MLP, "classification", {"features": FEATURES}, {"n_inputs": 5,
                             "n_outputs": 2})  # fmt: skip
    with pytest.raises(ValueError, match="one output"):
        torch_module_learner("model.test_torch_module:shared_relu", "regression",
                             {"features": FEATURES}, {"n_inputs": 6})  # fmt: skip
    with pytest.raises(ValueError, match="unknown torch module setting"):
        torch_module_learner(MLP, "regression", {"features": FEATURES, "hidden": [3]},
                             {"n_inputs": 6})  # fmt: skip
    anonymous = TorchModuleClassifier(
        lambda task: nn.Linear(6, 2), TorchModuleConfig(features=FEATURES)
    )
    anonymous.learn_one({"x0": 1.0}, 1)  # learns and serves; cannot be saved
    with pytest.raises(ValueError, match="no import path"):
        anonymous.to_bytes()


def test_continual_backprop_on_a_linear_stack():
    model = classifier(plasticity=["cbp"], cbp_replacement_rate=0.01, cbp_maturity_threshold=20)
    X, y = stream(1500)
    model.learn_many(X, y)
    stats = model.stats()
    replaced = [layer.units_replaced for layer in stats.layers]
    # 1% of the mature units per step per layer, at most all 64 of them from step 21 on
    assert all(400 < r <= 0.01 * 64 * (1500 - 20) for r in replaced), replaced
    assert stats.prequential_score > 0.75
    with pytest.raises(ValueError, match=r"cbp needs an nn\.Sequential of nn\.Linear"):
        torch_module_learner(
            "torch_models:functional_mlp",
            "classification",
            {"features": FEATURES, "plasticity": ["cbp"]},
            {"n_inputs": 6, "n_outputs": 3},
        )
