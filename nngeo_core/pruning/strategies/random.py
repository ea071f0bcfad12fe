"""``random``: prune uniformly at random (the baseline every strategy must beat)."""

from __future__ import annotations

import torch

from .base import PruneResult, register_strategy, select_masks


@register_strategy("random", description="Prune weights uniformly at random (seeded): the baseline.")
def random_pruning(model, masks, data, settings) -> PruneResult:
    gen = torch.Generator().manual_seed(int(settings.seed))
    # one draw per layer in forward order, on the CPU generator: identical on every device
    scores = {n: torch.rand(m.shape, generator=gen, dtype=torch.float64) for n, m in masks.items()}
    return PruneResult(select_masks(scores, masks, settings.sparsity, settings.scope, strategy="random"))
