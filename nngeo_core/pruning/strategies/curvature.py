"""``curvature`` and ``curvature_neg``: rank weights by neural curvature (from the curvature
capability, ``nngeo_core.curvature.curvature_scores``) on a calibration set.

``curvature`` prunes the highest-curvature weights first (positive curvature marks redundant
weights); ``curvature_neg`` prunes the lowest first (the ablation). Calibration inputs: ``k``
correctly classified training inputs per class (``calibration_split="test"`` for the paper's
held-out choice, which then also serves as the evaluation set). Post-training, as in the
neural-curvature paper's protocol; fine-tuning is the sweep's setting (the authors' protocol has
none: leave the sweep's fine-tuning epochs at 0 to reproduce it).

``preset`` ("nngeo" or "tan2026", ``curvature.neural.PRESETS``) fills every curvature setting left
at None; a setting given explicitly wins (``conv_positions=0``: every output position). With
``tie_break="fc_first"`` (tan2026) weights of equal curvature are ranked as the authors' one
sorted list: dense edges before conv weights, dense edges by (layer, input unit, output unit),
conv weights by (layer, input channel, tap row, tap column, output channel).
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict

import numpy as np
import pyarrow as pa
import torch

from ...curvature import calibration_set, curvature_scores
from ...curvature.measures import DEAD_RULES, MASS_RULES
from ...curvature.neural import AGGREGATES, FROM_PRESET, NC_METHODS, PRESETS, TIE_BREAKS, preset_settings
from ...errors import NNGeoError
from ...models.base import prunable_layers
from ...params import Param
from ...specs import spec_hash
from .base import CACHE_CLEARERS, PruneResult, register_strategy, select_masks

# curvature is expensive and the same for every level pruned from one model: keep the last few
# score sets, keyed by a hash of the weights, calibration inputs and settings (a pure memo)
_SCORES: OrderedDict[str, dict] = OrderedDict()
CACHE_SIZE = 4
CACHE_CLEARERS.append(_SCORES.clear)
SCORES_KIND = "curvature-scores"  # the store's result kind for scores kept across processes

_FROM = "default: the preset's"
CURVATURE_PARAMS = {
    "calibration_k": Param(1, low=1, help="correctly classified calibration inputs per class"),
    "calibration_split": Param("train", choices=("train", "test")),
    "preset": Param("nngeo", choices=tuple(PRESETS), help="nngeo's settings, or tan2026: the authors' code"),
    "alpha": Param(
        None, kind=float, low=0.0, high=1.0, help=f"idleness: the mass a neuron keeps ({_FROM}: 0.5, tan2026 0.9)"
    ),
    "method": Param(None, kind=str, choices=NC_METHODS, help=f"transport ({_FROM}: sinkhorn, tan2026 exact)"),
    "aggregate": Param("min", choices=AGGREGATES, help="over calibration inputs"),
    "normalize_idleness": Param(None, kind=bool, help=f"divide by 1 - alpha ({_FROM}: true)"),
    "dead_value": Param(None, kind=float, help=f"curvature of an edge at a dead neuron ({_FROM}: 1.0)"),
    "conv_positions": Param(
        None, kind=int, low=0, help=f"output positions per conv layer, 0: every one ({_FROM}: 4, tan2026 0)"
    ),
    "masses": Param(None, kind=str, choices=MASS_RULES, help=f"neighbour masses ({_FROM}: stable, tan2026 float32)"),
    "dead_rule": Param(None, kind=str, choices=DEAD_RULES, help=f"what is dead ({_FROM}: raw, tan2026 normalised)"),
    "remap_one": Param(
        None, kind=float, help=f"curvature ~1 between hidden levels becomes this, 1.0: kept ({_FROM}: 1, tan2026 2)"
    ),
    "tie_break": Param(
        None, kind=str, choices=TIE_BREAKS, help=f"equal curvature: by position or fc_first ({_FROM}: position)"
    ),
}
SETTINGS = tuple(PRESETS["nngeo"])  # the preset-governed parameters


def _settings(p) -> dict:
    """The resolved curvature settings of a strategy's params (the preset's where None)."""
    given = {name: (FROM_PRESET if p.get(name) is None else p[name]) for name in SETTINGS}
    if given["conv_positions"] == 0:
        given["conv_positions"] = None
    s = preset_settings(p.get("preset") or "nngeo", **given)
    if s["conv_positions"] is not None:
        s["conv_positions"] = int(s["conv_positions"])
    for name in ("alpha", "dead_value", "remap_one"):
        s[name] = float(s[name])
    s["normalize_idleness"] = bool(s["normalize_idleness"])
    return s


def curvature_of(model, masks, data, settings, name: str) -> dict:
    dataset = data.require_dataset(name)
    p = settings.params
    s = _settings(p)  # settings are checked before the calibration set is drawn
    # calibrate on training inputs by default: the sweep measures accuracy on the test split
    inputs = calibration_set(model, dataset, k=int(p["calibration_k"]), split=p["calibration_split"])
    device = str(next(model.parameters()).device)
    key = _fingerprint(model, inputs, {"preset": p.get("preset") or "nngeo", "aggregate": p["aggregate"], **s}, device)
    scores = _SCORES.get(key)
    if scores is None and data.store is not None:
        scores = stored_scores(data.store, key, model)
    if scores is None:
        scores = curvature_scores(
            model,
            inputs,
            aggregate=p["aggregate"],
            **{k: v for k, v in s.items() if k != "tie_break"},
            device=device,
            progress=data.progress,
        )
    # kept in this sweep's store too when they came from memory (another store's sweep computed them)
    if data.store is not None and not data.store.exists(spec_hash(_scores_spec(key))):
        store_scores(data.store, key, scores, {"preset": p.get("preset") or "nngeo", **s}, weights_digest(model))
    if key not in _SCORES:
        _SCORES[key] = {n: s.detach().clone() for n, s in scores.items()}
        while len(_SCORES) > CACHE_SIZE:
            _SCORES.popitem(last=False)
    else:
        _SCORES.move_to_end(key)
    missing = [n for n in masks if n not in scores]
    if missing:
        raise NNGeoError(f"the curvature capability gave no scores for layer {missing[0]}")
    return {n: scores[n] for n in masks}


def _scores_spec(key: str) -> dict:
    return {"kind": SCORES_KIND, "fingerprint": key}


def weights_digest(model) -> str:
    """sha256 of a model's state (names and bytes): which stored model a score set belongs to."""
    h = hashlib.sha256()
    for name, v in model.state_dict().items():
        h.update(name.encode())
        h.update(v.detach().to("cpu").contiguous().numpy().tobytes())
    return h.hexdigest()


