"""``grasp``: gradient signal preservation (Wang et al. 2020). Scores S = -w ⊙ Hg, with H the loss
Hessian and g the loss gradient (logits divided by a temperature of 200, as in the paper); the
weights with the highest S are pruned, since removing them reduces gradient flow the least."""

from __future__ import annotations

import copy

import torch

from ...params import Param
from .base import PruneResult, model_device, register_strategy, select_masks
from .snip import loss_gradients


@register_strategy(
    "grasp",
    description="GraSP: prune the weights whose removal preserves gradient flow best (highest -w * Hg).",
    params={"samples": Param(256, low=1), "temperature": Param(200.0, low=0.0)},
    needs_data=True,
)
def grasp(model, masks, data, settings) -> PruneResult:
    data.require_dataset("grasp")
    names = list(masks)
    work = copy.deepcopy(model).eval()
    t = float(settings.params["temperature"])
    x, y = data.batch(int(settings.params["samples"]), settings.seed, model_device(work))
    _, g = loss_gradients(work, names, x, y, temperature=t)
    weights, g_graph = loss_gradients(work, names, x, y, temperature=t, create_graph=True)
    z = sum((a * b.detach()).sum() for a, b in zip(g_graph, g, strict=False))
    hg = torch.autograd.grad(z, weights, allow_unused=True)
    hg = [torch.zeros_like(w) if h is None else h for w, h in zip(weights, hg, strict=False)]
    # prune the highest S = -w*Hg first, i.e. keep the highest w*Hg
    scores = {n: (w * h).detach() for n, w, h in zip(names, weights, hg, strict=False)}
    return PruneResult(select_masks(scores, masks, settings.sparsity, settings.scope, strategy="grasp"))
