"""Online standardisation of inputs and targets."""

import numpy as np
from lifelong.model.scaler import Standardizer, TargetScaler


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
