"""Riemannian geometry of networks.

Input space (Zavatone-Veth, Yang, Rubinfien, Pehlevan, arXiv 2301.11375): the pullback metric
g(x) = J(x)ᵀJ(x)/n of a hidden layer's features, its volume element and Ricci scalar, on grids
(2-D inputs), planes and lines through inputs (images), and over training.

Weight space (Raghavan & Thomson, arXiv 2012.09605): the functional metric g_w = J_wᵀJ_w and
geodesic paths to sparse networks and between tasks (the pruning lab's ``geodesic`` strategy,
``pruning.strategies.geodesic``, walks them).

Modules, each importing only those above it in this list:
``chunking``, ``activations``, ``model_copy``, ``points``, ``checks`` (no geometry imports);
``jets`` (Taylor jets of MLPs); ``features`` (feature maps Φ); ``predictions``; ``pullback``
(J, volume element); ``ricci``; ``heatmaps`` (2-D grids); ``image_plane`` (planes and lines
through images); ``weight_space`` (functional metric, one step); ``geodesic`` (the paths);
``analyses`` (the registered analyses).

The ``volume``, ``geodesic`` and ``forgetting`` analyses live in ``geometry.analyses``, which the
analysis registry (``nngeo_core.analyses``) imports; this package does not import it.
"""

from .features import FeatureMap, count_hidden_layers, feature_map
from .geodesic import PathResult, forgetting_path, sparsify_path
from .heatmaps import grid_heatmap, heatmaps_over_training
from .image_plane import image_line, image_plane, plane_frame
from .pullback import log_volume_of_features, plane_volume_element, volume_element
from .ricci import CONVENTIONS, pullback_metric, ricci_from_derivatives, ricci_scalar, ricci_scalar_of_metric
from .weight_space import ParamSpace, StepResult, functional_jacobian, solve_step

__all__ = [
    "CONVENTIONS",
    "FeatureMap",
    "ParamSpace",
    "PathResult",
    "StepResult",
    "count_hidden_layers",
    "feature_map",
    "forgetting_path",
    "functional_jacobian",
    "grid_heatmap",
    "heatmaps_over_training",
    "image_line",
    "image_plane",
    "log_volume_of_features",
    "plane_frame",
    "plane_volume_element",
    "pullback_metric",
    "ricci_from_derivatives",
    "ricci_scalar",
    "ricci_scalar_of_metric",
    "solve_step",
    "sparsify_path",
    "volume_element",
]
