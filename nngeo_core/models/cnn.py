"""``cnn_mnist``: two 32-channel 3x3 convolutions (padding 1, so 28x28 stays 28x28) and one dense layer.

For (1, 28, 28) the dense layer is 32*28*28 = 25,088 -> num_classes; other image sizes give 32*H*W.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from .mlp import FeedForward, image_shape, sequential


class CNNMnist(FeedForward):
    pass


def build_cnn_mnist(input_shape: tuple[int, ...], num_classes: int) -> tuple[CNNMnist, dict[str, Any]]:
    channels, height, width = image_shape("cnn_mnist", input_shape)
    layers = [
        nn.Conv2d(channels, 32, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(32, 32, 3, padding=1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(32 * height * width, num_classes),
    ]
    return sequential(CNNMnist, layers), {}
