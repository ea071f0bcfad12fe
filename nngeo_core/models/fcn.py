"""``fcn_mnist``: the 784-100-100-100-100-100-10 ReLU network of the SynFlow and topological-IMP papers."""

from __future__ import annotations

from typing import Any

from .mlp import MLP, mlp_layers, sequential

FCN_WIDTHS = (100, 100, 100, 100, 100)


def build_fcn_mnist(input_shape: tuple[int, ...], num_classes: int) -> tuple[MLP, dict[str, Any]]:
    """Five hidden ReLU layers of 100; the first layer takes prod(input_shape) inputs (784 for MNIST)."""
    layers = mlp_layers(input_shape, num_classes, FCN_WIDTHS, activation="relu", bias=True)
    return sequential(MLP, layers), {}
