"""Pruning sweeps: one strategy at several sparsities and seeds on one dense model, stored once.

For every seed the dense model is either the spec's run with that seed, from ``runs.train_run``
(trained once and shared by every strategy and sweep that asks for it; a run already trained
with exactly that spec, e.g. by `nngeo train`, is used as it is), or, with ``spec.source`` set,
the stored model of that key (a trained run or an upload), pruned as it is for every seed. Levels
run in increasing sparsity. One-shot strategies prune the dense model at every level; iterative
ones (IMP, T-IMP, SynFlow) continue from the previous level's masks and weights, so their masks
are nested. After pruning, each level is evaluated, fine-tuned for ``finetune_epochs`` (same
budget for every strategy; 0 = post-training comparison) and evaluated again. One row per
(seed, level), and the level's final model stored as the artefact ``level_artifact(seed, level)``
(our checkpoint format, masks included), so exporting it needs no recomputation. The level loop
is ``iter_levels``; the export of a sweep stored without its levels' models rebuilds a level with
it. IMP and T-IMP rounds on an upload retrain for ``finetune_epochs`` unless ``round_epochs`` is
set (``level_params``).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import torch
from torch import nn

from .. import checkpoint
from ..data import load as load_data
from ..errors import NNGeoError
from ..models import LayerInfo, get_layer, prunable_layers
from ..models.base import tensor_attribute
from ..progress import Progress
from ..runs import load_run, snapshot_epochs, train_run
from ..settings import pick_device
from ..specs import RunSpec
from ..store import Store, default_store
from ..topology import critical_compression, mst_mask, mst_overlap, neural_persistence
from ..train import evaluate, fit
from .masks import counts, layer_sparsity, plain_copy, pruned_model
from .masks import sparsity as mask_sparsity
from .specs import SweepSpec, strategy_label
from .strategies import PruneData, get_strategy, prune

# epochs every sweep's dense run keeps, so IMP's default rewind point (epoch 1) and init (0) are
# always there and all strategies share one dense run per seed
DEFAULT_SNAPSHOTS = (0, 1)
TRAIN_SHARE = 0.15  # progress share of the dense training within one seed
SOURCE_KINDS = ("train", "upload")  # the stored models a sweep can prune as they are


def level_artifact(seed: int, index: int) -> str:
    """The artefact name under which a sweep stores one level's model (export reads it)."""
    return f"level-{int(seed)}-{int(index)}.safetensors"


def needed_snapshots(spec: SweepSpec) -> set[int]:
    """The dense model's epochs the strategy rewinds to (none unless it trains and rewinds)."""
    rewind = spec.params.get("rewind_epoch") if get_strategy(spec.strategy).trains else None
    return set() if rewind is None else {int(rewind)}


def check_source(spec: SweepSpec, store: Store) -> str:
    """The full key of the sweep's stored source model; a one-line error when it is not one, or
    when the strategy rewinds to an epoch the source kept no weights of."""
    assert spec.source is not None
    entry = store.entry(spec.source)
    if entry["kind"] not in SOURCE_KINDS:
        raise NNGeoError(
            f"result {entry['key']} is a {entry['kind']} result; a sweep prunes a trained run or an upload"
        )
    missing = needed_snapshots(spec) - set(snapshot_epochs(entry["key"], store=store))
    if missing:
        what = "upload" if entry["kind"] == "upload" else "run"
        raise NNGeoError(
            f"{spec.strategy} rewinds to epoch {min(missing)} but {what} {entry['key'][:12]} keeps no weights of "
            "that epoch; set rewind_epoch to none (IMP without rewinding) or prune a run trained with that snapshot"
        )
    return str(entry["key"])


def dense_run_spec(spec: SweepSpec, seed: int) -> RunSpec:
    """The training run a sweep prunes for one seed (the spec's run, that seed, kept snapshots)."""
    t = spec.run.train
    snaps = {int(e) for e in t.snapshots} | {e for e in DEFAULT_SNAPSHOTS if e <= t.epochs}
    rewind = spec.params.get("rewind_epoch") if get_strategy(spec.strategy).trains else None
    if rewind is not None:
        if isinstance(rewind, bool) or not isinstance(rewind, int) or not 0 <= rewind <= t.epochs:
            raise NNGeoError(
                f"rewind_epoch must be a whole number in 0..{t.epochs} (the run's epochs) or none, got {rewind!r}"
            )
        snaps.add(rewind)
    return spec.run.replace(train=t.replace(seed=int(seed), snapshots=tuple(sorted(snaps))))


