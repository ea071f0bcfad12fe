"""Ollivier-Ricci curvature of any networkx graph, with GraphRicciCurvature's conventions.

For an edge x -> y with length d(x, y) (the ``weight`` attribute; 1 when no edge has one):

    mu_x = alpha * delta_x + (1 - alpha) * sum_z p_x(z) delta_z,   p_x(z) ~ base ** -(len(x, z) ** exp_power)
    kappa(x, y) = 1 - W1(mu_x, mu_y) / d(x, y)

exactly as GraphRicciCurvature 0.6 (``OllivierRicci``, ``method="OTD"``) computes it:

- the neighbour weights use the *edge length* of (x, z) (not the shortest-path distance); at most
  ``nbr_topk`` neighbours with the largest weights are kept; if their weights sum to at most 1e-7
  the (1 - alpha) mass is spread uniformly over them; a node without neighbours keeps all its mass;
- on a DiGraph the source measure uses x's predecessors and the target measure y's successors,
  and all distances are directed shortest paths;
- W1 uses shortest-path costs, and the denominator is the shortest-path distance d(x, y), which
  is shorter than the edge length when a cheaper detour exists (GraphRicciCurvature releases
  before 0.6 divided by the edge length instead; on graphs where every edge is a shortest path
  the two agree);
- an edge whose endpoints are at distance below 1e-7 (a zero-length edge) gets curvature 0;
- self-loops are ignored (GraphRicciCurvature removes them): they get no curvature entry.

Disconnected graphs and isolated nodes need nothing special: an edge's measures only touch its
own component. Negative, NaN or infinite lengths, multigraphs and edges with and without a
``weight`` in the same graph are refused with ``NNGeoError``.
"""

from __future__ import annotations

import math
from collections.abc import Hashable

import networkx as nx
import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import shortest_path

from ..errors import NNGeoError
from ..progress import Progress
from ..settings import float64_device
from . import transport
from .transport import CoreProblems

GRC_EPSILON = 1e-7  # GraphRicciCurvature's threshold for "weights sum to nothing" and "zero distance"
GRC_NBR_TOPK = 3000
MAX_NODES = 20_000  # the all-pairs distance matrix is n x n float64
METHODS = ("exact", "sinkhorn", "graphricci")


def ollivier_ricci(
    G,
    *,
    alpha: float = 0.5,
    weight: str = "weight",
    method: str = "exact",
    exp_power: float = 2.0,
    base: float = math.e,
    nbr_topk: int = GRC_NBR_TOPK,
    processes: int | None = None,
    device: str = "auto",
    progress: Progress | None = None,
    sinkhorn_eps: float = transport.SINKHORN_EPS,
    sinkhorn_batch: int | None = None,
) -> dict[tuple[Hashable, Hashable], float]:
    """Ollivier-Ricci curvature of every edge of a networkx Graph or DiGraph.

    ``method``: "exact" (network simplex per edge, in ``processes`` worker processes), "sinkhorn"
    (batched entropic OT in torch on ``device``; at most a few 1e-3 from exact, see the README) or
    "graphricci" (GraphRicciCurvature itself, ``method="OTD"``, for cross-checks).
    ``sinkhorn_batch``: problems per Sinkhorn batch (None: sized from torch's thread count; the
    values do not depend on it, see ``transport.w1_sinkhorn``). Returns
    ``{(u, v): curvature}`` keyed like ``G.edges()``.
    """
    check_params(alpha, method, exp_power, base, nbr_topk)
    progress = progress or Progress()
    nodes, src, dst, length = graph_arrays(G, weight)
    keep = src != dst  # self-loops carry no curvature (GraphRicciCurvature drops them)
    edges_src, edges_dst = src[keep], dst[keep]
    if method == "graphricci":
        return _graphricci(G, nodes, edges_src, edges_dst, alpha, weight, exp_power, base, nbr_topk, processes)
    n = len(nodes)
    if len(edges_src) == 0:
        return {}
    if n > MAX_NODES:
        raise NNGeoError(f"the graph has {n} nodes; curvature needs all-pairs distances, at most {MAX_NODES} nodes")
    directed = G.is_directed()
    arcs_src, arcs_dst, arcs_len = src[keep], dst[keep], length[keep]
    if not directed:  # both directions of every undirected edge
        arcs_src, arcs_dst = np.concatenate([arcs_src, arcs_dst]), np.concatenate([arcs_dst, arcs_src])
        arcs_len = np.concatenate([arcs_len, arcs_len])
    progress.update(0.0, "shortest paths")
    dist = all_pairs_distances(n, arcs_src, arcs_dst, arcs_len, directed)
    progress.check()
    succ = neighbour_measures(n, arcs_src, arcs_dst, arcs_len, alpha, exp_power, base, nbr_topk)
    pred = (
        succ if not directed else neighbour_measures(n, arcs_dst, arcs_src, arcs_len, alpha, exp_power, base, nbr_topk)
    )
    w1 = edge_transport(
        dist,
        pred,
        succ,
        edges_src,
        edges_dst,
        method,
        processes=processes,
        device=float64_device(device),
        progress=progress,
        sinkhorn_eps=sinkhorn_eps,
        sinkhorn_batch=sinkhorn_batch,
    )
    d = dist[edges_src, edges_dst]
    with np.errstate(divide="ignore", invalid="ignore"):
        kappa = np.where(d < GRC_EPSILON, 0.0, 1.0 - w1 / np.where(d < GRC_EPSILON, 1.0, d))
    progress.update(1.0, "done", force=True)
    return {(nodes[s], nodes[t]): float(k) for s, t, k in zip(edges_src, edges_dst, kappa, strict=False)}


