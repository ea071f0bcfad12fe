"""Riemannian geometry of networks.

Input space (Zavatone-Veth, Yang, Rubinfien, Pehlevan, arXiv 2301.11375): the pullback metric
g(x) = J(x)ᵀJ(x)/n of a hidden layer's features, its volume element and Ricci scalar, on grids
(2-D inputs), planes and lines through inputs (images), and over training.

Weight space (Raghavan & Thomson, arXiv 2012.09605): the functional metric g_w = J_wᵀJ_w and
geodesic paths to sparse networks and between tasks.

Importing this package registers the ``volume``, ``geodesic`` and ``forgetting`` analyses.
"""

from . import analyses as _analyses  # noqa: F401  (registers "volume", "geodesic" and "forgetting")
from .features import FeatureMap, count_hidden_layers, feature_map
from .geodesic import forgetting_path, geodesic_masks, geodesic_prune, magnitude_prune, sparsify_path
from .image_plane import image_line, image_plane, plane_frame
from .pullback import grid_heatmap, heatmaps_over_training, log_volume_of_features, volume_element
from .ricci import CONVENTIONS, pullback_metric, ricci_from_derivatives, ricci_scalar, ricci_scalar_of_metric
from .weight_space import ParamSpace, StepResult, functional_jacobian, solve_step

__all__ = [
    "CONVENTIONS",
    "FeatureMap",
    "ParamSpace",
    "StepResult",
    "count_hidden_layers",
    "feature_map",
    "forgetting_path",
    "functional_jacobian",
    "geodesic_masks",
    "geodesic_prune",
    "grid_heatmap",
    "heatmaps_over_training",
    "image_line",
    "image_plane",
    "log_volume_of_features",
    "magnitude_prune",
    "plane_frame",
    "pullback_metric",
    "ricci_from_derivatives",
    "ricci_scalar",
    "ricci_scalar_of_metric",
    "solve_step",
    "sparsify_path",
    "volume_element",
]
