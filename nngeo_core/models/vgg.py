"""``vgg11``: the CIFAR VGG-11 with batch norm and a single linear classifier.

Configuration [64, M, 128, M, 256, 256, M, 512, 512, M, 512, 512, M]: each number is a 3x3 conv
(padding 1, no bias since batch norm follows) -> BatchNorm -> ReLU, each M a 2x2 max-pool. Five
pools take 32x32 to 1x1, so the classifier is Linear(512, num_classes) at width 1. ``width``
multiplies every channel count (at least 1 channel), so tests can build tiny ones.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from ..errors import NNGeoError
from .mlp import FeedForward, check_multiplier, image_shape, scaled, sequential

VGG11_CONFIG = (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M")


class VGG(FeedForward):
    pass


def build_vgg11(input_shape: tuple[int, ...], num_classes: int, *, width=1.0) -> tuple[VGG, dict[str, Any]]:
    width = check_multiplier("vgg11", "width", width)
    channels, height, wide = image_shape("vgg11", input_shape)
    n_pools = VGG11_CONFIG.count("M")
    if min(height, wide) < 2**n_pools:
        raise NNGeoError(f"vgg11 needs images of at least 32x32 pixels, got {height}x{wide}")
    layers: list[nn.Module] = []
    for item in VGG11_CONFIG:
        if isinstance(item, str):  # "M"
            layers.append(nn.MaxPool2d(2))
            height, wide = height // 2, wide // 2
        else:
            out = scaled(item, width)
            conv = nn.Conv2d(channels, out, 3, padding=1, bias=False)
            nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
            layers += [conv, nn.BatchNorm2d(out), nn.ReLU()]
            channels = out
    layers += [nn.Flatten(), nn.Linear(channels * height * wide, num_classes)]
    return sequential(VGG, layers), {"width": width}
