"""``imp``: iterative magnitude pruning (Frankle & Carbin 2019; rewinding: Frankle et al. 2020).

Each round prunes ``rate`` (20%) of the remaining weights by magnitude, rewinds the survivors to
their values at epoch ``rewind_epoch`` of the dense run (0 = initialisation; None = no rewinding,
keep training from the current weights, i.e. the fine-tuning variant) and trains for
``round_epochs`` with the pruned weights held at zero. The last round lands exactly on the
requested sparsity. The returned weights are the trained sparse network.

``round_epochs`` left at None is the training budget's epochs (``PruneData.train``): a sweep of a
trained run passes the run's, so each round retrains as long as the run trained. An upload has no
training run: there a sweep makes it the sweep's ``finetune_epochs`` (``sweep.level_params``), so
``--finetune-epochs 0`` (the Pruning page's default) prunes in rounds without retraining.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch

from ...errors import NNGeoError
from ...params import Param
from ..masks import sparsity as mask_sparsity
from .base import PruneResult, magnitude_scores, register_strategy, select_masks

IMP_PARAMS = {
    "rate": Param(0.2, low=0.0, high=1.0, help="fraction of the remaining weights pruned per round, in (0, 1)"),
    "rewind_epoch": Param(1, low=0),
    "round_epochs": Param(
        None,
        kind=int,
        low=0,
        help="epochs per round (default: the run's epochs; on an upload, the sweep's fine-tune epochs; "
        "0: no retraining)",
    ),
}


def imp_schedule(start: float, target: float, rate: float) -> list[float]:
    """Sparsities after each round: each round prunes ``rate`` of what remains; the last hits ``target``."""
    if not (0 < rate < 1):
        raise NNGeoError(f"the IMP pruning rate must lie in (0, 1), got {rate!r}")
    levels, s = [], start
    while s < target - 1e-12:
        s = 1 - (1 - s) * (1 - rate)
        if s >= target - 1e-9:
            s = target
        levels.append(s)
    return levels


def iterative_magnitude(model, masks, data, settings, *, name: str, keep_fn: Callable | None = None) -> PruneResult:
    """IMP's rounds; ``keep_fn(model, masks)`` gives per layer the weights a round must not prune
    (T-IMP: the spanning trees) and must give the same set again when, since its last call, only
    weights outside that set were pruned (a maximum spanning tree stays one when edges outside it
    are removed, ties broken by index).

    With neither rewinding nor retraining (``rewind_epoch`` None, 0 epochs per round) the rounds
    only rank the same weights again: a round's selection is the lowest-magnitude prefix of one
    stable order of unchanged scores, so every round extends the previous round's prefix and the
    last one's masks are those of a single selection at the target. That selection is made once
    (the same masks, exactly; the schedule is still reported in ``info``)."""
    p = settings.params
    rate = float(p["rate"])
    dataset = data.require_dataset(name)
    train = data.require_train(name)
    epochs = train.epochs if p["round_epochs"] is None else p["round_epochs"]
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 0:
        raise NNGeoError(f"{name}: round_epochs must be a whole number >= 0, got {p['round_epochs']!r}")
    rewind_epoch = p["rewind_epoch"]
    if rewind_epoch is not None and (
        isinstance(rewind_epoch, bool) or not isinstance(rewind_epoch, int) or rewind_epoch < 0
    ):
        raise NNGeoError(f"{name}: rewind_epoch must be a whole number >= 0 or none, got {rewind_epoch!r}")
    rewind = data.rewind_state(rewind_epoch, name) if rewind_epoch is not None else None
    levels = imp_schedule(mask_sparsity(masks), settings.sparsity, rate)
    if not levels:
        return PruneResult(dict(masks), info={"rounds": 0})

    from ...train import fit  # lazy: training pulls in the data registry

    work = copy.deepcopy(model)
    current = dict(masks)
    modules = dict(work.named_modules())
    # without rewinding or retraining a round only zeroes what it prunes: one selection suffices
    rounds = levels if rewind is not None or epochs > 0 else levels[-1:]
    for i, level in enumerate(rounds):
        data.progress.check()
        keep = keep_fn(work, current) if keep_fn is not None else None
        current = select_masks(
            magnitude_scores(work, current), current, level, settings.scope, keep=keep, strategy=name
        )
        if rewind is not None:
            work.load_state_dict({k: v.to(next(work.parameters()).device) for k, v in rewind.items()})
        with torch.no_grad():
            for n, m in current.items():
                modules[n].weight.mul_(m.to(modules[n].weight.dtype))
        round_spec = train.replace(epochs=epochs, snapshots=(), seed=int(settings.seed) * 1009 + i + 1)
        if epochs > 0:
            fit(
                work,
                dataset,
                round_spec,
                masks=current,
                progress=data.progress.sub(i / len(rounds), (i + 1) / len(rounds)),
            )
        data.progress.update((i + 1) / len(rounds), f"{name} round {i + 1}/{len(rounds)}", sparsity=level)
    state = {k: v.detach().clone() for k, v in work.state_dict().items()}
    info = {"rounds": len(levels), "levels": levels, "selections": len(rounds)}
    return PruneResult(current, state_dict=state, info=info)


@register_strategy(
    "imp",
    description="Iterative magnitude pruning: prune 20% of the remaining weights per "
    "round, rewind to an early epoch (or init), retrain.",
    params=IMP_PARAMS,
    iterative=True,
    needs_data=True,
    trains=True,
    changes_weights=True,
)
def imp(model, masks, data, settings) -> PruneResult:
    return iterative_magnitude(model, masks, data, settings, name="imp")
