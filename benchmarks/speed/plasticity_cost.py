"""Cost per example of the plasticity methods, on the fast path and the reference path.

The default (continual backprop) is the plain fast path; shrink and perturb (noise for every
parameter at every step, counter-based so that the kernel computes it) and ReDo (per-unit sums
every step, a sweep every `redo_every`) are measured beside it, alone and with it, through
`learn_many` (a poll of 500 rows) and through the reference path (`fast_path = False`). Every
contender runs once per repetition, interleaved, so a busy machine slows all of them alike;
the ratios to the plain fast path are per repetition, then their median. Timed in CPU seconds of
the process (on a shared machine wall time also counts the waits for a core), one torch thread.

The alternative to a counter-based generator was noise drawn in Python from torch's generator
and handed to the kernel at every example: its floor, one `normal_` over the network's
parameters per example (before any per-example call into the kernel), is timed in the same run.

    .venv/bin/python benchmarks/speed/plasticity_cost.py [--repeats 3] [--n 20000]

Writes results/plasticity_cost.json and results/plasticity_cost.png.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from lifelong.model import LearnerConfig, LifelongClassifier

RESULTS = Path(__file__).resolve().parent / "results"
BATCH = 500
METHODS = {
    "cbp (default)": ("cbp",),
    "cbp + shrink_perturb": ("cbp", "shrink_perturb"),
    "cbp + redo": ("cbp", "redo"),
    "shrink_perturb": ("shrink_perturb",),
    "redo": ("redo",),
}
BASELINE = "cbp (default) fast"


def stream(n: int, n_features: int, n_classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian inputs, classes from a random linear teacher."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, n_features))
    return X, (X @ rng.normal(size=(n_features, n_classes))).argmax(axis=1)


def seconds(config: LearnerConfig, fast: bool, X: np.ndarray, y: np.ndarray, warm: int) -> float:
    """CPU seconds to learn X[warm:] after X[:warm] (every class known, kernel loaded)."""
    model = LifelongClassifier(config)
    model.fast_path = fast
    model.learn_many(X[:warm], y[:warm])
    labels = y.tolist()
    start = time.process_time()
    for i in range(warm, len(X), BATCH):
        model.learn_many(X[i : i + BATCH], labels[i : i + BATCH])
    elapsed = time.process_time() - start
    if fast and model.fast_path_unavailable:
        raise SystemExit(f"no fast path: {model.fast_path_unavailable}")
    return elapsed


def measure(hidden: tuple[int, ...], n: int, n_reference: int, repeats: int, data) -> dict:
    X, y = data
    warm = 100
    runs = {}
    for label, methods in METHODS.items():
        config = LearnerConfig(hidden=hidden, plasticity=methods, seed=0)
        runs[f"{label} fast"] = (config, True, n)
        runs[f"{label} reference"] = (config, False, n_reference)
    per_example: dict[str, list[float]] = {name: [] for name in runs}
    for rep in range(repeats):
        for name, (config, fast, count) in runs.items():
            s = seconds(config, fast, X[: warm + count], y[: warm + count], warm)
            per_example[name].append(s / count * 1e6)
            print(f"  {hidden} rep {rep}: {name:36s} {per_example[name][-1]:9.1f} µs/example")
        per_example.setdefault("torch normal_ per example (floor of noise from Python)", []).append(
            torch_noise(hidden, X.shape[1], int(y.max()) + 1)
        )
    base = per_example[BASELINE]
    return {
        name: {
            "examples": runs[name][2] if name in runs else None,
            "us_per_example": values,
            "median_us_per_example": statistics.median(values),
            "ratio_to_plain_fast_path": statistics.median(
                [v / b for v, b in zip(values, base, strict=True)]
            ),
        }
        for name, values in per_example.items()
    }


def torch_noise(hidden: tuple[int, ...], n_in: int, n_out: int, steps: int = 200) -> float:
    """CPU µs of one `normal_` over the parameters of an n_in-hidden-n_out network."""
    sizes = (n_in, *hidden, n_out)
    noise = torch.empty(sum((a + 1) * b for a, b in itertools.pairwise(sizes)))
    generator = torch.Generator().manual_seed(0)
    start = time.process_time()
    for _ in range(steps):
        noise.normal_(0.0, 1e-5, generator=generator)
    return (time.process_time() - start) / steps * 1e6


def plot(results: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(results), 1, figsize=(10, 4.2 * len(results)))
    for ax, (size, rows) in zip(np.atleast_1d(axes), results.items(), strict=True):
        names = list(rows)
        for i, name in enumerate(names):
            r = rows[name]
            color = "tab:green" if name.endswith("fast") else "tab:gray"
            ax.barh(i, r["median_us_per_example"], color=color, alpha=0.6)
            ax.plot(r["us_per_example"], [i] * len(r["us_per_example"]), "k.", markersize=4)
            ax.text(r["median_us_per_example"], i,
                    f" {r['median_us_per_example']:,.0f} µs ({r['ratio_to_plain_fast_path']:.2g}x)",
                    va="center", fontsize=8)  # fmt: skip
        ax.set_xscale("log")
        ax.set_xlim(right=ax.get_xlim()[1] * 8)
        ax.set_yticks(range(len(names)), names, fontsize=8)
        ax.invert_yaxis()
        ax.set_title(size, fontsize=10)
        ax.set_xlabel("CPU µs per example (log; bar: median, dots: repetitions)")
    fig.suptitle("Plasticity methods: fast path (green) and reference path (grey), learn_many(500)")
    fig.tight_layout()
    fig.savefig(RESULTS / "plasticity_cost.png", dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--n", type=int, default=20_000, help="examples, 20-64-64-2 fast path")
    args = parser.parse_args()
    torch.set_num_threads(1)
    load_start = os.getloadavg()
    results = {
        "20-64-64-2": measure(
            (64, 64), args.n, args.n // 10, args.repeats, stream(args.n + 100, 20, 2, 0)
        ),
        "784-256-256-10": measure(
            (256, 256),
            args.n // 10,
            args.n // 100,
            args.repeats,
            stream(args.n // 10 + 100, 784, 10, 1),
        ),
    }
    RESULTS.mkdir(exist_ok=True)
    out = {
        "results": results,
        "clock": "process CPU time",
        "batch": BATCH,
        "repeats": args.repeats,
        "load_average_at_start": load_start,
        "load_average_at_end": os.getloadavg(),
    }
    (RESULTS / "plasticity_cost.json").write_text(json.dumps(out, indent=2) + "\n")
    plot(results)


if __name__ == "__main__":
    main()
