"""What a pruning strategy receives and returns, and the one selection routine they share.

A strategy is a function ``fn(model, masks, data, settings) -> PruneResult``:

* ``model``    the network to prune, with the current masks already folded into its weights
               (pruned weights are zero). Strategies must not mutate it (copy before training).
* ``masks``    the current masks of the layers being pruned (all True for a dense model).
* ``data``     a ``PruneData``: the dataset, the training budget and rewind states for the
               strategies that need them, and a ``Progress``.
* ``settings`` a ``PruneSettings``: target sparsity, scope, layer names, seed, strategy params.

It returns new masks (a subset of the current ones) and, for strategies that also change
weights (IMP retrains, geodesic pruning moves along a path), the full new ``state_dict``.
Most strategies compute one score per weight and call ``select_masks``: the lowest scores are
pruned, already-pruned weights stay pruned, ties break by position, so results are deterministic.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ...data.base import Dataset
from ...errors import NNGeoError
from ...params import defaults_of
from ...progress import Progress
from ...specs import TrainSpec
from ..masks import Masks, target_count


@dataclass(frozen=True)
class PruneSettings:
    sparsity: float  # fraction of the selected weights pruned after this call
    scope: str = "global"  # global: one ranking over all layers; layer: each layer alike
    layers: tuple[str, ...] = ()  # names of the layers being pruned, forward order
    seed: int = 0
    params: Mapping[str, Any] = field(default_factory=dict)  # strategy parameters, defaults filled


@dataclass
class PruneData:
    """Data access for strategies. Everything is optional; strategies that need a part say so."""

    dataset: Dataset | None = None
    train: TrainSpec | None = None  # budget for strategies that train
    rewind: Mapping[int, Mapping[str, torch.Tensor]] = field(default_factory=dict)  # epoch -> state_dict
    progress: Progress = field(default_factory=Progress)
    store: Any = None  # a Store where expensive per-weight scores are kept across processes (None: not kept)

    def require_dataset(self, strategy: str) -> Dataset:
        if self.dataset is None:
            raise NNGeoError(f"the {strategy} strategy needs data; pass a dataset")
        return self.dataset

    def require_train(self, strategy: str) -> TrainSpec:
        if self.train is None:
            raise NNGeoError(f"the {strategy} strategy trains between rounds; pass a training spec")
        return self.train

    def rewind_state(self, epoch: int, strategy: str) -> Mapping[str, torch.Tensor]:
        if int(epoch) not in self.rewind:
            have = ", ".join(map(str, sorted(self.rewind))) or "none"
            raise NNGeoError(
                f"{strategy} rewinds to epoch {epoch} but no weights of that epoch are kept "
                f"(kept: {have}); train the run with that snapshot or choose another rewind epoch"
            )
        return self.rewind[int(epoch)]

    def batch(self, n: int, seed: int, device: torch.device | str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` training samples drawn without replacement by ``seed`` (all of them if fewer)."""
        ds = self.dataset
        if ds is None:
            raise NNGeoError("this strategy needs data; pass a dataset")
        n_all = len(ds.x_train)
        if n_all == 0:
            raise NNGeoError(f"dataset {ds.name} has no training samples")
        idx = torch.randperm(n_all, generator=torch.Generator().manual_seed(int(seed)))[: max(1, int(n))]
        x, y = ds.x_train[idx], ds.y_train[idx]
        return (x.to(device), y.to(device)) if device is not None else (x, y)


@dataclass
class PruneResult:
    masks: Masks
    state_dict: dict[str, torch.Tensor] | None = None  # new weights, when the strategy changes them
    info: dict[str, Any] = field(default_factory=dict)  # diagnostics (rounds, floors, seconds, ...)


StrategyFn = Callable[[nn.Module, Masks, PruneData, PruneSettings], PruneResult]


@dataclass(frozen=True)
class Strategy:
    name: str
    fn: StrategyFn
    description: str
    params: Mapping[str, Any]  # parameter -> default, or a ``nngeo_core.params.Param``
    iterative: bool = False  # a sweep feeds each level the previous level's masks and weights
    needs_data: bool = False
    trains: bool = False  # needs a training spec (and maybe rewind states)
    changes_weights: bool = False  # returns a state_dict
    scopes: tuple[str, ...] = ("global", "layer")  # scopes it supports
    any_layers: bool = True  # False: always prunes every dense/conv layer (no selection)

    def __call__(self, model: nn.Module, masks: Masks, data: PruneData, settings: PruneSettings) -> PruneResult:
        return self.fn(model, masks, data, settings)

    @property
    def defaults(self) -> dict[str, Any]:
        return defaults_of(self.params)


