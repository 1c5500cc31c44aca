"""The learner at two commits, side by side: `learn_many` throughput of the default classifier
on 20-64-64-2 (or, with `--path dict`, river's per-call path: a dict per example through
`predict_one` then `learn_one`, with river's `StandardScaler | LogisticRegression` timed in the
same process), one process per measurement, the two commits alternating so a busy machine slows
both alike.

    .venv/bin/python benchmarks/speed/ab.py --base 854f371 [--head HEAD] [--pairs 8] [--path dict]

Each commit's `service/` is extracted with `git archive` into a temporary directory and put
first on PYTHONPATH (its kernel compiles from its own source at first use). Writes
results/ab_<base>_<head>[_dict].json: every measurement, the medians and their ratio head/base.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]

# Predict-then-learn in polls of 500 rows (`learn_many`), as the service learns a Kafka poll;
# the first pass compiles and warms the kernel, the second is timed.
MEASURE = """
import json, sys, time
import numpy as np, torch
from river.datasets import synth
from lifelong.model import LearnerConfig, LifelongClassifier
torch.set_num_threads(1)
n = int(sys.argv[1])
rows = [(list(x.values()), y) for x, y in synth.Hyperplane(seed=0, n_features=20).take(n)]
X = np.array([r for r, _ in rows]); y = [int(t) for _, t in rows]
rates = []
for _ in range(2):
    model = LifelongClassifier(LearnerConfig(hidden=(64, 64), seed=0))
    start = time.perf_counter()
    for i in range(0, n, 500):
        model.learn_many(X[i : i + 500], y[i : i + 500])
    rates.append(n / (time.perf_counter() - start))
print(json.dumps({"rate": rates[-1], "accuracy": model.stats().prequential_score}))
"""

# predict_one then learn_one, a dict per example, as river.evaluate.progressive_val_score calls
# them; river's own pipeline after it, in the same process. CPU time: the process's own work.
MEASURE_DICT = """
import json, sys, time
import torch
from river import linear_model, preprocessing
from river.datasets import synth
from lifelong.model import LearnerConfig, LifelongClassifier
torch.set_num_threads(1)
n = int(sys.argv[1])
data = list(synth.Hyperplane(seed=0, n_features=20).take(n))
def rate(model):
    start = time.process_time()
    for x, y in data:
        model.predict_one(x)
        model.learn_one(x, y)
    return n / (time.process_time() - start)
rate(LifelongClassifier(LearnerConfig()))  # compiles and warms the kernel
river = preprocessing.StandardScaler() | linear_model.LogisticRegression()
print(json.dumps({"rate": rate(LifelongClassifier(LearnerConfig())), "river_rate": rate(river)}))
"""


def snapshot(commit: str, into: Path) -> Path:
    into.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", commit, "service"], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into / "service"


def measure(service: Path, n: int, script: str) -> dict:
    env = {"PYTHONPATH": str(service), "PATH": "/usr/bin:/bin"}
    out = subprocess.run(
        [sys.executable, "-c", script, str(n)], env=env, check=True, capture_output=True, text=True
    ).stdout
    return json.loads(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True)
    parser.add_argument("--head", default="HEAD")
    parser.add_argument("--pairs", type=int, default=8)
    parser.add_argument("--n", type=int, default=50_000)
    parser.add_argument("--path", choices=("many", "dict"), default="many")
    args = parser.parse_args()
    script = MEASURE_DICT if args.path == "dict" else MEASURE
    commits = {
        name: subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", rev],
            check=True, capture_output=True, text=True,
        ).stdout.strip()
        for name, rev in (("base", args.base), ("head", args.head))
    }  # fmt: skip
    runs: dict[str, list[dict]] = {"base": [], "head": []}
    with tempfile.TemporaryDirectory() as tmp:
        services = {name: snapshot(c, Path(tmp) / name) for name, c in commits.items()}
        for pair in range(args.pairs):
            order = ("base", "head") if pair % 2 == 0 else ("head", "base")
            for name in order:
                runs[name].append(measure(services[name], args.n, script))
                print(name, commits[name], f"{runs[name][-1]['rate']:,.0f}/s", flush=True)
    medians = {name: statistics.median(r["rate"] for r in rs) for name, rs in runs.items()}
    result = {
        "commits": commits,
        "path": args.path,
        "n": args.n,
        "pairs": args.pairs,
        "runs": runs,
        "median_rate": medians,
        "ratio_head_over_base": medians["head"] / medians["base"],
    }
    if args.path == "dict":  # each process timed river too: Lifelong's rate over river's
        result["median_over_river"] = {
            name: statistics.median(r["rate"] / r["river_rate"] for r in rs)
            for name, rs in runs.items()
        }
    suffix = "_dict" if args.path == "dict" else ""
    out = HERE / "results" / f"ab_{commits['base']}_{commits['head']}{suffix}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"head/base {result['ratio_head_over_base']:.3f} -> {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
