"""Groups of layer-graph edges that share their neighbourhoods, with the distances between them.

Distances are directed (forward) shortest paths in the whole neuron DAG, as GraphRicciCurvature
uses on a DiGraph. They are computed by dynamic programming over the node levels in topological
order: the distance from a source to every unit of a level is the min-plus product of the
distances to the levels that feed it with those edges' lengths. Only the units that lie on some
path from the group's sources to its targets are carried (the forward closure of the sources
meets the backward closure of the targets), which keeps conv layers local. With skip connections
a path may bypass the edge's own layers, and d(u, v) itself may be shorter than the edge (a
detour through a skip); both are what the definition asks for. All edges of a group share one
cost matrix, so their transport problems are solved as one batch.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from .layer_graph import Edges, Network


def minplus(A: np.ndarray, B: np.ndarray, budget: int = 1 << 22) -> np.ndarray:
    """(A (x) B)[i, j] = min_k A[i, k] + B[k, j], chunked over k to bound memory."""
    n, m = A.shape
    p = B.shape[1]
    out = np.full((n, p), np.inf)
    if n == 0 or p == 0 or m == 0:
        return out
    step = max(1, budget // max(n * p, 1))
    for s in range(0, m, step):
        np.minimum(out, (A[:, s : s + step, None] + B[None, s : s + step, :]).min(axis=1), out=out)
    return out


@dataclass
class EdgeGroup:
    k: int
    Us: np.ndarray  # source units (layer k inputs)
    Vs: np.ndarray  # target units (layer k outputs)
    R: np.ndarray  # predecessors of the sources (on the levels in ``R_level``)
    P: np.ndarray  # successors of the targets (on the levels in ``P_level``)
    ui: np.ndarray  # edges: index into Us / Vs
    vi: np.ndarray
    kernel: np.ndarray  # flat weight index of each edge
    corner: np.ndarray  # d(u, v) of each edge (the edge's length, or a shorter detour)
    pred_len: np.ndarray  # |Us| x |R| lengths p -> u (inf: no edge)
    succ_len: np.ndarray  # |Vs| x |P| lengths v -> s
    core: np.ndarray  # |R| x |P| distances
    row: np.ndarray  # |Us| x |P| distances u -> s
    col: np.ndarray  # |R| x |Vs| distances p -> v
    R_level: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    P_level: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))


def _blocks_by_position(units: np.ndarray, shape: tuple[int, ...]) -> list[np.ndarray]:
    """Split flat (C, H, W) units by spatial position."""
    hw = int(shape[1] * shape[2])
    pos = units % hw
    order = np.argsort(pos, kind="stable")
    cuts = np.flatnonzero(np.diff(pos[order])) + 1
    return np.split(units[order], cuts)


def _unit_groups(net: Network, k: int, conv_positions: int | None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(source units, target units) of each group of layer k's edges sharing their neighbourhoods."""
    lay = net.layers[k]
    if lay.kind == "conv":
        cin, hin, win = lay.in_shape
        cout, hout, wout = lay.out_shape
        for q in lay.positions(conv_positions):
            vs = np.arange(cout) * (hout * wout) + q
            for p in np.unique(lay.preds(np.array([q])) % (hin * win)):
                yield np.arange(cin) * (hin * win) + p, vs
        return
    src_blocks = (
        _blocks_by_position(np.arange(lay.n_in), net.level_shape[lay.src])
        if net.spatial(lay.src)
        else [np.arange(lay.n_in)]
    )
    dst_blocks = (
        _blocks_by_position(np.arange(lay.n_out), net.level_shape[lay.dst])
        if net.spatial(lay.dst)
        else [np.arange(lay.n_out)]
    )
    for us in src_blocks:
        for vs in dst_blocks:
            yield us, vs