def register_strategy(
    name: str,
    *,
    description: str,
    params: Mapping[str, Any] | None = None,
    iterative: bool = False,
    needs_data: bool = False,
    trains: bool = False,
    changes_weights: bool = False,
    scopes: tuple[str, ...] = ("global", "layer"),
    any_layers: bool = True,
) -> Callable[[StrategyFn], Strategy]:
    """Decorator: declare ``fn(model, masks, data, settings) -> PruneResult`` as a strategy. It
    returns the ``Strategy`` (callable like the function); ``strategies/registry.py`` lists it,
    and a plugin adds its own with ``STRATEGIES.add(s.name, s)``."""

    def deco(fn: StrategyFn) -> Strategy:
        return Strategy(
            name=name,
            fn=fn,
            description=description,
            params=dict(params or {}),
            iterative=iterative,
            needs_data=needs_data,
            trains=trains,
            changes_weights=changes_weights,
            scopes=tuple(scopes),
            any_layers=any_layers,
        )

    return deco


# strategies that memoise scores add a function that forgets them (``registry.reset_caches``)
CACHE_CLEARERS: list[Callable[[], None]] = []


# -- helpers shared by strategies ----------------------------------------------------------------
def model_device(model: nn.Module) -> torch.device:
    try:
        return next(model.parameters()).device
    except StopIteration:
        return torch.device("cpu")


def weights_of(model: nn.Module, names) -> dict[str, torch.Tensor]:
    modules = dict(model.named_modules())
    return {n: modules[n].weight.detach() for n in names}


def check_finite_weights(model: nn.Module, names, strategy: str) -> None:
    for n, w in weights_of(model, names).items():
        if not torch.isfinite(w).all():
            raise NNGeoError(f"layer {n} has NaN/inf weights; {strategy} cannot rank them")


def select_masks(
    scores: Mapping[str, torch.Tensor],
    current: Mapping[str, torch.Tensor],
    sparsity: float,
    scope: str,
    *,
    keep: Mapping[str, torch.Tensor] | None = None,
    group: str = "layer",
    strategy: str = "strategy",
) -> Masks:
    """Prune the lowest-scoring weights so that ``sparsity`` of the weights are pruned.

    ``current``: weights already pruned stay pruned (ranked below every score). ``keep``: weights
    that must survive (ranked above every score; refused if there are too many). ``scope`` "layer"
    prunes round(sparsity * n) of each layer, "global" ranks all layers together. ``group`` "row"
    compares weights only within one output row (Wanda's comparison group), each row pruned to the
    same fraction, the leftover weights spread over the first rows so the totals stay exact.
    Ties break by position (a stable sort), so the result is deterministic.
    """
    names = list(current)
    prepared = {}
    for n in names:
        s = scores[n]
        if tuple(s.shape) != tuple(current[n].shape):
            raise NNGeoError(
                f"{strategy} gave scores of shape {tuple(s.shape)} for layer {n}, "
                f"whose weight is {tuple(current[n].shape)}"
            )
        s = s.detach().to(torch.float64).clone()
        if torch.isnan(s).any():
            raise NNGeoError(f"{strategy} gave NaN scores for layer {n}; the weights or data are not finite")
        cur = current[n].to(s.device).bool()
        s[~cur] = -torch.inf
        if keep is not None and n in keep:
            s[keep[n].to(s.device).bool() & cur] = torch.inf
        prepared[n] = s
    if group == "row":
        return _select_rows(prepared, current, sparsity, scope, keep, strategy)
    if scope == "layer":
        return {
            n: _prune_lowest(
                prepared[n], target_count(sparsity, prepared[n].numel()), current[n], keep and keep.get(n), strategy, n
            )
            for n in names
        }
    flat = torch.cat([prepared[n].reshape(-1).to("cpu") for n in names])
    total = flat.numel()
    k = target_count(sparsity, total)
    _check_count(k, flat, strategy, "the selected layers")
    keep_flat = ~lowest(flat, k)
    out, start = {}, 0
    for n in names:
        size = prepared[n].numel()
        out[n] = keep_flat[start : start + size].reshape(current[n].shape).to(current[n].device)
        start += size
    return out


