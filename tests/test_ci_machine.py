""".ci/machine.py, which .ci/run prints first: where a run ran, on whatever machine runs it."""

import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def machine(**env: str) -> dict[str, str]:
    """Its lines by their first word."""
    result = subprocess.run(
        [sys.executable, str(ROOT / ".ci" / "machine.py")],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        check=True,
    )
    return dict(line.split(maxsplit=1) for line in result.stdout.splitlines())


def test_it_names_the_cpu_the_blas_cores_and_the_kernel_target():
    lines = machine()
    assert lines.keys() == {"CPU", "OpenBLAS", "torch", "kernel"}
    assert platform.machine() in lines["CPU"]
    assert "numpy.libs: openblas" in lines["OpenBLAS"] and " core " in lines["OpenBLAS"]
    assert "CPU capability" in lines["torch"]
    assert lines["kernel"].startswith(("native", "portable", "unavailable"))


def has_avx2() -> bool:
    with open("/proc/cpuinfo") as f:
        return any(line.startswith("flags") and " avx2" in line for line in f)


@pytest.mark.skipif(
    platform.machine() != "x86_64" or not has_avx2(), reason="Haswell's kernels need AVX2"
)
def test_it_reports_a_forced_openblas_core_type():
    blas = machine(OPENBLAS_CORETYPE="Haswell")["OpenBLAS"]
    assert "numpy.libs: openblas" in blas
    assert "core Haswell" in blas and "(OPENBLAS_CORETYPE=Haswell)" in blas