def dense_layer_graph(weight) -> nx.Graph:
    """One dense layer as an undirected bipartite networkx graph, for ``ollivier_ricci`` and
    cross-checks with GraphRicciCurvature: input unit i is node i, output unit j is node m + j
    (``weight`` has shape (m, n)); each nonzero weight is an edge of length 1/|w| (a zero weight is
    a missing edge, not one of infinite length; a unit with no nonzero weight is no node)."""
    w = np.asarray(weight, dtype=np.float64)
    if w.ndim != 2:
        raise NNGeoError(f"a dense layer's weight is a matrix; got shape {w.shape}")
    if not np.isfinite(w).all():
        raise NNGeoError("the layer has NaN or infinite weights")
    m = w.shape[0]
    i, j = np.nonzero(w)  # row-major: the edges in the order a double loop adds them
    G = nx.Graph()
    G.add_weighted_edges_from(zip(i.tolist(), (m + j).tolist(), (1.0 / np.abs(w[i, j])).tolist(), strict=False))
    return G


def check_params(alpha, method, exp_power=2.0, base=math.e, nbr_topk=GRC_NBR_TOPK) -> None:
    if not (isinstance(alpha, (int, float)) and 0.0 <= float(alpha) < 1.0):
        raise NNGeoError(f"alpha (the idleness) must lie in [0, 1), got {alpha!r}")
    if method not in METHODS:
        raise NNGeoError(f"unknown curvature method {method!r}; use one of {', '.join(METHODS)}")
    if not (math.isfinite(exp_power) and exp_power >= 0):
        raise NNGeoError(f"exp_power must be a finite number >= 0, got {exp_power!r}")
    if not (math.isfinite(base) and base > 0):
        raise NNGeoError(f"base must be a positive number, got {base!r}")
    if int(nbr_topk) < 1:
        raise NNGeoError(f"nbr_topk must be at least 1, got {nbr_topk!r}")


