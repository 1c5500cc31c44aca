import math

import pytest
import torch
from lifelong.model.telemetry import (
    LayerTelemetry,
    dead_fraction,
    dormant_fraction,
    effective_rank,
    tau_dormant_fraction,
)


def relu_activations(n=2000, width=100, inputs=50, seed=0):
    """Hidden activations of a Kaiming-uniform ReLU layer on standard normal inputs."""
    g = torch.Generator().manual_seed(seed)
    bound = math.sqrt(6 / inputs)
    W = (torch.rand(width, inputs, generator=g) * 2 - 1) * bound
    b = (torch.rand(width, generator=g) * 2 - 1) * 0.1
    return torch.relu(torch.randn(n, inputs, generator=g) @ W.T + b)


def streamed(H, window, one_by_one=True):
    t = LayerTelemetry(H.shape[1], window=window)
    if one_by_one:
        for h in H:
            t.observe(h)
    else:
        t.observe(H)
    return t


def entropy_rank(values):
    p = values / values.sum()
    p = p[p > 0]
    return math.exp(-float((p * p.log()).sum()))


def test_effective_rank_of_equal_singular_values_is_their_number():
    H = torch.zeros(10, 6)
    H[0, 0], H[1, 1], H[2, 2], H[3, 3] = 2.0, -2.0, 2.0, 2.0
    assert effective_rank(H) == pytest.approx(4.0, rel=1e-12)
    assert effective_rank(torch.zeros(5, 3)) == 0.0


def test_streamed_effective_rank_matches_batch_svd():
    H = relu_activations()
    erank = streamed(H, window=len(H)).stats()["effective_rank"]
    assert erank == pytest.approx(effective_rank(H), rel=0.01)

    # The known pitfalls give clearly different numbers.
    sigma = torch.linalg.svdvals(H.double())
    without_sqrt = entropy_rank(sigma**2)
    centred = effective_rank(H - H.mean(0))
    assert abs(erank - without_sqrt) > 0.2 * erank
    assert abs(erank - centred) > 0.05 * erank


def test_one_by_one_and_as_one_sequence_agree():
    H = relu_activations(n=500, width=64)
    a = streamed(H, window=500).stats()
    b = streamed(H, window=500, one_by_one=False).stats()
    assert a["effective_rank"] == pytest.approx(b["effective_rank"], rel=1e-9)
    for key in ("dead_fraction", "dormant_fraction", "tau_dormant_fraction"):
        assert a[key] == b[key]


def test_sequence_straddling_windows_is_split_at_the_boundary():
    H = relu_activations(n=300, width=16)
    a = streamed(H, window=100)
    b = LayerTelemetry(16, window=100)
    b.observe(H[:70])
    b.observe(H[70:250])  # completes two windows, leaves 50
    b.observe(H[250:])
    assert a.stats() == pytest.approx(b.stats(), rel=1e-9)
    assert torch.allclose(a.state_dict()["gram"], b.state_dict()["gram"], rtol=1e-12)


@pytest.fixture
def known_units():
    """500 examples, 10 units: 2 dead, 2 rare (dormant), 1 exactly at the 1% boundary, 5 busy."""
    g = torch.Generator().manual_seed(1)
    H = torch.relu(torch.randn(500, 10, generator=g)) + 0.01
    H[:, 0:2] = 0.0  # dead
    H[:, 2] = 0.0
    H[[7, 99, 301], 2] = 1.5  # active on 0.6% of examples: dormant
    H[:, 3] = 0.0
    H[:4, 3] = 0.2  # 0.8%: dormant
    H[:, 4] = 0.0
    H[100:105, 4] = 3.0  # exactly 1%: not below 1%
    return H


def test_dead_and_dormant_fractions_are_exact(known_units):
    H = known_units
    assert dead_fraction(H) == 0.2
    assert dormant_fraction(H, below=0.01) == 0.4
    stats = streamed(H, window=500).stats()
    assert stats["dead_fraction"] == 0.2
    assert stats["dormant_fraction"] == 0.4


def test_negative_values_count_as_inactive():
    H = -torch.rand(20, 3)
    H[0, 1] = 1.0
    assert dead_fraction(H) == pytest.approx(2 / 3)
    assert streamed(H, window=20).stats()["dead_fraction"] == pytest.approx(2 / 3)


