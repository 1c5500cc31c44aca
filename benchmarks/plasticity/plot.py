"""Plots and the results table from the CSVs the two benchmarks write.

    .venv/bin/python benchmarks/plasticity/plot.py          # both benchmarks, whatever exists

Reads results/permuted_digits/*.csv and results/bit_flipping/*.csv; writes
results/permuted_digits_accuracy.png, results/permuted_digits_units.png,
results/bit_flipping_error.png and results/summary.json + results/summary.md.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import RESULTS, base_method, label, read_csv, write_json

ORDER = ["bp", "cbp", "snp", "l2", "cbp+l2", "default", "linear", "river_linear", "fresh"]
COLORS = {
    "bp": "tab:red",
    "cbp": "tab:blue",
    "snp": "tab:green",
    "l2": "tab:purple",
    "cbp+l2": "tab:cyan",
    "default": "tab:orange",
    "default@no-plasticity": "tab:brown",
    "linear": "tab:gray",
    "river_linear": "tab:brown",
    "fresh": "black",
}


def load_runs(folder: Path) -> dict[str, list[dict[str, np.ndarray]]]:
    """method -> one table per seed."""
    runs: dict[str, list[dict[str, np.ndarray]]] = {}
    for path in sorted(folder.glob("*_seed*.csv")):
        m = re.fullmatch(r"(.+)_seed(\d+)", path.stem)
        if m is None:
            continue
        table = read_csv(path)
        if table:
            runs.setdefault(m.group(1), []).append(table)
    return dict(sorted(runs.items(), key=lambda kv: _rank(kv[0])))


def _rank(method: str) -> tuple[int, str]:
    b = base_method(method)
    return (ORDER.index(b) if b in ORDER else len(ORDER), method)


def stack(tables: list[dict[str, np.ndarray]], key: str) -> np.ndarray:
    """(seeds, rows) for a column, truncated to the shortest run (a run still going)."""
    cols = [t[key] for t in tables if key in t]
    n = min(len(c) for c in cols)
    return np.stack([c[:n] for c in cols])


def smooth(y: np.ndarray, w: int) -> np.ndarray:
    if w <= 1 or len(y) < w:
        return y
    pad = np.concatenate([np.full(w // 2, y[0]), y, np.full(w - 1 - w // 2, y[-1])])
    return np.convolve(pad, np.ones(w) / w, mode="valid")


def n_layers(tables: list[dict[str, np.ndarray]], prefix: str) -> int:
    return sum(1 for k in tables[0] if re.fullmatch(rf"{prefix}_\d+", k))


def _label(method: str, n_seeds: int) -> str:
    return f"{label(method)} ({n_seeds} seed{'s' * (n_seeds > 1)})"


def color(method: str, i: int) -> str:
    """The method's colour; variants (name@tag) cycle through a palette by position."""
    if method not in COLORS:
        import matplotlib

        return matplotlib.colormaps["tab20"](i % 20)
    return COLORS[method]


# -- permuted digits ---------------------------------------------------------------------------


def permuted_digits(folder: Path, out: Path, window: int, units: bool = True) -> dict[str, Any]:
    import matplotlib.pyplot as plt

    runs = load_runs(folder)
    if not runs:
        return {}
    fresh = runs.pop("fresh", [])
    meta = _json(folder / "run.json")

    fig, ax = plt.subplots(figsize=(9 + 3 * (len(runs) > 8), 5))
    for mi, (method, tables) in enumerate(runs.items()):
        acc = stack(tables, "accuracy")
        task = tables[0]["task"][: acc.shape[1]] + 1
        mean = smooth(acc.mean(0), window)
        ax.plot(task, mean, color=color(method, mi), label=_label(method, len(tables)), lw=1.6)
        if len(tables) > 1:
            lo, hi = smooth(acc.min(0), window), smooth(acc.max(0), window)
            ax.fill_between(task, lo, hi, color=color(method, mi), alpha=0.15, lw=0)
    if fresh:
        fa = np.concatenate([t["accuracy"] for t in fresh])
        tasks = np.concatenate([t["task"] for t in fresh]) + 1
        ax.axhline(
            fa.mean(),
            color="black",
            ls="--",
            lw=1.2,
            label=f"fresh network, one pass of a last task ({fa.mean():.3f})",
        )
        ax.axvspan(tasks.min() - 0.5, tasks.max() + 0.5, color="black", alpha=0.04)
    ax.set_xlabel("task (new pixel permutation; 1797 examples, one pass)")
    ax.set_ylabel("online accuracy on the task (predict, then learn)")
    title = "Online permuted digits: 64-100-100-10 ReLU network"
    if meta:
        base = meta.get("base", {})
        title += f", {base.get('optimizer', '?').upper()} lr={base.get('lr', '?')}"
        if "default" in runs:
            title += " (default config: its own lr 0.01)"
    if window > 1:
        title += f"\n(mean over seeds, {window}-task running mean; band: min-max over seeds)"
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    if len(runs) > 8:
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    else:
        ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    fig.savefig(out / "permuted_digits_accuracy.png", dpi=120)
    plt.close(fig)

    if not units:
        return summarize_digits(runs, fresh, meta)
    first = next(iter(runs.values()))
    L = n_layers(first, "dead")
    panels = [
        ("dead", "dead units (fraction)"),
        ("dormant", "dormant units (<1% active)"),
        ("erank", "effective rank"),
        ("w", "mean |W| (incoming)"),
    ]
    fig, axes = plt.subplots(L, len(panels), figsize=(4 * len(panels), 3.2 * L), squeeze=False)
    for li in range(L):
        for pi, (key, name) in enumerate(panels):
            ax = axes[li, pi]
            for mi, (method, tables) in enumerate(runs.items()):
                col = f"{key}_{li}"
                if col not in tables[0]:
                    continue
                v = stack(tables, col)
                task = tables[0]["task"][: v.shape[1]] + 1
                ok = ~np.isnan(v).all(0)
                ax.plot(
                    task[ok],
                    np.nanmean(v[:, ok], 0),
                    color=color(method, mi),
                    label=label(method),
                    lw=1.4,
                )
            if fresh and f"{key}_{li}" in fresh[0]:
                fv = np.concatenate([t[f"{key}_{li}"] for t in fresh])
                ax.axhline(np.nanmean(fv), color="black", ls="--", lw=1, label="fresh network")
            ax.set_title(f"hidden layer {li + 1}: {name}", fontsize=9)
            ax.set_xlabel("task")
            ax.grid(alpha=0.3)
            if key != "w":
                ax.set_ylim(bottom=0)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(4, len(labels)), fontsize=8)
    fig.suptitle(
        "Permuted digits: hidden units at the end of each task (probe: the task's 1797 "
        "inputs; mean over seeds)",
        fontsize=10,
    )
    rows_of_legend = -(-len(labels) // 4)
    fig.tight_layout(rect=(0, 0.045 * rows_of_legend / L, 1, 1))
    fig.savefig(out / "permuted_digits_units.png", dpi=110)
    plt.close(fig)

    return summarize_digits(runs, fresh, meta)


def summarize_digits(runs, fresh, meta) -> dict[str, Any]:
    k = 10
    speed = {}
    for r in (meta or {}).get("runs", []):
        if "us_per_step" in r:
            speed.setdefault(r["method"], []).append(r["us_per_step"])
    rows = []
    for method, tables in runs.items():
        acc = stack(tables, "accuracy")
        L = n_layers(tables, "dead")
        row: dict[str, Any] = {
            "method": method,
            "seeds": len(tables),
            "tasks": int(acc.shape[1]),
            "acc_first10": _ms(acc[:, :k].mean(1)),
            "acc_last10": _ms(acc[:, -k:].mean(1)),
            "acc_best10": _ms(np.max([_running(a, k) for a in acc], 1)),
        }
        for key in ("dead", "dormant", "erank"):
            for li in range(L):
                v = stack(tables, f"{key}_{li}")
                row[f"{key}{li + 1}_start"] = float(np.nanmean(v[:, 0]))
                row[f"{key}{li + 1}_end"] = float(np.nanmean(v[:, -1]))
        for li in range(n_layers(tables, "w")):
            v = stack(tables, f"w_{li}")
            row[f"w{li + 1}_start"] = float(np.nanmean(v[:, 0]))
            row[f"w{li + 1}_end"] = float(np.nanmean(v[:, -1]))
        for li in range(n_layers(tables, "s_replaced")):
            row[f"replaced{li + 1}"] = float(np.nanmean(stack(tables, f"s_replaced_{li}")[:, -1]))
        if method in speed:
            row["us_per_step"] = float(np.mean(speed[method]))
        rows.append(row)
    out: dict[str, Any] = {"rows": rows}
    if fresh:
        fa = np.array([t["accuracy"].mean() for t in fresh])
        out["fresh"] = {"acc": _ms(fa), "tasks": sorted({int(x) for t in fresh for x in t["task"]})}
        L = n_layers(fresh, "dead")
        for key in ("dead", "erank"):
            for li in range(L):
                out["fresh"][f"{key}{li + 1}"] = float(
                    np.nanmean(np.concatenate([t[f"{key}_{li}"] for t in fresh]))
                )
    if meta:
        out["setup"] = {k: meta.get(k) for k in ("base", "per_method", "tasks", "seeds")}
    return out


def _running(a: np.ndarray, k: int) -> np.ndarray:
    return np.convolve(a, np.ones(min(k, len(a))) / min(k, len(a)), "valid")


def _ms(x: np.ndarray) -> dict[str, float]:
    x = np.asarray(x, dtype=float)
    return {"mean": float(x.mean()), "sd": float(x.std(ddof=1)) if len(x) > 1 else 0.0}


def digits_markdown(s: dict[str, Any]) -> str:
    if not s:
        return ""
    fr = s.get("fresh", {}).get("acc")
    lines = [
        "| method | acc. first 10 tasks | acc. last 10 tasks | best 10-task run | "
        "dead L1/L2 start → end | eff. rank L1/L2 start → end | mean abs W L1 start → end |"
        " units replaced L1/L2 | µs/step |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in s["rows"]:
        rep = "/".join(f"{r[k]:.0f}" for k in ("replaced1", "replaced2") if k in r) or "-"
        us = f"{r['us_per_step']:.0f}" if "us_per_step" in r else "-"
        lines.append(
            f"| {label(r['method'])} | {_pm(r['acc_first10'])} | "
            f"{_pm(r['acc_last10'])} | {_pm(r['acc_best10'])} | "
            f"{r.get('dead1_start', 0):.2f}/{r.get('dead2_start', 0):.2f} → "
            f"{r.get('dead1_end', 0):.2f}/{r.get('dead2_end', 0):.2f} | "
            f"{r.get('erank1_start', 0):.1f}/{r.get('erank2_start', 0):.1f} → "
            f"{r.get('erank1_end', 0):.1f}/{r.get('erank2_end', 0):.1f} | "
            f"{r.get('w1_start', 0):.3f} → {r.get('w1_end', 0):.3f} | {rep} | {us} |"
        )
    if fr:
        f = s["fresh"]
        lines.append(
            f"| fresh network (one pass of a last task) | | {_pm(fr)} | | "
            f"{f.get('dead1', 0):.2f}/{f.get('dead2', 0):.2f} | "
            f"{f.get('erank1', 0):.1f}/{f.get('erank2', 0):.1f} | | | |"
        )
    return "\n".join(lines)


def _pm(d: dict[str, float]) -> str:
    return f"{d['mean']:.3f} ± {d['sd']:.3f}" if d["sd"] else f"{d['mean']:.3f}"


# -- bit flipping ------------------------------------------------------------------------------


def bit_flipping(folder: Path, out: Path, rebin: int) -> dict[str, Any]:
    import matplotlib.pyplot as plt

    runs = load_runs(folder)
    if not runs:
        return {}
    meta = _json(folder / "run.json")
    has_units = any("dead_0" in t for ts in runs.values() for t in ts)
    ncols = 3 if has_units else 1
    fig, axes = plt.subplots(
        1,
        ncols,
        figsize=(6.5 + 4 * (ncols - 1), 4.5),
        squeeze=False,
        gridspec_kw={"width_ratios": [2] + [1] * (ncols - 1)},
    )
    ax = axes[0, 0]
    rows = []
    for mi, (method, tables) in enumerate(runs.items()):
        mse = stack(tables, "mse")
        ex = tables[0]["examples"][: mse.shape[1]]
        n = mse.shape[1] // rebin * rebin
        if n == 0:
            continue
        binned = mse[:, :n].reshape(len(tables), -1, rebin).mean(2)
        x = ex[:n].reshape(-1, rebin)[:, -1] / 1e6
        ls = "--" if method == "river_linear" else "-"
        ax.plot(x, binned.mean(0), ls, color=color(method, mi), label=_label(method, len(tables)))
        if len(tables) > 1:
            ax.fill_between(
                x, binned.min(0), binned.max(0), color=color(method, mi), alpha=0.15, lw=0
            )
        q = max(1, mse.shape[1] // 10)
        q5 = max(1, mse.shape[1] // 5)
        first20, last20 = mse[:, :q5].mean(1), mse[:, -q5:].mean(1)
        rows.append(
            {
                "method": method,
                "seeds": len(tables),
                "examples": int(ex[-1]),
                "mse_first10pct": _ms(mse[:, :q].mean(1)),
                "mse_last10pct": _ms(mse[:, -q:].mean(1)),
                # issue 11's criterion: last 20% against first 20% (ratio of the seeds' means)
                "mse_first20pct": _ms(first20),
                "mse_last20pct": _ms(last20),
                "mse_last20_over_first20": float(last20.mean() / first20.mean()),
                "mse_min_bin": _ms(binned.min(1)),
                "mse_second_half": _ms(mse[:, mse.shape[1] // 2 :].mean(1)),
                "dead_last10pct": _tail_mean(tables, "dead_0", q),
            }
        )
    ax.set_xlabel("examples (millions)")
    ax.set_ylabel(f"squared error, mean per {rebin * _bin(meta):,} examples")
    ax.set_title(
        "Slowly-changing regression (bit flipping): online error\n(mean over seeds; "
        "band: min-max over seeds, clipped at 2.5)",
        fontsize=10,
    )
    ax.set_ylim(0, min(ax.get_ylim()[1], 2.5))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    if has_units:
        for ax, key, name in (
            (axes[0, 1], "dead_0", "dead units, hidden layer 1 (fraction)"),
            (axes[0, 2], "w_0", "mean |W| into the hidden layer"),
        ):
            for mi, (method, tables) in enumerate(runs.items()):
                if key not in tables[0]:
                    continue
                v = np.nanmean(stack(tables, key), 0)
                n = len(v) // rebin * rebin
                ex = tables[0]["examples"][:n].reshape(-1, rebin)[:, -1] / 1e6
                v = v[:n].reshape(-1, rebin).mean(1)
                ax.plot(ex, v, color=color(method, mi), label=label(method))
            ax.set_title(f"{name}, mean per bin", fontsize=10)
            ax.set_xlabel("examples (millions)")
            ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / "bit_flipping_error.png", dpi=120)
    plt.close(fig)
    res: dict[str, Any] = {"rows": rows}
    if meta:
        res["setup"] = {k: meta.get(k) for k in ("base", "per_method", "examples", "seeds")}
        per: dict[str, list[float]] = {}
        for r in meta.get("runs", []):
            per.setdefault(r["method"], []).append(r.get("us_per_step"))
        res["us_per_step"] = {m: float(np.median(v)) for m, v in per.items()}
    return res


def _tail_mean(tables: list[dict[str, np.ndarray]], key: str, q: int) -> float | None:
    return float(np.nanmean(stack(tables, key)[:, -q:])) if key in tables[0] else None


def _bin(meta: dict[str, Any] | None) -> int:
    return int((meta or {}).get("bin", 10_000))


def bits_markdown(s: dict[str, Any]) -> str:
    if not s:
        return ""
    lines = [
        "| method | MSE first 10% | MSE last 10% | MSE first 20% | MSE last 20% | last/first 20% "
        "| MSE second half | dead units, last 10% | µs/step |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    speed = s.get("us_per_step", {})
    for r in s["rows"]:
        dead = "-" if r.get("dead_last10pct") is None else f"{r['dead_last10pct']:.2f}"
        us = speed.get(r["method"])
        lines.append(
            f"| {label(r['method'])} | {_pm(r['mse_first10pct'])} | "
            f"{_pm(r['mse_last10pct'])} | {_pm(r['mse_first20pct'])} | "
            f"{_pm(r['mse_last20pct'])} | {r['mse_last20_over_first20']:.2f} | "
            f"{_pm(r['mse_second_half'])} | {dead} | "
            f"{'-' if us is None else f'{us:.0f}'} |"
        )
    return "\n".join(lines)


def _json(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text()) if path.exists() else None


def sweeps(folder: Path, window: int) -> str:
    """Every sub-folder of results/sweep/ is a permuted-digits run: its plots go into it, its
    table into results/sweep/summary.md."""
    md = []
    for sub in sorted(p for p in folder.iterdir() if p.is_dir()) if folder.exists() else []:
        s = permuted_digits(sub, sub, window, units=False)
        if not s:
            continue
        setup = s.get("setup") or {}
        base = setup.get("base", {})
        head = f"### {sub.name}: {s['rows'][0]['tasks']} tasks, lr {base.get('lr')}"
        per = setup.get("per_method") or {}
        notes = ", ".join(f"{k}: {v}" for k, v in per.items())
        md += [head, "", f"base {base}" + (f"; variants {notes}" if notes else ""), ""]
        md += [digits_markdown(s), ""]
    text = "\n".join(md)
    if md:
        (folder / "summary.md").write_text("# Sweeps (permuted digits)\n\n" + text)
    return text


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--results", type=Path, default=RESULTS)
    p.add_argument("--window", type=int, default=5, help="tasks in the accuracy running mean")
    p.add_argument("--rebin", type=int, default=10, help="bit flipping: bins per plotted point")
    p.add_argument("--sweeps", action="store_true", help="also results/sweep/*/ (plots, table)")
    a = p.parse_args(argv)
    import matplotlib

    matplotlib.use("Agg")
    digits = permuted_digits(a.results / "permuted_digits", a.results, a.window)
    bits = bit_flipping(a.results / "bit_flipping", a.results, a.rebin)
    if a.sweeps:
        sweeps(a.results / "sweep", a.window)
    write_json(a.results / "summary.json", {"permuted_digits": digits, "bit_flipping": bits})
    md = "## Permuted digits\n\n" + digits_markdown(digits) + "\n\n## Bit flipping\n\n"
    md += bits_markdown(bits) + "\n"
    (a.results / "summary.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
