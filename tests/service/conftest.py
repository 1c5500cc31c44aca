"""Fixtures for the service tests: real learners, real gRPC servers on free localhost ports,
grpcurl built from the Go module proxy."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from testsupport import Servers

ROOT = Path(__file__).resolve().parents[2]
GRPCURL_VERSION = "v1.9.3"  # as scripts/dev.sh


@pytest.fixture
def serve() -> Iterator:
    """`serve(host=None, task=..., **settings)` starts a real server on a free port."""
    servers = Servers()
    yield servers.start
    servers.close()


@pytest.fixture(scope="session")
def grpcurl() -> Path:
    """grpcurl, built once with `go install` from the Go module proxy into .cache/bin."""
    cache = Path(os.environ.get("LIFELONG_CACHE", ROOT / ".cache"))
    binary = cache / "bin" / "grpcurl"
    if not binary.exists():
        go = shutil.which("go")
        if go is None:
            pytest.fail("grpcurl is not built and Go is not installed to build it")
        subprocess.run(
            [go, "install", f"github.com/fullstorydev/grpcurl/cmd/grpcurl@{GRPCURL_VERSION}"],
            env={**os.environ, "GOBIN": str(binary.parent), "GOFLAGS": "-mod=mod"},
            check=True,
            timeout=600,
        )
    return binary
