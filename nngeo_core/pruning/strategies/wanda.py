"""``wanda``: pruning by weights and activations (Sun et al. 2024).

Weight W_ij scores |W_ij| · ‖X_j‖₂, where ‖X_j‖₂ is the norm of input feature j over the
calibration samples; weights compete only within their output row (the paper's comparison group),
and every row is pruned to the same fraction. For a convolution the input features are the
unfolded input patches: one norm per (input channel, kernel position), shared by all output
channels of the same group.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ...errors import NNGeoError
from ...models import layer_io
from ...params import Param
from .base import PruneResult, model_device, register_strategy, select_masks


def input_norms(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """‖X_j‖₂ broadcastable against the module's weight."""
    if isinstance(module, nn.Conv2d):
        if isinstance(module.padding, str):
            raise NNGeoError("wanda does not support string padding ('same'/'valid') in conv layers")
        cols = F.unfold(
            x, module.kernel_size, dilation=module.dilation, padding=module.padding, stride=module.stride
        )  # (N, C_in * kh * kw, L)
        norms = cols.pow(2).sum(dim=(0, 2)).sqrt()  # one per (c_in, kh, kw)
        c_in, (kh, kw), g = module.in_channels, module.kernel_size, module.groups
        norms = norms.reshape(g, c_in // g, kh, kw)
        # output channel o belongs to group o // (C_out / g) and sees that group's inputs
        per_out = module.out_channels // g
        return norms.repeat_interleave(per_out, dim=0)  # (C_out, C_in/g, kh, kw)
    x = x.reshape(-1, x.shape[-1])
    return x.pow(2).sum(0).sqrt().unsqueeze(0)  # (1, in)


@register_strategy(
    "wanda",
    description="Wanda: prune the smallest |w| * ||x|| within each output row (input norms from calibration samples).",
    params={"samples": Param(128, low=1), "group": Param("row", choices=("row", "layer"))},
    needs_data=True,
)
def wanda(model, masks, data, settings) -> PruneResult:
    group = settings.params["group"]
    if group not in ("row", "layer"):
        raise NNGeoError(f"wanda: group must be row (the paper) or layer, got {group!r}")
    data.require_dataset("wanda")
    names = list(masks)
    x, _ = data.batch(int(settings.params["samples"]), settings.seed, model_device(model))
    was = model.training
    model.eval()  # dropout/batch norm as at inference; restored below
    try:
        io = layer_io(model, x, names)
    finally:
        model.train(was)
    modules = dict(model.named_modules())
    scores = {
        n: modules[n].weight.detach().to(torch.float64).abs() * input_norms(modules[n], io[n][0].to(torch.float64))
        for n in names
    }
    return PruneResult(select_masks(scores, masks, settings.sparsity, settings.scope, group=group, strategy="wanda"))
