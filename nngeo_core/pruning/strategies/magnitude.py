"""``magnitude``: prune the smallest |w| (layer-wise or global, as the scope says)."""

from __future__ import annotations

from . import register_strategy
from .base import PruneResult, magnitude_scores, select_masks


@register_strategy(
    "magnitude",
    description="One-shot magnitude pruning: remove the smallest |w| (per layer or globally, as the scope says).",
)
def magnitude(model, masks, data, settings) -> PruneResult:
    scores = magnitude_scores(model, masks)
    return PruneResult(select_masks(scores, masks, settings.sparsity, settings.scope, strategy="magnitude"))
