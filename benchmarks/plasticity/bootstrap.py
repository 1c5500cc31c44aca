"""The first examples of a benchmark stream as a CSV file, for `lifelong guide`: a bootstrap
slice, as an operator would have one from the start of a stream.

    .venv/bin/python benchmarks/plasticity/bootstrap.py permuted_digits --seed 0 --count 500 \\
        --out /tmp/boot_pd0.csv

Columns "0", "1", ... (the names `learn_dense` gives features) and "label".
"""

from __future__ import annotations

import argparse
import csv
import itertools
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from data import bit_flipping_stream, permuted_digits_tasks


def rows(stream: str, seed: int, flip_every: int) -> Iterator[tuple[np.ndarray, float | int]]:
    if stream == "permuted_digits":
        for task in permuted_digits_tasks(10**6, seed):
            yield from zip(task.X, task.y.tolist(), strict=True)
    else:
        for X, Y in bit_flipping_stream(10**9, seed, flip_every, chunk=10_000):  # as the harness
            yield from zip(X, Y.tolist(), strict=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("stream", choices=("permuted_digits", "bit_flipping"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--count", type=int, default=500)
    p.add_argument("--flip-every", type=int, default=10_000)
    p.add_argument("--out", type=Path, required=True)
    a = p.parse_args()
    with a.out.open("w", newline="") as f:
        writer = csv.writer(f)
        for i, (x, y) in enumerate(itertools.islice(rows(a.stream, a.seed, a.flip_every), a.count)):
            if i == 0:
                writer.writerow([*map(str, range(len(x))), "label"])
            writer.writerow([*(repr(float(v)) for v in x), y])


if __name__ == "__main__":
    main()
