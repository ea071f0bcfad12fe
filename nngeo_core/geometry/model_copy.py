"""The private copy of a model that geometry computes on (float64 by default), and its device."""

from __future__ import annotations

import copy

import torch
from torch import nn

from ..errors import NNGeoError
from ..settings import float64_device


def working_device(device: str | torch.device = "auto") -> torch.device:
    """The device for float64 geometry: CUDA when present; MPS has no float64, so it means CPU.

    A ``torch.device`` is taken as it is.
    """
    return device if isinstance(device, torch.device) else torch.device(float64_device(device))


def float64_copy(
    model: nn.Module, device: str | torch.device = "auto", *, dtype: torch.dtype = torch.float64
) -> nn.Module:
    """A private copy (float64 unless ``dtype`` says otherwise) in eval mode, without gradients.

    The caller's model is never changed.
    """
    if not isinstance(model, nn.Module):
        raise NNGeoError(f"expected a torch nn.Module, got {type(model).__name__}")
    dev = working_device(device)
    for name, p in list(model.named_parameters()) + list(model.named_buffers()):
        if p.is_floating_point() and not torch.isfinite(p).all():
            raise NNGeoError(f"the model's {name} holds NaN or infinite values; retrain or reload it")
    copied = copy.deepcopy(model).to(device=dev, dtype=dtype).eval()
    for m in copied.modules():
        if getattr(m, "inplace", False) is True:
            # in-place activations do not mix with torch.func transforms
            m.inplace = False  # type: ignore[assignment]  # torch types module attributes as Tensor | Module
    for p in copied.parameters():
        p.requires_grad_(False)
    return copied
