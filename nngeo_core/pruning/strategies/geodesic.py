"""``geodesic``: pruning along an approximate geodesic in weight space (Raghavan & Thomson), on the
geometry package's path (``nngeo_core.geometry.sparsify_path``): the weights walk towards the
sparse hyperplane of the global magnitude mask while the network's function changes as little as
possible, then are projected onto it. It moves the surviving weights as well as choosing the mask,
so it returns new weights with the masks. Its ranking is global over every dense/conv layer.

``magnitude_prune`` is the baseline a geodesic path is compared to: one-shot global magnitude
pruning on the same flat weight vector, without retraining.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ...errors import NNGeoError
from ...geometry.checks import check_fraction
from ...geometry.geodesic import MASK_MODES, MAX_RECORD_EVERY, sparsify_path
from ...geometry.weight_space import ParamSpace, global_magnitude_mask, plain_copy, prunable_vector
from ...params import Param
from ..masks import sparsity as mask_sparsity
from .base import PruneResult, model_device, register_strategy

GEODESIC_PARAMS = {
    "samples": Param(256, low=1),
    "steps": Param(50, low=1),
    "batch_size": Param(64, low=1),
    "beta": Param(0.01, low=0.0),
    "method": Param("exact", choices=("exact", "gradient")),
    "mask": Param("frozen", choices=MASK_MODES),
}


def geodesic_prune(
    model: nn.Module, x, y, sparsity: float, *, masks: dict | None = None, **settings: Any
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Pruning strategy ``geodesic``: (state_dict of the pruned network, masks layer -> bool, True = kept).

    ``x, y``: the inputs of the functional metric and the labels used for the recorded accuracy.
    ``masks``: weights already pruned (stay pruned). ``settings``: any keyword of ``sparsify_path``.
    The state_dict holds plain weights (pruned entries are exactly 0), in the model's dtype.
    """
    # the path table is dropped, so record as few rows as possible (recording never changes the walk)
    settings.setdefault("record_every", MAX_RECORD_EVERY)
    path = sparsify_path(model, x, y, sparsity=sparsity, masks=masks, **settings)
    return {k: v.detach().clone() for k, v in path.model.state_dict().items()}, path.masks


def geodesic_masks(
    model: nn.Module, masks: dict | None, data, sparsity: float, **settings: Any
) -> dict[str, torch.Tensor]:
    """Masks only (layer -> bool, True = kept) of ``geodesic_prune``; ``data`` is a Dataset or (x, y).

    The weights the path arrived at are what makes these masks good: use ``geodesic_prune`` to
    get them too.
    """
    x, y = _xy(data)
    _, out = geodesic_prune(model, x, y, sparsity, masks=masks, **settings)
    return out


def _xy(data) -> tuple[Any, Any]:
    if hasattr(data, "x_train") and hasattr(data, "y_train"):
        return data.x_train, data.y_train
    if isinstance(data, (tuple, list)) and len(data) == 2:
        return data[0], data[1]
    raise NNGeoError("data must be a Dataset or an (x, y) pair")


def magnitude_prune(model: nn.Module, sparsity: float) -> tuple[nn.Module, dict[str, torch.Tensor]]:
    """One-shot global magnitude pruning (no retraining): the baseline a geodesic path is compared to."""
    sparsity = check_fraction("sparsity", sparsity)
    param = next(model.parameters())
    work, folded = plain_copy(model, dtype=param.dtype, device=param.device)
    space = ParamSpace(work)
    prunable, slices, shapes = prunable_vector(work, space, getattr(model, "input_shape", None))
    forced = torch.zeros_like(prunable)
    for name, m in folded.items():
        forced[slices[name]] |= ~m.cpu().reshape(-1)
    w = space.flatten(work).cpu()
    pruned = global_magnitude_mask(w, prunable, sparsity, forced)
    space.load_into(work, torch.where(pruned, torch.zeros_like(w), w))
    for p in work.parameters():
        p.requires_grad_(True)
    return work, {n: (~pruned[sl]).reshape(shapes[n]) for n, sl in slices.items()}


@register_strategy(
    "geodesic",
    description="Geodesic pruning: walk the weights towards the sparse network "
    "while keeping the function close, then project.",
    params=GEODESIC_PARAMS,
    needs_data=True,
    changes_weights=True,
    scopes=("global",),
    any_layers=False,
)
def geodesic(model, masks, data, settings) -> PruneResult:
    data.require_dataset("geodesic")
    if settings.sparsity <= mask_sparsity(masks):  # nothing left to prune: keep masks and weights
        return PruneResult(dict(masks))
    params = dict(settings.params)
    device = model_device(model)
    x, y = data.batch(int(params.pop("samples")), settings.seed, device)
    state, new_masks = geodesic_prune(
        model,
        x,
        y,
        settings.sparsity,
        masks=dict(masks),
        seed=int(settings.seed),
        device=str(device),
        progress=data.progress,
        **params,
    )
    missing = [n for n in masks if n not in new_masks]
    if missing:
        raise NNGeoError(f"geodesic pruning gave no mask for layer {missing[0]}")
    return PruneResult(
        {n: torch.as_tensor(new_masks[n]).bool().to(masks[n].device) for n in masks}, state_dict=state
    )  # geodesic_prune returns fresh tensors of its own
