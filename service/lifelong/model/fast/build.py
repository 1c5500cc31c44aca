"""Compiling `kernel.c` at first use, once per machine, into a cache directory.

Plain C loaded with ctypes, chosen by measurement over Numba and a torch C++ extension (see
benchmarks/speed/README.md): the fastest loop, a build of a fraction of a second, and no
dependency beyond a C compiler. `-march=native` is safe because the library is built where it
runs; the cache key includes the source, the flags, the compiler and the CPU.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path

SOURCE = Path(__file__).with_name("kernel.c")
# -ffp-contract=off: no fused multiply-adds, so element-wise updates round as the reference's
# separate NumPy operations do. -fopenmp-simd: vectorise only the loops marked reorderable.
FLAGS = ("-O3", "-march=native", "-fopenmp-simd", "-fno-math-errno", "-ffp-contract=off")
CACHE_ENV = "LIFELONG_KERNEL_CACHE"


class KernelUnavailable(RuntimeError):
    """No C compiler, or the build failed: the learner uses its reference path."""


def cache_dir() -> Path:
    """$LIFELONG_KERNEL_CACHE, else $XDG_CACHE_HOME/lifelong or ~/.cache/lifelong."""
    if path := os.environ.get(CACHE_ENV):
        return Path(path)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "lifelong"


def _compiler() -> str:
    for name in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if name and shutil.which(name):
            return name
    raise KernelUnavailable("no C compiler (set CC, or install gcc)")


def _cpu() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next((line for line in f if line.startswith("flags")), platform.processor())
    except OSError:
        return platform.processor()


@functools.cache
def load() -> ctypes.CDLL:
    """The compiled kernel, built if this machine has not built this source yet."""
    cc = _compiler()
    version = subprocess.run([cc, "--version"], capture_output=True, text=True).stdout
    source = SOURCE.read_bytes()
    key = hashlib.sha256(b"\0".join([source, " ".join(FLAGS).encode(), version.encode(),
                                     _cpu().encode(), platform.machine().encode()]))  # fmt: skip
    target = cache_dir() / f"kernel-{key.hexdigest()[:20]}.so"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        # Build beside the target, then rename: concurrent processes never load a partial file.
        fd, tmp = tempfile.mkstemp(suffix=".so", dir=target.parent)
        os.close(fd)
        cmd = [cc, *FLAGS, "-shared", "-fPIC", str(SOURCE), "-o", tmp, "-lm"]
        result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode:
            os.unlink(tmp)
            raise KernelUnavailable(f"{' '.join(cmd)} failed:\n{result.stderr}")
        os.replace(tmp, target)
    return ctypes.CDLL(str(target))
