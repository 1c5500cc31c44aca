"""The `lifelong` command."""

from __future__ import annotations

import argparse
from importlib.metadata import version


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lifelong",
        description="Serve predictions from a neural network that never stops learning.",
    )
    parser.add_argument("--version", action="version", version=f"lifelong {version('lifelong')}")
    return parser


def main(argv: list[str] | None = None) -> None:
    build_parser().parse_args(argv)


if __name__ == "__main__":
    main()
