"""Continual backprop, shrink and perturb, ReDo, and L2 toward the initial weights."""

import numpy as np
import pytest
import torch
from lifelong.model.network import Network
from lifelong.model.optim import SGD, Adam
from lifelong.model.plasticity import (
    GOLDEN,
    ContinualBackprop,
    L2Init,
    ReDo,
    ShrinkPerturb,
    gaussian,
    step_key,
)
from lifelong.model.telemetry import tau_dormant_fraction
from scipy import stats


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


def test_gaussian_noise_is_standard_normal_and_counter_based():
    weyl = np.arange(1, 200_001, dtype=np.uint64) * np.uint64(GOLDEN)
    z = gaussian(step_key(7, 3), weyl, np.empty(len(weyl), np.float32))
    assert stats.kstest(z, "norm").pvalue > 0.01
    assert abs(stats.skew(z)) < 0.02 and abs(stats.kurtosis(z)) < 0.05
    # element j depends on (key, step, j) alone: any subset, in any order, gives the same bits
    some = np.array([199_999, 5, 0, 12_345])
    np.testing.assert_array_equal(
        gaussian(step_key(7, 3), weyl[some], np.empty(len(some), np.float32)), z[some]
    )
    # other steps and keys are other, uncorrelated, draws
    for key, step in [(7, 4), (8, 3)]:
        other = gaussian(step_key(key, step), weyl, np.empty(len(weyl), np.float32))
        assert abs(np.corrcoef(z, other)[0, 1]) < 0.01


def test_a_restored_noise_stream_continues_where_it_was():
    original = ShrinkPerturb(make(seed=1), shrink=0.0, std=0.1)
    original.step()
    saved = original.state_dict()
    assert saved["steps"] == 1
    twin = ShrinkPerturb(make(seed=9), shrink=0.0, std=0.1)
    assert twin.key != original.key  # each network's generator gives its own
    twin.load_state_dict(saved)
    noise = []
    for sp in (original, twin):
        sp.network.flat("param")[:] = 0.0  # so the parameters become the noise, exactly
        sp.step()
        noise.append(sp.network.flat("param").copy())
    np.testing.assert_array_equal(*noise)
    assert np.count_nonzero(noise[0]) == original.network.n_parameters


def run_redo(net, optimizer, redo, rng, steps):
    """`steps` examples through forward, a random output gradient, the optimizer and ReDo; the
    hidden activations of each, per layer."""
    hidden = [[] for _ in net.hidden]
    for _ in range(steps):
        net.input[:] = rng.normal(size=net.sizes[0])
        net.forward()
        for rows, h in zip(hidden, net.hidden, strict=True):
            rows.append(h.copy())
        net.d_output[:] = rng.normal(size=net.sizes[-1])
        net.backward()
        optimizer.step()
        redo.step()
    return [np.array(rows) for rows in hidden]