def _check_count(k: int, flat: torch.Tensor, strategy: str, where: str) -> None:
    already = int(torch.isneginf(flat).sum())
    forced = int(torch.isposinf(flat).sum())
    if k < already:
        raise NNGeoError(
            f"{strategy}: {where} already have {already} pruned weights, more than the {k} "
            "the requested sparsity allows; pruned weights are never revived"
        )
    if k > flat.numel() - forced:
        raise NNGeoError(
            f"{strategy}: {where} must keep {forced} of {flat.numel()} weights, so at most "
            f"{(flat.numel() - forced) / flat.numel():.4f} sparsity is possible"
        )


def _prune_lowest(s: torch.Tensor, k: int, cur: torch.Tensor, keep, strategy: str, name: str) -> torch.Tensor:
    flat = s.reshape(-1).to("cpu")
    _check_count(k, flat, strategy, f"layer {name}")
    return (~lowest(flat, k)).reshape(cur.shape).to(cur.device)


def lowest(flat: torch.Tensor, k: int) -> torch.Tensor:
    """Mask of the ``k`` lowest entries of a 1-D tensor, ties broken by position: exactly the first
    ``k`` of a stable sort, found in linear time (the k-th value, then the first tied positions)."""
    out = torch.zeros(flat.numel(), dtype=torch.bool)
    if k <= 0:
        return out
    if k >= flat.numel():
        return ~out
    threshold = torch.kthvalue(flat, k).values
    out = flat < threshold
    tied = torch.nonzero(flat == threshold).flatten()[: k - int(out.sum())]
    out[tied] = True
    return out


def _select_rows(prepared, current, sparsity, scope, keep, strategy) -> Masks:
    """Per-output-row selection (dim 0 is the output of dense and conv weights)."""
    names = list(prepared)
    rows = {n: prepared[n].reshape(prepared[n].shape[0], -1).to("cpu") for n in names}
    # per row: already pruned (floor), forced kept (ceiling), and the proportional share
    pruned_now = {n: torch.isneginf(r).sum(1) for n, r in rows.items()}
    capacity = {n: r.shape[1] - torch.isposinf(r).sum(1) for n, r in rows.items()}
    base = {
        n: torch.maximum(pruned_now[n], torch.floor(torch.tensor(sparsity, dtype=torch.float64) * r.shape[1]).long())
        for n, r in rows.items()
    }
    base = {n: torch.minimum(base[n], capacity[n]) for n in names}
    units = [names] if scope == "global" else [[n] for n in names]
    targets = dict(base)
    for unit in units:
        total = sum(rows[n].numel() for n in unit)
        k = target_count(sparsity, total)
        have = sum(int(base[n].sum()) for n in unit)
        floor_ = sum(int(pruned_now[n].sum()) for n in unit)
        if have > k or floor_ > k:
            raise NNGeoError(
                f"{strategy}: the rows of {', '.join(unit)} already hold more pruned weights than "
                "the requested sparsity allows; pruned weights are never revived"
            )
        extra = k - have
        # spread the leftover one weight per row, in row order, over rows with room left
        room = torch.cat([(capacity[n] - base[n]).clamp(min=0) for n in unit])
        if int(room.sum()) < extra:
            raise NNGeoError(
                f"{strategy}: too many weights of {', '.join(unit)} must be kept to reach sparsity {sparsity:.4f}"
            )
        add = torch.zeros_like(room)
        while extra > 0:  # at most a few passes: each pass gives one weight to every row with room
            give = (room - add > 0).long()
            csum = torch.cumsum(give, 0)
            give = give * (csum <= extra).long()
            add += give
            extra -= int(give.sum())
        start = 0
        for n in unit:
            r = rows[n].shape[0]
            targets[n] = base[n] + add[start : start + r]
            start += r
    out = {}
    for n in names:
        r = rows[n]
        order = torch.sort(r, dim=1, stable=True).indices
        rank = torch.empty_like(order)
        rank.scatter_(1, order, torch.arange(r.shape[1]).expand_as(order).contiguous())
        kept = rank >= targets[n].unsqueeze(1)
        out[n] = kept.reshape(current[n].shape).to(current[n].device)
    return out


def magnitude_scores(model: nn.Module, names) -> dict[str, torch.Tensor]:
    return {n: w.abs() for n, w in weights_of(model, names).items()}
