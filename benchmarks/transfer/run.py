"""Learn digits 5-9 online from a backbone pretrained on digits 0-4: frozen backbone + new head,
fine-tuned backbone, and the same network from scratch.

    .venv/bin/python benchmarks/transfer/pretrain.py   # the backbone (once)
    .venv/bin/python benchmarks/transfer/run.py        # -> results/{curves.csv,results.json}
    .venv/bin/python benchmarks/transfer/plot.py       # -> results/curves.png, the README table

Each run is a `TorchModuleClassifier` around `model.digits_net` (`benchmarks/transfer/model.py`)
learning one example at a time, as the service does: the stream is digits 5-9 of scikit-learn's
bundled 8x8 digits, pixels / 16, minus a held-out test set (30%, stratified), shuffled and
passed `--passes` times. Every `--every` examples the snapshot's accuracy on the test set is
recorded. The network is `model.digits_net` of the backbone file's width (and LayerNorm) for
every variant; the step size is each variant's (`LR`, chosen by one rule), or `--lr`. Variants:

- `frozen`: `weights = {"backbone": backbone.safetensors}`, `freeze = ["backbone"]`: only the
  new head learns;
- `frozen_first`: the same weights, only the backbone's first layer frozen (`backbone.0`);
- `finetune`: the same weights, nothing frozen;
- `scratch`: no weights (the backbone's initialisation is the learner's seed's).

"Examples to 90%": the first evaluation at which test accuracy reaches 90% of that run's final
accuracy (its mean over the last 5 evaluations). Dead units and effective rank of the backbone's
two ReLU layers: the learner's telemetry over the last 200 examples.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

import numpy as np
import safetensors
import torch
from lifelong.model import TorchModuleConfig, torch_module_learner
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

TARGET = (5, 6, 7, 8, 9)
VARIANTS = ("frozen", "frozen_first", "finetune", "scratch")
FEATURES = tuple(f"p{i}" for i in range(64))


# Adam's step size per variant: of 0.001, 0.003 and 0.01 (and SGD 0.05 and 0.2), the best final
# accuracy on seed 0, a tie going to the best prequential accuracy (README, "Step sizes").
LR = {"frozen": 0.003, "frozen_first": 0.01, "finetune": 0.001, "scratch": 0.003}


def lr_of(lr: list[str], variant: str) -> float:
    """`--lr`: one value for all, or `variant=value` pairs."""
    pairs = dict(item.split("=") for item in lr if "=" in item)
    return float(pairs[variant]) if pairs else float(lr[0])


def learner(variant: str, seed: int, backbone: Path, optimizer: str, lr: float):
    extra: dict = {}
    if variant != "scratch":
        extra["weights"] = {"backbone": str(backbone)}
    if variant == "frozen":
        extra["freeze"] = ["backbone"]
    if variant == "frozen_first":
        extra["freeze"] = ["backbone.0"]
    config = TorchModuleConfig(
        features=FEATURES,
        standardize=False,
        optimizer=optimizer,
        lr=lr,
        seed=seed,
        telemetry_window=200,
        **extra,
    )
    model_args = {"n_outputs": len(TARGET), **backbone_shape(backbone)}
    return torch_module_learner("model:digits_net", "classification", config, model_args)


def backbone_shape(backbone: Path) -> dict:
    """The backbone's width and whether it ends in a LayerNorm, read from its file: scratch
    builds the same network."""
    with safetensors.safe_open(str(backbone), "pt") as file:
        names = set(file.keys())
        return {"hidden": file.get_slice("0.weight").get_shape()[0], "norm": "4.weight" in names}


def run(variant, seed, data, args) -> dict:
    X_train, y_train, X_test, y_test = data
    rng = np.random.default_rng(seed)
    order = np.concatenate([rng.permutation(len(X_train)) for _ in range(args.passes)])
    model = learner(variant, seed, args.backbone, args.optimizer, lr_of(args.lr, variant))
    curve = []
    start = time.perf_counter()
    for at in range(0, len(order), args.every):
        rows = order[at : at + args.every]
        model.learn_many(X_train[rows], y_train[rows].tolist())
        predicted = model.snapshot().predict_dense(X_test)
        accuracy = float(np.mean(predicted == np.array(y_test.tolist(), dtype=object)))
        curve.append((model.samples_learned, accuracy))
    seconds = time.perf_counter() - start
    final = float(np.mean([a for _, a in curve[-5:]]))
    reach = next(n for n, a in curve if a >= 0.9 * final)
    layers = model.stats().layers  # the backbone's two ReLU layers, on the last window
    return {
        "dead_fraction": [layer.dead_fraction for layer in layers],
        "effective_rank": [layer.effective_rank for layer in layers],
        "variant": variant,
        "seed": seed,
        "final_accuracy": final,
        "examples_to_90pct": reach,
        "prequential_accuracy": model.stats().prequential_score,
        "seconds": seconds,
        "curve": curve,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", type=Path, default=HERE / "backbone.safetensors")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--passes", type=int, default=3)
    parser.add_argument("--every", type=int, default=20)
    parser.add_argument("--optimizer", default="adam", choices=("sgd", "adam"))
    parser.add_argument(
        "--lr", nargs="+", default=[f"{v}={lr}" for v, lr in LR.items()],
        help="one step size for every variant, or VARIANT=LR each",
    )  # fmt: skip
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args()
    if not args.backbone.exists():
        sys.exit(f"{args.backbone} is missing: run benchmarks/transfer/pretrain.py first")
    torch.set_num_threads(1)
    digits = load_digits()
    keep = np.isin(digits.target, TARGET)
    X, y = digits.data[keep] / 16.0, digits.target[keep]
    results = []
    for seed in args.seeds:
        X_train, X_test, y_train, y_test = train_test_split(
            X, y, test_size=0.3, stratify=y, random_state=seed
        )
        data = (X_train, y_train, X_test, y_test)
        for variant in args.variants:
            result = run(variant, seed, data, args)
            results.append(result)
            print(
                f"{variant:9s} seed {seed}: final {result['final_accuracy']:.3f}, 90% of it "
                f"after {result['examples_to_90pct']} examples ({result['seconds']:.0f} s)",
                flush=True,
            )
    args.out.mkdir(parents=True, exist_ok=True)
    with open(args.out / "curves.csv", "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["variant", "seed", "examples", "test_accuracy"])
        for r in results:
            writer.writerows([r["variant"], r["seed"], n, f"{a:.4f}"] for n, a in r["curve"])
    summary = {}
    for variant in args.variants:
        runs = [r for r in results if r["variant"] == variant]
        summary[variant] = {
            key: {
                "mean": float(np.mean([r[key] for r in runs])),
                "per_seed": [r[key] for r in runs],
            }
            for key in ("final_accuracy", "examples_to_90pct", "prequential_accuracy")
        }
        for key in ("dead_fraction", "effective_rank"):  # per backbone layer
            summary[variant][key] = {
                "mean": np.mean([r[key] for r in runs], axis=0).tolist(),
                "per_seed": [r[key] for r in runs],
            }  # fmt: skip
    config = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    config["lr"] = {v: lr_of(args.lr, v) for v in args.variants}
    config["backbone"] = str(Path(config["backbone"]).name)
    config["out"] = str(Path(config["out"]).name)
    stream = {"train_examples": int(len(X) * 0.7), "test_examples": int(len(X) - int(len(X) * 0.7))}
    with open(args.out / "results.json", "w") as file:
        json.dump({"config": config, "stream": stream, "summary": summary}, file, indent=2)
        file.write("\n")


if __name__ == "__main__":
    main()
