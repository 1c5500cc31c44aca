"""The client distribution installs and works without torch (or the server's code)."""

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

CLIENT_DIST = Path(__file__).resolve().parents[2] / "clients" / "python"

CHECK = textwrap.dedent(
    """
    import importlib.util
    import sys
    from pathlib import Path

    import lifelong.client
    from lifelong.client.convert import (
        features_from_proto, features_to_proto, label_from_proto, label_to_proto,
    )
    from lifelong.v1 import lifelong_pb2_grpc

    assert "torch" not in sys.modules, "importing lifelong.client imported torch"
    assert importlib.util.find_spec("torch") is None, "torch was installed"
    assert "site-packages" in lifelong.client.__file__, lifelong.client.__file__
    assert Path(lifelong.client.__file__).with_name("py.typed").is_file()
    assert features_from_proto(features_to_proto({"x1": 0.5})) == {"x1": 0.5}
    assert features_from_proto(features_to_proto([1.0, 2.0])) == [1.0, 2.0]
    assert [label_from_proto(label_to_proto(v)) for v in ("spam", 3, 2.5)] == ["spam", 3, 2.5]
    lifelong.client.LifelongClient("localhost:50051").close()
    print("ok")
    """
)


def test_importing_the_client_does_not_import_torch_or_numpy():
    # Both are installed in the dev environment, so an accidental import would go unnoticed.
    code = "import sys, lifelong.client; print(sorted({'torch', 'numpy'} & set(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


@pytest.mark.slow
def test_client_installs_and_runs_in_a_fresh_venv_without_torch(tmp_path):
    # Build from a copy: an in-tree build would leave build/ (possibly stale) in the repository.
    source = tmp_path / "lifelong-client"
    shutil.copytree(
        CLIENT_DIST, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__")
    )
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", venv], check=True)
    python = venv / "bin" / "python"
    # A normal install (dependencies resolved by pip, from its cache when it has them).
    install = subprocess.run(
        [python, "-m", "pip", "install", "--quiet", source], capture_output=True, text=True
    )
    assert install.returncode == 0, install.stderr

    # -I: ignore PYTHONPATH and user site-packages; cwd has no `lifelong` folder to pick up.
    result = subprocess.run(
        [python, "-I", "-c", CHECK], cwd=tmp_path, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
