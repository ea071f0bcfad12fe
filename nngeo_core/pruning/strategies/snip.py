"""``snip``: connection sensitivity |g ⊙ w| of the loss on one batch (Lee et al. 2019)."""

from __future__ import annotations

import copy

import torch
from torch import nn

from ...params import Param
from .base import PruneResult, model_device, register_strategy, select_masks


def loss_gradients(model, names, x, y, *, temperature: float = 1.0, create_graph: bool = False):
    modules = dict(model.named_modules())
    weights = [modules[n].weight for n in names]
    loss = nn.functional.cross_entropy(model(x) / temperature, y)
    return weights, torch.autograd.grad(loss, weights, create_graph=create_graph)


@register_strategy(
    "snip",
    description="SNIP: prune the smallest connection sensitivity |dL/dw * w| on one batch of training data.",
    params={"samples": Param(256, low=1)},
    needs_data=True,
)
def snip(model, masks, data, settings) -> PruneResult:
    data.require_dataset("snip")
    work = copy.deepcopy(model).eval()
    x, y = data.batch(int(settings.params["samples"]), settings.seed, model_device(work))
    weights, grads = loss_gradients(work, list(masks), x, y)
    scores = {n: (g * w).abs().detach() for n, w, g in zip(masks, weights, grads, strict=False)}
    return PruneResult(select_masks(scores, masks, settings.sparsity, settings.scope, strategy="snip"))
