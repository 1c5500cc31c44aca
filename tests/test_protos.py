import importlib.util
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_committed_stubs_match_regeneration():
    result = subprocess.run(
        [sys.executable, str(ROOT / "protos" / "generate.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr


def test_stubs_describe_the_v1_services():
    from lifelong.v1 import lifelong_pb2

    services = set(lifelong_pb2.DESCRIPTOR.services_by_name)
    assert services == {"PredictionService", "LearningService", "ModelService", "AdminService"}
    assert importlib.util.find_spec("lifelong.v1.lifelong_pb2_grpc") is not None
