"""Pruning masks a model carries as ``torch.nn.utils.prune`` parametrisations (a ``weight_orig``
parameter, a ``weight_mask`` buffer and a forward pre-hook recomputing ``weight``): reading them
and folding them into plain weights. The pruning lab puts them on models (``pruning.masks``);
anything that computes on a model's weights (the geometry capability) reads and folds them here.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import prune as torch_prune


def read_masks(model: nn.Module) -> dict[str, torch.Tensor]:
    """The masks a model carries as pruning parametrisations (layers without one are left out)."""
    out = {}
    for name, mod in model.named_modules():
        mask = getattr(mod, "weight_mask", None)
        if isinstance(mask, torch.Tensor) and hasattr(mod, "weight_orig"):
            out[name] = mask.detach().bool().clone()
    return out


@torch.no_grad()
def fold_masks(model: nn.Module) -> nn.Module:
    """Make every pruning parametrisation permanent IN PLACE (``weight = weight_orig * weight_mask``)."""
    for _, mod in model.named_modules():
        if hasattr(mod, "weight_orig") and torch_prune.is_pruned(mod):
            try:
                torch_prune.remove(mod, "weight")
            except ValueError:  # parametrised by something other than torch's pruning hooks
                continue
    return model