def graph_arrays(G, weight: str):
    """Node list and edge arrays (source index, target index, length) of a networkx graph."""
    if not isinstance(G, (nx.Graph, nx.DiGraph)):
        raise NNGeoError("curvature needs a networkx Graph or DiGraph")
    if G.is_multigraph():
        raise NNGeoError("multigraphs are not supported; merge parallel edges first (e.g. nx.Graph(G))")
    nodes = list(G.nodes())
    index = {v: i for i, v in enumerate(nodes)}
    edges = list(G.edges(data=True))
    src = np.fromiter((index[u] for u, _, _ in edges), dtype=np.int64, count=len(edges))
    dst = np.fromiter((index[v] for _, v, _ in edges), dtype=np.int64, count=len(edges))
    has = [weight in d for _, _, d in edges]
    length: np.ndarray
    if not any(has):
        length = np.ones(len(edges))
    elif not all(has):
        u, v, _ = edges[has.index(False)]
        raise NNGeoError(f"edge ({u!r}, {v!r}) has no {weight!r} attribute while others do; give every edge one")
    else:
        try:
            length = np.array([float(d[weight]) for _, _, d in edges], dtype=np.float64)
        except (TypeError, ValueError):
            raise NNGeoError(f"edge attribute {weight!r} must be a number on every edge") from None
    bad = ~np.isfinite(length) | (length < 0)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        u, v, _ = edges[i]
        raise NNGeoError(f"edge ({u!r}, {v!r}) has length {length[i]!r}; edge lengths must be finite and >= 0")
    return nodes, src, dst, length


def all_pairs_distances(n, src, dst, length, directed: bool) -> np.ndarray:
    """Shortest-path distances (inf where unreachable). Zero-length edges count as edges."""
    A = sp.csr_matrix((length, (src, dst)), shape=(n, n))
    A.sum_duplicates()
    return shortest_path(A, method="D", directed=directed)


class NeighbourMeasures:
    """Per node: the neighbours that carry mass (sorted) and their masses, CSR-style, plus the node's own mass."""

    def __init__(self, indptr, cols, mass, self_mass):
        self.indptr, self.cols, self.mass, self.self_mass = indptr, cols, mass, self_mass

    def support(self, v: int) -> np.ndarray:
        return self.cols[self.indptr[v] : self.indptr[v + 1]]

    def degree(self) -> np.ndarray:
        return np.diff(self.indptr)


def neighbour_measures(n, src, dst, length, alpha, exp_power, base, nbr_topk) -> NeighbourMeasures:
    """GraphRicciCurvature's neighbour distribution of every node over its arcs src -> dst."""
    order = np.lexsort((dst, src))
    src, dst, length = src[order], dst[order], length[order]
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.add.at(indptr, src + 1, 1)
    indptr = np.cumsum(indptr)
    with np.errstate(over="ignore", under="ignore"):
        w = np.exp(-(length**exp_power) * math.log(base))
    keep = np.ones(len(dst), dtype=bool)
    deg = np.diff(indptr)
    for v in np.flatnonzero(deg > nbr_topk):  # rare: only hubs with more than nbr_topk neighbours
        s, e = indptr[v], indptr[v + 1]
        # GraphRicciCurvature keeps a min-heap of (weight, node): the smallest pairs drop out
        rank = np.lexsort((dst[s:e], w[s:e]))
        keep[s:e][rank[: e - s - nbr_topk]] = False
    src, dst, w = src[keep], dst[keep], w[keep]
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.add.at(indptr, src + 1, 1)
    indptr = np.cumsum(indptr)
    deg = np.diff(indptr)
    total = np.bincount(src, weights=w, minlength=n)
    uniform = total <= GRC_EPSILON
    mass = np.where(uniform[src], 1.0 / np.maximum(deg[src], 1), w / np.where(uniform, 1.0, total)[src])
    mass = (1.0 - alpha) * mass
    self_mass = np.where(deg > 0, alpha, 1.0)  # no neighbour: all mass stays on the node
    return NeighbourMeasures(indptr, dst, mass, self_mass)


