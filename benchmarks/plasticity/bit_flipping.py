"""Slowly-changing regression (the paper's bit-flipping problem): loss of plasticity with a tiny
ReLU network on an endless, slowly drifting regression stream.

20 binary inputs: the first 15 are held fixed and one of them flips every `--flip-every`
examples; the last 5 are random per example. The target is a fixed random network of 100 linear
threshold units (data.LTUTarget, as lop/nets/fix_ltu_net.py). Each example is predicted, then
learned once (SGD on squared error); the squared error of the prediction is averaged in bins.

    .venv/bin/python benchmarks/plasticity/bit_flipping.py    # 3M examples, 3 seeds, 6 methods
    .venv/bin/python benchmarks/plasticity/bit_flipping.py --examples 200000 --seeds 0

Writes results/bit_flipping/<method>_seed<s>.csv (one row per bin) and run.json.
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
    base_method,
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
from data import bit_flipping_stream

BF_METHODS = [*METHODS, "linear", "river_linear"]
# Raw {0, 1} inputs as in the paper (the learner always standardises the target); L2-init at the
# strength chosen on permuted digits. "default" is LearnerConfig() with 5 hidden units.
BASE: dict[str, Any] = {"standardize": False}
PRESETS: dict[str, dict[str, Any]] = {"l2": {"l2_init_strength": 3e-3}}


class RiverLinear:
    """river's LinearRegression (plain SGD, same step size) behind the dense calls used here."""

    def __init__(self, lr: float, n_inputs: int):
        from river import linear_model, optim

        self.model = linear_model.LinearRegression(optimizer=optim.SGD(lr), intercept_lr=lr, l2=0.0)
        self.names = [f"x{i}" for i in range(n_inputs)]

    def predict(self, x: np.ndarray) -> float:
        return self.model.predict_one(dict(zip(self.names, x.tolist(), strict=True)))

    def learn(self, x: np.ndarray, y: float) -> None:
        self.model.learn_one(dict(zip(self.names, x.tolist(), strict=True)), y)


class Learner:
    """LifelongRegressor behind the same two calls."""

    def __init__(self, cfg: Any):
        self.model = api().LifelongRegressor(cfg)

    def predict(self, x: np.ndarray) -> float:
        if not self.model.feature_names:
            return 0.0
        return float(self.model.predict_dense(x[None, :])[0])

    def learn(self, x: np.ndarray, y: float) -> None:
        self.model.learn_dense(x, y)


def run_method(method: str, seed: int, opts: dict[str, Any]) -> dict[str, Any]:
    out: Path = opts["out"]
    cfg = None
    if base_method(method) == "river_linear":
        learner: Any = RiverLinear(opts["base"]["lr"], 20)
    else:
        name, base = method, {**opts["base"], "seed": seed}
        if base_method(method) == "linear":
            name, base = "bp" + method[len("linear") :], {**base, "hidden": ()}
        cfg = learner_config(name, base, opts["per_method"])
        learner = Learner(cfg)
    log = CsvLog(out / f"{method}_seed{seed}.csv")
    t0 = time.perf_counter()
    seen, bin_se, bin_n, refused = 0, 0.0, 0, 0
    for X, Y in bit_flipping_stream(opts["examples"], seed, opts["flip_every"], chunk=opts["bin"]):
        for x, y in zip(X, Y, strict=True):
            err = learner.predict(x) - float(y)
            bin_se += err * err
            bin_n += 1
            try:
                learner.learn(x, float(y))
            except FloatingPointError:  # LearnerDiverged: refused, learner unchanged
                refused += 1
        seen += len(Y)
        if seen % opts["bin"] == 0 or seen == opts["examples"]:
            row: dict[str, Any] = {"examples": seen, "mse": bin_se / bin_n, "refused": refused}
            if isinstance(learner, Learner) and cfg is not None and cfg.hidden:
                row.update(probe_stats(learner.model, X))
                row.update(stream_stats(learner.model))
            log.write(row)
            bin_se, bin_n = 0.0, 0
            if isinstance(learner, Learner) and not finite(learner.model):
                print(f"[{method} s{seed}] non-finite weights after {seen} examples: stopped")
                break
            if opts["verbose"] and seen % (opts["bin"] * 20) == 0:
                rate = seen / (time.perf_counter() - t0)
                print(f"[{method} s{seed}] {seen} mse {row['mse']:.3f} ({rate:.0f}/s)", flush=True)
    log.close()
    secs = time.perf_counter() - t0
    return {
        "method": method,
        "seed": seed,
        "config": config_dict(cfg) if cfg is not None else {"river": "LinearRegression"},
        "seconds": secs,
        "us_per_step": 1e6 * secs / opts["examples"],
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--examples", type=int, default=3_000_000)
    p.add_argument("--flip-every", type=int, default=10_000)
    p.add_argument("--bin", type=int, default=10_000, help="examples per error bin")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument(
        "--methods",
        nargs="+",
        default=["bp", "cbp", "l2", "linear", "river_linear", "default"],
        help="name or name@tag",
    )
    add_learner_arguments(p, hidden=[5], lr=0.01, out=RESULTS / "bit_flipping")
    a = p.parse_args(argv)

    base, per_method = configs = method_configs(a, BASE, PRESETS)
    opts = {
        "examples": a.examples,
        "flip_every": a.flip_every,
        "bin": a.bin,
        "base": base,
        "per_method": per_method,
        "out": a.out,
        "verbose": not a.quiet,
    }
    t0 = time.perf_counter()
    methods = check_methods(a.methods, BF_METHODS)
    results = run_parallel(run_method, [(m, s, opts) for s in a.seeds for m in methods], a.jobs)
    settings = {"examples": a.examples, "flip_every": a.flip_every, "bin": a.bin}
    finish_run(a, argv, "bit_flipping", settings, configs, t0, results)


if __name__ == "__main__":
    main()
