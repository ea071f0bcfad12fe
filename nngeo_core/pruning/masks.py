"""Pruning masks: which layers are prunable, applying masks as ``torch.nn.utils.prune``
parametrisations, reading them back, and checking the sparsity a mask achieves.

A mask set is a ``dict`` from layer name (as ``prunable_layers`` names it) to a bool tensor shaped
like that layer's weight; ``True`` keeps a weight, ``False`` prunes it. On a model, masks live as
torch's own pruning parametrisation (``weight_orig`` parameter, ``weight_mask`` buffer, a forward
pre-hook recomputing ``weight``), so a pruned model's ``state_dict`` loads in plain PyTorch after
``prune.identity`` on the same layers, and ``checkpoint.effective_state_dict`` folds it away.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable, Mapping

import torch
from torch import nn
from torch.nn.utils import prune as torch_prune

from ..checkpoint import effective_state_dict
from ..errors import NNGeoError
from ..models import LayerInfo, get_layer, prunable_layers
from ..models.base import tensor_attribute
from ..models.parametrisations import fold_masks as fold_masks
from ..models.parametrisations import read_masks as read_masks

Masks = dict[str, torch.Tensor]
SCOPES = ("global", "layer")


# -- which layers --------------------------------------------------------------------------------
def select_layers(
    model: nn.Module,
    layers: Iterable[str] | None = None,
    *,
    exclude_last: bool = False,
    input_shape: Iterable[int] | None = None,
) -> list[LayerInfo]:
    """The prunable layers a request covers, in forward order.

    Default: every dense/conv weight (biases and norms are never pruned). ``layers`` narrows the set
    by name; ``exclude_last`` drops the model's last prunable layer (the classifier) even if named.
    """
    infos = prunable_layers(model, input_shape)
    last = infos[-1].name
    if layers is not None:
        wanted = {layers} if isinstance(layers, str) else {str(n) for n in layers}
        unknown = sorted(wanted - {i.name for i in infos})
        if unknown:
            raise NNGeoError(
                f"no prunable layer named {unknown[0]!r}; prunable layers: {', '.join(i.name for i in infos)}"
            )
        infos = [i for i in infos if i.name in wanted]
    if exclude_last:
        infos = [i for i in infos if i.name != last]
    if not infos:
        raise NNGeoError("no layers left to prune (the selection is empty, or the only layer is the excluded last one)")
    return infos


def full_masks(model: nn.Module, infos: Iterable[LayerInfo]) -> Masks:
    """All-True masks (nothing pruned) for the given layers, on the weights' device."""
    out = {}
    for info in infos:
        w = tensor_attribute(get_layer(model, info.name), "weight")
        out[info.name] = torch.ones(w.shape, dtype=torch.bool, device=w.device)
    return out


def check_masks(model: nn.Module, masks: Mapping[str, torch.Tensor], infos: Iterable[LayerInfo] | None = None) -> Masks:
    """Validate masks against the model (known layer, weight shape, 0/1 values) and return them as bool."""
    allowed = {i.name: i for i in infos} if infos is not None else None
    out = {}
    for name, m in masks.items():
        if allowed is not None and name not in allowed:
            raise NNGeoError(
                f"mask for layer {name!r}, which is not among the layers being pruned ({', '.join(allowed)})"
            )
        w = tensor_attribute(get_layer(model, name), "weight")
        if not isinstance(m, torch.Tensor):
            raise NNGeoError(f"the mask of layer {name} is a {type(m).__name__}, not a tensor")
        if tuple(m.shape) != tuple(w.shape):
            raise NNGeoError(f"the mask of layer {name} has shape {tuple(m.shape)}, its weight {tuple(w.shape)}")
        if m.dtype != torch.bool:
            if not bool(((m == 0) | (m == 1)).all()):
                raise NNGeoError(f"the mask of layer {name} holds values other than 0 and 1")
            m = m != 0
        out[name] = m.to(w.device)
    return out


# -- applying masks ------------------------------------------------------------------------------
@torch.no_grad()
def apply_masks(model: nn.Module, masks: Mapping[str, torch.Tensor]) -> nn.Module:
    """Put ``masks`` on ``model`` IN PLACE as torch pruning parametrisations; returns the model.

    A layer that already has a mask gets the new one in its ``weight_mask`` buffer (not a second,
    multiplied mask as ``prune.custom_from_mask`` would add), so re-applying is idempotent.
    """
    for name, m in check_masks(model, masks).items():
        mod = get_layer(model, name)
        mask = getattr(mod, "weight_mask", None)
        if hasattr(mod, "weight_orig") and isinstance(mask, torch.Tensor):
            mask.copy_(m.to(mask.dtype))
            mod.weight = tensor_attribute(mod, "weight_orig") * mask
        else:
            torch_prune.custom_from_mask(mod, "weight", m.to(tensor_attribute(mod, "weight").device))
    return model


