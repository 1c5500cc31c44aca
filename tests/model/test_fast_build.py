"""Building and loading the kernel: the native build where a compiler exists, the portable
prebuilt one where none does, and the reference path, never a crash, when neither can be had.

Failures are real: a missing source file, a cache path under a regular file, compilers that are
shell scripts failing or writing a non-library, a PATH without any compiler. Only other CPUs are
simulated, by the /proc/cpuinfo line that picks the portable level.
"""

from __future__ import annotations

import itertools
import logging
import platform
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from lifelong.model.config import LearnerConfig
from lifelong.model.fast import build
from lifelong.model.fast.build import CACHE_ENV, KernelUnavailable, load
from lifelong.model.learner import LifelongClassifier, LifelongRegressor
from model.test_fast_path import CASES, assert_same, assert_same_noise, fast, reference, stream


@pytest.fixture
def kernels(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An empty kernel cache; `load` forgets the kernel of earlier tests, and this one's after."""
    cache = tmp_path / "kernels"
    monkeypatch.setenv(CACHE_ENV, str(cache))
    load.cache_clear()
    yield cache
    load.cache_clear()


def no_compiler(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A PATH where no compiler is found, as in the runtime image (which has none)."""
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.delenv("CC", raising=False)
    with pytest.raises(KernelUnavailable, match="no C compiler"):
        build._compiler()


def script(path: Path, body: str) -> str:
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)
    return str(path)


def assert_reference_path(caplog: pytest.LogCaptureFixture, reason: str) -> None:
    """The learner warns, then learns through the reference path: exactly what it learns there."""
    config = LearnerConfig(hidden=(8,))
    X, y, _ = stream(200)
    model = LifelongClassifier(config)
    with caplog.at_level(logging.WARNING, logger="lifelong.model.learner"):
        model.learn_many(X, y)
    assert reason in model.fast_path_unavailable
    assert "learning through the reference path" in caplog.text
    assert model.to_bytes() == reference(LifelongClassifier, config, X, y).to_bytes()


# -- never a crash ------------------------------------------------------------------------------


def test_missing_source(kernels, tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(build, "SOURCE", tmp_path / "absent.c")
    assert_reference_path(caplog, "absent.c")


def test_cache_that_cannot_be_created(kernels, tmp_path, monkeypatch, caplog):
    """A cache path under a regular file (tests run as root here: permissions would not stop
    the build; the OSError is the same kind)."""
    (tmp_path / "a-file").write_text("")
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "a-file" / "kernels"))
    assert_reference_path(caplog, "Not a directory")


def test_failing_compiler(kernels, tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("CC", script(tmp_path / "cc", "echo 'cc: internal error' >&2; exit 1"))
    assert_reference_path(caplog, "cc: internal error")
    assert not list(kernels.iterdir())  # no partial file left behind


def test_compiler_writing_a_non_library(kernels, tmp_path, monkeypatch, caplog):
    """The compiler says it succeeded, but ctypes cannot load what it wrote."""
    body = 'while [ $# -gt 0 ]; do [ "$1" = -o ] && head -c 4096 /dev/zero > "$2"; shift; done'
    monkeypatch.setenv("CC", script(tmp_path / "cc", body))
    assert_reference_path(caplog, "invalid ELF header")


def test_no_compiler_and_no_portable_kernel(kernels, tmp_path, monkeypatch, caplog):
    no_compiler(tmp_path, monkeypatch)
    assert_reference_path(caplog, "no portable kernel at")


# -- the portable kernel ------------------------------------------------------------------------


def test_portable_levels_and_flags():
    assert [march for march, _ in build.LEVELS["x86_64"]] == ["x86-64-v4", "x86-64-v3", "x86-64-v2"]
    for better, worse in itertools.pairwise(build.LEVELS["x86_64"]):
        assert better[1] > worse[1]  # a CPU running a level runs those below it
    assert build.portable_flags("x86-64-v2")[0] == "-march=x86-64-v2"
    assert not any(f.startswith("-march") for f in build.portable_flags(""))  # unknown machine
    # the rest as the native build: the same rounding (no contraction into FMAs)
    assert set(build.portable_flags("x86-64-v2")[1:]) == set(build.NATIVE_FLAGS) - {"-march=native"}


def cpu_flags() -> set[str]:
    line = build._cpu()
    return set(line.partition(":")[2].split()) if line.startswith("flags") else set()


CPUS = {
    "this CPU": None,
    "x86-64-v2 only": "flags\t\t: fpu sse sse2 " + " ".join(sorted(build.LEVELS["x86_64"][2][1])),
    "unknown flags": "",
}


@pytest.mark.parametrize("cpu", CPUS)
@pytest.mark.parametrize("model_type", [LifelongClassifier, LifelongRegressor])
def test_portable_kernel_without_a_compiler(kernels, tmp_path, monkeypatch, model_type, cpu):
    """Built ahead of time, then found by name where no compiler exists: the learner's fast path
    runs through the best level the CPU has (the lowest when unknown) and learns what the
    reference path learns."""
    if cpu != "this CPU" and platform.machine() != "x86_64":
        pytest.skip("x86_64's levels")
    built = build.build()
    assert {p.parent for p in built} == {kernels}
    assert all(p.name.startswith("kernel-portable-") for p in built)
    assert all(p.stat().st_mode & stat.S_IROTH for p in built)  # loadable by any user
    no_compiler(tmp_path, monkeypatch)
    assert [build.portable_path(march) for march, _ in build.levels()] == built  # no compiler
    if CPUS[cpu] is None:
        runs = [needs <= cpu_flags() for _, needs in build.levels()]
        expected = built[runs.index(True)]
    else:
        monkeypatch.setattr(build, "_cpu", lambda: CPUS[cpu])
        expected = built[-1]
    assert load()._name == str(expected)
    config, n = CASES["sgd+cbp (default)"]
    X, y, target = stream(n)
    labels = y if model_type is LifelongClassifier else target
    ref = reference(model_type, config, X, labels)
    assert_same(ref, fast(model_type, config, X, labels, chunks=[1, 10, 200]))
    assert_same_noise()
    assert sorted(kernels.iterdir()) == sorted(built)  # nothing written at load


def test_native_build_preferred_where_a_compiler_exists(kernels):
    portable = build.build()
    library = Path(load()._name)
    assert library.parent == kernels and library not in portable
    assert not library.name.startswith("kernel-portable-")


def test_portable_kernel_when_the_native_build_fails(kernels, tmp_path, monkeypatch, caplog):
    portable = build.build()
    monkeypatch.setenv("CC", script(tmp_path / "cc", "exit 1"))
    with caplog.at_level(logging.INFO, logger="lifelong.model.fast.build"):
        assert load()._name in map(str, portable)
    assert "using the portable kernel" in caplog.text


@pytest.mark.skipif(platform.machine() != "x86_64", reason="x86-64-v2 is x86_64's baseline")
def test_portable_kernel_refused_on_a_cpu_without_its_baseline(kernels, tmp_path, monkeypatch):
    """Running it there would die of SIGILL: the reference path instead."""
    build.build()
    no_compiler(tmp_path, monkeypatch)
    monkeypatch.setattr(build, "_cpu", lambda: "flags\t\t: fpu sse sse2 cx16 lahf_lm\n")
    with pytest.raises(
        KernelUnavailable, match="lacks pni popcnt sse4_1 sse4_2 ssse3, needed by x86-64-v2"
    ):
        load()
