"""Accuracy curves of the three arms per stream (one seed), changes dashed, the challenger's
swaps marked: `results/<stream>.png`.

    .venv/bin/python benchmarks/recovery/plot.py [results folder] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

HERE = Path(__file__).resolve().parent
COLOURS = {"warm": "tab:blue", "fresh": "tab:orange", "challenger": "tab:green"}
LABELS = {
    "warm": "warm model alone",
    "fresh": "fresh model from each change",
    "challenger": "Challenged (serving model)",
}


def plot(run: dict, path: Path) -> None:
    size = run["curve_rows"]
    first = max(0, run["changes"][0]["change"] - 30_000) if run["stream"] != "digits" else 0
    fig, ax = plt.subplots(figsize=(10, 4))
    for arm, curve in run["curves"].items():
        x = [(i + 1) * size for i in range(len(curve))]
        keep = [i for i, v in enumerate(x) if v > first]
        ax.plot(
            [x[i] / 1000 for i in keep],
            [curve[i] for i in keep],
            color=COLOURS[arm],
            label=LABELS[arm],
            lw=1.0 if arm != "challenger" else 1.4,
            alpha=0.85,
        )
    for change in run["changes"]:
        ax.axvline(change["change"] / 1000, color="grey", ls="--", lw=0.8)
    for event in run["events"]:
        if event["row"] <= first:
            continue
        if event["event"] == "swap":
            colour = "tab:purple" if event["reason"] == "return" else "tab:red"
            ax.axvline(event["row"] / 1000, color=colour, lw=1.2)
        elif event["event"] == "start" and event["reason"] != "return":
            ax.plot(
                event["row"] / 1000,
                0.02,
                "^",
                color="black",
                ms=5,
                transform=ax.get_xaxis_transform(),
            )
    ax.set_xlabel("rows (thousands)")
    ax.set_ylabel(f"accuracy per {size} rows")
    ax.set_ylim(0.3, 1.0)
    ax.set_title(
        f"{run['stream']} (seed {run['seed']}): changes dashed, swaps red "
        "(back to the deposed model: purple), challenger started ▲"
    )
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("folder", nargs="?", type=Path, default=HERE / "results")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    for path in sorted(args.folder.glob(f"*_s{args.seed}.json")):
        run = json.loads(path.read_text())
        out = args.folder / f"{run['stream']}.png"
        plot(run, out)
        print(out)


if __name__ == "__main__":
    main()
