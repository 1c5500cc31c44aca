"""Learning throughput: Lifelong (reference and fast path) against the tools users would pick.

Predict, then learn, one example at a time, on river's `synth.Hyperplane` (20 numeric features,
2 classes, seed 0); every contender runs once per repetition, interleaved, so a busy machine
slows all of them alike; medians and ratios come from the same run. Then 784-256-256-10 against
the machine's memory-bound limit: the time to stream the weights three times (read for the
forward pass, read and write for the fused backward pass and update), measured here.

    .venv/bin/python benchmarks/speed/run.py [--repeats 3] [--n 50000]
    .venv/bin/python benchmarks/speed/run.py --dict-path [--repeats 9]
    .venv/bin/python benchmarks/speed/run.py --n 20000 --n-wide 0 --name torch_module

Writes results/throughput.{json,csv}, results/throughput.png and results/machine.json.
deep-river and Vowpal Wabbit run in `.cache/speed-venv` (README.md) and are skipped without it.
`--dict-path` runs only river's per-call path (a dict per example, `predict_one` then
`learn_one`): Lifelong's default classifier against river's `StandardScaler |
LogisticRegression`, interleaved, into results/dict_path.{json,png}.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from lifelong.model import LearnerConfig, LifelongClassifier

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
RESULTS = HERE / "results"
EXTERNAL_PYTHON = ROOT / ".cache" / "speed-venv" / "bin" / "python"
BATCH = 500  # examples per learn_many call: what one Kafka poll hands over
DICT_PATH = "lifelong 20-64-64-2 default, predict_one + learn_one (dict)"
RIVER_LR = "river StandardScaler | LogisticRegression"
Run = Callable[[np.ndarray, np.ndarray], tuple[float, float]]  # -> seconds, accuracy (or nan)


def hyperplane(n: int) -> tuple[np.ndarray, np.ndarray]:
    from river.datasets import synth

    rows = [(list(x.values()), y) for x, y in synth.Hyperplane(seed=0, n_features=20).take(n)]
    return np.array([r for r, _ in rows]), np.array([y for _, y in rows], dtype=np.int64)


def lifelong(hidden: tuple[int, ...], mode: str) -> Run:
    """Lifelong with CBP and telemetry (the defaults). Its learn call makes the prediction and
    scores it (prequential accuracy): predict-then-learn is one call."""

    def run(X: np.ndarray, y: np.ndarray) -> tuple[float, float]:
        model = LifelongClassifier(LearnerConfig(hidden=hidden, seed=0))
        model.fast_path = mode != "reference"
        labels = y.tolist()
        start = time.perf_counter()
        if mode == "batch":
            for i in range(0, len(X), BATCH):
                model.learn_many(X[i : i + BATCH], labels[i : i + BATCH])
        else:
            for x, label in zip(X, labels, strict=True):
                model.learn_dense(x, label)
        seconds = time.perf_counter() - start
        return seconds, model.stats().prequential_score

    return run


def lifelong_torch_module(mode: str) -> Run:
    """Lifelong's torch module learner around examples/torch_models.py:mlp (the default
    architecture as an nn.Sequential), SGD 0.01, no plasticity method, telemetry on: what the
    service runs with `model = "torch_models:mlp"`. Its learn call predicts and scores first, as
    the built-in's. "batch": learn_many per poll (row by row inside); else learn_dense per row."""

    def run(X: np.ndarray, y: np.ndarray) -> tuple[float, float]:
        sys.path.insert(0, str(ROOT / "examples"))
        from lifelong.model import torch_module_learner

        model = torch_module_learner(
            "torch_models:mlp",
            "classification",
            {"features": [str(i) for i in range(X.shape[1])], "lr": 0.01},
            {"n_inputs": X.shape[1], "n_outputs": 2},
        )
        labels = y.tolist()
        start = time.perf_counter()
        if mode == "batch":
            for i in range(0, len(X), BATCH):
                model.learn_many(X[i : i + BATCH], labels[i : i + BATCH])
        else:
            for x, label in zip(X, labels, strict=True):
                model.learn_dense(x, label)
        return time.perf_counter() - start, model.stats().prequential_score

    return run


