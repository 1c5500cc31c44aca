"""Train the backbone offline on digits 0-4 and write its weights (not committed).

    .venv/bin/python benchmarks/transfer/pretrain.py   # -> benchmarks/transfer/backbone.safetensors

Mini-batch Adam over all of digits 0-4 (scikit-learn's bundled 8x8 digits, pixels / 16, as
the online stream feeds them), a backbone and a head of 5 classes; only the backbone's
state_dict is saved (keys `0.weight`, ..., those of `DigitsNet.backbone`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import safetensors.torch
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from model import digits_net  # noqa: E402

SOURCE = (0, 1, 2, 3, 4)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE / "backbone.safetensors")
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    digits = load_digits()
    keep = np.isin(digits.target, SOURCE)
    X = torch.tensor(digits.data[keep] / 16.0, dtype=torch.float32)
    y = torch.tensor(digits.target[keep], dtype=torch.int64)
    net = digits_net("classification", n_outputs=len(SOURCE))
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(args.seed)
    for _ in range(args.epochs):
        for batch in torch.randperm(len(X), generator=generator).split(32):
            optimizer.zero_grad()
            F.cross_entropy(net(X[batch]), y[batch]).backward()
            optimizer.step()
    with torch.no_grad():
        accuracy = float((net(X).argmax(1) == y).float().mean())
    safetensors.torch.save_file(
        {k: v.contiguous() for k, v in net.backbone.state_dict().items()},
        str(args.out),
        metadata={"digits": ",".join(map(str, SOURCE)), "train_accuracy": f"{accuracy:.4f}"},
    )
    print(f"{args.out}: backbone trained on digits {SOURCE}, train accuracy {accuracy:.4f}")


if __name__ == "__main__":
    main()
