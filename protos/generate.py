"""Generate the Python stubs of the lifelong API into clients/python.

    python protos/generate.py          # regenerate the committed stubs
    python protos/generate.py --check  # exit 1 if regenerating would change them

The stubs are committed so the torch-free client installs without grpcio-tools;
the check (also run by the test suite) keeps them in step with the .proto files.
"""

from __future__ import annotations

import argparse
import filecmp
import sys
import tempfile
from pathlib import Path

from grpc_tools import protoc

PROTO_ROOT = Path(__file__).resolve().parent
OUT_ROOT = PROTO_ROOT.parent / "clients" / "python"
GENERATED_SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")


def proto_files() -> list[Path]:
    return sorted(PROTO_ROOT.rglob("*.proto"))


def generate(out_root: Path) -> None:
    include = Path(protoc.__file__).parent / "_proto"  # google/protobuf/*.proto
    for proto in proto_files():
        args = [
            "protoc",
            f"-I{PROTO_ROOT}",
            f"-I{include}",
            f"--python_out={out_root}",
            f"--pyi_out={out_root}",
            f"--grpc_python_out={out_root}",
            str(proto.relative_to(PROTO_ROOT)),
        ]
        if protoc.main(args) != 0:
            raise SystemExit(f"protoc failed on {proto}")


def generated_files(root: Path) -> list[Path]:
    return sorted(
        p.relative_to(root)
        for p in (root / "lifelong").rglob("*")
        if p.name.endswith(GENERATED_SUFFIXES)
    )


def check() -> list[str]:
    """Return the stub files that differ from a fresh generation."""
    with tempfile.TemporaryDirectory() as tmp:
        fresh = Path(tmp)
        generate(fresh)
        expected, committed = generated_files(fresh), generated_files(OUT_ROOT)
        stale = sorted(str(p) for p in set(expected) ^ set(committed))
        stale += [
            str(p)
            for p in expected
            if p in committed and not filecmp.cmp(fresh / p, OUT_ROOT / p, shallow=False)
        ]
    return stale


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="verify, do not write")
    if parser.parse_args().check:
        stale = check()
        if stale:
            sys.exit("stubs out of date, run `python protos/generate.py`: " + ", ".join(stale))
        print("stubs up to date")
    else:
        generate(OUT_ROOT)


if __name__ == "__main__":
    main()
