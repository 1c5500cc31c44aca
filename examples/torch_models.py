"""Example torch modules for `model = "torch_models:..."` (with `examples/` on `PYTHONPATH`).

A factory is called with the task and the settings' `model_args` and returns an `nn.Module`
taking `(rows, features)` float32 (and, with categorical fields, their codes `(rows, fields)`
int64) and returning `(rows, outputs)`. See docs/models.md.
"""

from __future__ import annotations

import torch
from torch import nn


def _outputs(task: str, n_outputs: int | None) -> int:
    if task == "regression":
        return 1
    if n_outputs is None:
        raise ValueError("a classifier needs model_args.n_outputs (its most classes)")
    return n_outputs


def mlp(
    task: str, n_inputs: int, n_outputs: int | None = None, hidden: tuple[int, ...] = (64, 64)
) -> nn.Sequential:
    """The built-in learner's default architecture (64-64 ReLU) as an `nn.Sequential`: each
    ReLU is hooked, so the plasticity statistics match the built-in's per layer."""
    layers: list[nn.Module] = []
    width = n_inputs
    for h in hidden:
        layers += [nn.Linear(width, h), nn.ReLU()]
        width = h
    layers.append(nn.Linear(width, _outputs(task, n_outputs)))
    return nn.Sequential(*layers)


class EmbeddingMLP(nn.Module):
    """Numeric features and one embedded categorical field, concatenated, then an MLP."""

    def __init__(
        self, n_inputs: int, vocabulary: int, dim: int, hidden: tuple[int, ...], n_outputs: int
    ) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocabulary, dim)
        self.body = mlp("classification", n_inputs + dim, n_outputs, hidden)

    def forward(self, x: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        return self.body(torch.cat([x, self.embedding(codes[:, 0])], dim=1))


def embedding_mlp(
    task: str,
    n_inputs: int,
    vocabulary: int,
    dim: int = 8,
    n_outputs: int | None = None,
    hidden: tuple[int, ...] = (64, 64),
) -> EmbeddingMLP:
    """`EmbeddingMLP` for one categorical field of `vocabulary` codes (declare it with the same
    size in the learner's `categorical`)."""
    return EmbeddingMLP(n_inputs, vocabulary, dim, tuple(hidden), _outputs(task, n_outputs))


class FunctionalMLP(nn.Module):
    """ReLU as a function, not a module: nothing for the hooks to read. It learns and serves;
    its statistics have no layers."""

    def __init__(self, n_inputs: int, hidden: int, n_outputs: int) -> None:
        super().__init__()
        self.hidden = nn.Linear(n_inputs, hidden)
        self.out = nn.Linear(hidden, n_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.relu(self.hidden(x)))


def functional_mlp(
    task: str, n_inputs: int, n_outputs: int | None = None, hidden: int = 32
) -> FunctionalMLP:
    return FunctionalMLP(n_inputs, hidden, _outputs(task, n_outputs))
