"""Resident memory of the learner over a long stream: does anything grow with samples learned?

    .venv/bin/python benchmarks/speed/memory.py            # 10M samples, ~2-5 min on 2 busy vCPUs

`LifelongClassifier(LearnerConfig(seed=0))` (20-64-64-2, continual backprop, telemetry,
standardisation, prequential monitor with ADWIN: the defaults) learns `--n` samples with
`learn_many` in batches of 500. The stream is generated batch by batch and holds nothing but the
current batch: 20 uniform features, label = which side of a slowly rotating hyperplane (NumPy
generator, seed 0). VmRSS (/proc/self/status) is read every `--every` samples; the first reading
is after the first batch. Writes results/memory.csv (samples, rss_bytes, seconds),
results/memory.json (summary, machine) and results/memory.png.
"""

from __future__ import annotations

import argparse
import csv
import gc
import time
from collections.abc import Iterator

import numpy as np
from service_bench import RESULTS, loadavg, machine_info, rss_bytes, write_json

BATCH = 500


def stream(n: int, seed: int = 0) -> Iterator[tuple[np.ndarray, list[int]]]:
    """`n` samples in batches of BATCH, made on the fly: only the current batch exists."""
    rng = np.random.default_rng(seed)
    w = rng.normal(size=20)
    for start in range(0, n, BATCH):
        k = min(BATCH, n - start)
        w += rng.normal(scale=1e-3, size=20)  # drift
        X = rng.random((k, 20))
        yield X, ((X - 0.5) @ w > 0).astype(np.int64).tolist()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=10_000_000)
    parser.add_argument("--every", type=int, default=100_000)
    args = parser.parse_args()

    from lifelong.model import LearnerConfig, LifelongClassifier

    rss_import = rss_bytes()  # the libraries (torch, numpy, river) before any learner exists
    load_start = loadavg()
    model = LifelongClassifier(LearnerConfig(seed=0))
    rows = []
    start = time.perf_counter()
    learned = 0
    for X, y in stream(args.n):
        model.learn_many(X, y)
        learned += len(y)
        if learned == BATCH or learned % args.every == 0:
            rows.append((learned, rss_bytes(), time.perf_counter() - start))
            if learned % 1_000_000 == 0:
                print(
                    f"{learned:>10,} samples  RSS {rows[-1][1] / 2**20:7.1f} MiB  "
                    f"{learned / rows[-1][2]:,.0f}/s  load {loadavg()[0]:.2f}",
                    flush=True,
                )
    seconds = time.perf_counter() - start
    gc.collect()
    stats = model.stats()
    rss = dict((n, r) for n, r, _ in rows)
    at_100k = rss.get(100_000, rows[0][1])
    at_end = rows[-1][1]
    summary = {
        "rss_after_import_mib": rss_import / 2**20,
        "samples": learned,
        "seconds": seconds,
        "rate": learned / seconds,
        "rss_first_batch_mib": rows[0][1] / 2**20,
        "rss_100k_mib": at_100k / 2**20,
        "rss_end_mib": at_end / 2**20,
        "rss_max_mib": max(r for _, r, _ in rows) / 2**20,
        "end_vs_100k": at_end / at_100k - 1,
        "units_replaced": sum(layer.units_replaced for layer in stats.layers),
        "prequential_accuracy": stats.prequential_score,
        "drifts": stats.drifts_detected,
    }
    print(summary)
    RESULTS.mkdir(exist_ok=True)
    with open(RESULTS / "memory.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["samples", "rss_bytes", "seconds"])
        w.writerows((n, r, round(s, 3)) for n, r, s in rows)
    write_json(
        "memory.json",
        {
            "summary": summary,
            "load_average_at_start": load_start,
            "load_average_at_end": loadavg(),
            "machine": machine_info(),
        },
    )

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot([n / 1e6 for n, _, _ in rows], [r / 2**20 for _, r, _ in rows])
    ax.axhline(rss_import / 2**20, color="C1", lw=0.8, ls=":", label="after imports, no learner")
    ax.axhline(at_100k / 2**20, color="grey", lw=0.8, ls="--", label="RSS after 100k")
    ax.set_xlabel("samples learned (millions)")
    ax.set_ylabel("VmRSS, MiB")
    ax.set_ylim(0, max(r for _, r, _ in rows) / 2**20 * 1.15)
    ax.set_title("learner RSS, 20-64-64-2, CBP + telemetry, learn_many(500)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(RESULTS / "memory.png", dpi=110)


if __name__ == "__main__":
    main()