def effective_weight(module: nn.Module) -> torch.Tensor:
    """The weight as the forward pass uses it (mask applied for pruned layers)."""
    mask = getattr(module, "weight_mask", None)
    if hasattr(module, "weight_orig") and isinstance(mask, torch.Tensor):
        return (tensor_attribute(module, "weight_orig") * mask).detach()
    return tensor_attribute(module, "weight").detach()


def cost_of(model: nn.Module, infos: list[LayerInfo]) -> dict[str, Any]:
    """Nonzero weights and theoretical FLOPs (multiply-accumulates per sample) of the dense/conv layers.

    Dense: one MAC per nonzero weight. Conv: one MAC per nonzero kernel weight per output position.
    """
    nonzero, flops, total = {}, {}, {}
    for info in infos:
        w = effective_weight(get_layer(model, info.name))
        nnz = int(torch.count_nonzero(w))
        positions = 1
        if info.kind == "conv":
            if info.output_size is None:
                raise NNGeoError(f"conv layer {info.name} has no output size; take its LayerInfo from prunable_layers")
            positions = math.prod(info.output_size)
        nonzero[info.name], flops[info.name], total[info.name] = nnz, nnz * positions, w.numel()
    params = 0
    for name, p in model.named_parameters():
        if name.endswith("_orig"):
            mod = get_layer(model, name.rsplit(".", 1)[0]) if "." in name else model
            params += int(torch.count_nonzero(effective_weight(mod)))
        else:
            params += int(torch.count_nonzero(p.detach()))
    return {
        "nonzero_weights": sum(nonzero.values()),
        "total_weights": sum(total.values()),
        "flops": sum(flops.values()),
        "nonzero_params": params,
        "total_params": sum(p.numel() for p in model.parameters()),
    }


def run_sweep(spec: SweepSpec, *, store: Store | None = None, progress: Progress | None = None) -> str:
    """Compute and store the sweep unless the store has it; returns its key (the spec hash)."""
    spec.validate()
    store = store or default_store()
    progress = progress or Progress()
    key = spec.hash
    if store.exists(key):
        return key
    if spec.source is not None:
        check_source(spec, store)
    dataset = load_data(spec.run.data)
    rows: list[dict] = []
    artifacts: dict[str, bytes] = {}
    timing = {"train": 0.0, "prune": 0.0, "finetune": 0.0, "evaluate": 0.0, "analyses": 0.0}
    run_keys = []
    n = len(spec.seeds)
    for i, seed in enumerate(spec.seeds):
        part = progress.sub(i / n, (i + 1) / n)
        seed_rows, run_key = sweep_seed(
            spec, seed, dataset, store=store, progress=part, timing=timing, artifacts=artifacts
        )
        rows += [{**r, "sweep": key} for r in seed_rows]
        run_keys.append(run_key)
    table = pd.DataFrame(rows)
    last = table[table["sparsity_requested"] == max(spec.sparsities)]
    attrs = dict(
        model=spec.run.model.name,
        data=spec.run.data.name,
        method="prune-sweep",
        strategy=spec.strategy,
        sparsity=max(spec.sparsities),
        seed=spec.seeds[0],
        run=run_keys[0],
        label=f"{strategy_label(spec.strategy, spec.params)} on {spec.run.model.name}/{spec.run.data.name}",
        source=spec.source,
        metric=float(last["accuracy"].mean()),
        seeds=list(spec.seeds),
        runs=run_keys,
        levels=list(spec.sparsities),
        finetune_epochs=spec.finetune_epochs,
        scope=spec.scope,
        seconds={k: round(v, 3) for k, v in timing.items()},
    )
    progress.update(1.0, "stored", force=True)
    return store.put("prune-sweep", spec, table, artifacts=artifacts, attrs=attrs)


