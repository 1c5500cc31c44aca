"""No module reaches into another class's private attributes (ruff's SLF001 over the package):
renaming a private field must never break another module silently."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "service" / "lifelong"


def test_no_private_member_access_across_classes():
    ruff = shutil.which("ruff") or str(Path(sys.executable).with_name("ruff"))
    result = subprocess.run(
        [ruff, "check", "--select", "SLF001", "--output-format", "concise", "--no-cache",
         str(PACKAGE)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout
