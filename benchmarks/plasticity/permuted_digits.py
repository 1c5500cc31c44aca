"""Online permuted digits: loss of plasticity on a stream of permuted 8x8 digit tasks.

Every task is a new fixed pixel permutation of scikit-learn's 1797 bundled digits (pixels in
[0, 1]), shown once in a fresh random order; each example is predicted, then learned (online
accuracy). A fresh network trained only on one of the last tasks is the reference for what a
network with full plasticity reaches in one pass of a task.

    .venv/bin/python benchmarks/plasticity/permuted_digits.py  # 200 tasks, 5 seeds, 7 methods
    .venv/bin/python benchmarks/plasticity/permuted_digits.py --tasks 30 --seeds 0 --methods bp cbp

Writes results/permuted_digits/<method>_seed<s>.csv (one row per task), fresh_seed<s>.csv and
run.json (configuration, timings); `plot.py` turns them into plots and the results table.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    METHODS,
    RESULTS,
    CsvLog,
    add_learner_arguments,
    api,
    check_methods,
    config_dict,
    finish_run,
    finite,
    learner_config,
    method_configs,
    probe_stats,
    run_parallel,
    stream_stats,
)
from data import Task, permuted_digits_task, permuted_digits_tasks

# The benchmark's settings (chosen by the sweeps in sweep.sh, see README.md): raw pixels in
# [0, 1] as the paper's MNIST, and each method's strength at SGD lr 0.03. "default" is
# LearnerConfig() as shipped (its own lr and input standardisation; only the architecture and
# seed come from here) and "default@no-plasticity" the same without its plasticity method.
BASE: dict[str, Any] = {"standardize": False}
PRESETS: dict[str, dict[str, Any]] = {
    "snp": {"shrink": 1e-4, "perturb_std": 1e-3},
    "l2": {"l2_init_strength": 3e-3},
    "cbp+l2": {"l2_init_strength": 1e-3},
    "default@no-plasticity": {"plasticity": ()},
}


def one_pass(model: Any, task: Task) -> tuple[float, float, int]:
    """Predict, then learn, every example of the task once: (online accuracy, seconds, examples
    the learner refused because the step would have diverged; LearnerDiverged is a
    FloatingPointError and leaves the learner unchanged)."""
    t0 = time.perf_counter()
    correct = refused = 0
    for x, y in zip(task.X, task.y, strict=True):
        proba = model.predict_proba_dense(x[None, :])
        if proba.shape[1]:
            correct += model.classes[int(np.argmax(proba[0]))] == int(y)
        try:
            model.learn_dense(x, int(y))
        except FloatingPointError:
            refused += 1
    return correct / len(task.y), time.perf_counter() - t0, refused


def run_method(method: str, seed: int, opts: dict[str, Any]) -> dict[str, Any]:
    LifelongClassifier = api().LifelongClassifier
    out: Path = opts["out"]
    cfg = learner_config(method, {**opts["base"], "seed": seed}, opts["per_method"])
    model = LifelongClassifier(cfg)
    log = CsvLog(out / f"{method}_seed{seed}.csv")
    t_start = time.perf_counter()
    learn_seconds = 0.0
    for task in permuted_digits_tasks(opts["tasks"], seed):
        acc, secs, refused = one_pass(model, task)
        learn_seconds += secs
        row: dict[str, Any] = {
            "task": task.index,
            "accuracy": acc,
            "seconds": secs,
            "refused": refused,
        }
        if task.index % opts["probe_every"] == 0 or task.index == opts["tasks"] - 1:
            row.update(probe_stats(model, task.X))
            row.update(stream_stats(model))
        diverged = not finite(model)
        if diverged:
            row["diverged"] = 1
        log.write(row)
        if diverged:
            print(f"[{method} s{seed}] non-finite weights after task {task.index}: stopped")
            break
        if opts["verbose"] and task.index % 10 == 0:
            print(f"[{method} s{seed}] task {task.index} acc {acc:.3f} ({secs:.1f}s)", flush=True)
    log.close()
    steps = (task.index + 1) * len(task.y)
    return {
        "method": method,
        "seed": seed,
        "tasks_done": task.index + 1,
        "diverged": diverged,
        "config": config_dict(cfg),
        "seconds": time.perf_counter() - t_start,
        "learn_seconds": learn_seconds,
        "us_per_step": 1e6 * learn_seconds / steps,
    }


def run_fresh(seed: int, opts: dict[str, Any]) -> dict[str, Any]:
    """A new plain-backprop network per task for the last `fresh` tasks: one pass each."""
    LifelongClassifier = api().LifelongClassifier
    out: Path = opts["out"]
    log = CsvLog(out / f"fresh_seed{seed}.csv")
    t0 = time.perf_counter()
    for t in range(opts["tasks"] - opts["fresh"], opts["tasks"]):
        task = permuted_digits_task(seed, t)
        cfg = learner_config("bp", {**opts["base"], "seed": 10_000 + seed * 1000 + t}, {})
        model = LifelongClassifier(cfg)
        acc, secs, refused = one_pass(model, task)
        row: dict[str, Any] = {"task": t, "accuracy": acc, "seconds": secs, "refused": refused}
        row.update(probe_stats(model, task.X))
        log.write(row)
    log.close()
    return {"method": "fresh", "seed": seed, "seconds": time.perf_counter() - t0}


def _job(kind: str, method: str, seed: int, opts: dict[str, Any]) -> dict[str, Any]:
    return run_fresh(seed, opts) if kind == "fresh" else run_method(method, seed, opts)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--tasks", type=int, default=200)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    p.add_argument(
        "--methods",
        nargs="+",
        default=["bp", "cbp", "snp", "l2", "cbp+l2", "default", "default@no-plasticity"],
        help="methods, or variants name@tag",
    )
    p.add_argument(
        "--fresh",
        type=int,
        default=10,
        help="fresh-network reference on each of the last N tasks (0: none)",
    )
    add_learner_arguments(p, hidden=[100, 100], lr=0.03, out=RESULTS / "permuted_digits")
    p.add_argument("--probe-every", type=int, default=1, help="tasks between probes")
    a = p.parse_args(argv)

    base, per_method = configs = method_configs(a, BASE, PRESETS)
    opts = {
        "tasks": a.tasks,
        "fresh": min(a.fresh, a.tasks),
        "base": base,
        "per_method": per_method,
        "probe_every": a.probe_every,
        "out": a.out,
        "verbose": not a.quiet,
    }
    methods = check_methods(a.methods, METHODS)
    jobs = [("method", m, s, opts) for s in a.seeds for m in methods]
    if opts["fresh"]:
        jobs += [("fresh", "fresh", s, opts) for s in a.seeds]
    t0 = time.perf_counter()
    results = run_parallel(_job, jobs, a.jobs)
    settings = {"tasks": a.tasks, "fresh": opts["fresh"]}
    finish_run(a, argv, "permuted_digits", settings, configs, t0, results)


if __name__ == "__main__":
    main()