def dense_model_key(spec: SweepSpec, seed: int, *, store: Store, progress: Progress | None = None) -> str:
    """The stored dense model a sweep prunes for ``seed``: its source, else the run of
    ``dense_run_spec`` (trained now unless stored) or, when only that exists, the run of exactly
    the spec's run with this seed (what `nngeo train` stores) if it keeps the epochs the strategy
    rewinds to. Training is seeded, so either run holds the same weights."""
    if spec.source is not None:
        return check_source(spec, store)
    run_spec = dense_run_spec(spec, seed)
    plain = spec.run.replace(train=spec.run.train.replace(seed=int(seed)))
    if (
        not store.exists(run_spec.hash)
        and store.exists(plain.hash)
        and needed_snapshots(spec) <= set(snapshot_epochs(plain.hash, store=store))
    ):
        return plain.hash
    return train_run(run_spec, store=store, progress=progress)


def seed_run_spec(spec: SweepSpec, seed: int) -> RunSpec:
    """The run that gives one seed's data and training settings: a source is pruned as stored, so
    its run only changes seed; else the dense run of ``dense_run_spec``."""
    if spec.source:
        return spec.run.replace(train=spec.run.train.replace(seed=int(seed)))
    return dense_run_spec(spec, seed)


def prunes_an_upload(spec: SweepSpec, store: Store) -> bool:
    return spec.source is not None and store.entry(spec.source)["kind"] == "upload"


def level_params(spec: SweepSpec, store: Store) -> dict[str, Any]:
    """The strategy's parameters as every level runs them. IMP and T-IMP retrain each round for
    ``round_epochs``; left at None it means the run's epochs, but an upload has no training run,
    so there it is the sweep's ``finetune_epochs`` (0: the rounds only prune), the one training
    budget the user set for that sweep. The spec (and its key) keeps the value as given."""
    params = dict(spec.params)
    entry = get_strategy(spec.strategy)
    if (
        entry.trains
        and "round_epochs" in entry.defaults
        and params.get("round_epochs") is None
        and prunes_an_upload(spec, store)
    ):
        params["round_epochs"] = int(spec.finetune_epochs)
    return params


def rewind_states(spec: SweepSpec, run_key: str, store: Store, device) -> dict[int, dict[str, torch.Tensor]]:
    """The dense model's weights at the epoch the strategy rewinds to (none unless it does)."""
    if not (get_strategy(spec.strategy).trains and spec.params.get("rewind_epoch") is not None):
        return {}
    epoch = int(spec.params["rewind_epoch"])
    state = load_run(run_key, store=store, epoch=epoch).model.state_dict()
    return {epoch: {k: v.to(device) for k, v in state.items()}}


@dataclass
class Level:
    """One level of a sweep for one seed, as ``iter_levels`` computed it."""

    index: int
    sparsity: float
    result: Any  # PruneResult
    pruned: nn.Module  # right after pruning
    tuned: nn.Module  # after fine-tuning (``pruned`` when finetune_epochs is 0): the reported model
    loss_pruned: float
    accuracy_pruned: float
    loss: float
    accuracy: float
    cost: dict[str, Any]
    seconds: dict[str, float] = field(default_factory=dict)  # prune, evaluate, finetune


