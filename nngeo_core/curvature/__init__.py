"""Ollivier-Ricci curvature of graphs and neural networks.

- ``ollivier_ricci(G, ...)``: any networkx Graph/DiGraph, GraphRicciCurvature's conventions,
  exact (network simplex), batched entropic ("sinkhorn") or GraphRicciCurvature itself;
  ``dense_layer_graph(w)`` one dense layer as such a graph (lengths 1/|w|).
- ``neural_curvature(model, inputs, ...)``: neural curvature of every edge of a network's layer
  graph on calibration inputs (Tan, Sia, Bogdan, Ivanov, arXiv 2601.16366); ``weight_only_curvature``
  the data-free variant; ``curvature_scores`` the per-weight scores pruning consumes;
  ``node_curvature`` the mean over each neuron's edges; ``calibration_set`` the inputs.

Analyses registered: ``curvature`` (per-edge neural curvature on the dataset's test split) and
``curvature_weights`` (weight-only, no data).
"""

from __future__ import annotations

from ..analyses import register_analysis
from ..errors import NNGeoError
from .levels import edge_levels
from .neural import (
    calibration_set,
    curvature_scores,
    neural_curvature,
    node_curvature,
    scores_from_table,
    weight_only_curvature,
)
from .orc import dense_layer_graph, ollivier_ricci

__all__ = [
    "ollivier_ricci",
    "dense_layer_graph",
    "neural_curvature",
    "weight_only_curvature",
    "curvature_scores",
    "node_curvature",
    "edge_levels",
    "calibration_set",
    "scores_from_table",
]

_NC_PARAMS = {
    "alpha": 0.5,
    "method": "sinkhorn",
    "aggregate": "min",
    "k_per_class": 1,
    "normalize_idleness": True,
    "dead_value": 1.0,
    "conv_positions": 4,
}
_WEIGHT_PARAMS = {"alpha": 0.5, "method": "sinkhorn", "normalize_idleness": False, "conv_positions": 4}


def _params(given: dict | None, defaults: dict, analysis: str) -> dict:
    given = dict(given or {})
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        raise NNGeoError(f"analysis {analysis} has no parameter {unknown[0]!r}; known: {', '.join(defaults)}")
    return {**defaults, **given}


@register_analysis(
    "curvature",
    needs_data=True,
    description="Neural curvature of every edge on correctly classified test inputs "
    "(k per class); negative edges are bottlenecks, positive ones redundant.",
)
def curvature_analysis(model, dataset, params, progress):
    p = _params(params, _NC_PARAMS, "curvature")
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
    description="Ollivier-Ricci curvature of every edge of the layer graph from the weights alone (lengths 1/|w|).",
)
def curvature_weights_analysis(model, dataset, params, progress):
    p = _params(params, _WEIGHT_PARAMS, "curvature_weights")
    return weight_only_curvature(
        model,
        alpha=float(p["alpha"]),
        method=p["method"],
        normalize_idleness=bool(p["normalize_idleness"]),
        conv_positions=None if p["conv_positions"] is None else int(p["conv_positions"]),
        progress=progress,
    )
