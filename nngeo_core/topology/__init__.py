"""Zeroth-order topology of network weights.

* Neural persistence (Rieck et al., ICLR 2019): each layer is a weighted bipartite graph, its
  super-level-set filtration on ``w' = |w| / w_max`` gives a 0-dim persistence diagram whose points
  are the maximum-spanning-tree edges; NP is the diagram's p-norm.
* Topologically critical compression ``eta_tau = |W| / |MST|``, MST masks and the MST / top-alpha
  overlap of Balwani & Krzyston (2022).
* Diagram distances (gudhi) between two models, NP over training.

The analyses the ``analyse`` job kind runs are declared in ``analyses.py`` (the registry,
``nngeo_core.analyses``, imports them).

Conventions are documented in ``diagrams.py`` (normalisation, essential classes, zero weights),
``graphs.py`` (conv graphs, algorithm), ``compression.py`` and ``overlap.py`` (bounds).
"""

from __future__ import annotations

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
