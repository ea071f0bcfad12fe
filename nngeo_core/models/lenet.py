"""``lenet5``: LeNet-5 for 28x28 images, with ReLU and max pooling (the form pruning papers use).

conv 6@5x5 pad 2 -> ReLU -> max-pool 2 -> conv 16@5x5 -> ReLU -> max-pool 2 -> fc 120 -> ReLU
-> fc 84 -> ReLU -> fc num_classes. For (1, 28, 28) the first dense layer is 16*5*5 = 400 -> 120;
other image sizes of at least 12x12 give the matching first dense layer.

``lenet5_s2``: the pool-free LeNet-5 of the neural-curvature pruning paper (Tan, Sia, Bogdan,
Ivanov, arXiv 2601.16366; the authors' ``tools/LeNet5_custom_small_w.py``), strided convs instead of
pooling: conv 6@6x6 stride 2 -> ReLU -> conv 16@6x6 stride 2 -> ReLU -> fc 120 -> ReLU -> fc 84 ->
ReLU -> fc num_classes, padding 0. For (1, 28, 28) the maps are 28 -> 12 -> 4, so the first dense
layer is 16*4*4 = 256 -> 120; other image sizes of at least 16x16 give the matching one.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from ..errors import NNGeoError
from .mlp import FeedForward, image_shape, sequential


class LeNet5(FeedForward):
    pass


def _lenet_spatial(size: int) -> int:
    size = size // 2  # conv1 keeps the size (pad 2, 5x5), then pool
    return (size - 4) // 2  # conv2 (5x5, no pad), then pool


def build_lenet5(input_shape: tuple[int, ...], num_classes: int) -> tuple[LeNet5, dict[str, Any]]:
    channels, height, width = image_shape("lenet5", input_shape)
    h, w = _lenet_spatial(height), _lenet_spatial(width)
    if h < 1 or w < 1:
        raise NNGeoError(f"lenet5 needs images of at least 12x12 pixels, got {height}x{width}")
    layers = [
        nn.Conv2d(channels, 6, 5, padding=2),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(16 * h * w, 120),
        nn.ReLU(),
        nn.Linear(120, 84),
        nn.ReLU(),
        nn.Linear(84, num_classes),
    ]
    return sequential(LeNet5, layers), {}


def _lenet_s2_spatial(size: int) -> int:
    """Side after lenet5_s2's two 6x6 stride-2 convs (padding 0); < 1: too small."""
    for _ in range(2):
        if size < 6:
            return 0
        size = (size - 6) // 2 + 1
    return size


def build_lenet5_s2(input_shape: tuple[int, ...], num_classes: int) -> tuple[LeNet5, dict[str, Any]]:
    channels, height, width = image_shape("lenet5_s2", input_shape)
    h, w = _lenet_s2_spatial(height), _lenet_s2_spatial(width)
    if h < 1 or w < 1:
        raise NNGeoError(f"lenet5_s2 needs images of at least 16x16 pixels, got {height}x{width}")
    layers = [
        nn.Conv2d(channels, 6, 6, stride=2),
        nn.ReLU(),
        nn.Conv2d(6, 16, 6, stride=2),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(16 * h * w, 120),
        nn.ReLU(),
        nn.Linear(120, 84),
        nn.ReLU(),
        nn.Linear(84, num_classes),
    ]
    return sequential(LeNet5, layers), {}
