"""``vgg11``: the CIFAR VGG-11 with batch norm and a single linear classifier.

Configuration [64, M, 128, M, 256, 256, M, 512, 512, M, 512, 512, M]: each number is a 3x3 conv
(padding 1, no bias since batch norm follows) -> BatchNorm -> ReLU, each M a 2x2 max-pool. Five
pools take 32x32 to 1x1, so the classifier is Linear(512, num_classes) at width 1. ``width``
multiplies every channel count (at least 1 channel), so tests can build tiny ones.

``vgg9``: the CIFAR-10 VGG-9 of the neural-curvature pruning paper (Tan, Sia, Bogdan, Ivanov, arXiv
2601.16366; the authors' ``tools/vgg9_custom_relu.py``), pool-free: six convs, padding 0, each with a
bias and followed by BatchNorm -> ReLU: 64@2x2 stride 2, 128@3x3, 128@3x3, 128@3x3 stride 2, 256@3x3,
256@3x3, then flatten -> fc 512 -> ReLU -> fc 128 -> ReLU -> fc num_classes. On 32x32 the maps are
32 -> 16 -> 14 -> 12 -> 5 -> 3 -> 1, so the first dense layer is 256*1*1 = 256 -> 512; any image of at
least 30x30 gives the matching first dense layer. (The authors' model normalises its input inside;
here, as for every zoo model, normalisation belongs to the data.)
"""

from __future__ import annotations

from typing import Any

from torch import nn

from ..errors import NNGeoError
from .mlp import FeedForward, check_multiplier, image_shape, scaled, sequential

VGG11_CONFIG = (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M")
# vgg9's convs as (out channels, kernel, stride), all padding 0, and its hidden dense widths
VGG9_CONVS = ((64, 2, 2), (128, 3, 1), (128, 3, 1), (128, 3, 2), (256, 3, 1), (256, 3, 1))
VGG9_DENSE = (512, 128)


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


def _vgg9_size(size: int) -> int:
    """Side of vgg9's last feature map for an input side ``size`` (< 1: too small)."""
    for _, kernel, stride in VGG9_CONVS:
        if size < kernel:
            return 0
        size = (size - kernel) // stride + 1
    return size


def _vgg9_min_size() -> int:
    size = 1
    while _vgg9_size(size) < 1:
        size += 1
    return size


def build_vgg9(input_shape: tuple[int, ...], num_classes: int) -> tuple[VGG, dict[str, Any]]:
    channels, height, wide = image_shape("vgg9", input_shape)
    h, w = _vgg9_size(height), _vgg9_size(wide)
    if h < 1 or w < 1:
        side = _vgg9_min_size()
        raise NNGeoError(f"vgg9 needs images of at least {side}x{side} pixels, got {height}x{wide}")
    layers: list[nn.Module] = []
    for out, kernel, stride in VGG9_CONVS:
        layers += [nn.Conv2d(channels, out, kernel, stride=stride, padding=0), nn.BatchNorm2d(out), nn.ReLU()]
        channels = out
    fan_in = channels * h * w
    layers.append(nn.Flatten())
    for width in VGG9_DENSE:
        layers += [nn.Linear(fan_in, width), nn.ReLU()]
        fan_in = width
    layers.append(nn.Linear(fan_in, num_classes))
    return sequential(VGG, layers), {}
