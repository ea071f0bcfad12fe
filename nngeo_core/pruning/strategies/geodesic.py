"""``geodesic``: pruning along an approximate geodesic in weight space (Raghavan & Thomson), from
the geometry capability (``nngeo_core.geometry.geodesic_prune``): the weights walk towards the
sparse hyperplane of the global magnitude mask while the network's function changes as little as
possible, then are projected onto it. It moves the surviving weights as well as choosing the mask,
so it returns new weights with the masks. Its ranking is global over every dense/conv layer.
"""

from __future__ import annotations

import torch

from ...errors import NNGeoError
from ..masks import sparsity as mask_sparsity
from . import register_strategy
from .base import PruneResult, capability, model_device

GEODESIC_PARAMS = {"samples": 256, "steps": 50, "batch_size": 64, "beta": 0.01, "method": "exact", "mask": "frozen"}


@register_strategy(
    "geodesic",
    description="Geodesic pruning: walk the weights towards the sparse network "
    "while keeping the function close, then project (from the geometry capability).",
    params=GEODESIC_PARAMS,
    needs_data=True,
    changes_weights=True,
    scopes=("global",),
    any_layers=False,
)
def geodesic(model, masks, data, settings) -> PruneResult:
    geodesic_prune = capability("nngeo_core.geometry.geodesic", "geodesic_prune", "geodesic")
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
