"""Train the backbone offline on digits 0-4 and write its weights (not committed).

    .venv/bin/python benchmarks/transfer/pretrain.py   # -> benchmarks/transfer/backbone.safetensors

Mini-batch Adam on digits 0-4 (scikit-learn's bundled 8x8 digits, pixels / 16, as the online
stream feeds them), a backbone and a head of 5 classes. A stratified 20% of digits 0-4 is held
out: training stops when its loss has not improved for `--patience` epochs, and the weights of
the best epoch are kept (early stopping). The backbone ends in a LayerNorm (`--no-norm`: not),
so its features reach the head centred and scaled. `--hidden` sets its width; `--dropout`
(after each backbone ReLU, pretraining only: the module the learner builds has none),
`--weight-decay` (AdamW) and `--label-smoothing` regularise it. Only the backbone's
state_dict is saved (keys `0.weight`, ..., those of `DigitsNet.backbone`); `run.py` reads the
width from it.
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import numpy as np
import safetensors.torch
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from model import DigitsNet, digits_net  # noqa: E402

SOURCE = (0, 1, 2, 3, 4)


def forward(net: DigitsNet, x: torch.Tensor, dropout: float) -> torch.Tensor:
    """The network with dropout after each backbone activation while it trains."""
    for layer in net.backbone:
        x = layer(x)
        if isinstance(layer, torch.nn.ReLU):
            x = F.dropout(x, dropout, net.training)
    return net.head(x)


def pretrain(
    hidden: int = 256,
    max_epochs: int = 200,
    patience: int = 10,
    lr: float = 1e-3,
    weight_decay: float = 1e-2,
    dropout: float = 0.2,
    label_smoothing: float = 0.1,
    seed: int = 0,
    norm: bool = True,
) -> tuple[DigitsNet, dict[str, float]]:
    """The trained network (the best epoch on the held-out 20%) and what training saw."""
    torch.manual_seed(seed)
    digits = load_digits()
    keep = np.isin(digits.target, SOURCE)
    X_train, X_val, y_train, y_val = train_test_split(
        digits.data[keep] / 16.0,
        digits.target[keep],
        test_size=0.2,
        stratify=digits.target[keep],
        random_state=seed,
    )
    X, Xv = (torch.tensor(a, dtype=torch.float32) for a in (X_train, X_val))
    y, yv = (torch.tensor(a, dtype=torch.int64) for a in (y_train, y_val))
    net = digits_net("classification", hidden=hidden, n_outputs=len(SOURCE), norm=norm)
    optimizer = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=weight_decay)
    generator = torch.Generator().manual_seed(seed)
    best, best_loss, best_epoch = copy.deepcopy(net.state_dict()), float("inf"), 0
    for epoch in range(1, max_epochs + 1):
        net.train()
        for batch in torch.randperm(len(X), generator=generator).split(32):
            optimizer.zero_grad()
            loss = F.cross_entropy(
                forward(net, X[batch], dropout), y[batch], label_smoothing=label_smoothing
            )
            loss.backward()
            optimizer.step()
        net.eval()
        with torch.no_grad():
            val_loss = float(F.cross_entropy(net(Xv), yv))
        if val_loss < best_loss:
            best, best_loss, best_epoch = copy.deepcopy(net.state_dict()), val_loss, epoch
        elif epoch - best_epoch >= patience:
            break
    net.load_state_dict(best)
    net.eval()
    with torch.no_grad():
        info = {
            "epochs": best_epoch,
            "train_accuracy": float((net(X).argmax(1) == y).float().mean()),
            "val_accuracy": float((net(Xv).argmax(1) == yv).float().mean()),
            "val_loss": best_loss,
        }
    return net, info


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE / "backbone.safetensors")
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--max-epochs", type=int, default=200)
    parser.add_argument("--patience", type=int, default=10)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--weight-decay", type=float, default=1e-2)
    parser.add_argument("--dropout", type=float, default=0.2)
    parser.add_argument("--label-smoothing", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--norm", action=argparse.BooleanOptionalAction, default=True,
        help="end the backbone with a LayerNorm (the network the learner builds then has it too)",
    )  # fmt: skip
    args = parser.parse_args()
    torch.set_num_threads(1)
    options = {k: v for k, v in vars(args).items() if k != "out"}
    net, info = pretrain(**options)
    safetensors.torch.save_file(
        {k: v.contiguous() for k, v in net.backbone.state_dict().items()},
        str(args.out),
        metadata={"digits": ",".join(map(str, SOURCE))}
        | {k: str(v) for k, v in (options | info).items()},
    )
    print(
        f"{args.out}: backbone {args.hidden}-{args.hidden} trained on digits {SOURCE}, "
        f"best epoch {info['epochs']}, train accuracy {info['train_accuracy']:.4f}, "
        f"held-out accuracy {info['val_accuracy']:.4f}"
    )


if __name__ == "__main__":
    main()
