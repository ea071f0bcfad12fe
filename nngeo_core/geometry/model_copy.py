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


class FrozenBatchNorm(nn.Module):
    """A batch norm in eval mode as the per-channel affine map it is: x·scale + shift, with
    scale = γ/√(running_var + ε) and shift = β − running_mean·scale (buffers, no parameters).

    Same values as the batch norm to rounding; forward-mode AD through it is two elementwise ops,
    where ``batch_norm``'s forward-mode formula costs several times a forward pass."""

    def __init__(self, bn: nn.modules.batchnorm._BatchNorm) -> None:
        super().__init__()
        assert bn.running_mean is not None and bn.running_var is not None
        var, mean = bn.running_var, bn.running_mean
        scale = torch.rsqrt(var + bn.eps)
        if bn.weight is not None:
            scale = scale * bn.weight.detach()
        shift = -mean * scale
        if bn.bias is not None:
            shift = shift + bn.bias.detach()
        self.register_buffer("scale", scale.detach().clone())
        self.register_buffer("shift", shift.detach().clone())

    scale: torch.Tensor
    shift: torch.Tensor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        view = (1, -1) + (1,) * (x.dim() - 2)
        return x * self.scale.reshape(view) + self.shift.reshape(view)


class _ConstantWeightConv(torch.autograd.Function):
    """conv2d whose weight and bias are constants: its forward-mode derivative is the one conv of
    the input's tangent (torch's own formula also convolves the input with a zero weight tangent,
    a whole extra conv per call)."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x, weight, bias, conv):
        # conv: the module, for its settings (one pytree leaf, unlike its tuples of ints)
        return nn.functional.conv2d(x, weight, bias, conv.stride, conv.padding, conv.dilation, conv.groups)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.weight, ctx.conv = inputs[1], inputs[3]

    @staticmethod
    def jvp(ctx, x_t, *unused):
        c = ctx.conv
        return nn.functional.conv2d(x_t, ctx.weight, None, c.stride, c.padding, c.dilation, c.groups)


class ForwardModeConv2d(nn.Conv2d):
    """A ``Conv2d`` (zero padding) of a copy without gradients whose forward-mode AD costs one
    conv per tangent; forward mode only (no backward)."""

    def _conv_forward(self, input: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        return _ConstantWeightConv.apply(input, weight, bias, self)


def prepare_for_forward_mode(model: nn.Module) -> int:
    """Make a private eval-mode copy cheap for forward-mode AD, in place: every batch norm with
    running statistics becomes its ``FrozenBatchNorm``, every zero-padded ``Conv2d`` a
    ``ForwardModeConv2d`` (same values; reverse mode no longer runs through them). Returns how
    many modules changed."""
    changed = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.modules.batchnorm._BatchNorm) and child.running_mean is not None:
                setattr(parent, name, FrozenBatchNorm(child))
                changed += 1
            elif type(child) is nn.Conv2d and child.padding_mode == "zeros":
                child.__class__ = ForwardModeConv2d
                changed += 1
    return changed
