"""0-dimensional persistence diagrams of layer graphs (Rieck et al., "Neural Persistence", 2019).

Conventions (stated once, used by every function in ``nngeo_core.topology``):

* Weights become ``w' = |w| / w_max`` in [0, 1]. ``w_max`` is the layer's own largest ``|w|``
  (``normalize="layer"``) or the whole network's (``normalize="network"``, Rieck's choice).
  An all-zero layer (``w_max = 0``) gets ``w' = 0`` everywhere.
* Super-level-set filtration on edges, strongest first: every vertex is born at 1, an edge enters at
  ``w'``. An edge that merges two components kills one at ``w'``, giving the point ``(1, w')``;
  these are exactly the maximum-spanning-forest edges. Points with zero persistence (``w' = 1``)
  are dropped, as gudhi drops them.
* Essential classes: a component never dies. ``essential=False`` leaves them out (NP then only sums
  the finite points). ``essential=True`` adds one point ``(1, 0)`` per connected component, i.e. +1
  to the sum of squares per component; for a connected layer this is exactly Rieck's code, which
  adds the single point ``(1, 0)``.
* Exactly-zero weights (pruned edges): ``zeros="absent"`` (default) treats them as missing edges,
  so a pruned layer's graph may fall apart and its diagram has fewer finite points (and, with
  ``essential=True``, one ``(1, 0)`` per component). ``zeros="edge"`` keeps them as edges of weight
  ``w' = 0``, as Rieck's code would on a pruned net: each one Kruskal needs gives ``(1, 0)`` with the
  largest possible persistence 1 (not zero, so they are not dropped).
* Equivalence with gudhi: a ``SimplexTree`` with vertices at filtration 0 and each present edge at
  ``1 - w'`` has the sub-level diagram ``{(0, 1 - w')}`` plus ``(0, inf)`` per component; ``(b, d)``
  there is ``(1 - b, 1 - d)`` here.
"""

from __future__ import annotations

import gudhi
import numpy as np

from ..errors import NNGeoError
from .graphs import ZERO_MODES, Forest, LayerGraph, as_numpy, dense_graph, spanning_forest

NORMALIZE_MODES = ("layer", "network")


def check_choice(label: str, value, allowed) -> None:
    if value not in allowed:
        raise NNGeoError(f"{label} must be one of {', '.join(map(str, allowed))}, got {value!r}")


def check_p(p) -> float:
    try:
        p = float(p)
    except (TypeError, ValueError):
        raise NNGeoError(f"p must be a positive number or inf, got {p!r}") from None
    if not p > 0:  # also rejects NaN
        raise NNGeoError(f"p must be a positive number or inf, got {p!r}")
    return p


def normalized(values: np.ndarray, wmax: float) -> np.ndarray:
    """``|w| / w_max`` with the all-zero convention (``w_max = 0`` gives zeros)."""
    values = np.asarray(values, dtype=np.float64)  # w' in float64 even for float32 weights
    if wmax == 0:
        return np.zeros_like(values)
    return values / wmax


def deaths_of(graph: LayerGraph, forest: Forest, wmax: float) -> np.ndarray:
    """Normalised weight ``w'`` of every forest edge."""
    return normalized(graph.values[forest.groups], wmax)


def diagram_points(deaths: np.ndarray, n_essential: int, essential: bool) -> np.ndarray:
    """``(k, 2)`` array of ``(birth, death)``: finite points with positive persistence, then essentials."""
    deaths = np.sort(deaths[deaths < 1.0])
    if essential and n_essential:
        deaths = np.concatenate([np.zeros(n_essential), deaths])
    return np.column_stack([np.ones(deaths.size), deaths]) if deaths.size else np.zeros((0, 2))


def check_wmax(wmax, largest: float) -> float:
    try:
        wmax = float(wmax)
    except (TypeError, ValueError):
        raise NNGeoError(f"wmax must be a positive number, got {wmax!r}") from None
    if not np.isfinite(wmax) or wmax <= 0:
        raise NNGeoError(f"wmax must be a positive finite number, got {wmax!r}")
    if wmax < largest:
        raise NNGeoError(
            f"wmax={wmax:g} is below the largest |weight| {largest:g}; "
            "it must be at least the largest magnitude so that w' <= 1"
        )
    return wmax


def persistence_diagram(
    W, *, wmax: float | None = None, essential: bool = False, backend: str = "nngeo", zeros: str = "absent"
) -> np.ndarray:
    """0-dim persistence diagram of one dense ``(out, in)`` weight matrix as a ``(k, 2)`` array.

    Rows are ``(birth, death) = (1, w')``, sorted by death (most persistent first); see the module
    docstring for normalisation (``wmax`` defaults to the matrix's own ``max |w|``), zeros and
    essential classes. ``backend="gudhi"`` computes the same diagram with gudhi's ``SimplexTree``
    (slow; a cross-check). NaN/inf or empty input raises ``NNGeoError``; an all-zero matrix gives an
    empty diagram (plus one ``(1, 0)`` per vertex with ``essential=True`` and ``zeros="absent"``);
    a 1x1 matrix gives an empty diagram (its one edge has ``w' = 1``, zero persistence). For conv
    layers use ``persistence_diagrams(model)``.
    """
    check_choice("backend", backend, ("nngeo", "gudhi"))
    check_choice("zeros", zeros, ZERO_MODES)
    arr = as_numpy(W)
    if arr.ndim != 2:
        raise NNGeoError(
            f"persistence_diagram takes a 2-D (out, in) weight matrix, got shape {arr.shape}; "
            "for conv layers use persistence_diagrams(model)"
        )
    graph = dense_graph("matrix", arr)
    largest = float(graph.values.max())
    wmax = largest if wmax is None else check_wmax(wmax, largest)
    if backend == "gudhi":
        return gudhi_diagram(graph, wmax, essential=essential, zeros=zeros)
    forest = spanning_forest(graph, include_zero=zeros == "edge")
    return diagram_points(deaths_of(graph, forest, wmax), forest.components, essential)


def gudhi_diagram(graph: LayerGraph, wmax: float, *, essential: bool, zeros: str) -> np.ndarray:
    """The same diagram computed by gudhi (vertices at 0, edges at ``1 - w'``), mapped back."""
    st = gudhi.SimplexTree()
    n = graph.n_vertices
    st.insert_batch(np.arange(n, dtype=np.int64)[None, :], np.zeros(n))
    groups: np.ndarray = np.arange(graph.values.size)
    if zeros == "absent":
        groups = groups[graph.values > 0]
    if groups.size:
        u, v = graph.edges(groups)
        w = np.repeat(normalized(graph.values[groups], wmax), graph.group_size)
        st.insert_batch(np.vstack([u, v]), 1.0 - w)
    st.compute_persistence(min_persistence=0.0)
    bars = np.asarray(st.persistence_intervals_in_dimension(0)).reshape(-1, 2)
    finite = np.isfinite(bars[:, 1])
    deaths = 1.0 - bars[finite, 1]
    return diagram_points(deaths, int((~finite).sum()), essential)


def diagram_norm(points: np.ndarray, p: float) -> float:
    """p-norm of the persistences ``birth - death`` of a diagram (0 for an empty one)."""
    pers = points[:, 0] - points[:, 1] if len(points) else np.zeros(0)
    return pnorm(pers, p)


def pnorm(pers: np.ndarray, p: float) -> float:
    """p-norm of a vector of persistences (its maximum for ``p = inf``; 0 when empty)."""
    if pers.size == 0:
        return 0.0
    if np.isinf(p):
        return float(pers.max())
    return float(np.sum(pers**p) ** (1.0 / p))
