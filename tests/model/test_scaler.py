"""Online standardisation of inputs and targets."""

import numpy as np
import pytest
from lifelong.model.scaler import REGIME_RUN, Standardizer, TargetScaler


def test_matches_batch_mean_and_std_of_everything_seen():
    X = np.random.default_rng(0).normal(5.0, 3.0, size=(500, 4))
    scaler = Standardizer()
    scaler.grow(4)
    z = np.zeros(4, dtype=np.float32)
    for i, x in enumerate(X):
        scaler.learn_transform(x, z)
        if i > 0:
            seen = X[: i + 1]
            np.testing.assert_allclose(z, (x - seen.mean(0)) / seen.std(0), rtol=1e-4)
    np.testing.assert_allclose(scaler.transform(X), (X - X.mean(0)) / X.std(0), rtol=1e-4)


def test_missing_features_are_not_counted_and_map_to_zero():
    scaler = Standardizer()
    scaler.grow(2)
    z = np.zeros(2, dtype=np.float32)
    scaler.learn_transform(np.array([1.0, 100.0]), z)
    scaler.learn_transform(np.array([3.0, 0.0]), z, present=np.array([0]))
    assert z.tolist() == [1.0, 0.0]
    assert scaler.count.tolist() == [2, 1] and scaler.mean.tolist() == [2.0, 100.0]


def test_features_without_spread_map_to_zero():
    scaler = Standardizer()
    scaler.grow(1)
    z = np.zeros(1, dtype=np.float32)
    for _ in range(3):
        scaler.learn_transform(np.array([7.0]), z)
        assert z[0] == 0
    assert scaler.transform(np.array([[8.0]]))[0, 0] == 0


def test_growth_keeps_statistics():
    scaler = Standardizer()
    scaler.grow(1)
    z = np.zeros(1, dtype=np.float32)
    for v in (1.0, 2.0, 3.0):
        scaler.learn_transform(np.array([v]), z)
    scaler.grow(2)
    assert scaler.count.tolist() == [3, 0, 0] and scaler.mean[0] == 2.0


def test_target_scaler():
    target = TargetScaler()
    assert target.inverse(0.5) == 0.5  # nothing seen: identity
    ys = np.random.default_rng(1).normal(10.0, 2.0, size=100)
    for y in ys:
        target.learn(float(y))
    assert abs(target.mean - ys.mean()) < 1e-12
    assert abs(target.std - ys.std()) < 1e-12
    assert abs(target.inverse(target.transform(3.0)) - 3.0) < 1e-12


def learn(scaler: Standardizer, values) -> np.ndarray:
    """Learn one feature's `values` in order; their z-scores."""
    z, out = np.zeros(1, dtype=np.float32), []
    for v in values:
        scaler.learn_transform(np.array([float(v)]), z)
        out.append(float(z[0]))
    return np.array(out)


def one_feature(**kwargs) -> Standardizer:
    scaler = Standardizer(**kwargs)
    scaler.grow(1)
    return scaler


def test_forgets_with_weight_one_over_the_horizon():
    """Past the horizon the statistics are an exponential moving average: a shifted feature is
    re-centred (within a horizon or so) while a never-forgetting one stays in between."""
    rng = np.random.default_rng(2)
    before, after = rng.normal(0.0, 1.0, 5000), rng.normal(3.0, 1.0, 5000)
    forgetting = one_feature(clip=10.0, horizon=1000)
    never = one_feature(clip=10.0)
    for scaler in (forgetting, never):
        learn(scaler, np.concatenate([before, after]))
    assert abs(forgetting.mean[0] - 3.0) < 0.1 and abs(forgetting.var[0] - 1.0) < 0.15
    assert abs(never.mean[0] - 1.5) < 0.1 and never.var[0] > 3.0  # the mixture of both
    # exactly the running moments while n <= horizon
    exact = one_feature(clip=10.0, horizon=1000)
    learn(exact, before[:1000])
    assert exact.mean[0] == pytest.approx(before[:1000].mean(), rel=1e-12)
    assert exact.var[0] == pytest.approx(before[:1000].var(), rel=1e-9)


def test_an_absurd_value_moves_the_variance_by_a_bounded_factor():
    rng = np.random.default_rng(3)
    scaler = one_feature(clip=10.0, horizon=10_000)
    learn(scaler, rng.normal(0.0, 1.0, 2000))
    var = scaler.var[0]
    z = learn(scaler, [1e30])
    assert z[0] == 10.0  # the value itself: clipped
    w = 1.0 / 2001
    # counted as if it were mean + 10 sd: v' = (1 - w)(v + w (10 sd)^2) <= v (1 + 100 w)
    assert var < scaler.var[0] <= var * (1.0 + 100.0 * w)
    assert learn(scaler, rng.normal(0.0, 1.0, 200)).std() > 0.8  # normal values still spread


def test_sentinels_now_and_then_leave_the_statistics_near_the_clean_ones():
    rng = np.random.default_rng(4)
    values = rng.normal(5.0, 2.0, 50_000)
    values[rng.random(len(values)) < 1 / 500] = 1e30
    scaler = one_feature(clip=10.0, horizon=10_000)
    learn(scaler, values)
    assert abs(scaler.mean[0] - 5.0) < 0.2 and 1.8 < np.sqrt(scaler.var[0]) < 2.6


def test_a_change_of_unit_restarts_the_statistics_after_a_run_of_outliers():
    """x1000 from one value on: after REGIME_RUN values beyond the bound in a row the feature
    starts again, so the new regime's z-scores look like the old ones within a few values."""
    rng = np.random.default_rng(5)
    old, new = rng.normal(5.0, 1.0, 3000), 1000.0 * rng.normal(5.0, 1.0, 3000)
    scaler = one_feature(clip=10.0, horizon=10_000)
    learn(scaler, old)
    z = learn(scaler, new)
    assert (z[: REGIME_RUN - 1] == 10.0).all()  # clipped while it could still be outliers
    assert z[REGIME_RUN - 1] == 0.0 and scaler.count[0] == len(new) - REGIME_RUN + 1
    assert abs(scaler.mean[0] - 5000.0) < 100.0
    assert abs(z[100:].mean()) < 0.2 and abs(z[100:].std() - 1.0) < 0.1


def test_the_target_scaler_forgets_winsorises_and_restarts_alike():
    rng = np.random.default_rng(6)
    ys = rng.normal(10.0, 2.0, 3000)
    target, inputs = TargetScaler(clip=10.0, horizon=1000), one_feature(clip=10.0, horizon=1000)
    for y in [*ys, 1e30, *(100.0 * ys[:50] + 1000.0)]:
        z = target.prepare(float(y))
        target.commit()
        assert z == pytest.approx(learn(inputs, [y])[0], abs=1e-6)  # the same update
    assert (target.n, target.mean, target.var, target.run) == (
        int(inputs.count[0]),
        inputs.mean[0],
        inputs.var[0],
        int(inputs.run[0]),
    )
    assert target.n == 50 - (REGIME_RUN - 1) + 1  # the run began with 1e30, before them