def torch_sequential(X: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    net = torch.nn.Sequential(
        torch.nn.Linear(20, 64), torch.nn.ReLU(), torch.nn.Linear(64, 64), torch.nn.ReLU(),
        torch.nn.Linear(64, 2),
    )  # fmt: skip
    opt = torch.optim.SGD(net.parameters(), lr=0.01)
    loss_fn = torch.nn.CrossEntropyLoss()
    Xt, yt = torch.from_numpy(X.astype(np.float32)), torch.from_numpy(y)
    correct = 0
    start = time.perf_counter()
    for i in range(len(X)):
        out = net(Xt[i : i + 1])
        correct += int(out.argmax()) == int(yt[i])
        opt.zero_grad()
        loss_fn(out, yt[i : i + 1]).backward()
        opt.step()
    return time.perf_counter() - start, correct / len(X)


def torch_manual(
    X: np.ndarray, y: np.ndarray, sizes: tuple[int, ...] = (20, 64, 64, 2)
) -> tuple[float, float]:
    """A hand-written step on torch tensors, no autograd: forward, softmax, backward, SGD."""
    g = torch.Generator().manual_seed(0)
    Ws = [torch.empty(o, i).uniform_(-(i**-0.5), i**-0.5, generator=g)
          for i, o in itertools.pairwise(sizes)]  # fmt: skip
    bs = [torch.zeros(o) for o in sizes[1:]]
    Xt, labels = torch.from_numpy(X.astype(np.float32)), y.tolist()
    lr, correct = 0.01, 0
    start = time.perf_counter()
    with torch.no_grad():
        for i, label in enumerate(labels):
            hs = [Xt[i]]
            for W, b in zip(Ws[:-1], bs[:-1], strict=True):
                hs.append(torch.relu(torch.addmv(b, W, hs[-1])))
            p = torch.softmax(torch.addmv(bs[-1], Ws[-1], hs[-1]), 0)
            correct += int(p.argmax()) == label
            d = p
            d[label] -= 1.0
            for k in range(len(Ws) - 1, -1, -1):
                prev = Ws[k].T.mv(d) * (hs[k] > 0) if k else None
                Ws[k].addr_(d, hs[k], alpha=-lr)
                bs[k].add_(d, alpha=-lr)
                d = prev
    return time.perf_counter() - start, correct / len(labels)


def river_model(make: Callable[[], object], clock: Callable[[], float] = time.perf_counter) -> Run:
    def run(X: np.ndarray, y: np.ndarray) -> tuple[float, float]:
        model = make()
        rows = [dict(enumerate(r)) for r in X.tolist()]
        labels = y.tolist()
        correct = 0
        start = clock()
        for x, label in zip(rows, labels, strict=True):
            correct += model.predict_one(x) == label
            model.learn_one(x, label)
        return clock() - start, correct / len(labels)

    return run


def lifelong_default() -> object:
    return LifelongClassifier(LearnerConfig())


def logistic_regression() -> object:
    from river import linear_model, preprocessing

    return preprocessing.StandardScaler() | linear_model.LogisticRegression()


def arf() -> object:
    from river import forest

    return forest.ARFClassifier(seed=0)


def external(name: str, stream_file: Path) -> Run:
    def run(X: np.ndarray, y: np.ndarray) -> tuple[float, float]:
        cmd = [str(EXTERNAL_PYTHON), str(HERE / "external.py"), name, str(stream_file)]
        out = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
        return out["seconds"], out["correct"] / len(y)

    return run


def memory_bound_limit(sizes: tuple[int, ...], trials: int = 300) -> float:
    """Steps/s if a step did nothing but stream the float32 weights and biases three times: one
    read (forward) and one read-modify-write (backward and update). One contiguous buffer, so
    per-call overhead stays out of it; the best of NumPy and torch, the fastest trial."""
    n = sum((i + 1) * o for i, o in itertools.pairwise(sizes))
    flat = np.random.default_rng(0).random(n, dtype=np.float32)
    tensor = torch.from_numpy(flat)

    def best(read: Callable[[], object], rmw: Callable[[], object]) -> float:
        times = []
        for _ in range(trials):
            t0 = time.perf_counter()
            read()
            rmw()
            times.append(time.perf_counter() - t0)
        return min(times)

    numpy = best(lambda: np.add.reduce(flat), lambda: np.multiply(flat, 1.0, out=flat))
    torch_ = best(tensor.sum, lambda: tensor.mul_(1.0))
    return 1.0 / min(numpy, torch_)


def machine() -> dict[str, object]:
    import river

    lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    keep = ("Model name", "CPU(s)", "L1d cache", "L2 cache", "L3 cache")
    cpu = {k.strip(): v.strip() for k, v in (line.split(":", 1) for line in lscpu.splitlines()
                                             if ":" in line) if k.strip() in keep}  # fmt: skip
    gcc = subprocess.run(["gcc", "--version"], capture_output=True, text=True).stdout
    return {
        "cpu": cpu,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "river": river.__version__,
        "gcc": gcc.splitlines()[0] if gcc else None,
        "torch_threads": torch.get_num_threads(),
        "load_average_at_start": os.getloadavg(),
    }


def measure(contenders: dict[str, Run], X: np.ndarray, y: np.ndarray, repeats: int) -> dict:
    seconds: dict[str, list[float]] = {name: [] for name in contenders}
    accuracy: dict[str, float] = {}
    for rep in range(repeats):
        for name, run in contenders.items():
            s, acc = run(X, y)
            seconds[name].append(s)
            accuracy[name] = acc
            print(f"  rep {rep}: {name:40s} {len(X) / s:10.0f} ex/s", flush=True)
    return {
        name: {
            "examples": len(X),
            "seconds": s,
            "examples_per_second": len(X) / statistics.median(s),
            "accuracy": accuracy[name],
        }
        for name, s in seconds.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--n", type=int, default=50_000)
    parser.add_argument(
        "--n-wide", type=int, default=20_000, help="examples for 784-256-256-10 (steady state)"
    )
    parser.add_argument("--dict-path", action="store_true", help="river's per-call path only")
    parser.add_argument(
        "--name", default="throughput",
        help="results/NAME.{json,csv,png} and results/machine_NAME.json (default: throughput, "
        "machine.json); --n-wide 0 skips 784-256-256-10",
    )  # fmt: skip
    args = parser.parse_args()
    torch.set_num_threads(1)  # per-example work: one thread (see network.one_thread)
    info = machine()
    X, y = hyperplane(args.n)
    if args.dict_path:
        dict_path(X, y, args.repeats, info)
        return

    small: dict[str, Run] = {
        "lifelong 20-64-64-2 reference path": lifelong((64, 64), "reference"),
        "lifelong 20-64-64-2 fast, learn_dense": lifelong((64, 64), "one"),
        f"lifelong 20-64-64-2 fast, learn_many({BATCH})": lifelong((64, 64), "batch"),
        "torch nn.Sequential + optim.SGD": torch_sequential,
        "lifelong torch module (nn.Sequential), learn_dense": lifelong_torch_module("one"),
        f"lifelong torch module (nn.Sequential), learn_many({BATCH})": lifelong_torch_module(
            "batch"
        ),
        "torch hand-written step": torch_manual,
        DICT_PATH: river_model(lifelong_default),
        RIVER_LR: river_model(logistic_regression),
        "river ARFClassifier": river_model(arf),
    }
    with tempfile.TemporaryDirectory() as tmp:
        stream_file = Path(tmp) / "stream.npz"
        np.savez(stream_file, X=X, y=y)
        if EXTERNAL_PYTHON.exists():
            small["deep-river Classifier 20-64-64-2"] = external("deep_river", stream_file)
            small["Vowpal Wabbit (logistic)"] = external("vowpal_wabbit", stream_file)
        else:
            print(f"skipping deep-river and Vowpal Wabbit: no {EXTERNAL_PYTHON}", file=sys.stderr)
        print(f"20-64-64-2, {args.n} examples, {args.repeats} interleaved repetitions")
        results = measure(small, X, y, args.repeats)

    if args.n_wide == 0:
        info["load_average_at_end"] = os.getloadavg()
        write(results, info, args.name)
        return
    rng = np.random.default_rng(1)
    Xw = rng.random((args.n_wide, 784))
    yw = (Xw @ rng.normal(size=(784, 10))).argmax(axis=1)
    wide: dict[str, Run] = {
        "lifelong 784-256-256-10 fast, learn_dense": lifelong((256, 256), "one"),
        f"lifelong 784-256-256-10 fast, learn_many({BATCH})": lifelong((256, 256), "batch"),
        "torch hand-written step 784-256-256-10": lambda X, y: torch_manual(
            X, y, (784, 256, 256, 10)
        ),
    }
    print(f"784-256-256-10, {args.n_wide} examples")
    results |= measure(wide, Xw, yw, args.repeats)
    limit = memory_bound_limit((784, 256, 256, 10))
    results["memory-bound limit 784-256-256-10 (3 weight streams)"] = {"examples_per_second": limit}
    for name, r in results.items():
        if "784" in name and not name.startswith("memory"):
            r["fraction_of_memory_bound_limit"] = r["examples_per_second"] / limit
    info["load_average_at_end"] = os.getloadavg()
    write(results, info, args.name)


def dict_path(X: np.ndarray, y: np.ndarray, repeats: int, info: dict) -> None:
    """Lifelong and river on river's per-call path, interleaved: rates, their ratio per
    repetition (the two runs next to each other) and the medians. Timed in CPU seconds of the
    process: on a shared machine, wall time also counts the waits for a core."""
    contenders = {
        DICT_PATH: river_model(lifelong_default, time.process_time),
        RIVER_LR: river_model(logistic_regression, time.process_time),
    }
    print(f"dict path, 20-64-64-2, {len(X)} examples, {repeats} interleaved repetitions")
    results = measure(contenders, X, y, repeats)
    seconds = zip(results[RIVER_LR]["seconds"], results[DICT_PATH]["seconds"], strict=True)
    ratios = [river / ours for river, ours in seconds]
    info["load_average_at_end"] = os.getloadavg()
    out = {
        "contenders": results,
        "clock": "process CPU time",
        "ratio_per_repetition": ratios,
        "ratio_of_medians": results[DICT_PATH]["examples_per_second"]
        / results[RIVER_LR]["examples_per_second"],
        "machine": info,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "dict_path.json").write_text(json.dumps(out, indent=2) + "\n")
    print(f"Lifelong / river: {out['ratio_of_medians']:.2f} (per repetition "
          f"{min(ratios):.2f}-{max(ratios):.2f})")  # fmt: skip
    plot_dict_path(results)


def plot_dict_path(results: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 2.6))
    for i, (name, r) in enumerate(results.items()):
        rates = [r["examples"] / s for s in r["seconds"]]
        color = "tab:green" if name.startswith("lifelong") else "tab:gray"
        ax.barh(i, r["examples_per_second"], color=color, alpha=0.6)
        ax.plot(rates, [i] * len(rates), "k.", markersize=4)
        ax.text(r["examples_per_second"], i, f" {r['examples_per_second']:,.0f}", va="center")
    ax.set_xlim(0, 1.2 * max(r["examples_per_second"] for r in results.values()))
    ax.set_yticks(range(len(results)), list(results))
    ax.invert_yaxis()
    ax.set_xlabel("examples per CPU second (bar: median; dots: each repetition)")
    ax.set_title("predict_one then learn_one, a dict per example")
    fig.tight_layout()
    fig.savefig(RESULTS / "dict_path.png", dpi=120)


def write(results: dict, info: dict, name: str) -> None:
    RESULTS.mkdir(exist_ok=True)
    machine_file = "machine.json" if name == "throughput" else f"machine_{name}.json"
    (RESULTS / machine_file).write_text(json.dumps(info, indent=2) + "\n")
    (RESULTS / f"{name}.json").write_text(json.dumps(results, indent=2) + "\n")
    reference = results["torch nn.Sequential + optim.SGD"]["examples_per_second"]
    with open(RESULTS / f"{name}.csv", "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["contender", "examples_per_second", "vs_torch_sequential", "accuracy"])
        for contender, r in results.items():
            rate = r["examples_per_second"]
            out.writerow([contender, f"{rate:.0f}", f"{rate / reference:.2f}",
                          f"{r['accuracy']:.3f}" if "accuracy" in r else ""])  # fmt: skip
    plot(results, name)


def plot(results: dict, name: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results)
    rates = [results[n]["examples_per_second"] for n in names]
    colors = ["tab:green" if n.startswith("lifelong") else
              "tab:red" if n.startswith("memory") else "tab:gray" for n in names]  # fmt: skip
    fig, ax = plt.subplots(figsize=(9, 0.45 * len(names) + 1.2))
    ax.barh(names[::-1], rates[::-1], color=colors[::-1])
    ax.set_xscale("log")
    ax.set_xlabel("examples learned per second, one core (log scale; median)")
    ax.set_title("Predict-then-learn, one example at a time")
    for i, rate in enumerate(rates[::-1]):
        ax.text(rate, i, f" {rate:,.0f}", va="center", fontsize=8)
    fig.tight_layout()
    fig.savefig(RESULTS / f"{name}.png", dpi=120)


if __name__ == "__main__":
    main()