def test_tau_dormant_matches_the_redo_formula():
    H = relu_activations(n=1000, width=40)
    H[:, :6] *= 0.05  # six units far below the layer's average magnitude
    mean_abs = H.abs().double().mean(0)
    score = mean_abs / (mean_abs.mean() + 1e-9)
    expected = int((score <= 0.1).sum()) / 40
    assert expected >= 6 / 40
    assert tau_dormant_fraction(H, tau=0.1) == expected
    assert streamed(H, window=1000).stats()["tau_dormant_fraction"] == expected


def test_stats_describe_the_last_completed_window():
    t = LayerTelemetry(4, window=100)
    assert t.stats() == dict.fromkeys(
        ("dead_fraction", "dormant_fraction", "tau_dormant_fraction", "effective_rank"), 0.0
    )
    first = torch.zeros(100, 4)
    first[:, 0] = 1.0  # units 1-3 dead, rank 1
    t.observe(first[:40])
    assert t.stats()["dead_fraction"] == 0.75  # partial window, before any completed
    t.observe(first[40:])
    assert t.stats()["dead_fraction"] == 0.75

    second = relu_activations(n=100, width=4) + 0.1  # every unit always active
    t.observe(second[:60])
    assert t.stats()["dead_fraction"] == 0.75  # the first window still
    assert t.stats()["effective_rank"] == pytest.approx(1.0)
    t.observe(second[60:])
    assert t.stats()["dead_fraction"] == 0.0  # the second window only
    assert t.stats()["effective_rank"] == pytest.approx(effective_rank(second), rel=1e-6)


def test_state_dict_round_trip_continues_identically():
    H = relu_activations(n=400, width=32)
    a = LayerTelemetry(32, window=100, tau=0.2, dormant_below=0.05)
    a.observe(H[:150])
    b = LayerTelemetry(32, window=100, tau=0.2, dormant_below=0.05)
    b.load_state_dict(a.state_dict())
    assert b.stats() == a.stats()
    for h in H[150:]:
        a.observe(h)
        b.observe(h)
    assert b.stats() == a.stats()
    for key, value in a.state_dict().items():
        assert torch.equal(value, b.state_dict()[key])


def test_state_dict_survives_safetensors():
    safetensors = pytest.importorskip("safetensors.torch")
    a = LayerTelemetry(8, window=50)
    a.observe(relu_activations(n=70, width=8))
    b = LayerTelemetry(8, window=50)
    b.load_state_dict(safetensors.load(safetensors.save(a.state_dict())))
    assert b.stats() == a.stats()


def test_load_state_dict_rejects_another_width_or_window():
    a = LayerTelemetry(8, window=50)
    a.observe(relu_activations(n=30, width=8))
    with pytest.raises(ValueError, match="shape"):
        LayerTelemetry(9, window=50).load_state_dict(a.state_dict())
    with pytest.raises(ValueError, match="window"):
        LayerTelemetry(8, window=20).load_state_dict(a.state_dict())


def test_effective_rank_is_computed_when_read_once_per_window(monkeypatch):
    """Closing a window only copies its second moment; `stats` eigendecomposes it once."""
    calls = []
    eigvalsh = torch.linalg.eigvalsh
    monkeypatch.setattr(
        torch.linalg, "eigvalsh", lambda S, **kw: calls.append(1) or eigvalsh(S, **kw)
    )
    H = relu_activations(n=500, width=16)
    t = LayerTelemetry(16, window=100)
    t.observe(H[:300])  # three windows close unread
    assert calls == []
    rank = t.stats()["effective_rank"]
    assert rank == pytest.approx(effective_rank(H[200:300]), rel=1e-6)
    assert t.stats()["effective_rank"] == rank and len(calls) == 1  # cached
    t.observe(H[300:350])
    assert t.stats()["effective_rank"] == rank and len(calls) == 1  # still that window's
    t.observe(H[350:400])
    assert t.stats()["effective_rank"] == pytest.approx(effective_rank(H[300:400]), rel=1e-6)
    assert len(calls) == 2


def test_only_the_upper_triangle_of_the_second_moment_is_read():
    """The compiled fast path sums only S's upper triangle: statistics and state come from it."""
    H = relu_activations(n=150, width=16)
    full, upper = LayerTelemetry(16, window=100), LayerTelemetry(16, window=100)
    for t in (full, upper):
        t.observe(H[:90])
    upper._gram.tril_(-1).mul_(-3.0).add_(torch.triu(full._gram))  # a garbage lower triangle
    assert torch.equal(upper.state_dict()["gram"], full.state_dict()["gram"])
    assert upper.stats() == full.stats()
    for t in (full, upper):
        t.observe(H[90:150])  # the window closes with the lower triangle still garbage
    assert upper.stats() == full.stats()
