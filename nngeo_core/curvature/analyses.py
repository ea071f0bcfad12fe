"""The curvature analyses for the analysis registry (``nngeo_core.analyses``): ``curvature``
(per-edge neural curvature on correctly classified test inputs) and ``curvature_weights``
(weight-only, no data).

``curvature_weights`` runs on a copy of the model whose batch norms are folded into the convs they
follow (``models.layers.fold_batchnorm``, the convention of every weight-based analysis); a
``note`` column names the folded batch norm per layer, and every module with weights that has no
layer graph (attention, Conv1d, a batch norm that cannot be folded, ...) gets one row with
``kind = "skipped"``, NaN values and its reason in ``note``. Skip connections are not edges of the
layer graph (``layer_graph``): a layer's inputs are linked to the previous layer's outputs only
when their sizes match, so across a residual block the chain is cut or joined by size alone.
"""

from __future__ import annotations

import pandas as pd

from ..analysis_base import register_analysis
from ..errors import NNGeoError
from ..models import TORCHVISION
from ..models.layers import fold_batchnorm, residual_additions
from ..params import Param, defaults_of
from .neural import neural_curvature, weight_only_curvature
from .scores import calibration_set

METHODS = ("sinkhorn", "exact")
NC_PARAMS = {
    "alpha": Param(0.5, low=0.0, high=1.0),
    "method": Param("sinkhorn", choices=METHODS),
    "aggregate": Param("min", choices=("min", "mean")),
    "k_per_class": Param(1, low=1),
    "normalize_idleness": True,
    "dead_value": 1.0,
    "conv_positions": Param(4, low=1),  # None: every output position
}
WEIGHT_PARAMS = {
    "alpha": Param(0.5, low=0.0, high=1.0),
    "method": Param("sinkhorn", choices=METHODS),
    "normalize_idleness": False,
    "conv_positions": Param(4, low=1),
}


def refuse_unmodelled(model, analysis: str) -> None:
    """Refuse, before any heavy work, a network whose skip connections the layer graph cannot
    represent: a torchvision (or any non-zoo) network with residual additions. The zoo's own
    residual nets (resnet20) keep the documented size-linked chain convention."""
    zoo = getattr(model, "zoo_name", None)
    if zoo is not None and zoo != TORCHVISION:
        return
    skips = residual_additions(model)
    if skips:
        arch = getattr(model, "zoo_params", {}).get("arch") or type(model).__name__
        raise NNGeoError(
            f"{analysis} does not model residual connections yet: {arch} adds {skips} skip "
            f"connection{'s' if skips != 1 else ''}; analyse an MLP/CNN without skips, or use "
            "persistence / critical_compression / mst_overlap"
        )


def _params(given: dict | None, defaults: dict, analysis: str) -> dict:
    given = dict(given or {})
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        raise NNGeoError(f"analysis {analysis} has no parameter {unknown[0]!r}; known: {', '.join(defaults)}")
    return {**defaults_of(defaults), **given}


@register_analysis(
    "curvature",
    needs_data=True,
    params=NC_PARAMS,
    columns=("layer", "src", "dst", "weight", "curvature", "alive"),
    description="Neural curvature of every edge on correctly classified test inputs "
    "(k per class); negative edges are bottlenecks, positive ones redundant.",
)
def curvature_analysis(model, dataset, params, progress):
    p = _params(params, NC_PARAMS, "curvature")
    refuse_unmodelled(model, "neural curvature")
    if dataset is None:
        raise NNGeoError("the curvature analysis needs a dataset for its calibration inputs")
    progress.update(0.0, "calibration inputs")
    inputs = calibration_set(model, dataset, k=int(p["k_per_class"]))
    return neural_curvature(
        model,
        inputs,
        alpha=float(p["alpha"]),
        method=p["method"],
        aggregate=p["aggregate"],
        normalize_idleness=bool(p["normalize_idleness"]),
        dead_value=float(p["dead_value"]),
        conv_positions=None if p["conv_positions"] is None else int(p["conv_positions"]),
        progress=progress,
    )


@register_analysis(
    "curvature_weights",
    needs_data=False,
    params=WEIGHT_PARAMS,
    columns=("layer", "src", "dst", "weight", "curvature", "alive"),
    description="Ollivier-Ricci curvature of every edge of the layer graph from the weights alone (lengths 1/|w|).",
)
def curvature_weights_analysis(model, dataset, params, progress):
    p = _params(params, WEIGHT_PARAMS, "curvature_weights")
    refuse_unmodelled(model, "weight curvature")
    folded, plan = fold_batchnorm(model)
    table = weight_only_curvature(
        folded,
        alpha=float(p["alpha"]),
        method=p["method"],
        normalize_idleness=bool(p["normalize_idleness"]),
        conv_positions=None if p["conv_positions"] is None else int(p["conv_positions"]),
        progress=progress,
    )
    table["note"] = table["layer"].map(plan.notes).fillna("")
    if plan.skipped:
        extra = pd.DataFrame([{"layer": s.name, "kind": "skipped", "note": s.reason} for s in plan.skipped])
        table = pd.concat([table, extra], ignore_index=True)
    return table
