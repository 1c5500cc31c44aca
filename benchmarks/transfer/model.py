"""The transfer benchmark's network: a `backbone` (two ReLU layers of `hidden` units) and a
`head`, as named submodules, so the learner can load the backbone's pretrained weights and
freeze it by name."""

from __future__ import annotations

from torch import nn


class DigitsNet(nn.Module):
    def __init__(
        self, n_inputs: int = 64, hidden: int = 64, n_outputs: int = 5, norm: bool = False
    ) -> None:
        super().__init__()
        layers = [nn.Linear(n_inputs, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU()]
        self.backbone = nn.Sequential(*layers, *([nn.LayerNorm(hidden)] if norm else []))
        self.head = nn.Linear(hidden, n_outputs)

    def forward(self, x):
        return self.head(self.backbone(x))


def digits_net(
    task: str, n_inputs: int = 64, hidden: int = 64, n_outputs: int = 5, norm: bool = False
) -> DigitsNet:
    """The factory the learner calls (`model = "model:digits_net"`)."""
    return DigitsNet(n_inputs, hidden, n_outputs, norm)