def store_scores(store, key: str, scores: dict, settings: dict, weights: str | None = None) -> str:
    """Keep per-weight scores in the store under the hash of their fingerprint (the model's
    weights, the calibration inputs, every setting, the device): one row per weight, ``layer``,
    ``index`` (flat in the weight), ``score``. Another sweep or process with the same fingerprint
    reads them instead of computing them again. ``weights`` (``weights_digest``) goes into the
    catalog row's attrs, so the scores can be matched with the model they were computed on."""
    layers = list(scores)
    flat = [scores[n].detach().to("cpu", torch.float32).reshape(-1).numpy() for n in layers]
    sizes = np.array([f.size for f in flat], dtype=np.int64)
    table = pa.table(
        {
            "layer": pa.DictionaryArray.from_arrays(
                pa.array(np.repeat(np.arange(len(layers), dtype=np.int32), sizes)), pa.array(layers)
            ),
            "index": pa.array(np.concatenate([np.arange(n, dtype=np.int64) for n in sizes])),
            "score": pa.array(np.concatenate(flat)),
        }
    )
    label = f"curvature scores ({settings.get('preset', 'nngeo')} preset)"
    return store.put(
        SCORES_KIND,
        _scores_spec(key),
        table,
        attrs={"method": SCORES_KIND, "label": label, "settings": settings, "weights": weights},
    )


def stored_scores(store, key: str, model) -> dict | None:
    """The scores ``store_scores`` kept for this fingerprint, shaped like ``model``'s weights; None
    when there are none, or when they do not fit the model (then they are computed again)."""
    result = spec_hash(_scores_spec(key))
    if not store.exists(result):
        return None
    table = store.get_arrow(result)
    layer = table.column("layer").combine_chunks()
    names = [str(n) for n in layer.dictionary.to_pylist()]
    codes = layer.indices.to_numpy(zero_copy_only=False)
    score = table.column("score").to_numpy()
    weights = {info.name: tuple(info.weight_shape) for info in prunable_layers(model)}
    out = {}
    starts = np.searchsorted(codes, np.arange(len(names) + 1))  # rows are written layer by layer
    for i, name in enumerate(names):
        values = score[starts[i] : starts[i + 1]]
        shape = weights.get(name)
        if shape is None or values.size != int(np.prod(shape)):
            return None
        out[name] = torch.from_numpy(values.copy()).reshape(shape)
    return out


