"""``prune``, the one entry point that applies a registered strategy to a model.

A strategy is a pure function that returns masks (ShrinkBench's split); ``prune`` prepares what
it sees (current masks folded into a copy of the weights), calls it, and checks what it returned:
right layers and shapes, no pruned weight revived, the requested sparsity reached.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable, Mapping
from typing import Any

import torch
from torch import nn

from ...errors import NNGeoError
from ...progress import Progress
from ..masks import (
    Masks,
    check_masks,
    check_no_revival,
    check_scope,
    check_sparsity,
    check_sparsity_value,
    full_masks,
    plain_copy,
    read_masks,
    select_layers,
)
from .base import PruneData, PruneResult, PruneSettings, Strategy, check_finite_weights
from .registry import get_strategy, resolve_params


def prune(
    model: nn.Module,
    strategy: str,
    sparsity: float,
    *,
    masks: Mapping[str, torch.Tensor] | None = None,
    data: PruneData | None = None,
    scope: str = "global",
    layers: Iterable[str] | None = None,
    exclude_last: bool = False,
    seed: int = 0,
    params: Mapping[str, Any] | None = None,
    progress: Progress | None = None,
) -> PruneResult:
    """Prune ``model`` to ``sparsity`` with a registered strategy; the model itself is not changed.

    ``masks`` are the current masks (default: the ones the model carries, else none). The result's
    masks are checked: right layers and shapes, no pruned weight revived, and the achieved sparsity
    within one weight of the request per layer (layer scope) or overall (global scope).
    """
    entry = get_strategy(strategy)
    target = check_sparsity_value(sparsity)
    check_scope(scope)
    full_params = resolve_params(entry, params)
    if scope not in entry.scopes:
        raise NNGeoError(f"the {entry.name} strategy supports only {' and '.join(entry.scopes)} scope")
    infos = select_layers(model, layers, exclude_last=exclude_last)
    names = [i.name for i in infos]
    if not entry.any_layers and (layers is not None or exclude_last):
        raise NNGeoError(
            f"the {entry.name} strategy always prunes every dense/conv layer; "
            "drop the layer selection (layers, exclude_last)"
        )
    carried = read_masks(model)
    given = check_masks(model, masks, infos) if masks is not None else {}
    full = full_masks(model, infos)
    current = {n: given.get(n, carried.get(n, full[n])) for n in names}
    work = plain_copy(model)
    with torch.no_grad():  # the strategy sees pruned weights as zeros
        modules = dict(work.named_modules())
        for n, m in current.items():
            modules[n].weight.mul_(m.to(modules[n].weight.dtype))
    check_finite_weights(work, names, entry.name)
    data = data if data is not None else PruneData()
    if progress is not None:
        data = dataclasses.replace(data, progress=progress)
    settings = PruneSettings(sparsity=target, scope=scope, layers=tuple(names), seed=int(seed), params=full_params)
    start = time.perf_counter()
    result = entry.fn(work, {n: m.clone() for n, m in current.items()}, data, settings)
    result.info.setdefault("seconds", time.perf_counter() - start)
    check_result(entry, result, model, infos, current, target, scope)
    return result


def check_result(entry: Strategy, result: PruneResult, model, infos, current: Masks, target: float, scope: str) -> None:
    what = f"the {entry.name} strategy"
    names = [i.name for i in infos]
    if not isinstance(result, PruneResult):
        raise NNGeoError(f"{what} returned a {type(result).__name__}, not a PruneResult")
    if set(result.masks) != set(names):
        missing = sorted(set(names) - set(result.masks)) or sorted(set(result.masks) - set(names))
        raise NNGeoError(f"{what} returned masks for the wrong layers (first difference: {missing[0]!r})")
    result.masks = {n: m for n, m in check_masks(model, result.masks, infos).items()}
    result.masks = {n: result.masks[n] for n in names}
    check_no_revival(current, result.masks, what=what)
    check_sparsity(result.masks, target, scope, what=what)
    if result.state_dict is not None:
        own = model.state_dict()
        plain = {k[: -len("_orig")] if k.endswith("_orig") else k for k in own if not k.endswith("_mask")}
        missing = sorted(plain - set(result.state_dict))
        if missing:
            raise NNGeoError(f"{what} returned weights without parameter {missing[0]!r}")
