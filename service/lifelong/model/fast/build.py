"""Compiling `kernel.c` into a shared library in a cache directory, and loading it.

Plain C loaded with ctypes, chosen by measurement over Numba and a torch C++ extension (see
benchmarks/speed/README.md): the fastest loop, a build of a fraction of a second, and no
dependency beyond a C compiler. Two builds:

* native, at first use wherever a C compiler exists: `-march=native` is safe because the library
  is built where it runs; its name hashes the source, the flags, the compiler and the CPU.
* portable, ahead of time (`python -m lifelong.model.fast.build`, as the image's build stage
  does): a baseline of the architecture, for hosts without a compiler. Its name hashes only the
  source, the flags and the machine, so such a host can find it.

`load` prefers the native build, then the portable one; when neither can be had, for whatever
reason (no compiler, a failed build, an unwritable cache, an unloadable file), it raises
`KernelUnavailable` and the learner uses its reference path.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import hashlib
import logging
import os
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path

logger = logging.getLogger(__name__)

SOURCE = Path(__file__).with_name("kernel.c")
# -ffp-contract=off: no fused multiply-adds, so element-wise updates round as the reference's
# separate NumPy operations do. -fopenmp-simd: vectorise only the loops marked reorderable.
_OPTIMIZE = ("-O3", "-fopenmp-simd", "-fno-math-errno", "-ffp-contract=off")
NATIVE_FLAGS = ("-march=native", *_OPTIMIZE)
# The portable build's -march per platform.machine(), and the /proc/cpuinfo flags a CPU needs to
# run it: x86-64-v2's (SSE4.2, POPCNT, ...) are missing from some virtual CPU models (QEMU's
# qemu64), where the kernel would die of SIGILL. Other machines: the compiler's default target.
BASELINES: dict[str, tuple[str, frozenset[str]]] = {
    "x86_64": (
        "-march=x86-64-v2",
        frozenset({"cx16", "lahf_lm", "pni", "popcnt", "sse4_1", "sse4_2", "ssse3"}),
    ),
    "aarch64": ("-march=armv8-a", frozenset()),
}
_NO_BASELINE = ("", frozenset[str]())
CACHE_ENV = "LIFELONG_KERNEL_CACHE"


class KernelUnavailable(RuntimeError):
    """No kernel can be built or loaded here: the learner uses its reference path."""


def cache_dir() -> Path:
    """$LIFELONG_KERNEL_CACHE, else $XDG_CACHE_HOME/lifelong or ~/.cache/lifelong."""
    if path := os.environ.get(CACHE_ENV):
        return Path(path)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "lifelong"


def portable_flags(machine: str | None = None) -> tuple[str, ...]:
    """The native build's optimisations for `machine`'s baseline instead of this CPU."""
    march = BASELINES.get(machine or platform.machine(), _NO_BASELINE)[0]
    return (march, *_OPTIMIZE) if march else _OPTIMIZE


def portable_path() -> Path:
    """Where `build` puts the portable kernel for this source and machine: no compiler needed."""
    machine = platform.machine()
    key = _digest(SOURCE.read_bytes(), " ".join(portable_flags(machine)).encode(), machine.encode())
    return cache_dir() / f"kernel-portable-{key}.so"


def build() -> Path:
    """Compile the portable kernel into `cache_dir()`, unless it is there already; its path."""
    target = portable_path()
    if not target.exists():
        _compile(_compiler(), portable_flags(), target)
    return target


@functools.cache
def load() -> ctypes.CDLL:
    """The native kernel (built if this machine has not built this source yet), else the
    portable one `build` made; `KernelUnavailable` says why neither."""
    reasons = []
    for find in (_native, _portable):
        try:
            library = ctypes.CDLL(str(find()))
        except (KernelUnavailable, OSError) as e:
            reasons.append(str(e))
            continue
        if reasons:
            logger.info(
                "using the portable kernel %s (no native build: %s)", library._name, reasons[0]
            )
        return library
    raise KernelUnavailable("; ".join(reasons))


def _native() -> Path:
    cc = _compiler()
    version = subprocess.run([cc, "--version"], capture_output=True, text=True).stdout
    key = _digest(SOURCE.read_bytes(), " ".join(NATIVE_FLAGS).encode(), version.encode(),
                  _cpu().encode(), platform.machine().encode())  # fmt: skip
    target = cache_dir() / f"kernel-{key}.so"
    if not target.exists():
        _compile(cc, NATIVE_FLAGS, target)
    return target


def _portable() -> Path:
    path = portable_path()
    if not path.exists():
        raise KernelUnavailable(
            f"no portable kernel at {path} (python -m lifelong.model.fast.build makes it)"
        )
    march, needs = BASELINES.get(platform.machine(), _NO_BASELINE)
    line = _cpu()
    if line.startswith("flags") and (lacking := needs - set(line.partition(":")[2].split())):
        raise KernelUnavailable(f"this CPU lacks {' '.join(sorted(lacking))}, needed by {march}")
    return path


def _compile(cc: str, flags: tuple[str, ...], target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    # Build beside the target, then rename: concurrent processes never load a partial file.
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=target.parent)
    os.close(fd)
    try:
        cmd = [cc, *flags, "-shared", "-fPIC", str(SOURCE), "-o", tmp, "-lm"]
        result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode:
            raise KernelUnavailable(f"{' '.join(cmd)} failed:\n{result.stderr}")
        # The linker keeps mkstemp's owner-only mode: readable by all, so that another user (the
        # image's, for a kernel built as root in its build stage) can load it.
        os.chmod(tmp, 0o755)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


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


def _digest(*parts: bytes) -> str:
    return hashlib.sha256(b"\0".join(parts)).hexdigest()[:20]


def main() -> None:
    """Build the portable kernel, check that it loads, print its path."""
    path = build()
    if not hasattr(ctypes.CDLL(str(path)), "lifelong_learn"):
        raise SystemExit(f"{path} has no lifelong_learn")
    print(path)


if __name__ == "__main__":
    main()
