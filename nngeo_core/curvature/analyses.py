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
big networks, where every edge of every layer would take hours on a CPU. ``preset`` ("nngeo" or
"tan2026", ``neural.PRESETS``) fills every curvature setting left at None; a setting given
explicitly wins (``conv_positions=0``: every output position).

``curvature_weights`` also takes ``null_models`` / ``null_seeds`` (``models.nulls.NULL_PARAMS``):
when null models are named, the edge table stacks the network's own edges (``model = "trained"``)
and each null kind × seed's (``model`` = the kind, ``seed``), each computed from scratch; without
them the table is what it always was (no ``model`` / ``seed`` columns).
"""

from __future__ import annotations

import pandas as pd

from ..analysis_base import register_analysis
from ..errors import NNGeoError
from ..models.layers import analysis_layers
from ..models.nulls import NULL_PARAMS, null_normalizer, null_rows
from ..params import Param, defaults_of
from .measures import DEAD_RULES, MASS_RULES
from .neural import FROM_PRESET, PRESETS, neural_curvature, weight_only_curvature
from .scores import calibration_set

METHODS = ("sinkhorn", "exact")
_FROM = "default: the preset's"
NC_PARAMS = {
    "preset": Param(
        "nngeo", choices=tuple(PRESETS), help="nngeo's settings, or tan2026: the authors' code rule by rule"
    ),
    "alpha": Param(None, kind=float, low=0.0, high=1.0, help=f"idleness ({_FROM}: nngeo 0.5, tan2026 0.9)"),
    "method": Param(None, kind=str, choices=METHODS, help=f"transport ({_FROM}: nngeo sinkhorn, tan2026 exact)"),
    "aggregate": Param("min", choices=("min", "mean")),
    "k_per_class": Param(1, low=1),
    "normalize_idleness": Param(None, kind=bool, help=f"divide by 1 - alpha ({_FROM}: true in both)"),
    "dead_value": Param(None, kind=float, help=f"curvature of an edge at a dead neuron ({_FROM}: 1.0 in both)"),
    "conv_positions": Param(
        None, kind=int, low=0, help=f"output positions per conv layer, 0: every one ({_FROM}: nngeo 4, tan2026 0)"
    ),
    "masses": Param(
        None, kind=str, choices=MASS_RULES, help=f"neighbour mass rule ({_FROM}: nngeo stable, tan2026 float32)"
    ),
    "dead_rule": Param(
        None, kind=str, choices=DEAD_RULES, help=f"what is dead ({_FROM}: nngeo raw, tan2026 normalised)"
    ),
    "remap_one": Param(
        None,
        kind=float,
        help=f"curvature ~1 between hidden levels becomes this, 1.0: kept ({_FROM}: nngeo 1, tan2026 2)",
    ),
    "layers": Param(None, kind=str, help="comma-separated weight layers to compute (default: all)"),
}
WEIGHT_PARAMS = {
    "alpha": Param(0.5, low=0.0, high=1.0),
    "method": Param("sinkhorn", choices=METHODS),
    "normalize_idleness": False,
    "conv_positions": Param(4, low=1),
    "layers": Param(None, kind=str, help="comma-separated weight layers to compute (default: all)"),
    **NULL_PARAMS,
}


def preset_params(p: dict) -> dict:
    """The preset-governed settings of a resolved parameter dict as ``neural_curvature`` keywords:
    None leaves the preset's value, ``conv_positions=0`` asks for every position."""
    out = {name: (FROM_PRESET if p[name] is None else p[name]) for name in PRESETS["nngeo"] if name in p}
    if out.get("conv_positions") == 0:
        out["conv_positions"] = None
    elif out.get("conv_positions") is not FROM_PRESET and "conv_positions" in out:
        out["conv_positions"] = int(out["conv_positions"])
    for name in ("alpha", "dead_value", "remap_one"):
        if name in out and out[name] is not FROM_PRESET:
            out[name] = float(out[name])
    return out


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
        preset=p["preset"],
        aggregate=p["aggregate"],
        layers=p["layers"],
        progress=progress,
        **preset_params(p),
    )
    return _with_skipped(model, table)


@register_analysis(
    "curvature_weights",
    needs_data=False,
    params=WEIGHT_PARAMS,
    normalize=null_normalizer,
    columns=("layer", "src", "dst", "weight", "curvature", "alive"),
    description="Ollivier-Ricci curvature of every edge of the layer graph from the weights alone (lengths 1/|w|).",
)
def curvature_weights_analysis(model, dataset, params, progress):
    p = _params(params, WEIGHT_PARAMS, "curvature_weights")

    def compute(net, pr):
        table = weight_only_curvature(
            net,
            alpha=float(p["alpha"]),
            method=p["method"],
            normalize_idleness=bool(p["normalize_idleness"]),
            conv_positions=None if p["conv_positions"] is None else int(p["conv_positions"]),
            layers=p["layers"],
            progress=pr,
        )
        return _with_skipped(net, table)

    return null_rows(model, compute, {k: p[k] for k in NULL_PARAMS}, progress)
