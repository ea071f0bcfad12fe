"""``resnet20``: the CIFAR ResNet-20 of He et al. (2016), section 4.2.

A 3x3 conv to 16 channels, then 3 stages of 3 basic blocks with 16, 32 and 64 channels (the first
block of stages 2 and 3 halves the spatial size with stride 2), global average pooling and a linear
classifier: 1 + 3*3*2 + 1 = 20 weight layers. Shortcuts are option A of the paper: identity, and
where the shape changes, stride-2 subsampling with the extra channels zero-filled. Option A adds
no weights, so every prunable layer is on the main path. ``width`` multiplies every channel count
(at least 1 channel).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .mlp import FeedForward, ResidualBlock, check_multiplier, image_shape, scaled, sequential

STAGE_CHANNELS = (16, 32, 64)
BLOCKS_PER_STAGE = 3


def _conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    conv = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
    nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
    return conv


class BasicBlock(ResidualBlock):
    """conv-BN-ReLU-conv-BN plus the option-A shortcut, then ReLU."""

    def __init__(self, in_channels: int, out_channels: int, stride: int):
        super().__init__()
        self.conv1 = _conv3x3(in_channels, out_channels, stride)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = _conv3x3(out_channels, out_channels)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.stride = stride
        self.extra_channels = out_channels - in_channels

    def shortcut(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride != 1:
            x = x[:, :, :: self.stride, :: self.stride]  # what a stride-2 1x1 identity would see
        if self.extra_channels:
            x = F.pad(x, (0, 0, 0, 0, 0, self.extra_channels))  # zero channels appended
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet(FeedForward):
    pass


def build_resnet20(input_shape: tuple[int, ...], num_classes: int, *, width=1.0) -> tuple[ResNet, dict[str, Any]]:
    width = check_multiplier("resnet20", "width", width)
    channels = image_shape("resnet20", input_shape)[0]
    stem = scaled(STAGE_CHANNELS[0], width)
    layers: list[nn.Module] = [_conv3x3(channels, stem), nn.BatchNorm2d(stem), nn.ReLU()]
    channels = stem
    for stage, base in enumerate(STAGE_CHANNELS):
        out = scaled(base, width)
        for block in range(BLOCKS_PER_STAGE):
            stride = 2 if stage > 0 and block == 0 else 1
            layers.append(BasicBlock(channels, out, stride))
            channels = out
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, num_classes)]
    return sequential(ResNet, layers), {"width": width}
