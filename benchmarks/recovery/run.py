"""Recovery after a change: the warm model alone, a fresh model started at each change, and the
`Challenged` learner, on the streams of `streams.py`.

Every model predicts each block of `--block` rows with its serving weights, then learns it
(`learn_many`, as the service's Kafka path does), so accuracy is test-then-train at block
granularity. Per stream and seed it writes `results/<stream>_s<seed>.json`: accuracy per
`--curve` rows for each arm, the challenger's events, and the recovery numbers (`summary.py`
makes the table, `plot.py` the plots).

    nice .venv/bin/python benchmarks/recovery/run.py --seeds 0 1 2 --jobs 2
"""

from __future__ import annotations

import argparse
import itertools
import json
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import streams  # noqa: E402

# Rows of the accuracy window for "recovered" and for the level before a change, per stream:
# digits' tasks are 5391 rows long, the teachers' concepts tens of thousands.
WINDOW = {"phone": 5000, "gradual": 5000, "recurring": 5000, "digits": 500}
LEVEL = 0.97  # of the level before the change


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", nargs="+", default=list(streams.STREAMS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--block", type=int, default=50)
    parser.add_argument("--curve", type=int, default=500)
    parser.add_argument("--set", nargs="*", default=[], help="ChallengerConfig overrides k=v")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args()
    overrides = {k: _value(v) for k, v in (item.split("=", 1) for item in args.set)}
    args.out.mkdir(parents=True, exist_ok=True)
    jobs = [
        (s, seed, args.block, args.curve, overrides) for s in args.streams for seed in args.seeds
    ]
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=HERE, capture_output=True, text=True
    ).stdout.strip()
    header = {"argv": sys.argv, "commit": commit, "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    (args.out / "run.json").write_text(json.dumps(header, indent=1) + "\n")
    with ProcessPoolExecutor(args.jobs) as pool:
        for result in pool.map(_run_star, jobs):
            path = args.out / f"{result['stream']}_s{result['seed']}.json"
            path.write_text(json.dumps(result, indent=1) + "\n")
            print(path.name, json.dumps(result["changes"]), f"{result['seconds']:.0f}s", flush=True)


def _value(text: str) -> object:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _run_star(job: tuple) -> dict:
    return run(*job)


def run(name: str, seed: int, block: int, curve: int, overrides: dict) -> dict:
    import torch
    from lifelong.model import Challenged, ChallengerConfig, LearnerConfig, LifelongClassifier

    torch.set_num_threads(1)
    started = time.time()
    stream = streams.STREAMS[name](seed)
    X, y, changes = stream.X, stream.y, stream.changes
    config, challenge = LearnerConfig(seed=seed), ChallengerConfig(**overrides)
    warm = _online(LifelongClassifier(config), X, y, block)
    model = Challenged(LifelongClassifier(config), settings=challenge)
    challenged, events, active = _online(model, X, y, block, events=True)
    bounds = (*changes, len(X))
    fresh = np.concatenate(
        [warm[: changes[0]]]
        + [
            _online(LifelongClassifier(config), X[a:b], y[a:b], block)
            for a, b in itertools.pairwise(bounds)
        ]
    )
    arms = {"warm": warm, "fresh": fresh, "challenger": challenged}
    window = WINDOW[name]
    result = {
        "stream": name,
        "seed": seed,
        "rows": len(X),
        "changes": [],
        "window": window,
        "level": LEVEL,
        "challenger_config": asdict(challenge),
        "events": events,
        "challenger_active_rows": active,
        "false_alarms": sum(
            e["event"] == "start" and e["reason"] != "return" and e["row"] < changes[0]
            for e in events
        ),
        "final": {arm: float(a[-5 * window :].mean()) for arm, a in arms.items()},
        "curve_rows": curve,
        "curves": {arm: _blocks(a, curve) for arm, a in arms.items()},
    }
    for c, end in itertools.pairwise(bounds):
        pre = float(warm[c - 5 * window : c].mean())
        row = {"change": c, "rows": end - c, "pre": pre}
        for arm, a in arms.items():
            row[arm] = _recovery(a[c:end], LEVEL * pre, window)
        after = [e for e in events if c <= e["row"] < end]
        starts = [e for e in after if e["event"] == "start" and e["reason"] != "return"]
        row["detection"] = starts[0]["row"] - c if starts else None
        row["trigger"] = starts[0]["reason"] if starts else None
        swaps = [e for e in after if e["event"] == "swap"]
        row["swap"] = swaps[0]["row"] - c if swaps else None
        row["swap_reason"] = swaps[0]["reason"] if swaps else None
        result["changes"].append(row)
    result["seconds"] = time.time() - started
    return result


def _online(model, X, y, block, events: bool = False):
    """Per-row correctness of `model`'s serving weights, each block predicted before learned."""
    correct = np.zeros(len(X), dtype=bool)
    log, active = [], [0]
    for i in range(0, len(X), block):
        xb, yb = X[i : i + block], y[i : i + block]
        serving = model.incumbent if events else model
        if serving.samples_learned:
            correct[i : i + len(xb)] = serving.predict_dense(xb) == yb
        before = (model.incumbent, model.challenger) if events else None
        model.learn_many(xb, yb.tolist())
        if events:
            _events(model, before, i + len(xb), log)
            if model.challenger is not None:  # both learners learn: the cost of a challenge
                active[0] += len(xb)
    return (correct, log, active[0]) if events else correct


def _events(model, before, row: int, log: list) -> None:
    incumbent, challenger = before
    if model.incumbent is not incumbent:
        log.append({"row": row, "event": "swap", "reason": log[-1]["reason"]})
    elif challenger is not None and model.challenger is None:
        log.append({"row": row, "event": "drop", "reason": log[-1]["reason"]})
    if model.challenger is not None and model.challenger is not challenger:
        log.append({"row": row, "event": "start", "reason": model._challenge["reason"]})


def _recovery(correct: np.ndarray, target: float, window: int) -> int | None:
    """Rows after the change until the last `window` rows' accuracy reaches `target`."""
    if len(correct) < window:
        return None
    sums = np.convolve(correct.astype(np.float64), np.ones(window), "valid")
    hit = np.flatnonzero(sums >= target * window)
    return int(hit[0] + window) if len(hit) else None


def _blocks(a: np.ndarray, size: int) -> list[float]:
    n = len(a) // size * size
    return [round(float(v), 4) for v in a[:n].reshape(-1, size).mean(axis=1)]


if __name__ == "__main__":
    main()
