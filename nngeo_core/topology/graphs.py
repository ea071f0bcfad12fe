"""A layer as a weighted bipartite graph, and its maximum spanning forest.

Every layer graph has ``n_in`` input vertices ``0 .. n_in-1`` and ``n_out`` output vertices
``n_in .. n_in+n_out-1``. Its edges come in *groups* that share one weight:

* dense ``(out, in)`` weight: one edge per weight (input ``i`` -- output ``o``), group = flat index.
* conv, ``"toeplitz"``: the unrolled (Toeplitz) matrix of the convolution, input vertices are
  ``C_in x`` padded positions (padding included, as in Rieck et al.'s appendix; padded positions
  are vertices of their own whatever the ``padding_mode``), output vertices
  ``C_out x`` output positions. Kernel weight ``(co, ci, ky, kx)`` is one group whose edges join
  output ``(co, q)`` to padded input ``(ci, stride*q + dilation*(ky, kx))`` for every output
  position ``q``: a group of ``H_out * W_out`` edges with the same weight.
* conv, ``"filter"``: the cheaper variant. Each filter ``co`` gets its own single-channel graph
  (padded positions x output positions) whose kernel is ``sum_ci |w[co, ci]|``; the layer graph
  is the disjoint union of the filter graphs.

The maximum spanning forest is Kruskal's algorithm run on *groups* in order of decreasing weight,
in geometrically growing chunks: each chunk's edges are mapped to the current components, parallel
edges are reduced to the heaviest, and scipy's minimum spanning tree on that small quotient graph
(edge cost = position in Kruskal order, so order and ties are exactly Kruskal's) picks the
edges Kruskal would add. Kruskal stops as soon as the forest has as few components as the graph
can have (every edge present: its structural components; zeros absent: a lower bound that counts
the vertices pruning left isolated), so for a trained or pruned layer usually only the heaviest few
per cent of edges are ever built, which makes the exact Toeplitz version of a VGG feasible (all of
vgg11 at 32x32, ~150 million edges, in a few seconds). Memory stays bounded: at most
``_MAX_CHUNK_EDGES`` edges are materialised at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from scipy.sparse import coo_matrix, csr_matrix
from scipy.sparse.csgraph import connected_components, minimum_spanning_tree

from ..errors import NNGeoError

CONV_METHODS = ("toeplitz", "filter")
ZERO_MODES = ("absent", "edge")
# at most this many edges are materialised at once (int64 arrays: ~100 MB per chunk)
_MAX_CHUNK_EDGES = 4_000_000


@dataclass
class LayerGraph:
    """One layer's bipartite graph in compact form (see the module docstring)."""

    name: str
    kind: str  # "dense" | "conv"
    method: str  # "dense" | "toeplitz" | "filter"
    n_in: int  # input vertices
    n_out: int  # output vertices
    values: np.ndarray  # magnitude of each group (|w|, or the filter sum), float32/64
    group_size: int  # edges per group
    structural_components: int  # components of the graph with every edge present
    nonzero_components_floor: int  # a lower bound on the components of the nonzero-edge graph
    weight_shape: tuple[int, ...]
    n_params: int
    # conv geometry (None for dense)
    _conv: dict | None = field(default=None, repr=False)
    note: str = ""  # how the weight was prepared, e.g. "batch norm bn1 folded" (models.layers)

    @property
    def n_vertices(self) -> int:
        return self.n_in + self.n_out

    @property
    def n_edges(self) -> int:
        return int(self.values.size) * self.group_size

    @property
    def structural_mst_size(self) -> int:
        return self.n_vertices - self.structural_components

    def edges(self, groups: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Endpoints ``(u, v)`` of the edges of ``groups``, group-major (each group's edges together)."""
        groups = np.asarray(groups, dtype=np.int64)
        if self._conv is None:
            n_in = self.n_in
            return groups % n_in, n_in + groups // n_in
        c = self._conv
        co, rest = np.divmod(groups, c["cpg"] * c["kh"] * c["kw"])
        cig, rest = np.divmod(rest, c["kh"] * c["kw"])
        ky, kx = np.divmod(rest, c["kw"])
        ci = (co // c["opg"]) * c["cpg"] + cig
        u0 = ci * c["m"] + ky * c["dy"] * c["wp"] + kx * c["dx"]
        v0 = self.n_in + co * c["n"]
        u = (u0[:, None] + c["q_in"][None, :]).ravel()
        v = (v0[:, None] + np.arange(c["n"], dtype=np.int64)[None, :]).ravel()
        return u, v

    def group_filter(self, groups: np.ndarray) -> np.ndarray:
        """Which output channel (filter) each group belongs to (dense: the output unit)."""
        groups = np.asarray(groups, dtype=np.int64)
        if self._conv is None:
            return groups // self.n_in
        c = self._conv
        return groups // (c["cpg"] * c["kh"] * c["kw"])


def as_numpy(weight) -> np.ndarray:
    """Weights as a float32/float64 numpy array (kept in float32 to halve memory on big layers)."""
    if hasattr(weight, "detach"):
        weight = weight.detach().to("cpu")
        if weight.dtype not in (torch.float32, torch.float64):
            weight = weight.float()
        return weight.numpy()
    arr = np.asarray(weight)
    return arr if arr.dtype in (np.float32, np.float64) else arr.astype(np.float64)


def check_weight(name: str, w: np.ndarray) -> None:
    if w.size == 0:
        raise NNGeoError(f"layer {name!r} has no weights (shape {tuple(w.shape)}); it has no graph to analyse")
    if not np.isfinite(w).all():
        raise NNGeoError(f"layer {name!r} has NaN or infinite weights; topology needs finite weights")


def dense_graph(name: str, weight) -> LayerGraph:
    """Graph of a dense ``(out, in)`` weight matrix."""
    w = as_numpy(weight)
    if w.ndim != 2:
        raise NNGeoError(f"layer {name!r}: a dense weight must be a 2-D (out, in) matrix, got shape {w.shape}")
    check_weight(name, w)
    n_out, n_in = w.shape
    nz = w != 0
    isolated = int((~nz.any(axis=0)).sum() + (~nz.any(axis=1)).sum())
    return LayerGraph(
        name=name,
        kind="dense",
        method="dense",
        n_in=int(n_in),
        n_out=int(n_out),
        values=np.abs(w).ravel(),
        group_size=1,
        structural_components=1,
        nonzero_components_floor=max(1, isolated + int(nz.any())),
        weight_shape=tuple(w.shape),
        n_params=int(w.size),
    )


def _conv_geometry(info) -> dict:
    (h, w), (ph, pw) = info.input_size, info.padding
    sy, sx = info.stride
    dy, dx = info.dilation
    kh, kw = info.weight_shape[2:]
    hp, wp = h + 2 * ph, w + 2 * pw
    ho, wo = info.output_size
    if (ho - 1) * sy + dy * (kh - 1) >= hp or (wo - 1) * sx + dx * (kw - 1) >= wp:
        raise NNGeoError(
            f"layer {info.name!r}: output size {ho}x{wo} does not fit input {h}x{w} with "
            f"padding {ph},{pw}; asymmetric padding (padding='same' with an even kernel) "
            "is not supported"
        )
    oy, ox = np.meshgrid(np.arange(ho, dtype=np.int64), np.arange(wo, dtype=np.int64), indexing="ij")
    q_in = (oy * sy * wp + ox * sx).ravel()  # top-left padded input position of each output window
    return dict(kh=kh, kw=kw, dy=dy, dx=dx, wp=wp, m=hp * wp, n=ho * wo, q_in=q_in)


def _single_channel_components(geo: dict) -> tuple[int, int, np.ndarray]:
    """(isolated padded positions, components with an edge, reach) of one channel's structural
    graph; ``reach[p, k]`` says whether kernel offset ``k`` joins padded position ``p`` to an output."""
    m, n, kh, kw = geo["m"], geo["n"], geo["kh"], geo["kw"]
    ky, kx = np.divmod(np.arange(kh * kw, dtype=np.int64), kw)
    offsets = ky * geo["dy"] * geo["wp"] + kx * geo["dx"]
    u = (offsets[:, None] + geo["q_in"][None, :]).ravel()
    v = m + np.tile(np.arange(n, dtype=np.int64), kh * kw)
    adj = coo_matrix((np.ones(u.size, dtype=np.int8), (u, v)), shape=(m + n, m + n))
    n_comp, _ = connected_components(adj, directed=False)
    isolated = m - np.unique(u).size
    reach = np.zeros((m, kh * kw), dtype=np.float32)
    reach[u, np.repeat(np.arange(kh * kw), n)] = 1.0
    return int(isolated), int(n_comp - isolated), reach


def _nonzero_floor(nonzero: np.ndarray, reach: np.ndarray, n_positions: int, groups: int, structural: int) -> int:
    """Lower bound on the components of the conv graph made of nonzero weights only.

    ``nonzero`` is ``(C_out, C_in/groups, K)``. Isolated vertices are each a component: an input
    ``(ci, p)`` is isolated when no nonzero weight of its channel reaches ``p``, an output when its
    filter is all zero. Every group block with a nonzero weight adds at least one more component.
    """
    c_out, cpg, k = nonzero.shape
    per_input = nonzero.reshape(groups, c_out // groups, cpg, k).any(axis=1).reshape(-1, k)
    degree = per_input.astype(np.float32) @ reach.T  # (C_in, m): counts are small, exact in float32
    isolated_in = int((degree == 0).sum())
    isolated_out = int((~nonzero.reshape(c_out, -1).any(axis=1)).sum()) * n_positions
    blocks = int(nonzero.reshape(groups, -1).any(axis=1).sum())
    return max(structural, isolated_in + isolated_out + blocks)


def conv_graph(info, weight, method: str = "toeplitz") -> LayerGraph:
    """Graph of a conv layer from its ``LayerInfo`` (input/output size, stride, padding, dilation)."""
    if method not in CONV_METHODS:
        raise NNGeoError(f"conv must be one of {', '.join(CONV_METHODS)}, got {method!r}")
    w = as_numpy(weight)
    check_weight(info.name, w)
    if w.ndim != 4 or info.input_size is None or info.output_size is None:
        raise NNGeoError(f"layer {info.name!r}: a conv layer needs a 4-D weight and its input/output size")
    c_out, cpg, kh, kw = w.shape
    groups = int(info.groups)
    geo = _conv_geometry(info)
    iso, nontrivial, reach = _single_channel_components(geo)
    if method == "toeplitz":
        c_in, opg, values = cpg * groups, c_out // groups, np.abs(w).ravel()
        components = c_in * iso + groups * nontrivial
    else:  # each filter is its own single-channel graph: like a depthwise conv on the filter sums
        c_in, cpg, opg, groups = c_out, 1, 1, c_out
        values = np.abs(w).sum(axis=1, dtype=np.float64).ravel()
        components = c_out * (iso + nontrivial)
    nonzero = (values != 0).reshape(c_out, cpg, kh * kw)
    floor = _nonzero_floor(nonzero, reach, geo["n"], groups, components)
    geo.update(cpg=cpg, opg=opg)
    return LayerGraph(
        name=info.name,
        kind="conv",
        method=method,
        n_in=int(c_in * geo["m"]),
        n_out=int(c_out * geo["n"]),
        values=values,
        group_size=int(geo["n"]),
        structural_components=int(components),
        nonzero_components_floor=int(floor),
        weight_shape=tuple(w.shape),
        n_params=int(w.size),
        _conv=geo,
    )


def kruskal_blocks(values: np.ndarray, include_zero: bool, first: int):
    """Groups in Kruskal order, in blocks: decreasing weight, ties by group index.

    The order is that of a stable descending sort, but only as much of it as is consumed gets
    sorted: each block is every group at or above the next threshold (found by ``partition``, so a
    tie class is never split between blocks), and blocks grow fourfold. Zero-weight groups come
    last, or not at all with ``include_zero=False``.
    """
    n = values.size
    remaining: np.ndarray
    if include_zero or values.min() > 0:
        remaining, vals = np.arange(n, dtype=np.int64), values
    else:
        remaining = np.flatnonzero(values > 0)
        vals = values[remaining]
    k = max(1, int(first))
    while remaining.size:
        if k < remaining.size:
            threshold = np.partition(vals, remaining.size - k)[remaining.size - k]  # k-th largest
            take = vals >= threshold
            block, block_vals = remaining[take], vals[take]
            keep = ~take
            remaining, vals = remaining[keep], vals[keep]
        else:
            block, block_vals = remaining, vals
            remaining = remaining[:0]
        # ``block`` is in increasing index order, so a stable sort breaks ties by index
        yield block[np.argsort(-block_vals, kind="stable")]
        k *= 4


@dataclass
class Forest:
    """A maximum spanning forest: one entry per forest edge (a group can own several edges)."""

    groups: np.ndarray  # int64 group of each forest edge
    components: int  # components of the graph actually spanned
    n_vertices: int

    @property
    def size(self) -> int:
        return int(self.groups.size)


def spanning_forest(graph: LayerGraph, *, include_zero: bool = False, progress=None) -> Forest:
    """Maximum spanning forest of ``graph`` by chunked Kruskal (see module docstring).

    ``include_zero=False`` treats exactly-zero weights as absent (pruned) edges.
    """
    n_vertices = graph.n_vertices
    labels = np.arange(n_vertices, dtype=np.int64)
    n_comp = n_vertices
    gs = graph.group_size
    max_chunk = max(1, _MAX_CHUNK_EDGES // gs)
    chunk_size = min(max_chunk, -(-4 * n_vertices // gs))  # groups; doubles up to max_chunk
    # sort a generous first block (1/16 of all groups): one pass usually suffices
    first_block = max(4 * chunk_size, graph.values.size // 16)
    # stop as soon as no further merge is possible: the forest has as few components as the graph
    # can have (with zeros absent, a lower bound counting vertices left isolated by pruning)
    target = graph.structural_components if include_zero else graph.nonzero_components_floor
    picked: list[np.ndarray] = []
    for block in kruskal_blocks(graph.values, include_zero, first=first_block):
        start = 0
        while start < block.size and n_comp > target:
            if progress is not None:
                progress.check()
            chunk = block[start : start + chunk_size]
            labels, n_comp = _kruskal_chunk(graph, chunk, labels, n_comp, picked)
            start += chunk.size
            chunk_size = min(max_chunk, 2 * chunk_size)
        if n_comp <= target:
            break
    groups = np.concatenate(picked) if picked else np.zeros(0, dtype=np.int64)
    return Forest(groups=groups, components=int(n_comp), n_vertices=n_vertices)


def _kruskal_chunk(
    graph: LayerGraph, chunk: np.ndarray, labels: np.ndarray, n_comp: int, picked: list
) -> tuple[np.ndarray, int]:
    """Run Kruskal on ``chunk`` (groups in order) given the components so far; extend ``picked``."""
    gs = graph.group_size
    u, v = graph.edges(chunk)
    lu, lv = labels[u], labels[v]
    crossing = np.flatnonzero(lu != lv)
    if crossing.size == 0:
        return labels, n_comp
    rank = crossing // gs  # position of the edge's group within the chunk
    a = np.minimum(lu[crossing], lv[crossing])
    b = np.maximum(lu[crossing], lv[crossing])
    # parallel edges between two components: keep the first (heaviest) in Kruskal order
    _, first = np.unique(a * n_comp + b, return_index=True)
    a, b, rank = a[first], b[first], rank[first]
    quotient = csr_matrix((rank + 1.0, (a, b)), shape=(n_comp, n_comp))
    tree = minimum_spanning_tree(quotient).tocoo()
    picked.append(chunk[np.rint(tree.data).astype(np.int64) - 1])
    n_new, comp = connected_components(tree, directed=False)
    return comp.astype(np.int64)[labels], int(n_new)
