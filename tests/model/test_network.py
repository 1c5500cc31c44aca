"""The network's manual forward/backward against torch autograd, and its growth."""

import numpy as np
import pytest
import torch
from lifelong.model.network import Network, forward_batch
from numerics import assert_within, forward_error_bound


def make(hidden, n_in, n_out, seed=0):
    net = Network(hidden, n_out, torch.Generator().manual_seed(seed))
    net.grow_inputs(n_in, initialise=True)
    net.grow_outputs(0)
    return net


def autograd_gradients(net, x, upstream):
    """Gradients of sum(upstream * output) w.r.t. every W and b, by torch autograd on copies."""
    params = [
        (W.clone().requires_grad_(), b.clone().requires_grad_()) for W, b in net.tensors("param")
    ]
    a = torch.from_numpy(x)
    for i, (W, b) in enumerate(params):
        a = W @ a + b
        if i < len(params) - 1:
            a = torch.relu(a)
    (a * torch.from_numpy(upstream)).sum().backward()
    return [(W.grad, b.grad) for W, b in params]


@pytest.mark.parametrize("hidden", [(), (7,), (16, 9), (5, 6, 4)])
def test_backward_equals_autograd(hidden):
    rng = np.random.default_rng(1)
    net = Network(hidden, 3, torch.Generator().manual_seed(0))
    # Grown in steps, so layer 0 is a strided view into spare capacity.
    net.grow_inputs(4, initialise=True)
    net.grow_inputs(1)
    net.grow_inputs(2)
    net.layers("param")[0][0][:, 4:] = rng.normal(size=(hidden[0] if hidden else 3, 3))
    assert net.capacity[0] > 7
    for _ in range(5):
        x = rng.normal(size=7).astype(np.float32)
        upstream = rng.normal(size=3).astype(np.float32)
        net.input[:] = x
        out = net.forward()
        net.d_output[:] = upstream
        net.backward()
        expected = autograd_gradients(net, x, upstream)
        np.testing.assert_allclose(out, forward_batch(*net.weights(), x[None])[-1][0], rtol=1e-5)
        for (gW, gb), (eW, eb) in zip(net.layers("grad"), expected, strict=True):
            np.testing.assert_allclose(gW, eW.numpy(), rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(gb, eb.numpy(), rtol=1e-5, atol=1e-6)


def test_initialisation_is_kaiming_uniform():
    net = make((200, 100), n_in=50, n_out=10)
    (W0, b0), (W1, b1), (W2, b2) = net.layers("param")
    assert np.abs(W0).max() <= np.sqrt(6 / 50) and np.abs(W0).max() > 0.9 * np.sqrt(6 / 50)
    assert np.abs(W1).max() <= np.sqrt(6 / 200) and np.abs(W1).max() > 0.9 * np.sqrt(6 / 200)
    assert np.abs(W2).max() <= np.sqrt(3 / 100)  # linear output layer: gain 1
    assert not b0.any() and not b1.any() and not b2.any()


def test_new_inputs_have_zero_weights_and_keep_the_function():
    net = make((8, 8), n_in=3, n_out=2)
    net.add_slot("momentum")
    state = net.flat("momentum")
    state[:] = np.arange(state.size)
    kept = {name: [W.copy() for W, _ in net.layers(name)] for name in ("param", "momentum")}
    X = np.random.default_rng(0).normal(size=(10, 3)).astype(np.float32)
    before = net.predict(X)
    bound_before = forward_error_bound(*net.weights(), X)
    for k in (1, 1, 5, 40):  # within capacity, then beyond it (reallocation)
        net.grow_inputs(k)
        n = net.sizes[0]
        # Growth copies the old elements and zero-fills the new ones: exact, on any CPU.
        for name, (W0, W1, W2) in kept.items():
            assert not net.layers(name)[0][0][:, 3:].any(), name
            np.testing.assert_array_equal(net.layers(name)[0][0][:, :3], W0, err_msg=name)
            np.testing.assert_array_equal(net.layers(name)[1][0], W1, err_msg=name)
            np.testing.assert_array_equal(net.layers(name)[2][0], W2, err_msg=name)
        # The same function of the old inputs whatever the new ones are; but layer 0's dot
        # products are longer and BLAS may sum them in another order: equal within rounding.
        wider = np.hstack([X, np.random.default_rng(k).normal(size=(10, n - 3))]).astype(np.float32)
        bound = bound_before + forward_error_bound(*net.weights(), wider)
        assert_within(net.predict(wider), before, bound)


def test_new_outputs_start_at_zero_and_keep_the_others():
    net = make((8,), n_in=3, n_out=2)
    X = np.random.default_rng(0).normal(size=(10, 3)).astype(np.float32)
    before = net.predict(X)
    bound_before = forward_error_bound(*net.weights(), X)
    net.grow_outputs(3)
    after = net.predict(X)
    # The old outputs' dot products are unchanged, but BLAS may block them differently with
    # more outputs: equal within rounding. The new ones sum zeros: exactly 0.
    bound = bound_before + forward_error_bound(*net.weights(), X)[:, :2]
    assert_within(after[:, :2], before, bound)
    assert not after[:, 2:].any()


def test_spare_capacity_stays_zero_and_unread():
    net = make((4,), n_in=2, n_out=1)
    net.grow_inputs(1)  # capacity 3: no spare; the next growth makes some
    net.grow_inputs(1)
    assert net.capacity[0] > net.sizes[0]
    flat = net.flat("param")
    logical = sum(W.size + b.size for W, b in net.layers("param"))
    assert np.count_nonzero(flat) <= logical
    assert np.abs(flat).sum() == pytest.approx(
        sum(np.abs(W).sum() + np.abs(b).sum() for W, b in net.layers("param"))
    )


def test_reset_unit_makes_a_unit_fresh_in_every_slot():
    net = make((4, 3), n_in=2, n_out=2)
    net.add_slot("state")
    net.add_slot("initial", copy_param=True)
    net.flat("state")[:] = 7.0
    incoming = np.array([0.5, -0.5], dtype=np.float32)
    net.reset_unit(0, 1, incoming)
    (W0, b0), (W1, _), _ = net.layers("param")
    np.testing.assert_array_equal(W0[1], incoming)
    assert b0[1] == 0 and not W1[:, 1].any()
    (S0, s0), (S1, _), _ = net.layers("state")
    assert not S0[1].any() and s0[1] == 0 and not S1[:, 1].any()
    assert (S0[0] == 7).all() and (S1[:, 0] == 7).all()
    np.testing.assert_array_equal(net.layers("initial")[0][0][1], incoming)


def test_state_dict_round_trip_restores_layout():
    net = make((5,), n_in=3, n_out=2)
    net.grow_inputs(1)
    net.grow_outputs(1)
    tensors, layout = net.state_dict()
    other = Network((5,), 0, torch.Generator())
    other.load_state_dict(tensors, layout)
    assert other.capacity == net.capacity and other.sizes == net.sizes
    for (W, b), (W2, b2) in zip(net.tensors("param"), other.tensors("param"), strict=True):
        assert torch.equal(W, W2) and torch.equal(b, b2)