def iter_levels(
    spec: SweepSpec,
    seed: int,
    dataset,
    dense: nn.Module,
    *,
    run_key: str,
    store: Store,
    upto: int | None = None,
    progress: Progress | None = None,
) -> Iterator[Level]:
    """The levels of one seed in increasing sparsity, up to index ``upto`` (default: all): prune
    (one-shot strategies the dense model, iterative ones the previous level), evaluate, fine-tune
    for ``finetune_epochs`` and evaluate again. ``dense`` is the stored model ``run_key`` on the
    run's device, in eval mode. One-shot strategies skip the levels below ``upto``. The sweep and
    the export of a level stored without its model (which rebuilds it) both run this."""
    progress = progress or Progress()
    entry = get_strategy(spec.strategy)
    run_spec = seed_run_spec(spec, seed)
    device = pick_device(run_spec.train.device)
    rewind = rewind_states(spec, run_key, store, device)
    params = level_params(spec, store)
    x_test, y_test = dataset.x_test, dataset.y_test
    infos = prunable_layers(dense)
    ft_train = run_spec.train.replace(
        epochs=int(spec.finetune_epochs),
        snapshots=(),
        seed=int(seed) + 7,
        **({"lr": spec.finetune_lr} if spec.finetune_lr is not None else {}),
    )
    last = len(spec.sparsities) - 1 if upto is None else int(upto)
    todo = [j for j in range(last + 1) if entry.iterative or j == last or upto is None]
    prev_model, prev_masks = dense, None
    for k, j in enumerate(todo):
        level = spec.sparsities[j]
        progress.check()
        step = progress.sub(k / len(todo), (k + 1) / len(todo))
        base_model, base_masks = (prev_model, prev_masks) if entry.iterative else (dense, None)
        data = PruneData(dataset=dataset, train=run_spec.train, rewind=rewind, progress=step.sub(0.0, 0.7), store=store)
        clock = time.perf_counter()
        result = prune(
            base_model,
            spec.strategy,
            level,
            masks=base_masks,
            data=data,
            scope=spec.scope,
            layers=spec.layers or None,
            exclude_last=spec.exclude_last,
            seed=seed,
            params=params,
        )
        pruned = pruned_model(base_model, result.masks, result.state_dict)
        seconds = {"prune": time.perf_counter() - clock}
        clock = time.perf_counter()
        loss_pruned, acc_pruned = evaluate(pruned, x_test, y_test)
        seconds["evaluate"] = time.perf_counter() - clock
        clock = time.perf_counter()
        if spec.finetune_epochs > 0:
            # fine-tune a plain copy (pruned weights stored as zeros, held there by fit's masks)
            tuned = plain_copy(pruned)
            fit(tuned, dataset, ft_train, masks=result.masks, progress=step.sub(0.7, 0.95))
            loss, acc = evaluate(tuned, x_test, y_test)
        else:
            tuned, loss, acc = pruned, loss_pruned, acc_pruned
        seconds["finetune"] = time.perf_counter() - clock
        yield Level(
            j,
            float(level),
            result,
            pruned,
            tuned,
            loss_pruned,
            acc_pruned,
            loss,
            acc,
            cost_of(tuned, infos),
            seconds,
        )
        step.update(1.0, f"{spec.strategy} seed {seed} sparsity {level:.4g}", force=True, sparsity=level, accuracy=acc)
        if entry.iterative:
            prev_model, prev_masks = pruned, result.masks


def sweep_seed(
    spec: SweepSpec,
    seed: int,
    dataset,
    *,
    store: Store,
    progress: Progress,
    timing: dict[str, float],
    artifacts: dict[str, bytes] | None = None,
) -> tuple[list[dict], str]:
    """All levels of one seed (``iter_levels``): rows and the dense model's key; each level's
    final model goes into ``artifacts`` under ``level_artifact(seed, level)``."""
    run_spec = seed_run_spec(spec, seed)
    clock = time.perf_counter()
    run_key = dense_model_key(spec, seed, store=store, progress=progress.sub(0.0, TRAIN_SHARE))
    dense_ckpt = load_run(run_key, store=store)
    timing["train"] += time.perf_counter() - clock
    dense = dense_ckpt.model.to(pick_device(run_spec.train.device)).eval()
    dense_loss, dense_acc = evaluate(dense, dataset.x_test, dataset.y_test)
    dense_cost = cost_of(dense, prunable_layers(dense))
    analysis_ctx = AnalysisContext(spec.analyses, dense) if spec.analyses else None
    rows = []
    levels = iter_levels(
        spec, seed, dataset, dense, run_key=run_key, store=store, progress=progress.sub(TRAIN_SHARE, 1.0)
    )
    for lv in levels:
        if artifacts is not None:
            artifacts[level_artifact(seed, lv.index)] = checkpoint.to_bytes(
                plain_copy(lv.tuned).cpu(),
                model_spec=dense_ckpt.model_spec,
                data_spec=spec.run.data,
                masks=lv.result.masks,
                extra={"sweep_level": lv.index, "seed": int(seed), "sparsity": lv.sparsity, "dense": run_key},
            )
        cost = lv.cost
        c = counts(lv.result.masks)
        row = dict(
            strategy=spec.strategy,
            strategy_label=strategy_label(spec.strategy, spec.params),
            seed=int(seed),
            level=lv.index,
            sparsity_requested=lv.sparsity,
            sparsity_achieved=mask_sparsity(lv.result.masks),
            sparsity_overall=1 - cost["nonzero_weights"] / cost["total_weights"],
            compression=cost["total_weights"] / max(cost["nonzero_weights"], 1),
            accuracy_pruned=lv.accuracy_pruned,
            loss_pruned=lv.loss_pruned,
            accuracy=lv.accuracy,
            loss=lv.loss,
            dense_accuracy=dense_acc,
            dense_loss=dense_loss,
            **cost,
            dense_flops=dense_cost["flops"],
            flops_fraction=cost["flops"] / max(dense_cost["flops"], 1),
            pruned_weights=sum(p for p, _ in c.values()),
            layer_sparsity=json.dumps(layer_sparsity(lv.result.masks), sort_keys=True),
            finetune_epochs=int(spec.finetune_epochs),
            scope=spec.scope,
            layers=",".join(spec.layers),  # empty: every layer was pruned
            run=run_key,
            prune_seconds=lv.seconds["prune"],
            finetune_seconds=lv.seconds["finetune"],
            eval_seconds=lv.seconds["evaluate"],
        )
        timing["prune"] += lv.seconds["prune"]
        timing["finetune"] += lv.seconds["finetune"]
        timing["evaluate"] += lv.seconds["evaluate"]
        if analysis_ctx is not None:
            clock = time.perf_counter()
            row.update(analysis_ctx.level(lv.tuned, lv.result.masks, sparsity_overall=row["sparsity_overall"]))
            timing["analyses"] += time.perf_counter() - clock
        rows.append(row)
    return rows, run_key


