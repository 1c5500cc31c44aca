"""Cost of each plasticity method: microseconds per learned example (learn_dense) on the
permuted-digits network with the benchmark's settings, and per prediction (predict_proba_dense
of one row).

Methods are timed in interleaved rounds (so a busy neighbour on a shared machine slows all of
them alike) and the median round is reported.

    .venv/bin/python benchmarks/plasticity/speed.py          # -> results/speed.json
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    RESULTS,
    api,
    environment,
    learner_config,
    one_thread,
    split_overrides,
    write_json,
)
from data import permuted_digits_task
from permuted_digits import BASE, PRESETS

DEFAULT_METHODS = ["bp", "cbp", "snp", "l2", "cbp+l2", "default"]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--methods", nargs="+", default=DEFAULT_METHODS)
    p.add_argument("--hidden", type=int, nargs="+", default=[100, 100])
    p.add_argument("--lr", type=float, default=0.03)
    p.add_argument("--examples", type=int, default=1797, help="examples per round")
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="[M:]K=V")
    p.add_argument("--out", type=Path, default=RESULTS / "speed.json")
    a = p.parse_args(argv)
    one_thread()
    common, overrides = split_overrides(a.overrides)
    base: dict[str, Any] = {"hidden": tuple(a.hidden), "optimizer": "sgd", "lr": a.lr}
    base.update({**BASE, **common})
    per_method = {m: dict(v) for m, v in PRESETS.items()}
    for m, v in overrides.items():
        per_method.setdefault(m, {}).update(v)
    task = permuted_digits_task(0, 0)
    X, y = task.X[: a.examples], task.y[: a.examples]
    Classifier = api().LifelongClassifier
    models = {m: Classifier(learner_config(m, {**base, "seed": 0}, per_method)) for m in a.methods}
    for model in models.values():  # warm up: classes known, compiled kernel loaded
        for x, label in zip(X[:200], y[:200], strict=True):
            model.learn_dense(x, int(label))
    learn: dict[str, list[float]] = {m: [] for m in models}
    predict: dict[str, list[float]] = {m: [] for m in models}
    for _ in range(a.rounds):
        for m, model in models.items():
            t0 = time.perf_counter()
            for x, label in zip(X, y, strict=True):
                model.learn_dense(x, int(label))
            t1 = time.perf_counter()
            for x in X:
                model.predict_proba_dense(x[None, :])
            t2 = time.perf_counter()
            learn[m].append(1e6 * (t1 - t0) / len(X))
            predict[m].append(1e6 * (t2 - t1) / len(X))
    out = {
        "us_per_learn": {m: statistics.median(v) for m, v in learn.items()},
        "us_per_predict": {m: statistics.median(v) for m, v in predict.items()},
        "fast_path_unavailable": {
            m: getattr(model, "fast_path_unavailable", None) for m, model in models.items()
        },
        "rounds": a.rounds,
        "examples_per_round": len(X),
        "base": {k: list(v) if isinstance(v, tuple) else v for k, v in base.items()},
        "per_method": per_method,
        "environment": environment(),
    }
    write_json(a.out, out)
    for m in models:
        print(
            f"{m:>16}: learn {out['us_per_learn'][m]:7.1f} us   "
            f"predict {out['us_per_predict'][m]:6.1f} us   "
            f"{out['fast_path_unavailable'][m] or ''}"
        )
    print(f"rounds {np.round(learn[a.methods[0]], 1).tolist()} ({a.methods[0]}, learn)")


if __name__ == "__main__":
    main()
