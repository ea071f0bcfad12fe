"""Zeroth-order topology of network weights.

* Neural persistence (Rieck et al., ICLR 2019): each layer is a weighted bipartite graph, its
  super-level-set filtration on ``w' = |w| / w_max`` gives a 0-dim persistence diagram whose points
  are the maximum-spanning-tree edges; NP is the diagram's p-norm.
* Topologically critical compression ``eta_tau = |W| / |MST|``, MST masks and the MST / top-alpha
  overlap of Balwani & Krzyston (2022).
* Diagram distances (gudhi) between two models, NP over training.

Conventions are documented in ``diagrams.py`` (normalisation, essential classes, zero weights),
``graphs.py`` (conv graphs, algorithm), ``compression.py`` and ``overlap.py`` (bounds).
"""

from __future__ import annotations

from ..analyses import register_analysis
from ..errors import NNGeoError
from .compression import (
    critical_compression,
    critical_ratio_conv,
    critical_ratio_dense,
    critical_ratio_recurrent,
    mst_mask,
    mst_mask_from_weight,
)
from .diagrams import diagram_norm, persistence_diagram
from .distances import diagram_distances
from .overlap import mst_overlap, overlap_lower_bound
from .persistence import network_persistence, neural_persistence, np_over_training, persistence_diagrams

__all__ = [
    "persistence_diagram",
    "persistence_diagrams",
    "neural_persistence",
    "network_persistence",
    "diagram_norm",
    "critical_compression",
    "critical_ratio_dense",
    "critical_ratio_recurrent",
    "critical_ratio_conv",
    "mst_mask",
    "mst_mask_from_weight",
    "mst_overlap",
    "overlap_lower_bound",
    "diagram_distances",
    "np_over_training",
]


def _params(method: str, params: dict | None, allowed: tuple[str, ...]) -> dict:
    params = dict(params or {})
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise NNGeoError(f"analysis {method!r} has no parameter {unknown[0]!r}; its parameters: {', '.join(allowed)}")
    if params.get("input_shape") is not None:
        params["input_shape"] = tuple(params["input_shape"])
    return params


@register_analysis(
    "persistence",
    description="Neural persistence per layer (Rieck et al. 2019): p-norm of each layer's 0-dim persistence diagram.",
)
def _persistence_analysis(model, dataset, params, progress):
    params = _params("persistence", params, ("p", "normalize", "essential", "conv", "zeros", "input_shape"))
    return neural_persistence(model, progress=progress, **params)


@register_analysis(
    "persistence_diagrams",
    description="Every layer's 0-dim persistence diagram as a long "
    "table (layer, birth, death), for diagram and barcode plots.",
)
def _persistence_diagrams_analysis(model, dataset, params, progress):
    params = _params("persistence_diagrams", params, ("normalize", "essential", "conv", "zeros", "input_shape"))
    if progress is not None:
        progress.check()
    return persistence_diagrams(model, **params)


@register_analysis(
    "critical_compression",
    description="Topologically critical compression ratio "
    "|W| / |MST| per layer and for the model (Balwani & Krzyston 2022).",
)
def _critical_compression_analysis(model, dataset, params, progress):
    params = _params("critical_compression", params, ("conv", "input_shape"))
    if progress is not None:
        progress.check()
    return critical_compression(model, params.pop("input_shape", None), **params)


@register_analysis(
    "mst_overlap",
    description="Fraction of each layer's maximum spanning tree among its "
    "largest weights, with a lower bound and the random-chance value.",
)
def _mst_overlap_analysis(model, dataset, params, progress):
    params = _params("mst_overlap", params, ("conv", "input_shape"))
    if progress is not None:
        progress.check()
    return mst_overlap(model, **params)
