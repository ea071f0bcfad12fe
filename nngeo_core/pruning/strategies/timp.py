"""``timp``: topological IMP (Balwani & Krzyston 2022): IMP that never prunes an edge of a layer's
maximum spanning tree (MST), so every layer stays connected and its zeroth-order topology (the
0-dimensional persistence that the MST determines) is kept. The MST comes from the topology
capability (``nngeo_core.topology.mst_mask``), recomputed on the current weights each round and
restricted to the surviving weights. Requests above the MST floor are refused.
"""

from __future__ import annotations

from ...errors import NNGeoError
from ...topology import mst_mask
from ..masks import target_count
from .base import PruneResult, register_strategy
from .imp import IMP_PARAMS, iterative_magnitude


def mst_keep(model, masks) -> dict:
    """MST edges of each selected layer that are still alive (the set T-IMP must keep)."""
    mst = mst_mask(model)
    missing = [n for n in masks if n not in mst]
    if missing:
        raise NNGeoError(f"the topology capability gave no spanning tree for layer {missing[0]}")
    return {n: mst[n].to(masks[n].device).bool() & masks[n].bool() for n in masks}


def check_mst_floor(keep: dict, masks: dict, sparsity: float, scope: str) -> dict[str, float]:
    """Refuse sparsities that would have to cut MST edges; returns each layer's floor."""
    floors = {n: 1 - int(keep[n].sum()) / masks[n].numel() for n in masks}
    if scope == "layer":
        for n, m in masks.items():
            total, kept = m.numel(), int(keep[n].sum())
            if target_count(sparsity, total) > total - kept:
                raise NNGeoError(
                    f"timp cannot prune layer {n} to sparsity {sparsity:.4g}: its maximum spanning "
                    f"tree keeps {kept} of {total} weights (floor {floors[n]:.4f}); lower the "
                    "sparsity or use global scope"
                )
    else:
        total = sum(m.numel() for m in masks.values())
        kept = sum(int(k.sum()) for k in keep.values())
        if target_count(sparsity, total) > total - kept:
            raise NNGeoError(
                f"timp cannot reach sparsity {sparsity:.4g}: the layers' maximum spanning trees keep "
                f"{kept} of {total} weights (floor {1 - kept / total:.4f}); lower the sparsity"
            )
    return floors


@register_strategy(
    "timp",
    description="Topological IMP: IMP that always keeps every layer's maximum-spanning-"
    "tree edges (refuses sparsities beyond that floor).",
    params=IMP_PARAMS,
    iterative=True,
    needs_data=True,
    trains=True,
    changes_weights=True,
)
def timp(model, masks, data, settings) -> PruneResult:
    floors = check_mst_floor(mst_keep(model, masks), masks, settings.sparsity, settings.scope)
    result = iterative_magnitude(model, masks, data, settings, name="timp", keep_fn=mst_keep)
    result.info["mst_floor"] = floors
    return result
