"""Plot the transfer benchmark's curves and print its table (from results/).

.venv/bin/python benchmarks/transfer/plot.py   # -> results/curves.png, table on stdout
"""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
LABELS = {
    "frozen": "frozen backbone + new head",
    "frozen_first": "first layer frozen",
    "finetune": "pretrained, fine-tuned",
    "scratch": "from scratch",
}


def main() -> None:
    curves: dict[str, dict[int, list[tuple[int, float]]]] = defaultdict(lambda: defaultdict(list))
    with open(RESULTS / "curves.csv") as file:
        for row in csv.DictReader(file):
            curves[row["variant"]][int(row["seed"])].append(
                (int(row["examples"]), float(row["test_accuracy"]))
            )
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for variant, seeds in curves.items():
        n = np.array([x for x, _ in next(iter(seeds.values()))])
        acc = np.array([[a for _, a in curve] for curve in seeds.values()])
        ax.plot(n, acc.mean(0), label=f"{LABELS.get(variant, variant)} ({len(seeds)} seeds)")
        ax.fill_between(n, acc.min(0), acc.max(0), alpha=0.15)
    ax.set_xlabel("examples learned (digits 5-9, one at a time)")
    ax.set_ylabel("test accuracy (held-out 30%)")
    ax.set_title("Online transfer: backbone pretrained on digits 0-4")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(RESULTS / "curves.png", dpi=110)
    results = json.loads((RESULTS / "results.json").read_text())
    summary, lr = results["summary"], results["config"]["lr"]
    print(
        "| variant | Adam lr | final test accuracy | examples to 90% of it | prequential accuracy "
        "| dead units (layer 0, 1) | effective rank (layer 0, 1) |"
    )
    print("|---|---|---|---|---|---|---|")
    for variant, s in summary.items():
        final, reach = s["final_accuracy"], s["examples_to_90pct"]
        print(
            f"| {LABELS.get(variant, variant)} | {lr[variant]} | {final['mean']:.3f} "
            f"({min(final['per_seed']):.3f}-{max(final['per_seed']):.3f}) | "
            f"{reach['mean']:.0f} ({min(reach['per_seed'])}-{max(reach['per_seed'])}) | "
            f"{s['prequential_accuracy']['mean']:.3f} | "
            + ", ".join(f"{v:.2f}" for v in s["dead_fraction"]["mean"])
            + " | "
            + ", ".join(f"{v:.1f}" for v in s["effective_rank"]["mean"])
            + " |"
        )


if __name__ == "__main__":
    main()