def _minplus_sparse(D: np.ndarray, B: np.ndarray, budget: int = 1 << 23) -> np.ndarray:
    """(D (x) B.T): D (s, m) distances, B (n, m) lengths (inf: no edge); min over B's finite entries."""
    rows, cols = np.nonzero(np.isfinite(B))
    out = np.full((D.shape[0], B.shape[0]), np.inf)
    if not len(rows):
        return out
    lens = B[rows, cols]
    starts = np.flatnonzero(np.r_[True, np.diff(rows) != 0])
    targets = rows[starts]
    step = max(1, budget // max(len(rows), 1))
    for lo in range(0, D.shape[0], step):
        vals = D[lo : lo + step][:, cols] + lens[None, :]
        out[lo : lo + step, targets] = np.minimum.reduceat(vals, starts, axis=1)
    return out


def _relax(D: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Distances to B's out units through B, from distances ``D`` to its in units."""
    if B.size and np.isfinite(B).mean() < 0.25:
        return _minplus_sparse(D, B)
    return minplus(D, B.T)


def distances(net: Network, S: list[tuple[int, np.ndarray]], T: list[tuple[int, np.ndarray]]) -> np.ndarray:
    """Directed shortest-path distances from the units ``S`` (segments of (level, units), rows in
    order) to the units ``T`` (columns), over the whole DAG (inf where no path)."""
    n_rows = sum(len(u) for _, u in S)
    seeds: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {}
    r = 0
    for level, units in S:
        seeds.setdefault(level, []).append((np.arange(r, r + len(units)), np.asarray(units, dtype=np.int64)))
        r += len(units)
    goals: dict[int, list[np.ndarray]] = {}
    for level, units in T:
        goals.setdefault(level, []).append(np.asarray(units, dtype=np.int64))
    if not seeds or not goals:
        return np.full((n_rows, sum(len(u) for _, u in T)), np.inf)
    lo, hi = min(seeds), max(goals)
    # units on a path from S to T: forward closure of S meets backward closure of T
    fwd: dict[int, np.ndarray] = {}
    for level in range(lo, hi + 1):
        parts = [u for _, u in seeds.get(level, [])]
        parts += [e.succs(fwd[e.src]) for e in net.into.get(level, []) if e.src in fwd and len(fwd[e.src])]
        if parts:
            fwd[level] = np.unique(np.concatenate(parts))
    bwd: dict[int, np.ndarray] = {}
    for level in range(hi, lo - 1, -1):
        parts = list(goals.get(level, []))
        parts += [e.preds(bwd[e.dst]) for e in net.out_of.get(level, []) if e.dst in bwd and len(bwd[e.dst])]
        if parts:
            bwd[level] = np.unique(np.concatenate(parts))
    active: dict[int, np.ndarray] = {}
    for level in fwd:
        keep = [np.intersect1d(fwd[level], bwd.get(level, np.zeros(0, dtype=np.int64)))]
        keep += [u for _, u in seeds.get(level, [])] + goals.get(level, [])
        active[level] = np.unique(np.concatenate(keep))
    dist: dict[int, np.ndarray] = {}
    for level in sorted(active):
        units = active[level]
        d = np.full((n_rows, len(units)), np.inf)
        for rows, us in seeds.get(level, []):
            d[rows, np.searchsorted(units, us)] = 0.0
        for e in net.into.get(level, []):
            if e.src not in dist:
                continue
            src = dist[e.src]
            reach = np.flatnonzero(np.isfinite(src).any(axis=1))
            if not len(reach):
                continue
            B = e.block(units, active[e.src])[0]
            d[reach] = np.minimum(d[reach], _relax(src[reach], B))
        dist[level] = d
    cols = []
    for level, units in T:
        if level in dist:
            cols.append(dist[level][:, np.searchsorted(active[level], np.asarray(units, dtype=np.int64))])
        else:
            cols.append(np.full((n_rows, len(units)), np.inf))
    return np.concatenate(cols, axis=1) if cols else np.zeros((n_rows, 0))


def _neighbours(edges: list[Edges], units: np.ndarray, *, incoming: bool) -> list[tuple[int, np.ndarray]]:
    """(level, units) of the predecessors (``incoming``) or successors of ``units``, one segment per level."""
    by_level: dict[int, list[np.ndarray]] = {}
    for e in edges:
        if incoming:
            by_level.setdefault(e.src, []).append(e.preds(units))
        else:
            by_level.setdefault(e.dst, []).append(e.succs(units))
    return [(lvl, np.unique(np.concatenate(parts))) for lvl, parts in sorted(by_level.items())]


def _lengths(edges: list[Edges], units: np.ndarray, segs: list[tuple[int, np.ndarray]], *, incoming: bool):
    """|units| x |neighbours| edge lengths (min over parallel edge sets; inf: no edge)."""
    blocks = []
    for lvl, nb in segs:
        L = np.full((len(units), len(nb)), np.inf)
        for e in edges:
            if incoming and e.src == lvl:
                L = np.minimum(L, e.block(units, nb)[0])
            elif not incoming and e.dst == lvl:
                L = np.minimum(L, e.block(nb, units)[0].T)
        blocks.append(L)
    return np.concatenate(blocks, axis=1) if blocks else np.zeros((len(units), 0))


def edge_groups(net: Network, k: int, conv_positions: int | None) -> Iterator[EdgeGroup]:
    lay = net.layers[k]
    into, out_of = net.into.get(lay.src, []), net.out_of.get(lay.dst, [])
    for Us, Vs in _unit_groups(net, k, conv_positions):
        length_all, kidx = lay.block(Vs, Us)
        vi, ui = np.nonzero(np.isfinite(length_all))
        if not len(vi):
            continue
        r_segs = _neighbours(into, Us, incoming=True)
        p_segs = _neighbours(out_of, Vs, incoming=False)
        R = np.concatenate([u for _, u in r_segs]) if r_segs else np.zeros(0, dtype=np.int64)
        P = np.concatenate([u for _, u in p_segs]) if p_segs else np.zeros(0, dtype=np.int64)
        R_level = np.concatenate([np.full(len(u), lvl) for lvl, u in r_segs]) if r_segs else np.zeros(0, np.int64)
        P_level = np.concatenate([np.full(len(u), lvl) for lvl, u in p_segs]) if p_segs else np.zeros(0, np.int64)
        pred_len = _lengths(into, Us, r_segs, incoming=True)
        succ_len = _lengths(out_of, Vs, p_segs, incoming=False)
        D = distances(net, [*r_segs, (lay.src, Us)], [*p_segs, (lay.dst, Vs)])
        nR, nP = len(R), len(P)
        core, row, col, corner_all = D[:nR, :nP], D[nR:, :nP], D[:nR, nP:], D[nR:, nP:]
        yield EdgeGroup(
            k,
            Us,
            Vs,
            R,
            P,
            ui,
            vi,
            kidx[vi, ui],
            corner_all[ui, vi],
            pred_len,
            succ_len,
            np.ascontiguousarray(core),
            np.ascontiguousarray(row),
            np.ascontiguousarray(col),
            R_level,
            P_level,
        )
