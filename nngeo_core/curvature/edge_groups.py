"""Groups of layer-graph edges that share their neighbourhoods, with the distances between them.

Distances are directed (forward) shortest paths, as GraphRicciCurvature uses on a DiGraph: from a
predecessor a of u to a successor b of v every path runs a -> u' -> v' -> b through the two layers
in between, so d(a, b) = min over u', v' of len(a,u') + len(u',v') + len(v',b), a min-plus product
of the three length matrices; d(u, v) is the edge itself. All edges of a dense layer share one
such cost matrix, so all their transport problems can be solved as one batch.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from .layer_graph import Network


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
    R: np.ndarray  # predecessors of the sources (layer k-1 inputs)
    P: np.ndarray  # successors of the targets (layer k+1 outputs)
    ui: np.ndarray  # edges: index into Us / Vs
    vi: np.ndarray
    kernel: np.ndarray  # flat weight index of each edge
    corner: np.ndarray  # d(u, v) = 1/|w| of each edge
    pred_len: np.ndarray  # |Us| x |R| lengths p -> u (inf: no edge)
    succ_len: np.ndarray  # |Vs| x |P| lengths v -> s
    core: np.ndarray  # |R| x |P| distances
    row: np.ndarray  # |Us| x |P| distances u -> s
    col: np.ndarray  # |R| x |Vs| distances p -> v


def _blocks_by_position(units: np.ndarray, shape: tuple[int, ...]) -> list[np.ndarray]:
    """Split flat (C, H, W) units by spatial position."""
    hw = int(shape[1] * shape[2])
    pos = units % hw
    order = np.argsort(pos, kind="stable")
    cuts = np.flatnonzero(np.diff(pos[order])) + 1
    return np.split(units[order], cuts)


def _unit_groups(net: Network, k: int, conv_positions: int | None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(source units, target units) of each group of layer k's edges sharing their neighbourhoods."""
    lay, prev, nxt = net.layers[k], net.prev(k), net.next(k)
    if lay.kind == "conv":
        cin, hin, win = lay.in_shape
        cout, hout, wout = lay.out_shape
        for q in lay.positions(conv_positions):
            vs = np.arange(cout) * (hout * wout) + q
            for p in np.unique(lay.preds(np.array([q])) % (hin * win)):
                yield np.arange(cin) * (hin * win) + p, vs
        return
    src_blocks = (
        _blocks_by_position(np.arange(lay.n_in), prev.out_shape)
        if prev is not None and prev.kind == "conv"
        else [np.arange(lay.n_in)]
    )
    dst_blocks = (
        _blocks_by_position(np.arange(lay.n_out), nxt.in_shape)
        if nxt is not None and nxt.kind == "conv"
        else [np.arange(lay.n_out)]
    )
    for us in src_blocks:
        for vs in dst_blocks:
            yield us, vs


def edge_groups(net: Network, k: int, conv_positions: int | None) -> Iterator[EdgeGroup]:
    lay, prev, nxt = net.layers[k], net.prev(k), net.next(k)
    empty = np.zeros(0, dtype=np.int64)
    for Us, Vs in _unit_groups(net, k, conv_positions):
        corner_all, kidx = lay.block(Vs, Us)
        vi, ui = np.nonzero(np.isfinite(corner_all))
        if not len(vi):
            continue
        R = prev.preds(Us) if prev is not None else empty
        P = nxt.succs(Vs) if nxt is not None else empty
        pred_len = prev.block(Us, R)[0] if prev is not None else np.zeros((len(Us), 0))
        succ_len = nxt.block(P, Vs)[0].T if nxt is not None else np.zeros((len(Vs), 0))
        core = np.zeros((len(R), len(P)))
        row = np.zeros((len(Us), len(P)))
        col = np.zeros((len(R), len(Vs)))
        p_preds = empty
        if nxt is not None and len(P):
            p_preds = nxt.preds(P)
            v3 = np.intersect1d(lay.succs(Us), p_preds)
            row = minplus(lay.block(v3, Us)[0].T, nxt.block(P, v3)[0].T)
        if prev is not None and len(R):
            u2 = prev.succs(R)
            u3 = np.intersect1d(u2, lay.preds(Vs))
            col = minplus(prev.block(u3, R)[0].T, lay.block(Vs, u3)[0].T)
            if nxt is not None and len(P):
                v2 = np.intersect1d(lay.succs(u2), p_preds)
                # R -> v2 distances; block() depends only on the unit values, so with u2 == u3 and
                # v2 == Vs (e.g. dense-dense-dense) this is the very computation that gave col
                inner = (
                    col
                    if np.array_equal(u2, u3) and np.array_equal(v2, Vs)
                    else minplus(prev.block(u2, R)[0].T, lay.block(v2, u2)[0].T)
                )
                core = minplus(inner, nxt.block(P, v2)[0].T)
        yield EdgeGroup(k, Us, Vs, R, P, ui, vi, kidx[vi, ui], corner_all[vi, ui], pred_len, succ_len, core, row, col)
