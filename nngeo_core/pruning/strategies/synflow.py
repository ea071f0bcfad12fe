"""``synflow``: iterative synaptic flow pruning (Tanaka et al. 2020), data-free.

The network is linearised (every parameter and buffer replaced by its absolute value, float64);
R = 1ᵀ f(1) for an all-ones input, and each weight scores |w ⊙ ∂R/∂w|. Pruning runs ``rounds``
(100) times on an exponential schedule: after round k the kept fraction is
d0 · (d/d0)^(k/rounds), from the current density d0 to the target density d.
"""

from __future__ import annotations

import copy

import torch

from ...errors import NNGeoError
from ...params import Param
from ..masks import sparsity as mask_sparsity
from .base import PruneResult, model_device, register_strategy, select_masks


def input_shape_of(model, data) -> tuple[int, ...]:
    shape = getattr(model, "input_shape", None)
    if shape is None and data.dataset is not None:
        shape = data.dataset.input_shape
    if shape is None:
        raise NNGeoError("synflow needs the model's input shape (model.input_shape) or a dataset")
    return tuple(int(s) for s in shape)


@register_strategy(
    "synflow",
    description="SynFlow: iterative, data-free; prune the least synaptic flow "
    "|w * dR/dw| over 100 rounds on an exponential schedule.",
    params={"rounds": Param(100, low=1)},
    iterative=True,
)
def synflow(model, masks, data, settings) -> PruneResult:
    rounds = settings.params["rounds"]
    if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1:
        raise NNGeoError(f"synflow: rounds must be a whole number >= 1, got {rounds!r}")
    shape = input_shape_of(model, data)
    work = copy.deepcopy(model).to(torch.float64).eval()
    with torch.no_grad():
        for v in work.state_dict().values():  # state_dict tensors share storage with the module
            if v.is_floating_point():
                v.abs_()
    modules = dict(work.named_modules())
    names = list(masks)
    weights = [modules[n].weight for n in names]
    abs_weights = [w.detach().clone() for w in weights]
    x = torch.ones((1, *shape), dtype=torch.float64, device=model_device(work))
    d0, d = 1 - mask_sparsity(masks), 1 - settings.sparsity
    current = dict(masks)
    for k in range(1, rounds + 1):
        if k % 10 == 1:
            data.progress.check()
        with torch.no_grad():
            for w, a, n in zip(weights, abs_weights, names, strict=False):
                w.copy_(a * current[n].to(a.dtype))
        r = work(x).sum()
        grads = torch.autograd.grad(r, weights)
        scores = {n: (g * w).detach().abs() for n, g, w in zip(names, grads, weights, strict=False)}
        level = settings.sparsity if k == rounds else 1 - d0 * (d / d0) ** (k / rounds)
        current = select_masks(scores, current, level, settings.scope, strategy="synflow")
        data.progress.update(k / rounds, f"synflow round {k}/{rounds}")
    return PruneResult(current, info={"rounds": rounds})
