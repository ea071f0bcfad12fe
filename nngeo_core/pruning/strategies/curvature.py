"""``curvature`` and ``curvature_neg``: rank weights by neural curvature (from the curvature
capability, ``nngeo_core.curvature.curvature_scores``) on a calibration set.

``curvature`` prunes the highest-curvature weights first; ``curvature_neg`` prunes the lowest
first (the ablation). Post-training, as in the neural-curvature paper's protocol; fine-tuning is
the sweep's setting.
"""
from __future__ import annotations

from ...errors import NNGeoError
from . import register_strategy
from .base import PruneResult, capability, select_masks

CURVATURE_PARAMS = {"calibration_k": 1}


def curvature_of(model, masks, data, settings, name: str) -> dict:
    calibration_set, curvature_scores = capability("nngeo_core.curvature", ("calibration_set", "curvature_scores"),
                                                   name)

    dataset = data.require_dataset(name)
    inputs = calibration_set(model, dataset, k=int(settings.params["calibration_k"]))
    scores = curvature_scores(model, inputs)
    missing = [n for n in masks if n not in scores]
    if missing:
        raise NNGeoError(f"the curvature capability gave no scores for layer {missing[0]}")
    return {n: scores[n] for n in masks}


@register_strategy("curvature", description="Prune the weights of highest neural curvature first "
                   "(calibration inputs from the training set).", params=CURVATURE_PARAMS, needs_data=True)
def curvature(model, masks, data, settings) -> PruneResult:
    scores = curvature_of(model, masks, data, settings, "curvature")
    # select_masks prunes the lowest scores, so negate: the highest curvature goes first
    return PruneResult(select_masks({n: -s for n, s in scores.items()}, masks, settings.sparsity, settings.scope,
                                    strategy="curvature"))


@register_strategy("curvature_neg", description="Ablation of curvature: prune the weights of lowest neural "
                   "curvature first.", params=CURVATURE_PARAMS, needs_data=True)
def curvature_neg(model, masks, data, settings) -> PruneResult:
    scores = curvature_of(model, masks, data, settings, "curvature_neg")
    return PruneResult(select_masks(scores, masks, settings.sparsity, settings.scope, strategy="curvature_neg"))
