"""Compiling `kernel.c` into a shared library in a cache directory, and loading it.

Plain C loaded with ctypes, chosen by measurement over Numba and a torch C++ extension (see
benchmarks/speed/README.md): the fastest loop, a build of a fraction of a second, and no
dependency beyond a C compiler. Two builds:

* native, at first use wherever a C compiler exists: `-march=native` is safe because the library
  is built where it runs; its name hashes the source, the flags, the compiler and the CPU.
* portable, ahead of time (`python -m lifelong.model.fast.build`, as the image's build stage
  does), for hosts without a compiler: one build per level of the architecture (x86-64-v2, v3,
  v4), the best this CPU runs loaded. Names hash only the source, the flags and the machine, so
  such a host can find them.

`load` prefers the native build, then a portable one; when neither can be had, for whatever
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
# The portable builds' -march per platform.machine(), best first, each with the /proc/cpuinfo
# flags a CPU needs to run it (else SIGILL: QEMU's default qemu64 CPU lacks even v2's). Several
# levels because vector width matters: 20-64-64-3 learns at ~15k/s on v2 (SSE), ~65k/s on v3
# (AVX2), ~80k/s on v4 (AVX-512, as -march=native here). Other machines: one build, for the
# compiler's default target.
_V2 = frozenset({"cx16", "lahf_lm", "pni", "popcnt", "sse4_1", "sse4_2", "ssse3"})
_V3 = _V2 | {"abm", "avx", "avx2", "bmi1", "bmi2", "f16c", "fma", "movbe", "xsave"}
_V4 = _V3 | {"avx512bw", "avx512cd", "avx512dq", "avx512f", "avx512vl"}
LEVELS: dict[str, tuple[tuple[str, frozenset[str]], ...]] = {
    "x86_64": (("x86-64-v4", _V4), ("x86-64-v3", _V3), ("x86-64-v2", _V2)),
    "aarch64": (("armv8-a", frozenset()),),
}
CACHE_ENV = "LIFELONG_KERNEL_CACHE"


class KernelUnavailable(RuntimeError):
    """No kernel can be built or loaded here: the learner uses its reference path."""


def cache_dir() -> Path:
    """$LIFELONG_KERNEL_CACHE, else $XDG_CACHE_HOME/lifelong or ~/.cache/lifelong."""
    if path := os.environ.get(CACHE_ENV):
        return Path(path)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "lifelong"


def levels() -> tuple[tuple[str, frozenset[str]], ...]:
    """This machine's portable levels, best first: (-march value or "", cpuinfo flags needed)."""
    return LEVELS.get(platform.machine(), (("", frozenset()),))


def portable_flags(march: str) -> tuple[str, ...]:
    """The native build's optimisations, for the level `march` instead of this CPU."""
    return (f"-march={march}", *_OPTIMIZE) if march else _OPTIMIZE


def portable_path(march: str) -> Path:
    """Where `build` puts the portable kernel of level `march`: no compiler needed to know it."""
    flags, machine = " ".join(portable_flags(march)).encode(), platform.machine()
    key = _digest(SOURCE.read_bytes(), flags, machine.encode())
    return cache_dir() / f"kernel-portable-{march or machine}-{key}.so"


def build() -> list[Path]:
    """Compile the portable kernels into `cache_dir()`, unless there already; their paths."""
    paths = []
    for march, _needs in levels():
        target = portable_path(march)
        if not target.exists():
            _compile(_compiler(), portable_flags(march), target)
        paths.append(target)
    return paths


@functools.cache
def load() -> ctypes.CDLL:
    """The native kernel (built if this machine has not built this source yet), else the
    portable one `build` made; `KernelUnavailable` says why neither."""
    reasons = []
    for find in (_native, _portable):
        try:
            path = find()
            library = ctypes.CDLL(str(path))
        except (KernelUnavailable, OSError) as e:
            reasons.append(str(e))
            continue
        if reasons:
            logger.info("using the portable kernel %s (no native build: %s)", path, reasons[0])
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
    """The best level this CPU runs; only the lowest when its flags are unknown."""
    line = _cpu()
    have = set(line.partition(":")[2].split()) if line.startswith("flags") else None
    *better, (base, base_needs) = levels()
    if have is not None and (lacking := base_needs - have):
        raise KernelUnavailable(f"this CPU lacks {' '.join(sorted(lacking))}, needed by {base}")
    runnable = [march for march, needs in better if have is not None and needs <= have]
    for path in map(portable_path, [*runnable, base]):
        if path.exists():
            return path
    raise KernelUnavailable(
        f"no portable kernel at {portable_path(base)} (python -m lifelong.model.fast.build)"
    )


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
    """Build the portable kernels, print their paths; check that those this CPU runs load."""
    for path in build():
        print(path)
    if not hasattr(ctypes.CDLL(str(_portable())), "lifelong_learn"):
        raise SystemExit("the portable kernel has no lifelong_learn")


if __name__ == "__main__":
    main()
