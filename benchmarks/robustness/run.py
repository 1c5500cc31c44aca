"""Run every learner on every hostile stream, prequentially (predict, then learn, each example
once, in order, as river's `evaluate.progressive_val_score`), and score what each event did.

    .venv/bin/python benchmarks/robustness/run.py                    # full suite, ~3.5 min
    .venv/bin/python benchmarks/robustness/run.py --quick            # smoke run, ~40 s
    .venv/bin/python benchmarks/robustness/run.py --out benchmarks/robustness/results

A learner that raises (predicting or learning) or predicts a non-finite value has not survived:
it is stopped on that stream at that example. Writes, under --out, `<stream>/<learner>.csv`
(the windowed score every --every examples) and `results.json` (settings, environment, and per
stream and learner: survival, score before/worst/after each event and examples to recover,
the score over the last --period examples, and the criterion); then `plot.py` draws them.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent / "plasticity"))

import scores
from common import environment, run_parallel, write_json  # benchmarks/plasticity/common.py
from learners import LEARNERS, NonFinitePrediction
from streams import CLASSIFICATION, STREAMS

HERE = Path(__file__).resolve().parent

REFERENCE = "river"  # "no slower than river's linear model"


def run_one(stream_name: str, learner_name: str, opts: dict[str, Any]) -> dict[str, Any]:
    """One learner through one stream; its windowed-score CSV and its results."""
    stream = STREAMS[stream_name](opts["period"], opts["seed"])
    learner = LEARNERS[learner_name](stream, opts["seed"])
    classify = stream.task == CLASSIFICATION
    # per example: 1/0 correct (classification) or the estimate (regression); NaN from a failure on
    outcomes = np.full(stream.n, np.nan)
    failed_at, reason = None, None
    t0 = time.perf_counter()
    for i, (x, y) in enumerate(stream.examples()):
        try:
            p = learner.predict(x)
            learner.learn(x, y)
        except NonFinitePrediction as e:
            failed_at, reason = i, f"non-finite prediction: {e}"
            break
        except Exception as e:  # any exception from a learner: it did not survive
            failed_at, reason = i, f"{type(e).__name__}: {e}"
            break
        outcomes[i] = (p == y) if classify else p
    seconds = time.perf_counter() - t0
    if classify:
        values, y = outcomes, None
    else:  # a finite estimate can still square to inf
        y = stream.y
        with np.errstate(over="ignore"):
            values = (outcomes - y) ** 2
    score = scores.windowed(stream.task, values, y, opts["window"])
    path = opts["out"] / stream_name / f"{learner_name}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(opts["window"], stream.n + 1, opts["every"])
    np.savetxt(
        path,
        np.column_stack([t, score[t]]),
        fmt=["%d", "%.6g"],
        delimiter=",",
        header="example,score",
        comments="",
    )
    examples = stream.n if failed_at is None else failed_at + 1
    return {
        "stream": stream_name,
        "learner": learner_name,
        "survived": failed_at is None,
        "failed_at": failed_at,
        "reason": reason,
        "events": scores.events(stream.task, score, stream.events, opts["window"]),
        "final": scores.final(stream.task, values, y, opts["period"]),
        "seconds": seconds,
        "us_per_example": 1e6 * seconds / examples,
    }


def learner_commit() -> dict[str, Any]:
    """The last commit that changed the learner's sources and the sources changed since, when
    the learner imported is this repository's; None for one imported from elsewhere (a snapshot
    on PYTHONPATH: `environment()`'s learner_path and sources hash say which)."""
    import lifelong.model

    service = HERE.parent.parent / "service"
    if not Path(lifelong.model.__file__).resolve().is_relative_to(service):
        return {"learner_commit": None, "learner_uncommitted": None}

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=HERE, capture_output=True, text=True).stdout

    return {
        "learner_commit": git("log", "-1", "--format=%h", "--", str(service)).strip(),
        "learner_uncommitted": [
            line[3:] for line in git("status", "--porcelain", "--", str(service)).splitlines()
        ],
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument(
        "--period", type=int, help="examples before the first event and between events (10000)"
    )
    p.add_argument("--window", type=int, help="trailing window of the score (1000)")
    p.add_argument("--every", type=int, default=100, help="examples between CSV rows")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--streams", nargs="+", default=list(STREAMS), choices=list(STREAMS))
    p.add_argument("--learners", nargs="+", default=list(LEARNERS), choices=list(LEARNERS))
    p.add_argument(
        "--quick", action="store_true", help="smoke run: --period 1000 --window 250 (unless given)"
    )
    p.add_argument("--jobs", type=int, default=1, help="processes at once")
    p.add_argument("--out", type=Path, default=HERE / "results")
    a = p.parse_args(argv)
    a.period = a.period or (1_000 if a.quick else 10_000)
    a.window = a.window or (250 if a.quick else 1_000)
    if a.window > a.period:
        p.error("--window must not exceed --period: each event needs a full window before it")
    if REFERENCE not in a.learners:
        p.error(f"the criterion compares with {REFERENCE!r}: keep it in --learners")

    opts = {k: getattr(a, k) for k in ("period", "window", "every", "seed", "out")}
    t0 = time.perf_counter()
    jobs = [(s, m, opts) for s in a.streams for m in a.learners]
    runs = run_parallel(run_one, jobs, a.jobs)
    results: dict[str, Any] = {}
    for s in a.streams:
        stream = STREAMS[s](a.period, a.seed)
        by_learner = {r["learner"]: r for r in runs if r["stream"] == s}
        scores.criterion(by_learner, REFERENCE)
        results[s] = {
            "task": stream.task,
            "what": stream.what,
            "n": stream.n,
            "events": list(stream.events),
            "learners": by_learner,
        }
    write_json(
        a.out / "results.json",
        {
            "argv": sys.argv[1:] if argv is None else argv,
            "settings": {
                **{k: v for k, v in opts.items() if k != "out"},
                "accuracy_drop": scores.ACCURACY_DROP,
                "rse_factor": scores.RSE_FACTOR,
                "reference": REFERENCE,
            },
            "environment": {**environment(), **learner_commit()},
            "wall_seconds": time.perf_counter() - t0,
            "streams": results,
        },
    )
    for s, r in results.items():
        line = ", ".join(
            f"{m}: {'pass' if v['pass'] else 'FAIL'}" for m, v in r["learners"].items()
        )
        print(f"{s:15s} {line}")
    print(f"done in {time.perf_counter() - t0:.0f}s -> {a.out}")


if __name__ == "__main__":
    main()
