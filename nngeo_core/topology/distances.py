"""Distances between the persistence diagrams of the same layer in two models (e.g. before and
after pruning), computed with gudhi.

* ``bottleneck``: ``gudhi.bottleneck_distance`` (exact up to the last bits of the mantissa).
* ``wasserstein``: ``gudhi.wasserstein.wasserstein_distance`` (POT, exact optimal transport) with
  ``order`` and ``internal_p``. Its cost matrix is quadratic in the number of points, so diagrams
  with more than ``exact_limit`` points (exact Toeplitz conv layers have tens of thousands) use
  ``gudhi.hera.wasserstein_distance`` with relative error ``delta`` instead; the
  ``wasserstein_method`` column says which.

Diagrams are passed to gudhi as ``(1 - birth, 1 - death) = (0, 1 - w')`` (its sub-level
convention); that reflection is an isometry fixing the diagonal, so distances are unchanged.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from torch import nn

from ..errors import NNGeoError
from .persistence import layer_topologies


def diagram_distances(model_a: nn.Module, model_b: nn.Module, *, normalize: str = "layer",
                      essential: bool = False, conv: str = "toeplitz", zeros: str = "absent",
                      input_shape=None, order: float = 1.0, internal_p: float = np.inf,
                      exact_limit: int = 2000, delta: float = 0.01) -> pd.DataFrame:
    """Bottleneck and Wasserstein distance between each layer's diagrams in two models.

    Layers are matched by name and must have the same weight shape. Each model is normalised on
    its own (``normalize`` as in ``neural_persistence``). Columns: ``layer``, ``bottleneck``,
    ``wasserstein``, ``wasserstein_method`` ("pot" exact, or "hera" within a factor ``1 + delta``),
    ``n_points_a``, ``n_points_b``.
    """
    import gudhi
    import gudhi.hera
    import gudhi.wasserstein

    options = dict(normalize=normalize, conv=conv, zeros=zeros, input_shape=input_shape)
    tops_a = layer_topologies(model_a, **options)
    tops_b = layer_topologies(model_b, **options)
    by_name = {lt.graph.name: lt for lt in tops_b}
    rows = []
    for lt_a in tops_a:
        name = lt_a.graph.name
        lt_b = by_name.get(name)
        if lt_b is None or lt_b.graph.weight_shape != lt_a.graph.weight_shape:
            raise NNGeoError(f"layer {name!r} is missing or has another shape in the second model; "
                             "compare two models of the same architecture")
        # gudhi expects death >= birth: use the sub-level picture (1 - birth, 1 - death); the map
        # x -> 1 - x is an isometry that keeps the diagonal, so the distances are the same
        da, db = 1.0 - lt_a.points(bool(essential)), 1.0 - lt_b.points(bool(essential))
        bottleneck = float(gudhi.bottleneck_distance(da, db))
        if max(len(da), len(db)) <= exact_limit:
            wass = float(gudhi.wasserstein.wasserstein_distance(da, db, order=order, internal_p=internal_p))
            method = "pot"
        else:
            wass = float(gudhi.hera.wasserstein_distance(da, db, order=order, internal_p=internal_p,
                                                         delta=delta))
            method = "hera"
        rows.append({"layer": name, "bottleneck": bottleneck, "wasserstein": wass,
                     "wasserstein_method": method, "n_points_a": len(da), "n_points_b": len(db)})
    if len(rows) != len(tops_b):
        raise NNGeoError("the two models have different layers; compare two models of the same architecture")
    return pd.DataFrame(rows)
