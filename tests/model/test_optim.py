"""SGD and Adam over the network's slots against torch.optim, and per-unit state resets."""

import numpy as np
import pytest
import torch
from lifelong.model.network import Network
from lifelong.model.optim import SGD, Adam


def make():
    net = Network((6,), 3, torch.Generator().manual_seed(0))
    net.grow_inputs(4, initialise=True)
    return net


def run_against_torch(net, ours, theirs, params, steps=20):
    rng = np.random.default_rng(0)
    for _ in range(steps):
        for (gW, gb), (W, b) in zip(net.layers("grad"), params, strict=True):
            gW[...] = rng.normal(size=gW.shape)
            gb[...] = rng.normal(size=gb.shape)
            W.grad = torch.from_numpy(gW.copy())
            b.grad = torch.from_numpy(gb.copy())
        ours.step()
        theirs.step()
    for (W, b), (tW, tb) in zip(net.layers("param"), params, strict=True):
        np.testing.assert_allclose(W, tW.detach().numpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(b, tb.detach().numpy(), rtol=1e-5, atol=1e-6)


def torch_copies(net):
    return [
        (W.clone().requires_grad_(), b.clone().requires_grad_()) for W, b in net.tensors("param")
    ]


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_sgd_matches_torch(momentum):
    net = make()
    params = torch_copies(net)
    flat = [p for pair in params for p in pair]
    run_against_torch(net, SGD(net, 0.05, momentum), torch.optim.SGD(flat, 0.05, momentum), params)


def test_adam_matches_torch():
    net = make()
    params = torch_copies(net)
    flat = [p for pair in params for p in pair]
    ours = Adam(net, 0.01, 0.9, 0.999, 1e-8)
    run_against_torch(net, ours, torch.optim.Adam(flat, 0.01, (0.9, 0.999), 1e-8), params)


def test_adam_reset_unit_restarts_its_bias_correction():
    """After a reset, a unit's elements move exactly as on a fresh Adam's first step: lr·sign(g)."""
    net = make()
    adam = Adam(net, 0.01)
    rng = np.random.default_rng(0)
    for _ in range(10):
        net.flat("grad")[:] = rng.normal(size=net.flat("grad").size)
        adam.step()
    net.reset_unit(0, 2, np.zeros(4, dtype=np.float32))
    (m0, _), (m1, _) = net.layers("exp_avg")
    assert not m0[2].any() and not m1[:, 2].any()
    assert (net.layers("beta1_power")[0][0][2] == 1).all()
    assert (net.layers("beta2_power")[1][0][:, 2] == 1).all()
    net.flat("grad")[:] = rng.normal(size=net.flat("grad").size)
    (W0, _), _ = net.layers("param")
    (g0, _), _ = net.layers("grad")
    before = W0.copy()
    adam.step()
    np.testing.assert_allclose(W0[2] - before[2], -0.01 * np.sign(g0[2]), rtol=1e-4)
    assert not np.allclose(np.abs(W0[0] - before[0]), 0.01, rtol=1e-4)  # others keep history


def test_growth_keeps_optimizer_state():
    net = make()
    sgd = SGD(net, 0.1, momentum=0.9)
    net.flat("grad")[:] = 1.0
    sgd.step()
    kept = [(W.copy(), b.copy()) for W, b in net.layers("momentum")]
    net.grow_inputs(50)  # beyond capacity: everything is copied into new buffers
    net.grow_outputs(2)
    (M0, _), (M1, m1) = net.layers("momentum")
    np.testing.assert_array_equal(M0[:, :4], kept[0][0])
    np.testing.assert_array_equal(M1[:3], kept[1][0])
    np.testing.assert_array_equal(m1[:3], kept[1][1])
    assert not M0[:, 4:].any() and not M1[3:].any() and not m1[3:].any()
