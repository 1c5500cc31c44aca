"""`lifelong.process.return_large_blocks`: what the live fuzz run (test_fuzz_service.py) found
for finding 7, checked where it is cheap: in a fresh interpreter."""

import ctypes.util
import os
import subprocess
import sys

import pytest

CHECK = "from lifelong.process import return_large_blocks; print(return_large_blocks())"


def run(**env: str) -> str:
    environ = {k: v for k, v in os.environ.items() if k != "MALLOC_MMAP_THRESHOLD_"}
    result = subprocess.run(
        [sys.executable, "-c", CHECK], env={**environ, **env}, capture_output=True, text=True,
        check=True,
    )  # fmt: skip
    return result.stdout.strip()


@pytest.mark.skipif(
    "glibc" not in (os.confstr("CS_GNU_LIBC_VERSION") if hasattr(os, "confstr") else "")
    or not ctypes.util.find_library("c"),
    reason="glibc's mallopt",
)
def test_large_blocks_go_back_to_the_system_unless_the_operator_chose():
    assert run() == "True"
    assert run(MALLOC_MMAP_THRESHOLD_="1048576") == "False"