def fc_first_ranks(model, scores: dict, descending: bool) -> dict:
    """Scores that rank the weights as the authors' one sorted list: curvature (``descending`` for
    ``curvature``), then dense edges before conv weights, then the layer (forward order), then the
    position within the layer in their order (dense: input unit, output unit; conv: input channel,
    tap row, tap column, output channel). Returns each weight's rank (0 pruned first) as float64,
    so ``select_masks`` prunes in exactly that order (every rank distinct: no ties left)."""
    kinds = {info.name: info.kind for info in prunable_layers(model)}
    names = list(scores)
    value, kind, order = [], [], []
    offset = 0
    for n in names:
        s = scores[n].detach().to("cpu", torch.float64)
        value.append(s.reshape(-1))
        is_dense = kinds.get(n, "dense") == "dense"
        kind.append(torch.full((s.numel(),), 0 if is_dense else 1, dtype=torch.int64))
        idx = torch.arange(s.numel(), dtype=torch.int64).reshape(s.shape)
        # the authors' position order: a permutation of the layer's weights, rank within the layer
        if s.ndim == 2:
            perm = idx.T.reshape(-1)
        elif s.ndim == 4:
            perm = idx.permute(1, 2, 3, 0).reshape(-1)
        else:
            perm = idx.reshape(-1)
        within = torch.empty_like(perm)
        within[perm] = torch.arange(perm.numel(), dtype=torch.int64)
        order.append(offset + within)
        offset += s.numel()
    v = torch.cat(value)
    primary = -v if descending else v
    # a stable sort by each key from the last to the first: lexicographic order, no Python loop
    perm = torch.argsort(torch.cat(order), stable=True)
    perm = perm[torch.argsort(torch.cat(kind)[perm], stable=True)]
    perm = perm[torch.argsort(primary[perm], stable=True)]
    rank = torch.empty_like(perm)
    rank[perm] = torch.arange(perm.numel(), dtype=torch.int64)
    out, start = {}, 0
    for n in names:
        size = scores[n].numel()
        out[n] = rank[start : start + size].to(torch.float64).reshape(scores[n].shape)
        start += size
    return out


def _ranking(model, scores: dict, settings, highest_first: bool) -> dict:
    """What ``select_masks`` gets (it prunes the lowest first)."""
    if _settings(settings.params)["tie_break"] == "fc_first":
        return fc_first_ranks(model, scores, descending=highest_first)
    return {n: -s for n, s in scores.items()} if highest_first else scores


def _fingerprint(model, inputs, params: dict, device: str) -> str:
    h = hashlib.sha256(json.dumps([params, device], sort_keys=True).encode())
    for name, v in model.state_dict().items():
        h.update(name.encode())
        h.update(v.detach().to("cpu").contiguous().numpy().tobytes())
    h.update(inputs.detach().to("cpu").contiguous().numpy().tobytes())
    return h.hexdigest()  # changing this renames every stored score set: they are then computed again


@register_strategy(
    "curvature",
    description="Prune the weights of highest neural curvature first (calibration inputs from the training set).",
    params=CURVATURE_PARAMS,
    needs_data=True,
)
def curvature(model, masks, data, settings) -> PruneResult:
    scores = curvature_of(model, masks, data, settings, "curvature")
    # select_masks prunes the lowest scores, so negate (or rank): the highest curvature goes first
    ranked = _ranking(model, scores, settings, highest_first=True)
    return PruneResult(select_masks(ranked, masks, settings.sparsity, settings.scope, strategy="curvature"))


@register_strategy(
    "curvature_neg",
    description="Ablation of curvature: prune the weights of lowest neural curvature first.",
    params=CURVATURE_PARAMS,
    needs_data=True,
)
def curvature_neg(model, masks, data, settings) -> PruneResult:
    scores = curvature_of(model, masks, data, settings, "curvature_neg")
    ranked = _ranking(model, scores, settings, highest_first=False)
    return PruneResult(select_masks(ranked, masks, settings.sparsity, settings.scope, strategy="curvature_neg"))
