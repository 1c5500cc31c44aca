"""clients/python/examples/predict.py runs against a server (the double here)."""

import subprocess
import sys
from pathlib import Path

import grpc

EXAMPLE = Path(__file__).resolve().parents[2] / "clients" / "python" / "examples" / "predict.py"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(EXAMPLE), *args], capture_output=True, text=True, timeout=30
    )


def test_example_predicts_from_named_features(address, fake):
    result = run(address, "x1=0.3", "x2=-1.0")

    assert result.returncode == 0, result.stderr
    assert "classification model, version 42, features ('x1', 'x2')" in result.stdout
    assert "label: 'neg' (model version 42)" in result.stdout
    assert dict(fake.received[0].features.named) == {"x1": 0.3, "x2": -1.0}


def test_example_defaults_to_zero_dense_features(address, fake):
    result = run(address)

    assert result.returncode == 0, result.stderr
    assert list(fake.received[0].features.dense) == [0.0, 0.0]


def test_example_reports_a_model_that_is_not_ready(address, fake):
    fake.errors["GetModelInfo"].append((grpc.StatusCode.FAILED_PRECONDITION, "nothing learned"))
    result = run(address, "1", "2")

    assert result.returncode == 2
    assert result.stderr == "not ready yet: nothing learned\n"
