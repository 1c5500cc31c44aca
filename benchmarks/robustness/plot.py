"""One plot per stream and the results table, from what run.py wrote.

    .venv/bin/python benchmarks/robustness/plot.py --out benchmarks/robustness/results

Reads <out>/results.json and <out>/<stream>/<learner>.csv; writes <out>/<stream>.png and
<out>/summary.md (the table the README quotes).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from learners import LABELS, LEARNERS
from streams import CLASSIFICATION, STREAMS

HERE = Path(__file__).resolve().parent

# The variant without the new step is dashed: where it does what the default does, both show.
DASHED = {"no_step_bound"}
COLORS = {
    "default": "tab:orange",
    "no_step_bound": "tab:purple",
    "river": "tab:blue",
    "torch_sgd": "tab:gray",
}
# Relative squared error is drawn on a log scale up to RSE_TOP; a learner beyond it (a
# diverging linear model reaches 1e20) is drawn along the top.
RSE_TOP = 100.0


def plot_stream(out: Path, name: str, stream: dict[str, Any], settings: dict[str, Any]) -> None:
    import matplotlib.pyplot as plt

    classify = stream["task"] == CLASSIFICATION
    fig, ax = plt.subplots(figsize=(9, 4.5))
    for learner, r in stream["learners"].items():
        t, score = np.loadtxt(out / name / f"{learner}.csv", delimiter=",", skiprows=1).T
        if not classify:
            score = np.minimum(score, RSE_TOP)
        color = COLORS.get(learner)
        tag = "" if r["survived"] else f" (failed at {r['failed_at']:,})"
        ls = "--" if learner in DASHED else "-"
        ax.plot(t, score, color=color, ls=ls, lw=1.3, label=LABELS.get(learner, learner) + tag)
        if not r["survived"]:
            last = np.flatnonzero(np.isfinite(score))
            y = score[last[-1]] if last.size else (0.5 if classify else 1.0)
            ax.plot(r["failed_at"], y, "x", color=color, ms=10, mew=2.5)
    default = stream["learners"].get("default")
    ends = [*stream["events"][1:], stream["n"]]
    for i, (e, b) in enumerate(zip(stream["events"], ends, strict=True)):
        ax.axvline(e, color="black", ls="--", lw=0.8, label="event" if i == 0 else None)
        if default is not None and np.isfinite(before := default["events"][i]["before"]):
            bound = (
                before - settings["accuracy_drop"] if classify else before * settings["rse_factor"]
            )
            ax.hlines(
                bound,
                e,
                b,
                color=COLORS["default"],
                ls=":",
                lw=1.2,
                label="default's bound to recover to" if i == 0 else None,
            )
    ax.set_xlabel("example")
    window = f"{settings['window']:,}"
    if classify:
        ax.set_ylabel(f"accuracy, trailing {window} examples")
    else:
        ax.set_yscale("log")
        ax.set_ylabel(
            f"relative squared error, trailing {window}\n"
            f"(MSE / variance of y; above {RSE_TOP:g}: at {RSE_TOP:g})"
        )
        ax.set_ylim(top=RSE_TOP * 1.5)
    ax.set_title(f"{name}: {stream['what']}", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    fig.savefig(out / f"{name}.png", dpi=110)
    plt.close(fig)


def _num(v: float | None, classify: bool) -> str:
    if v is None or not np.isfinite(v):
        return "-" if v is None or np.isnan(v) else "inf"
    return f"{v:.3f}" if classify else f"{v:.3g}"


def table(results: dict[str, Any]) -> str:
    """The markdown table: every stream, every learner."""
    s = results["settings"]
    lines = [
        "| stream | learner | survived | per event: before → worst → after (examples to recover) "
        f"| last {s['period']:,} | criterion |",
        "|---|---|---|---|---|---|",
    ]
    for name, stream in results["streams"].items():
        classify = stream["task"] == CLASSIFICATION
        for learner, r in stream["learners"].items():
            survived = "yes" if r["survived"] else f"**no**, at {r['failed_at']:,}"
            evs = "; ".join(
                f"{_num(e['before'], classify)} → {_num(e['worst'], classify)} → "
                f"{_num(e['after'], classify)} "
                f"({'never' if e['recover'] is None else format(e['recover'], ',')})"
                for e in r["events"]
            )
            verdict = "pass" if r["pass"] else "**fail**: " + "; ".join(r["why"])
            lines.append(
                f"| {name} | {LABELS.get(learner, learner)} | {survived} | {evs} "
                f"| {_num(r['final'], classify)} | {verdict} |"
            )
    return "\n".join(lines) + "\n"


def failures(results: dict[str, Any]) -> str:
    """Why each learner that did not survive stopped."""
    lines = [
        f"- {name} / {LABELS.get(learner, learner)} at {r['failed_at']:,}: {r['reason']}"
        for name, stream in results["streams"].items()
        for learner, r in stream["learners"].items()
        if not r["survived"]
    ]
    return "\n".join(lines) + "\n" if lines else ""


def in_suite_order(results: dict[str, Any]) -> dict[str, Any]:
    """Streams and learners in the order the suite declares them (the JSON's keys are sorted)."""

    def order(d: dict[str, Any], keys: Any) -> dict[str, Any]:
        return {k: d[k] for k in keys if k in d}

    streams = order(results["streams"], STREAMS)
    for stream in streams.values():
        stream["learners"] = order(stream["learners"], LEARNERS)
    return {**results, "streams": streams}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--out", type=Path, default=HERE / "results")
    a = p.parse_args(argv)
    results = in_suite_order(json.loads((a.out / "results.json").read_text()))
    for name, stream in results["streams"].items():
        plot_stream(a.out, name, stream, results["settings"])
    env = results["environment"]
    if env["learner_commit"] is None:
        learner = f"Learner from `{env['learner_path']}` (sources {env['learner_sources_sha256']})"
    else:
        dirty = env["learner_uncommitted"]
        learner = f"Learner at `{env['learner_commit']}`" + (
            f" (with uncommitted changes to {', '.join(dirty)})" if dirty else ""
        )
    header = (
        f"{learner}, harness at `{env['commit']}`; "
        f"`{' '.join(['run.py', *results['argv']])}`, {results['wall_seconds']:.0f} s.\n\n"
    )
    (a.out / "summary.md").write_text(header + table(results) + "\n" + failures(results))
    print(f"-> {a.out}/summary.md and {len(results['streams'])} plots")


if __name__ == "__main__":
    main()