def edge_transport(
    dist,
    pred: NeighbourMeasures,
    succ: NeighbourMeasures,
    xs,
    ys,
    method,
    *,
    processes=None,
    device="cpu",
    progress: Progress | None = None,
    sinkhorn_eps: float = transport.SINKHORN_EPS,
    sinkhorn_batch: int | None = None,
    budget: float = 8e6,
) -> np.ndarray:
    """W1(mu_x, mu_y) for every edge (xs[i], ys[i]), batched over edges whose sources share a support."""
    progress = progress or Progress()
    out = np.empty(len(xs))
    # group edges by the source support: one shared core (rows) per group
    keys: dict[bytes, int] = {}
    sources = np.unique(xs)
    node_key = np.zeros(len(pred.indptr) - 1, dtype=np.int64)
    for x in sources:  # one dictionary look-up per source node, not per edge
        node_key[x] = keys.setdefault(pred.support(x).tobytes(), len(keys))
    gid = node_key[xs]
    order = np.argsort(gid, kind="stable")
    bounds = np.flatnonzero(np.diff(gid[order])) + 1
    groups = np.split(order, bounds)
    sdeg = succ.degree()
    jobs = []
    for members in groups:
        n1 = len(pred.support(xs[members[0]]))
        # chunk so that the per-problem arrays stay within the budget of floats (a memory cap on
        # building the problems; the Sinkhorn solver cuts each chunk into cache-sized batches)
        width = n1 + int(sdeg[ys[members]].max()) + 2
        size = max(1, int(budget // max(width * 4, 1)))
        for s in range(0, len(members), size):
            jobs.append(members[s : s + size])
    done = 0
    for chunk in jobs:
        progress.check()
        problems = _chunk_problems(dist, pred, succ, xs[chunk], ys[chunk])
        out[chunk] = transport.solve(
            problems,
            method,
            processes=processes,
            device=device,
            check=progress.check,
            sinkhorn_eps=sinkhorn_eps,
            sinkhorn_batch=sinkhorn_batch,
        )
        done += len(chunk)
        progress.update(done / len(xs), "optimal transport", edges=done)
    return out


def _chunk_problems(dist, pred: NeighbourMeasures, succ: NeighbourMeasures, xs, ys) -> CoreProblems:
    R = pred.support(xs[0])
    n1, B = len(R), len(xs)
    a = pred.mass[pred.indptr[xs][None, :] + np.arange(n1)[:, None]] if n1 else np.zeros((0, B))
    # core columns: union of the targets' supports
    starts, stops = succ.indptr[ys], succ.indptr[ys + 1]
    counts = stops - starts
    # positions of every target's neighbours in the CSR arrays, without a loop over edges
    flat = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts) + np.repeat(starts, counts)
    U = np.unique(succ.cols[flat])
    b = np.zeros((len(U), B))
    if len(flat):
        b[np.searchsorted(U, succ.cols[flat]), np.repeat(np.arange(B), counts)] = succ.mass[flat]
    return CoreProblems(
        C=dist[np.ix_(R, U)],
        a=a,
        b=b,
        ax=pred.self_mass[xs].astype(np.float64),
        by=succ.self_mass[ys].astype(np.float64),
        row=dist[np.ix_(xs, U)].T.copy(),
        col=dist[np.ix_(R, ys)],
        corner=dist[xs, ys].copy(),
    )


def _graphricci(G, nodes, xs, ys, alpha, weight, exp_power, base, nbr_topk, processes):
    """GraphRicciCurvature itself (OTD), for cross-checking this engine."""
    # lazy: importing GraphRicciCurvature costs ~0.9 s (measured) and only this cross-check uses it
    from GraphRicciCurvature.OllivierRicci import OllivierRicci

    if len(xs) == 0:
        return {}
    procs = transport.default_processes() if processes is None else max(1, int(processes))
    orc = OllivierRicci(
        G,
        weight=weight,
        alpha=alpha,
        method="OTD",
        base=base,
        exp_power=exp_power,
        proc=procs,
        nbr_topk=nbr_topk,
        verbose="ERROR",
    )
    result = orc.compute_ricci_curvature_edges([(nodes[s], nodes[t]) for s, t in zip(xs, ys, strict=False)])
    return {(nodes[s], nodes[t]): float(result[(nodes[s], nodes[t])]) for s, t in zip(xs, ys, strict=False)}
