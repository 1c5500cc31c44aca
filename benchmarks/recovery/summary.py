"""The recovery table from `run.py`'s results: per stream and change, rows until the accuracy over
the last `window` rows regains 97% of its level before the change (mean over seeds; a run that
never does counts as the rest of its segment), the challenger's detection delay, swaps, final
accuracy, and the issue's two criteria.

    .venv/bin/python benchmarks/recovery/summary.py [results folder]
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ARMS = ("warm", "fresh", "challenger")


def summarise(folder: Path) -> dict:
    runs = defaultdict(list)
    for path in sorted(folder.glob("*_s*.json")):
        run = json.loads(path.read_text())
        runs[run["stream"]].append(run)
    table = {}
    for stream, seeds in runs.items():
        # Digits: its 29 task changes pooled; the teacher streams: each change on its own.
        n = len(seeds[0]["changes"])
        groups = [list(range(n))] if stream == "digits" else [[i] for i in range(n)]
        for group in groups:
            rows = [run["changes"][i] for run in seeds for i in group]
            name = stream if len(groups) == 1 else f"{stream} #{group[0] + 1}"
            table[name] = _line(rows, seeds)
    return table


def _line(rows: list[dict], seeds: list[dict]) -> dict:
    def rec(row: dict, arm: str) -> float:
        return row[arm] if row[arm] is not None else row["rows"]

    line = {"seeds": len(seeds), "changes": len(rows)}
    for arm in ARMS:
        line[arm] = float(np.mean([rec(r, arm) for r in rows]))
        line[f"{arm}_unrecovered"] = sum(r[arm] is None for r in rows)
    delays = [r["detection"] for r in rows if r["detection"] is not None]
    line["detection"] = float(np.mean(delays)) if delays else 0.0  # over the changes detected
    line["triggered"] = sum(r["detection"] is not None for r in rows)
    line["swapped"] = sum(r["swap"] is not None for r in rows)
    bound = 1.1 * min(line["warm"], line["fresh"]) + line["detection"]
    line["bound"] = bound
    line["recovers"] = line["challenger"] <= bound
    line["pre"] = float(np.mean([r["pre"] for r in rows]))
    return line


def finals(folder: Path) -> dict:
    """Final accuracy per arm, false alarms (challenges started before the first change, all
    seeds) and the share of rows learned twice (a challenger active), per stream."""
    out = defaultdict(lambda: defaultdict(list))
    for path in sorted(folder.glob("*_s*.json")):
        run = json.loads(path.read_text())
        for arm in ARMS:
            out[run["stream"]][arm].append(run["final"][arm])
        out[run["stream"]]["false_alarms"].append(run.get("false_alarms", 0))
        out[run["stream"]]["active"].append(run.get("challenger_active_rows", 0) / run["rows"])
    return {
        s: {k: float(np.sum(v) if k == "false_alarms" else np.mean(v)) for k, v in arms.items()}
        for s, arms in out.items()
    }


def markdown(table: dict, final: dict) -> str:
    lines = [
        "| stream (change) | seeds x changes | level before | warm | fresh | challenger "
        "| bound | detected | detection | swapped | recovers |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, t in table.items():
        cells = [
            f"{t[a]:,.0f}" + (f" ({t[a + '_unrecovered']} not)" if t[a + "_unrecovered"] else "")
            for a in ARMS
        ]
        lines.append(
            f"| {name} | {t['seeds']} x {t['changes'] // t['seeds']} | {t['pre']:.3f} | "
            + " | ".join(cells)
            + f" | {t['bound']:,.0f} | {t['triggered']}/{t['changes']} | {t['detection']:,.0f} | "
            + f"{t['swapped']}/{t['changes']} | "
            + ("yes" if t["recovers"] else "**no**")
            + " |"
        )
    lines += [
        "",
        "| stream | final warm | final fresh | final challenger | challenger - warm "
        "| within 1 point | false alarms | rows with a challenger |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for stream, f in final.items():
        d = f["challenger"] - f["warm"]
        lines.append(
            f"| {stream} | {f['warm']:.4f} | {f['fresh']:.4f} | {f['challenger']:.4f} | "
            f"{100 * d:+.2f} | {'yes' if d >= -0.01 else '**no**'} | {f['false_alarms']:.0f} | "
            f"{100 * f['active']:.0f}% |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    folder = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "results"
    table, final = summarise(folder), finals(folder)
    (folder / "summary.json").write_text(
        json.dumps({"recovery": table, "final": final}, indent=1) + "\n"
    )
    text = markdown(table, final)
    (folder / "summary.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
