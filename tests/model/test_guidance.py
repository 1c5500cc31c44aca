"""Guided updates (UPGD, a guidance file) against hand computations, the guidance file's checks
and growth, and `lifelong guide` (the scouts) end to end."""

import numpy as np
import pytest
import safetensors.numpy
import torch
from lifelong import cli
from lifelong.model import LearnerConfig, LifelongClassifier, LifelongRegressor, guidance
from lifelong.model.fast.path import unsupported
from lifelong.model.guidance import UPGD, GuidanceError, Guided
from lifelong.model.network import Network
from lifelong.model.optim import SGD, Adam
from lifelong.model.scouts import scout_guidance

# float32 arithmetic on values of order 1: a few ulps per operation.
TOL = 1e-6


def tiny_network(seed=0):
    """2 inputs, 3 hidden units, 2 outputs, random weights."""
    net = Network(hidden=(3,), n_outputs=2, generator=torch.Generator().manual_seed(seed))
    net.grow_inputs(2, initialise=True)
    return net


def backward(net, x, d):
    net.input[:] = x
    net.forward()
    net.d_output[:] = d
    net.backward()


def params(net):
    return [p.astype(np.float64).copy() for layer in net.layers("param") for p in layer]


def grads(net):
    return [g.astype(np.float64).copy() for layer in net.layers("grad") for g in layer]