def plain_copy(model: nn.Module) -> nn.Module:
    """A deep copy without parametrisations: pruned weights are stored as zeros."""
    return fold_masks(copy.deepcopy(model))


def pruned_model(
    model: nn.Module, masks: Mapping[str, torch.Tensor], state_dict: Mapping[str, torch.Tensor] | None = None
) -> nn.Module:
    """A new model: a copy of ``model`` (optionally with ``state_dict`` loaded) carrying ``masks``."""
    out = plain_copy(model)
    if state_dict is not None:
        own = out.state_dict()
        missing = sorted(set(own) - set(state_dict))
        if missing:
            raise NNGeoError(f"the new weights lack parameter {missing[0]!r}")
        out.load_state_dict({k: state_dict[k] for k in own})
    return apply_masks(out, masks)


@torch.no_grad()
def masked_weights(model: nn.Module, masks: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Effective weights of the masked layers (weight * mask), detached."""
    out = {}
    for n, m in masks.items():
        w = tensor_attribute(get_layer(model, n), "weight").detach()
        out[n] = w * m.to(w.dtype)
    return out


# -- sparsity ------------------------------------------------------------------------------------
def counts(masks: Mapping[str, torch.Tensor]) -> dict[str, tuple[int, int]]:
    """layer -> (pruned, total)."""
    return {n: (int((~m.bool()).sum()), int(m.numel())) for n, m in masks.items()}


def sparsity(masks: Mapping[str, torch.Tensor]) -> float:
    """Fraction of pruned weights over all given layers (0 when there are none)."""
    c = counts(masks)
    total = sum(t for _, t in c.values())
    return sum(p for p, _ in c.values()) / total if total else 0.0


def layer_sparsity(masks: Mapping[str, torch.Tensor]) -> dict[str, float]:
    return {n: (p / t if t else 0.0) for n, (p, t) in counts(masks).items()}


def check_sparsity_value(sparsity_: float) -> float:
    """A requested sparsity must be a finite number in [0, 1)."""
    try:
        s = float(sparsity_)
    except (TypeError, ValueError):
        raise NNGeoError(f"sparsity must be a number in [0, 1), got {sparsity_!r}") from None
    if not math.isfinite(s) or s < 0 or s >= 1:
        raise NNGeoError(f"sparsity must lie in [0, 1) (1 would prune every weight), got {sparsity_!r}")
    return s


def check_scope(scope: str) -> str:
    if scope not in SCOPES:
        raise NNGeoError(f"unknown pruning scope {scope!r}; use global or layer")
    return scope


def target_count(sparsity_: float, n: int) -> int:
    """How many of ``n`` weights a sparsity prunes (nearest whole weight, halves rounded up)."""
    return min(n, int(math.floor(sparsity_ * n + 0.5)))


def check_sparsity(
    masks: Mapping[str, torch.Tensor], requested: float, scope: str, *, what: str = "the strategy"
) -> None:
    """Raise unless the masks hit ``requested`` within one weight per layer (layer) or overall (global)."""
    c = counts(masks)
    if scope == "layer":
        for name, (pruned, total) in c.items():
            want = target_count(requested, total)
            if abs(pruned - want) > 1:
                raise NNGeoError(
                    f"{what} pruned {pruned} of {total} weights of layer {name} "
                    f"({pruned / total:.4f}) but {requested:.4f} was requested ({want} weights)"
                )
    else:
        total = sum(t for _, t in c.values())
        pruned = sum(p for p, _ in c.values())
        want = target_count(requested, total)
        if abs(pruned - want) > 1:
            raise NNGeoError(
                f"{what} pruned {pruned} of {total} weights ({pruned / max(total, 1):.4f}) "
                f"but {requested:.4f} was requested ({want} weights)"
            )


def check_no_revival(
    old: Mapping[str, torch.Tensor], new: Mapping[str, torch.Tensor], *, what: str = "the strategy"
) -> None:
    """Raise if ``new`` keeps a weight that ``old`` had pruned."""
    for name, m in old.items():
        revived = int((new[name].bool() & ~m.bool().to(new[name].device)).sum())
        if revived:
            raise NNGeoError(f"{what} revived {revived} pruned weights of layer {name}")


def export_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """A plain state_dict (pruned weights as zeros, no ``_orig``/``_mask`` entries) for any PyTorch user."""
    return {k: v.detach().cpu().clone() for k, v in effective_state_dict(model).items()}
