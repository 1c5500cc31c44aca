"""Where a CI run ran: the CPU, the BLAS kernels NumPy and torch picked for it, and the target the
learner's C kernel was built for. Floating-point results of different CPUs differ in their last
bits (summation order follows the kernel), so a failure report needs these lines.

    .venv/bin/python .ci/machine.py
"""

from __future__ import annotations

import os
import platform
import re
import subprocess
from pathlib import Path

import numpy as np
import torch
from lifelong.model.fast import KernelUnavailable, build

# The flags that decide which SIMD kernels run (x86-64 levels and AVX-512 extensions; arm64).
SIMD = (
    *("sse4_2", "avx", "avx2", "fma"),
    *("avx512f", "avx512dq", "avx512cd", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16"),
    *("amx_tile", "amx_bf16", "asimd", "asimdhp", "sve", "sve2"),
)
# Predefined macros of the C compiler, for the x86-64 level its target reaches.
LEVEL_MACROS = {
    "x86-64-v4": {"__AVX512F__", "__AVX512BW__", "__AVX512CD__", "__AVX512DQ__", "__AVX512VL__"},
    "x86-64-v3": {"__AVX2__", "__FMA__", "__BMI2__", "__F16C__", "__MOVBE__"},
    "x86-64-v2": {"__SSE4_2__", "__POPCNT__", "__SSSE3__"},
}


def cpuinfo(key: str) -> str:
    """The first /proc/cpuinfo value of `key` ("model name", "flags"; arm64: "Features")."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            name, _, value = line.partition(":")
            if name.strip() == key:
                return value.strip()
    except OSError:
        pass
    return ""


def cpu() -> str:
    flags = set((cpuinfo("flags") or cpuinfo("Features")).split())
    model = cpuinfo("model name") or platform.processor() or "unknown model"
    runs = [march for march, needs in build.levels() if march and needs <= flags]
    level = f", runs {runs[0]}" if runs else ""
    simd = " ".join(f for f in SIMD if f in flags) or "none of " + " ".join(SIMD)
    return f"{model} ({platform.machine()}, {os.cpu_count()} CPUs{level}); SIMD flags: {simd}"


def openblas() -> str:
    """The BLAS libraries loaded (NumPy's, and SciPy's, which river imports) and the core type
    each DYNAMIC_ARCH build chose (threadpoolctl, which scikit-learn, a dev dependency, brings)."""

    forced = os.environ.get("OPENBLAS_CORETYPE")
    note = f" (OPENBLAS_CORETYPE={forced})" if forced else ""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return f"NumPy {np.__version__}: core type unknown, no threadpoolctl{note}"
    pools = [p for p in threadpool_info() if p.get("user_api") == "blas"]
    described = [
        f"{Path(p['filepath']).parent.name}: {p['internal_api']} {p.get('version')} core "
        f"{p.get('architecture')}, {p.get('num_threads')} threads"
        for p in pools
    ]
    return f"NumPy {np.__version__}; {'; '.join(described) or 'no BLAS found'}{note}"


def torch_cpu() -> str:
    blas = re.search(r"BLAS_INFO=(\w+)", torch.__config__.show())
    return (
        f"torch {torch.__version__}: CPU capability {torch.backends.cpu.get_cpu_capability()}, "
        f"BLAS {blas.group(1) if blas else 'unknown'}, {torch.get_num_threads()} threads"
    )


def kernel() -> str:
    """The kernel the learner loads (native or portable) and the level its target reaches."""
    try:
        path = Path(build.load()._name)
    except KernelUnavailable as e:
        return f"unavailable, the learner uses its reference path: {e}"
    if path.name.startswith("kernel-portable-"):
        return f"portable {path.name} ({path.parent})"
    cc = os.environ.get("CC") or "cc"
    macros = subprocess.run(
        [cc, "-march=native", "-dM", "-E", "-"], input="", capture_output=True, text=True
    ).stdout
    defined = set(re.findall(r"#define (\w+)", macros))
    level = next((name for name, need in LEVEL_MACROS.items() if need <= defined), None)
    target = subprocess.run(
        [cc, "-march=native", "-Q", "--help=target"], capture_output=True, text=True
    ).stdout
    march = re.search(r"^\s*-march=\s*(\S+)", target, re.MULTILINE)
    return (
        f"native {path.name} ({path.parent}): {cc} -march=native"
        + (f" = {march.group(1)}" if march else "")
        + (f", reaches {level}" if level else "")
    )


def main() -> None:
    for name, describe in (("CPU", cpu), ("OpenBLAS", openblas), ("torch", torch_cpu)):
        print(f"{name:9} {describe()}", flush=True)
    print(f"{'kernel':9} {kernel()}", flush=True)


if __name__ == "__main__":
    main()
