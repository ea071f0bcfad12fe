"""``curvature`` and ``curvature_neg``: rank weights by neural curvature (from the curvature
capability, ``nngeo_core.curvature.curvature_scores``) on a calibration set.

``curvature`` prunes the highest-curvature weights first (positive curvature marks redundant
weights); ``curvature_neg`` prunes the lowest first (the ablation). Calibration inputs: ``k``
correctly classified training inputs per class (``calibration_split="test"`` for the paper's
held-out choice, which then also serves as the evaluation set). Post-training, as in the
neural-curvature paper's protocol; fine-tuning is the sweep's setting.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict

from ...curvature import calibration_set, curvature_scores
from ...curvature.neural import AGGREGATES, NC_METHODS
from ...errors import NNGeoError
from ...params import Param
from .base import CACHE_CLEARERS, PruneResult, register_strategy, select_masks

# curvature is expensive and the same for every level pruned from one model: keep the last few
# score sets, keyed by a hash of the weights, calibration inputs and settings (a pure memo)
_SCORES: OrderedDict[str, dict] = OrderedDict()
CACHE_SIZE = 4
CACHE_CLEARERS.append(_SCORES.clear)

CURVATURE_PARAMS = {
    "calibration_k": Param(1, low=1, help="correctly classified calibration inputs per class"),
    "calibration_split": Param("train", choices=("train", "test")),
    "alpha": Param(0.5, low=0.0, high=1.0, help="idleness: the mass a neuron keeps on itself"),
    "method": Param("sinkhorn", choices=NC_METHODS),
    "aggregate": Param("min", choices=AGGREGATES, help="over calibration inputs"),
}


def curvature_of(model, masks, data, settings, name: str) -> dict:
    dataset = data.require_dataset(name)
    p = settings.params
    # calibrate on training inputs by default: the sweep measures accuracy on the test split
    inputs = calibration_set(model, dataset, k=int(p["calibration_k"]), split=p["calibration_split"])
    device = str(next(model.parameters()).device)
    key = _fingerprint(model, inputs, {k: p[k] for k in ("alpha", "method", "aggregate")}, device)
    scores = _SCORES.get(key)
    if scores is None:
        scores = curvature_scores(
            model,
            inputs,
            alpha=p["alpha"],
            method=p["method"],
            aggregate=p["aggregate"],
            device=device,
            progress=data.progress,
        )
        _SCORES[key] = {n: s.detach().clone() for n, s in scores.items()}
        while len(_SCORES) > CACHE_SIZE:
            _SCORES.popitem(last=False)
    else:
        _SCORES.move_to_end(key)
    missing = [n for n in masks if n not in scores]
    if missing:
        raise NNGeoError(f"the curvature capability gave no scores for layer {missing[0]}")
    return {n: scores[n] for n in masks}


def _fingerprint(model, inputs, params: dict, device: str) -> str:
    h = hashlib.sha256(json.dumps([params, device], sort_keys=True).encode())
    for name, v in model.state_dict().items():
        h.update(name.encode())
        h.update(v.detach().to("cpu").contiguous().numpy().tobytes())
    h.update(inputs.detach().to("cpu").contiguous().numpy().tobytes())
    return h.hexdigest()


@register_strategy(
    "curvature",
    description="Prune the weights of highest neural curvature first (calibration inputs from the training set).",
    params=CURVATURE_PARAMS,
    needs_data=True,
)
def curvature(model, masks, data, settings) -> PruneResult:
    scores = curvature_of(model, masks, data, settings, "curvature")
    # select_masks prunes the lowest scores, so negate: the highest curvature goes first
    return PruneResult(
        select_masks({n: -s for n, s in scores.items()}, masks, settings.sparsity, settings.scope, strategy="curvature")
    )


@register_strategy(
    "curvature_neg",
    description="Ablation of curvature: prune the weights of lowest neural curvature first.",
    params=CURVATURE_PARAMS,
    needs_data=True,
)
def curvature_neg(model, masks, data, settings) -> PruneResult:
    scores = curvature_of(model, masks, data, settings, "curvature_neg")
    return PruneResult(select_masks(scores, masks, settings.sparsity, settings.scope, strategy="curvature_neg"))
