"""Input points: the model's input shape, and points as a float64 tensor of that shape."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from ..errors import NNGeoError


def input_shape_of(model: nn.Module, points: torch.Tensor | None = None) -> tuple[int, ...]:
    """``model.input_shape``, else the shape of one of ``points`` (N, ...)."""
    shape = getattr(model, "input_shape", None)
    if shape is not None:
        return tuple(int(s) for s in shape)
    if points is not None:
        return tuple(points.shape[1:])
    raise NNGeoError("the model does not say its input shape; set model.input_shape = (d,) or (C, H, W)")


def shape_hint(model: nn.Module, points) -> tuple[int, ...] | None:
    """The input shape ``points`` imply, for a model that does not say its own (else None)."""
    if getattr(model, "input_shape", None) is not None:
        return None
    pts = torch.as_tensor(points)
    return tuple(pts.shape[1:]) if pts.ndim >= 2 else (int(pts.numel()),)


def as_points(points, input_shape: tuple[int, ...], device: torch.device) -> torch.Tensor:
    """Points as a float64 tensor of shape (N, *input_shape); flat (N, d) input is reshaped."""
    x = torch.tensor(points) if isinstance(points, np.ndarray) else torch.as_tensor(points)  # copy read-only arrays
    x = x.to(device=device, dtype=torch.float64)
    d = math.prod(input_shape)
    if x.ndim == 1 and x.numel() == d:
        x = x.unsqueeze(0)
    if x.shape[1:] != torch.Size(input_shape):
        if x.ndim == 2 and x.shape[1] == d:
            x = x.reshape(len(x), *input_shape)
        else:
            raise NNGeoError(f"points have shape {tuple(x.shape)}, the model takes inputs of shape {input_shape}")
    if len(x) == 0:
        raise NNGeoError("no points given")
    if not torch.isfinite(x).all():
        raise NNGeoError("the points contain NaN or infinite values")
    return x