class AnalysisContext:
    """Per-level analyses on request (from the topology capability):

    * ``persistence``: neural persistence per layer (JSON column ``np_layers``), its network sum
      ``np_total`` and mean normalised value ``np_normalized_mean``;
    * ``eta_floor``: the topologically critical compression η_τ = |W|/|MST| of the architecture,
      the sparsity floor 1 − 1/η_τ beyond which no mask keeps every layer connected, and whether
      the level is beyond it;
    * ``mst_overlap``: ``mst_kept``, the fraction of the dense model's maximum-spanning-tree edges
      the mask keeps, and ``mst_overlap``, the pruned model's MST / top-|MST| overlap (all layers).
    """

    def __init__(self, names, dense: nn.Module):
        self.names = tuple(names)
        self.dense_mst = None
        self.eta = None
        plain = plain_copy(dense).cpu()
        if "mst_overlap" in self.names:
            self.dense_mst = {k: v.bool().cpu() for k, v in mst_mask(plain).items()}
        if "eta_floor" in self.names:
            table = critical_compression(plain, conv="toeplitz")
            self.eta = float(table.loc[table["layer"] == "total", "eta_tau"].iloc[0])

    def level(self, model: nn.Module, masks, *, sparsity_overall: float) -> dict[str, Any]:
        """The analyses of one level; ``sparsity_overall``: the model's zero fraction over all of its
        dense/conv weights (the sweep row's column of that name)."""
        out: dict[str, Any] = {}
        plain = plain_copy(model).cpu()
        if "persistence" in self.names:
            table = neural_persistence(plain)
            out["np_layers"] = table[["layer", "np", "np_normalized", "components"]].to_json(orient="records")
            out["np_total"] = float(table["np"].sum())
            out["np_normalized_mean"] = float(table["np_normalized"].mean())
        if self.eta is not None:
            floor = 1 - 1 / self.eta
            out.update(eta_tau=self.eta, eta_floor=floor, beyond_eta_floor=bool(sparsity_overall > floor + 1e-12))
        if self.dense_mst is not None:
            kept = sum(int((self.dense_mst[n] & masks[n].cpu()).sum()) for n in masks if n in self.dense_mst)
            total = sum(int(self.dense_mst[n].sum()) for n in masks if n in self.dense_mst)
            out["mst_kept"] = kept / total if total else float("nan")
            ov = mst_overlap(plain)
            alpha = float(ov["alpha"].sum())
            out["mst_overlap"] = float(ov["overlap_count"].sum()) / alpha if alpha else float("nan")
        return out