def test_redo_resets_the_tau_dormant_units_of_its_interval():
    net = make(hidden=(6, 5), n_in=4, n_out=2)
    adam = Adam(net, 0.01)
    cbp = ContinualBackprop(net, 0.0, maturity_threshold=0)
    every, tau = 30, 0.2
    redo = ReDo(net, every=every, threshold=tau, cbp=cbp)
    (W0, b0), (_, b1), (W2, _) = net.layers("param")
    b0[1] = -100.0  # unit 1 of layer 0: dead, score 0
    W0[4] *= 0.01  # unit 4: faint, score ~0.01 of the layer's mean
    b0[4] = 0.0
    b1[2] = -100.0  # unit 2 of layer 1: dead
    rng = np.random.default_rng(0)
    run_redo(net, adam, redo, rng, every - 1)
    # The interval's last example, and the state just before ReDo sweeps at its end.
    net.input[:] = rng.normal(size=4)
    net.forward()
    net.d_output[:] = rng.normal(size=2)
    net.backward()
    adam.step()
    cbp.step()
    before = {name: [(W.copy(), b.copy()) for W, b in net.layers(name)] for name in net.slot_names}
    sums = redo.sums + net.hidden_all
    redo.step()
    expected = []
    for start, end in [(0, 6), (6, 11)]:
        a = sums[start:end] / every
        expected.append(np.flatnonzero(a / (a.mean() + 1e-9) <= tau).tolist())
    assert 1 in expected[0] and 4 in expected[0] and 2 in expected[1]
    assert redo.replaced == [len(units) for units in expected]
    for layer, units in enumerate(expected):
        (W, b), (W_out, _) = net.layers("param")[layer], net.layers("param")[layer + 1]
        W_was, b_was = before["param"][layer]
        bound = np.sqrt(6 / W.shape[1])  # Kaiming-uniform, ReLU gain
        kept = [u for u in range(W.shape[0]) if u not in units]
        assert (np.abs(W[units]) <= bound).all() and not np.equal(W[units], W_was[units]).any()
        # outgoing weights 0, but where the next layer's reset redrew its units' incoming rows
        fresh_next = expected[layer + 1] if layer + 1 < len(expected) else []
        old_next = [r for r in range(W_out.shape[0]) if r not in fresh_next]
        assert not b[units].any() and not W_out[np.ix_(old_next, units)].any()
        # the rest as they were, but the outgoing weights of the previous layer's reset units
        old_inputs = [c for c in range(W.shape[1]) if layer == 0 or c not in expected[layer - 1]]
        np.testing.assert_array_equal(W[np.ix_(kept, old_inputs)], W_was[np.ix_(kept, old_inputs)])
        np.testing.assert_array_equal(b[kept], b_was[kept])
        for name in ("exp_avg", "exp_avg_sq"):
            (S, s), (S_out, _) = net.layers(name)[layer], net.layers(name)[layer + 1]
            assert not S[units].any() and not s[units].any() and not S_out[:, units].any()
        assert (net.layers("beta1_power")[layer][0][units] == 1).all()
        offset = 6 * layer
        assert (cbp.age[np.array(units) + offset] == 0).all()
        assert (cbp.age[np.array(kept) + offset] == 1).all()  # one cbp.step, above
    np.testing.assert_array_equal(net.layers("param")[2][0][:, [0, 1, 3, 4]], W2[:, [0, 1, 3, 4]])
    assert not redo.sums.any() and redo.steps[0] == 0


def test_redo_scores_are_the_telemetry_tau_dormant_definition():
    """Over one interval, the units ReDo resets are the τ-dormant fraction the telemetry's batch
    definition gives for the same activations."""
    net = make(hidden=(40,), n_in=3, n_out=2, seed=3)
    net.layers("param")[0][1][:] = np.linspace(-1.5, 0.5, 40)  # some units faint, some dead
    redo = ReDo(net, every=50, threshold=0.3)
    (H,) = run_redo(net, SGD(net, 1e-6), redo, np.random.default_rng(1), 50)
    fraction = tau_dormant_fraction(torch.from_numpy(H), tau=0.3)
    assert 0 < fraction < 1
    assert redo.replaced == [round(fraction * 40)]


def test_redo_sweeps_every_f_examples():
    net = make(hidden=(8,), n_in=3, n_out=2)
    net.layers("param")[0][1][0] = -100.0  # one dead unit, reset at the first sweep
    redo = ReDo(net, every=7, threshold=0.05)
    rng, sgd = np.random.default_rng(0), SGD(net, 0.01)
    replaced = []
    for step in range(1, 30):
        run_redo(net, sgd, redo, rng, 1)
        assert redo.steps[0] == step % 7
        replaced.append(redo.replaced[0])
    assert replaced[:6] == [0] * 6 and replaced[6] >= 1
    changed = [step for step in range(2, 30) if replaced[step - 1] != replaced[step - 2]]
    assert set(changed) <= {7, 14, 21, 28}  # only at sweeps
