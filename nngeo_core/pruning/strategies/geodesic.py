"""``geodesic``: pruning along a weight-space path (from the geometry capability,
``nngeo_core.geometry.geodesic_prune``). It moves the surviving weights as well as choosing the
mask, so it returns new weights together with the masks."""
from __future__ import annotations

import torch

from ...errors import NNGeoError
from . import register_strategy
from .base import PruneResult, model_device


@register_strategy("geodesic", description="Geodesic pruning: move along a weight-space path towards the "
                   "sparse network while keeping the function close (from the geometry capability).",
                   params={"samples": 256}, needs_data=True, changes_weights=True)
def geodesic(model, masks, data, settings) -> PruneResult:
    from ...geometry import geodesic_prune  # lazy: only this strategy needs the geometry capability

    data.require_dataset("geodesic")
    params = dict(settings.params)
    x, y = data.batch(int(params.pop("samples")), settings.seed, model_device(model))
    state, new_masks = geodesic_prune(model, x, y, settings.sparsity, **params)
    missing = [n for n in masks if n not in new_masks]
    if missing:
        raise NNGeoError(f"geodesic pruning gave no mask for layer {missing[0]}")
    return PruneResult({n: torch.as_tensor(new_masks[n]).bool() for n in masks},
                       state_dict={k: v.detach().clone() for k, v in state.items()})
