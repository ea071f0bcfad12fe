"""``magnitude``: prune the smallest |w| (layer-wise or global, as the scope says)."""

from __future__ import annotations

from .base import PruneResult, magnitude_scores, register_strategy, select_masks


@register_strategy(
    "magnitude",
    description="One-shot magnitude pruning: remove the smallest |w| (per layer or globally, as the scope says).",
)
def magnitude(model, masks, data, settings) -> PruneResult:
    scores = magnitude_scores(model, masks)
    return PruneResult(select_masks(scores, masks, settings.sparsity, settings.scope, strategy="magnitude"))
