"""Small reference networks for tests and benchmarks, built the way a user would write them."""

from __future__ import annotations

import torch
from torch import nn


def custom_cnn(
    size: int = 16, *, channels: int = 3, widths: tuple[int, int] = (4, 6), classes: int = 10, seed: int = 0
) -> nn.Sequential:
    """The issue's custom CNN, Conv-ReLU-MaxPool-Conv-ReLU-Flatten-Linear, for ``size``x``size``
    inputs of ``channels`` channels (seeded, eval mode)."""
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(channels, widths[0], 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(widths[0], widths[1], 3, padding=1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(widths[1] * (size // 2) ** 2, classes),
    ).eval()
