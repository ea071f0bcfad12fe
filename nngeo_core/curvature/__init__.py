"""Ollivier-Ricci curvature of graphs and neural networks.

- ``ollivier_ricci(G, ...)``: any networkx Graph/DiGraph, GraphRicciCurvature's conventions,
  exact (network simplex), batched entropic ("sinkhorn") or GraphRicciCurvature itself;
  ``dense_layer_graph(w)`` one dense layer as such a graph (lengths 1/|w|).
- ``neural_curvature(model, inputs, ...)``: neural curvature of every edge of a network's layer
  graph on calibration inputs (Tan, Sia, Bogdan, Ivanov, arXiv 2601.16366); ``weight_only_curvature``
  the data-free variant; ``curvature_scores`` the per-weight scores pruning consumes;
  ``node_curvature`` the mean over each neuron's edges; ``calibration_set`` the inputs.

Layout: ``orc`` (any graph) and ``transport`` (batched W1 solvers); ``layer_graph`` (a network as a
layered neuron graph), ``edge_groups`` (edges sharing neighbourhoods, their shortest-path costs),
``measures`` (neighbour measures from activations or lengths), ``neural`` (the curvature itself),
``scores`` (per-weight scores and calibration inputs) and ``levels`` (node levels and node
curvature of a curvature table, numpy/pandas only).

Analyses (declared in ``analyses.py``, which the registry ``nngeo_core.analyses`` imports):
``curvature`` (per-edge neural curvature on the dataset's test split) and ``curvature_weights``
(weight-only, no data).
"""

from __future__ import annotations

from .levels import edge_levels, node_curvature
from .neural import neural_curvature, weight_only_curvature
from .orc import dense_layer_graph, ollivier_ricci
from .scores import calibration_set, curvature_scores, scores_from_table

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