@pytest.mark.parametrize("noise_std", [0.0, 0.1])
def test_upgd_with_sgd_is_the_papers_rule(noise_std):
    """w ← w(1 - lr·λ) - lr (g + ξ)(1 - sigmoid(û / max û)) per tensor, over three steps."""
    beta, lam, lr = 0.9, 0.01, 0.1
    net = tiny_network()
    sgd, upgd = (
        SGD(net, lr=lr),
        UPGD(net, utility_decay=beta, noise_std=noise_std, weight_decay=lam),
    )
    shadow = torch.Generator()  # the same draws as the network's generator, by hand
    u = [np.zeros_like(p) for p in params(net)]
    rng = np.random.default_rng(1)
    for t in range(1, 4):
        backward(net, rng.normal(size=2), rng.normal(size=2))
        shadow.set_state(net.generator.get_state())
        w, g = params(net), grads(net)
        xi = torch.empty(net.flat("param").size).normal_(0.0, noise_std, generator=shadow)
        upgd.prepare()
        sgd.step(adjust=upgd.adjust)
        expected = []
        for k, (wk, gk) in enumerate(zip(w, g, strict=True)):
            u[k] = beta * u[k] + (1 - beta) * (-gk * wk)
            u_hat = u[k] / (1 - beta**t)
            with np.errstate(over="ignore"):  # exp(inf): ū = 0, as meant
                scaled = 1 / (1 + np.exp(-u_hat / max(u_hat.max(), 1e-38)))
            # this tensor's noise: its place in the flat slot (W block rows x cols, then b)
            w0, rows, cols, b0, end = net.blocks()[k // 2]
            if k % 2 == 0:
                noise = xi[w0:b0].numpy().reshape(rows, cols)[: wk.shape[0], : wk.shape[1]]
            else:
                noise = xi[b0:end].numpy()[: wk.shape[0]]
            expected.append(wk * (1 - lr * lam) - lr * (gk + noise) * (1 - scaled))
        for got, want in zip(params(net), expected, strict=True):
            np.testing.assert_allclose(got, want, rtol=0, atol=TOL)
        assert any(not np.allclose(a, b) for a, b in zip(params(net), w, strict=True))


def test_upgd_without_positive_utility_halves_zero_utility_steps():
    """max û <= 0: ū is 1/2 where û = 0 (half a step), 0 where û < 0 (a full step), no nan."""
    net = Network(hidden=(), n_outputs=1, generator=torch.Generator(), n_inputs=2)
    upgd = UPGD(net, utility_decay=0.5, noise_std=0.0, weight_decay=0.0)
    net.flat("param")[:3] = [0.0, 1.0, 0.0]  # W = [0, 1], b = 0
    net.flat("grad")[:3] = [1.0, 1.0, 1.0]  # -g·w: 0, -1, 0
    upgd.prepare()
    ((W, b),) = net.layers("upgd_scale")
    assert W.tolist() == [[0.5, 1.0]] and b.tolist() == [0.5]


def write(path, tensors, task="classification", features=("a", "b"), classes=("p", "n")):
    guidance.save(path, tensors, task=task, features=features, classes=classes)
    return str(path)


def test_guided_scales_the_adam_update_not_the_gradient(tmp_path):
    """Each parameter's Adam step is the unguided one times its guidance: a gradient scale
    would cancel in Adam's normalisation, this does not."""
    rng = np.random.default_rng(0)
    tensors = {"W0": rng.random((3, 2)), "b0": rng.random(3), "W1": rng.random((2, 3)),
               "b1": np.array([0.0, 1.0])}  # fmt: skip
    file = guidance.load(write(tmp_path / "g.safetensors", tensors))
    plain, guided = tiny_network(), tiny_network()
    adam_plain, adam_guided = Adam(plain, lr=0.01), Adam(guided, lr=0.01)
    rule = Guided(guided, file, lambda: (("a", "b"), ("p", "n")), "classification")
    updates = {}

    def record(name, then=None):
        def adjust(update, lr):
            if then is not None:
                then(update, lr)
            updates[name] = [u.astype(np.float64) for layer in net_of[name].layers("scratch")
                             for u in layer]  # fmt: skip

        return adjust

    net_of = {"plain": plain, "guided": guided}
    want = [tensors[f"{p}{i}"] for i in range(2) for p in "Wb"]
    for _ in range(3):
        x, d = rng.normal(size=2), rng.normal(size=2)
        backward(plain, x, d)
        adam_plain.step(adjust=record("plain"))
        backward(guided, x, d)
        adam_guided.step(adjust=record("guided", rule.adjust))
        for got, step, g in zip(updates["guided"], updates["plain"], want, strict=True):
            # one float32 product of the guidance (itself rounded to float32) and the step
            np.testing.assert_allclose(got, g * step, rtol=2e-7, atol=0)
        assert all(np.abs(u).max() > 0 for u in updates["plain"])  # steps to compare
        # keep the same weights, so the same gradients and Adam moments, in both
        plain.flat("param")[:] = guided.flat("param")


def test_guidance_applies_by_name_and_new_features_and_classes_are_free(tmp_path):
    tensors = {"W0": np.full((4, 2), 0.25), "b0": np.full(4, 0.5), "W1": np.zeros((2, 4)),
               "b1": np.array([0.0, 0.75])}  # fmt: skip
    file = write(tmp_path / "g.safetensors", tensors, features=("b", "a"), classes=("n", "p"))
    model = LifelongClassifier(
        LearnerConfig(hidden=(4,), plasticity=["guided"], guidance_file=file)
    )
    model.learn_one({"a": 1.0}, "p")  # feature "b" and class "n" not met yet
    model.learn_one({"c": 1.0, "a": 0.0}, "q")  # unknown to the file: free
    model.learn_one({"a": 1.0, "b": 2.0, "c": 0.0}, "n")  # named by the file: its values
    (W0, b0), (W1, b1) = model._network.layers("guidance")
    assert model.feature_names == ("a", "c", "b") and model.classes == ("p", "q", "n")
    assert W0.tolist() == [[0.25, 1.0, 0.25]] * 4 and b0.tolist() == [0.5] * 4
    # rows: "p" is the file's row 1, "q" new, "n" the file's row 0
    assert W1.tolist() == [[0.0] * 4, [1.0] * 4, [0.0] * 4] and b1.tolist() == [0.75, 1.0, 0.0]


def test_frozen_parameters_do_not_move(tmp_path):
    """Guidance 0 on the output layer: it keeps its initial weights however much is learned."""
    tensors = {"W0": np.ones((4, 1)), "b0": np.ones(4), "W1": np.zeros((1, 4)), "b1": np.zeros(1)}
    file = write(tmp_path / "g.safetensors", tensors, "regression", ("x",), ())
    config = LearnerConfig(hidden=(4,), plasticity=["guided"], guidance_file=file)
    model = LifelongRegressor(config)
    model.learn_one({"x": 0.0}, 0.0)
    W1 = model._network.layers("param")[1][0].copy()
    for i in range(50):
        model.learn_one({"x": float(i % 3)}, float(i % 3))
    W1_after = model._network.layers("param")[1][0]
    assert np.array_equal(W1_after, W1) and model.samples_learned == 51


@pytest.mark.parametrize(
    ("tensors", "message"),
    [
        ({"W0": np.ones((5, 2)), "b0": np.ones(5), "W1": np.ones((2, 5)), "b1": np.ones(2)},
         r"layer 0: W \(5, 2\) and b \(5,\), the network needs W \(4, 2\)"),
        ({"W0": np.ones((4, 3)), "b0": np.ones(4), "W1": np.ones((2, 4)), "b1": np.ones(2)},
         r"layer 0: W \(4, 3\)"),
        ({"W0": np.ones((4, 2)), "b0": np.ones(4), "W1": np.ones((3, 4)), "b1": np.ones(3)},
         r"layer 1: W \(3, 4\)"),
        ({"W0": np.ones((2, 2)), "b0": np.ones(2)}, r"guidance has 1 layer\(s\), the network 2"),
        ({"W0": np.ones((4, 2)), "b0": np.ones(4), "W1": np.ones((2, 4)), "b1": np.full(2, 1.5)},
         r"guidance b1: values must be in \[0, 1\]"),
        ({"W0": np.ones((4, 2)), "b0": np.ones(4), "W1": -np.ones((2, 4)), "b1": np.ones(2)},
         r"guidance W1: values must be in \[0, 1\]"),
    ],
)  # fmt: skip
def test_a_guidance_file_that_does_not_fit_is_refused(tmp_path, tensors, message):
    file = write(tmp_path / "g.safetensors", tensors)
    with pytest.raises(GuidanceError, match=message):
        LifelongClassifier(LearnerConfig(hidden=(4,), plasticity=["guided"], guidance_file=file))


def test_guidance_for_the_other_task_is_refused(tmp_path):
    tensors = {"W0": np.ones((4, 2)), "b0": np.ones(4), "W1": np.ones((1, 4)), "b1": np.ones(1)}
    file = write(tmp_path / "g.safetensors", tensors, "regression", classes=())
    config = LearnerConfig(hidden=(4,), plasticity=["guided"], guidance_file=file)
    with pytest.raises(GuidanceError, match="guidance for regression, the learner does class"):
        LifelongClassifier(config)
    LifelongRegressor(config)  # fits


def test_a_file_that_is_not_guidance_is_refused(tmp_path):
    (tmp_path / "x").write_bytes(b"not safetensors")
    with pytest.raises(GuidanceError, match="guidance file"):
        guidance.load(tmp_path / "x")
    safetensors.numpy.save_file({"W0": np.ones((1, 1))}, str(tmp_path / "y"), {"lifelong": "{}"})
    with pytest.raises(GuidanceError, match="not a lifelong-guidance-1 file"):
        guidance.load(tmp_path / "y")
    with pytest.raises(ValueError, match="go together"):
        LearnerConfig(plasticity=["guided"])


def test_one_scout_on_everything_is_the_normalised_squared_change():
    """scouts=1, fraction=1: the guide is (θ_end - θ_start)² of one learner, / its layer max."""
    rng = np.random.default_rng(3)
    data = [({"u": float(a), "v": float(b)}, int(a > b)) for a, b in rng.normal(size=(60, 2))]
    config = LearnerConfig(hidden=(5,), seed=4)
    result = scout_guidance(iter(data), config, "classification", scouts=1, fraction=1.0)
    learner = LifelongClassifier(config)
    learner.add_features(["u", "v"])
    learner.add_classes([data[0][1]])
    start = [
        p.astype(np.float64).copy() for layer in learner._network.layers("param") for p in layer
    ]
    for x, y in data:
        learner.add_classes([y])
        learner.learn_one(x, y)
    end = [p.astype(np.float64) for layer in learner._network.layers("param") for p in layer]
    start[2] = np.vstack([start[2], np.zeros((1, 5))])  # the second class began at 0
    start[3] = np.append(start[3], 0.0)
    raw = [(e - s) ** 2 for s, e in zip(start, end, strict=True)]
    assert result.features == ["u", "v"] and result.classes == list(learner.classes)
    assert result.rows == 60 and result.learned == [60]
    for i in range(2):
        top = max(raw[2 * i].max(), raw[2 * i + 1].max())
        np.testing.assert_allclose(result.tensors[f"W{i}"], raw[2 * i] / top, rtol=1e-5)
        np.testing.assert_allclose(result.tensors[f"b{i}"], raw[2 * i + 1] / top, rtol=1e-5)


def test_guide_command_end_to_end(tmp_path, capsys):
    rng = np.random.default_rng(0)
    rows = ["a,b,c,label"] + [
        f"{a},{b},{c},{'yes' if a + b > 0 else 'no'}" for a, b, c in rng.normal(size=(200, 3))
    ]
    (tmp_path / "boot.csv").write_text("\n".join(rows) + "\n")
    out = tmp_path / "guide.safetensors"
    argv = ["guide", "--data", str(tmp_path / "boot.csv"), "--target-column", "label",
            "--scouts", "4", "--fraction", "0.25", "--output", str(out),
            "--task", "classification", "--learner", '{"hidden": [6], "seed": 2}']  # fmt: skip
    with pytest.raises(SystemExit) as exit_:
        cli.main(argv)
    assert exit_.value.code == 0
    assert "guidance of 4 scouts from 200 samples" in capsys.readouterr().out
    first = out.read_bytes()
    with pytest.raises(SystemExit):
        cli.main(argv)
    assert out.read_bytes() == first  # the same data, seed and config: the same file
    tensors, meta = guidance.load(out)
    assert sorted(meta["features"]) == ["a", "b", "c"] and sorted(meta["classes"]) == ["no", "yes"]
    assert tensors["W0"].shape == (6, 3) and tensors["W1"].shape == (2, 6)
    for i in range(2):
        layer = np.concatenate([tensors[f"W{i}"].ravel(), tensors[f"b{i}"]])
        assert layer.min() >= 0.0 and layer.max() == 1.0
    # the learner takes it and learns through it
    config = LearnerConfig(hidden=(6,), plasticity=["guided"], guidance_file=str(out))
    model = LifelongClassifier(config)
    for line in rows[1:50]:
        a, b, c, label = line.split(",")
        model.learn_one({"a": float(a), "b": float(b), "c": float(c)}, label)
    assert model.samples_learned == 49


@pytest.mark.parametrize("method", ["upgd", "guided"])
def test_guided_methods_learn_on_the_reference_path(method, tmp_path):
    """The kernel does not scale updates: such a learner says why and learns without it."""
    tensors = {"W0": np.ones((4, 1)), "b0": np.ones(4), "W1": np.ones((1, 4)), "b1": np.ones(1)}
    file = write(tmp_path / "g.safetensors", tensors, "regression", ("x",), ())
    config = LearnerConfig(
        hidden=(4,), plasticity=[method], guidance_file=file if method == "guided" else ""
    )
    assert method in unsupported(config)
    model = LifelongRegressor(config)
    model.learn_many(np.array([[1.0], [2.0]]), [1.0, 2.0])
    assert model.samples_learned == 2 and method in model.fast_path_unavailable
