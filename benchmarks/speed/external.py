"""Contenders that cannot share Lifelong's environment (deep-river pins river < 0.26), run by
`run.py` with the interpreter of `.cache/speed-venv` (see README.md). Reads the stream from an
.npz file, times predict-then-learn over it, prints JSON: {"seconds", "correct"}.

    .cache/speed-venv/bin/python benchmarks/speed/external.py {deep_river,vowpal_wabbit} STREAM.npz
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np


def deep_river(X: np.ndarray, y: np.ndarray) -> tuple[float, int]:
    import torch
    from deep_river.classification import Classifier
    from torch import nn

    torch.set_num_threads(1)

    class MLP(nn.Module):
        def __init__(self, n_features: int) -> None:
            super().__init__()
            self.net = nn.Sequential(
                nn.Linear(n_features, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(),
                nn.Linear(64, 2),
            )  # fmt: skip

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.net(x)

    model = Classifier(
        module=MLP(X.shape[1]), loss_fn="cross_entropy", optimizer_fn="sgd", lr=0.01, seed=0
    )
    rows = [dict(enumerate(row)) for row in X.tolist()]
    labels = y.tolist()
    correct = 0
    start = time.perf_counter()
    for x, label in zip(rows, labels, strict=True):
        correct += model.predict_one(x) == label
        model.learn_one(x, label)
    return time.perf_counter() - start, correct


def vowpal_wabbit(X: np.ndarray, y: np.ndarray) -> tuple[float, int]:
    import vowpalwabbit

    vw = vowpalwabbit.Workspace("--loss_function logistic --link logistic --quiet")
    features = [" ".join(f"{i}:{v:.6g}" for i, v in enumerate(row)) for row in X.tolist()]
    labels = y.tolist()
    correct = 0
    start = time.perf_counter()
    for text, label in zip(features, labels, strict=True):
        # Parsing the text line is part of VW's per-example cost, as it is of its own CLI.
        p = vw.predict(f"| {text}")
        correct += (p > 0.5) == label
        vw.learn(f"{1 if label else -1} | {text}")
    vw.finish()
    return time.perf_counter() - start, correct


def main() -> None:
    name, path = sys.argv[1], sys.argv[2]
    data = np.load(path)
    seconds, correct = {"deep_river": deep_river, "vowpal_wabbit": vowpal_wabbit}[name](
        data["X"], data["y"]
    )
    print(json.dumps({"seconds": seconds, "correct": int(correct)}))


if __name__ == "__main__":
    main()
