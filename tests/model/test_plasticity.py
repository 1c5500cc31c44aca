"""Continual backprop, shrink and perturb, and L2 toward the initial weights."""

import numpy as np
import pytest
import torch
from lifelong.model.network import Network
from lifelong.model.optim import SGD, Adam
from lifelong.model.plasticity import ContinualBackprop, L2Init, ShrinkPerturb


def make(hidden=(8, 8), n_in=5, n_out=3, seed=0):
    net = Network(hidden, n_out, torch.Generator().manual_seed(seed))
    net.grow_inputs(n_in, initialise=True)
    return net


def learn(net, optimizer, rng, cbp=None):
    """One step on a random example and output gradient."""
    net.input[:] = rng.normal(size=net.sizes[0])
    net.forward()
    net.d_output[:] = rng.normal(size=net.sizes[-1])
    net.backward()
    optimizer.step()
    if cbp is not None:
        cbp.step()


def test_cbp_replaces_exactly_rho_times_eligible_units_per_step():
    # m = 0: every unit is eligible from its first step, so each layer accumulates 8 * 1/32 = 1/4
    # of a replacement per step (exact in binary): one every 4 steps.
    net = make()
    sgd = SGD(net, 0.01)
    cbp = ContinualBackprop(net, replacement_rate=1 / 32, maturity_threshold=0)
    rng = np.random.default_rng(0)
    for step in range(1, 101):
        learn(net, sgd, rng, cbp)
        assert cbp.replaced == [step // 4, step // 4]


def expected_replacements(width, rho, maturity, steps):
    """Cumulative replacements per step, simulated from ages alone: which eligible unit goes does
    not change how many units are eligible later."""
    ages = np.zeros(width, dtype=int)
    accumulated, total, counts = 0.0, 0, []
    for _ in range(steps):
        ages += 1
        eligible = np.flatnonzero(ages > maturity)
        if len(eligible):
            accumulated += rho * len(eligible)
            n = int(accumulated)
            accumulated -= n
            ages[eligible[:n]] = 0
            total += n
        counts.append(total)
    return counts


def test_cbp_maturity_threshold_delays_replacement():
    net = make()
    sgd = SGD(net, 0.01)
    cbp = ContinualBackprop(net, replacement_rate=0.05, maturity_threshold=20)
    rng = np.random.default_rng(0)
    expected = expected_replacements(8, 0.05, 20, 300)
    assert expected[21] == 0 and expected[22] == 1  # eligible from step 21: 0.4 per step
    for step in range(300):
        learn(net, sgd, rng, cbp)
        assert cbp.replaced == [expected[step]] * 2


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_cbp_replacement_resets_the_unit_and_keeps_the_next_layer_mean(optimizer):
    net = make(hidden=(6, 5), n_in=4, n_out=2)
    opt = Adam(net, 0.01) if optimizer == "adam" else SGD(net, 0.05, momentum=0.9)
    eta = 0.9
    cbp = ContinualBackprop(net, 0.01, maturity_threshold=10, decay_rate=eta)
    rng = np.random.default_rng(3)
    while True:
        # The step's statistics, as continual backprop will compute them before replacing.
        net.input[:] = rng.normal(size=4)
        net.forward()
        net.d_output[:] = rng.normal(size=2)
        net.backward()
        opt.step()
        age = cbp.age + 1
        mean = eta * cbp.mean + (1 - eta) * net.hidden_all
        mean_hat = mean / (1 - eta**age)
        W1 = net.layers("param")[1][0].copy()
        b1 = net.layers("param")[1][1].copy()
        next_mean_input = W1 @ mean_hat[:6] + b1
        replaced = list(cbp.replaced)
        cbp.step()
        if cbp.replaced[0] > replaced[0]:
            assert cbp.replaced[1] == replaced[1]  # layer 1's own replacements come later
            break
    unit = int(np.flatnonzero(cbp.age[:6] == 0)[0])
    (W0, b0), (W1, b1), _ = net.layers("param")
    assert not W1[:, unit].any() and b0[unit] == 0
    bound = np.sqrt(6 / 4)  # Kaiming-uniform, ReLU gain, fan-in 4
    assert W0[unit].any() and (np.abs(W0[unit]) <= bound).all()
    # The next layer's input at the units' mean activations is unchanged.
    np.testing.assert_allclose(W1 @ mean_hat[:6] + b1, next_mean_input, rtol=1e-5, atol=1e-6)
    assert cbp.mean[unit] == 0 and cbp.utility[unit] == 0 and cbp.decay_power[unit] == 1
    for name in ["momentum"] if optimizer == "sgd" else ["exp_avg", "exp_avg_sq"]:
        (S0, s0), (S1, _), _ = net.layers(name)
        assert not S0[unit].any() and s0[unit] == 0 and not S1[:, unit].any()
        others = [u for u in range(6) if u != unit]
        assert S0[others].any() and S1[:, others].any()
    if optimizer == "adam":
        assert (net.layers("beta1_power")[0][0][unit] == 1).all()


def test_cbp_replaces_the_lowest_utility_unit():
    net = make(hidden=(4,), n_in=3, n_out=2)
    sgd = SGD(net, 0.0)  # weights fixed: utilities depend on activations only
    cbp = ContinualBackprop(net, 0.25, maturity_threshold=1)
    net.layers("param")[0][1][:] = 2.0  # every unit active, so every other utility is positive
    net.layers("param")[1][0][:, 2] = 0.0  # unit 2 contributes nothing downstream: utility 0
    rng = np.random.default_rng(0)
    learn(net, sgd, rng, cbp)
    assert cbp.replaced == [0]
    learn(net, sgd, rng, cbp)  # all 4 eligible: 4 x 0.25 = 1 replacement
    assert cbp.replaced == [1] and cbp.age.tolist() == [2, 2, 0, 2]


def test_adaptable_utility_divides_by_incoming_weight_magnitude():
    utilities = {}
    for utility in ["contribution", "adaptable_contribution"]:
        net = make(hidden=(4,), n_in=3, n_out=2)
        net.layers("param")[0][0][0] *= 100  # unit 0: large incoming weights
        sgd = SGD(net, 0.0)
        cbp = ContinualBackprop(net, 0.0, maturity_threshold=0, utility=utility)
        rng = np.random.default_rng(0)
        for _ in range(5):
            learn(net, sgd, rng, cbp)
        utilities[utility] = cbp.utility
    magnitude = np.abs(net.layers("param")[0][0]).mean(axis=1)
    np.testing.assert_allclose(
        utilities["adaptable_contribution"], utilities["contribution"] / magnitude, rtol=1e-4
    )
    assert utilities["contribution"].all()


def test_shrink_and_perturb():
    net = make()
    before = net.flat("param").copy()
    sp = ShrinkPerturb(net, shrink=0.1, std=0.0)
    sp.step()
    np.testing.assert_allclose(net.flat("param"), 0.9 * before, rtol=1e-6)
    sp = ShrinkPerturb(make(hidden=(100, 100)), shrink=0.0, std=0.01)
    net = sp.network
    net.grow_inputs(1)
    net.grow_inputs(1)  # spare capacity now
    assert net.capacity[0] > net.sizes[0]
    before = net.flat("param").copy()
    sp.step()
    noise = net.flat("param") - before
    n = net.n_parameters
    assert np.count_nonzero(noise) == n  # spare capacity gets none
    assert noise[noise != 0].std() == pytest.approx(0.01, rel=0.05)


def test_perturbation_is_drawn_from_the_network_generator():
    draws = []
    for _ in range(2):
        sp = ShrinkPerturb(make(seed=5), shrink=0.0, std=0.1)
        sp.step()
        draws.append(sp.network.flat("param").copy())
    np.testing.assert_array_equal(*draws)


def test_l2_init_adds_the_gradient_toward_initial_weights():
    net = make()
    l2 = L2Init(net, strength=0.5)
    net.flat("param")[:] += 1.0
    net.flat("grad")[:] = 0.0
    l2.add_gradient()
    np.testing.assert_allclose(net.flat("grad"), 1.0)  # 2 · 0.5 · (θ - θ₀)


def test_l2_init_pulls_back_to_initial_weights():
    net = make()
    sgd = SGD(net, 0.1)
    l2 = L2Init(net, strength=1.0)
    theta0 = [W.copy() for W, _ in net.layers("param")]
    net.flat("param")[:] += np.random.default_rng(0).normal(size=net.flat("param").size)
    for _ in range(100):
        net.flat("grad")[:] = 0.0
        l2.add_gradient()
        sgd.step()
    for (W, _), W0 in zip(net.layers("param"), theta0, strict=True):
        np.testing.assert_allclose(W, W0, atol=1e-6)
