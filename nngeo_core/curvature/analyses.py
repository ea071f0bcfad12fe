"""The curvature analyses for the analysis registry (``nngeo_core.analyses``): ``curvature``
(per-edge neural curvature on correctly classified test inputs) and ``curvature_weights``
(weight-only, no data).

Both run on a copy of the model whose batch norms are folded into the convs they follow
(``models.layers.fold_batchnorm``, the convention of every weight-based analysis), on the neuron
DAG of one traced forward pass (``trace``): pooling, skip connections, subsampling, padding and
concatenation are edges, so every weight layer has neighbours on both sides. A ``note`` column
says per layer what was folded and what the graph could not draw next to it (an op named with its
module), and every module with weights that has no layer graph (attention, Conv1d, a batch norm
that cannot be folded, ...) gets one row with ``kind = "skipped"``, NaN values and its reason.
``layers`` (comma-separated names) computes only those layers' edges, on the whole graph: for
big networks, where every edge of every layer would take hours on a CPU.
"""

from __future__ import annotations

import pandas as pd

from ..analysis_base import register_analysis
from ..errors import NNGeoError
from ..models.layers import analysis_layers
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
    "layers": Param(None, kind=str, help="comma-separated weight layers to compute (default: all)"),
}
WEIGHT_PARAMS = {
    "alpha": Param(0.5, low=0.0, high=1.0),
    "method": Param("sinkhorn", choices=METHODS),
    "normalize_idleness": False,
    "conv_positions": Param(4, low=1),
    "layers": Param(None, kind=str, help="comma-separated weight layers to compute (default: all)"),
}


def _with_skipped(model, table: pd.DataFrame) -> pd.DataFrame:
    """The table plus one ``kind = "skipped"`` row per module with weights but no layer graph."""
    skipped = analysis_layers(model).skipped
    if not skipped:
        return table
    extra = pd.DataFrame([{"layer": s.name, "kind": "skipped", "note": s.reason} for s in skipped])
    return pd.concat([table, extra], ignore_index=True)


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
    if dataset is None:
        raise NNGeoError("the curvature analysis needs a dataset for its calibration inputs")
    progress.update(0.0, "calibration inputs")
    inputs = calibration_set(model, dataset, k=int(p["k_per_class"]))
    table = neural_curvature(
        model,
        inputs,
        alpha=float(p["alpha"]),
        method=p["method"],
        aggregate=p["aggregate"],
        normalize_idleness=bool(p["normalize_idleness"]),
        dead_value=float(p["dead_value"]),
        conv_positions=None if p["conv_positions"] is None else int(p["conv_positions"]),
        layers=p["layers"],
        progress=progress,
    )
    return _with_skipped(model, table)


@register_analysis(
    "curvature_weights",
    needs_data=False,
    params=WEIGHT_PARAMS,
    columns=("layer", "src", "dst", "weight", "curvature", "alive"),
    description="Ollivier-Ricci curvature of every edge of the layer graph from the weights alone (lengths 1/|w|).",
)
def curvature_weights_analysis(model, dataset, params, progress):
    p = _params(params, WEIGHT_PARAMS, "curvature_weights")
    table = weight_only_curvature(
        model,
        alpha=float(p["alpha"]),
        method=p["method"],
        normalize_idleness=bool(p["normalize_idleness"]),
        conv_positions=None if p["conv_positions"] is None else int(p["conv_positions"]),
        layers=p["layers"],
        progress=progress,
    )
    return _with_skipped(model, table)
