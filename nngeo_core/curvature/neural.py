"""Neural curvature (Tan, Sia, Bogdan, Ivanov, arXiv 2601.16366) and weight-only Ollivier-Ricci
curvature of a network's layer graph.

The network is a directed layered graph over neurons. A prunable layer (``nn.Linear`` or
``nn.Conv2d``) joins the units of its input to the units of its output; a conv layer gives one
edge per (output position, kernel tap, input channel), so one kernel weight labels many edges.
Edge length is 1/|w| (a zero weight is no edge). Layer k's input units *are* layer k-1's output
units when the two have the same number of elements (element-wise activations, batch norm and
flatten in between); otherwise (pooling, a changed shape) the chain is cut there: layer k's
inputs have no predecessors and layer k-1's outputs no successors. Skip connections are not edges.

Distances are directed (forward) shortest paths, as GraphRicciCurvature uses on a DiGraph: from a
predecessor a of u to a successor b of v every path runs a -> u' -> v' -> b through the two layers
in between, so d(a, b) = min over u', v' of len(a,u') + len(u',v') + len(v',b), a min-plus product
of the three length matrices; d(u, v) is the edge itself. All edges of a dense layer share one
such cost matrix, so all their transport problems are solved as one batch.

Measures for an edge u -> v and a calibration input x (activations |a| min-max normalised per
layer and input to ã in [0, 1]):

    mu_u = alpha * delta_u + (1 - alpha) * sum_{p in pred(u)} m_p delta_p,   m_p ~ exp(-(1/ã_p)^2)
    nu_v = alpha * delta_v + (1 - alpha) * sum_{s in succ(v)} m_s delta_s,   m_s ~ exp(-(1/ã_s)^2)

(zero-activation neurons get no mass; when every neighbour's mass vanishes it is spread uniformly;
a source without predecessors or a target without successors is a Dirac measure). The curvature
is kappa = (1 - W1(mu_u, nu_v) / d(u, v)) / (1 - alpha) (the division is ``normalize_idleness``).
An edge whose source or target neuron has zero activation on an input gets ``dead_value`` on
that input (no information flows, so it ranks as redundant). Per-edge values are aggregated over
the calibration inputs by ``aggregate`` ("min" or "mean"); a kernel weight's score is the minimum
over the spatial edges it labels.

Weight-only curvature uses no data: the neighbour masses come from the edge lengths,
m_p ~ exp(-len(p, u)^2), exactly as GraphRicciCurvature does on the network's DiGraph (and it is
tested against it).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import nn

from ..errors import NNGeoError
from ..models.base import LayerInfo, get_layer, layer_io, prunable_layers
from ..progress import Progress
from ..settings import float64_device
from . import transport
from .levels import edge_levels
from .orc import GRC_EPSILON
from .transport import CoreProblems

AGGREGATES = ("min", "mean")
NC_METHODS = ("exact", "sinkhorn")
DEFAULT_CONV_POSITIONS = 4
DEAD_RTOL = 1e-12  # |a| at most this fraction of the layer's largest |a| counts as zero
PROBLEM_BUDGET = 8e6  # floats per batch of transport problems


# ----------------------------------------------------------------------------------------------
# the layer graph


class NetLayer:
    """One prunable layer as a bipartite graph between its input and output units (flat indices)."""

    def __init__(self, info: LayerInfo, weight: torch.Tensor):
        self.name, self.kind, self.info = info.name, info.kind, info
        W = weight.detach().to("cpu", torch.float64).numpy()
        if W.size == 0:
            raise NNGeoError(f"layer {info.name} has no weights")
        if not np.isfinite(W).all():
            raise NNGeoError(f"layer {info.name} has NaN or infinite weights")
        self.W = W
        with np.errstate(divide="ignore"):
            self.length = 1.0 / np.abs(W.ravel())  # zero weight: infinite length, no edge
        if self.kind == "dense":
            self.n_out, self.n_in = W.shape
            self.in_shape, self.out_shape = (self.n_in,), (self.n_out,)
        else:
            cout, cin_g, kh, kw = W.shape
            self.groups = int(info.groups)
            self.cin_g, self.cout_g = cin_g, cout // self.groups
            self.kh, self.kw = kh, kw
            self.stride, self.pad, self.dil = info.stride, info.padding, info.dilation
            hin, win = info.input_size
            hout, wout = info.output_size
            self.in_shape, self.out_shape = (cin_g * self.groups, hin, win), (cout, hout, wout)
            self.n_in, self.n_out = int(np.prod(self.in_shape)), int(np.prod(self.out_shape))

    # ---- conv index helpers
    def _split(self, units, shape):
        c, h, w = shape
        units = np.asarray(units, dtype=np.int64)
        return units // (h * w), (units % (h * w)) // w, units % w

    def _channels_for(self, chans, src_per_group, dst_per_group):
        groups = np.unique(np.asarray(chans) // src_per_group)
        return (groups[:, None] * dst_per_group + np.arange(dst_per_group)[None, :]).ravel()

    def preds(self, out_units) -> np.ndarray:
        """Input units with an edge into any of ``out_units`` (a superset where weights are zero)."""
        if self.kind == "dense":
            return np.arange(self.n_in)
        o, oy, ox = self._split(out_units, self.out_shape)
        cin, hin, win = self.in_shape
        # the input positions inside each output position's window
        pos = set()
        for yy, xx in set(zip(oy.tolist(), ox.tolist(), strict=False)):
            ys = yy * self.stride[0] - self.pad[0] + np.arange(self.kh) * self.dil[0]
            xs = xx * self.stride[1] - self.pad[1] + np.arange(self.kw) * self.dil[1]
            ys, xs = ys[(ys >= 0) & (ys < hin)], xs[(xs >= 0) & (xs < win)]
            pos.update((ys[:, None] * win + xs[None, :]).ravel().tolist())
        pos = np.array(sorted(pos), dtype=np.int64)
        chans = np.arange(cin) if self.groups == 1 else self._channels_for(o, self.cout_g, self.cin_g)
        return np.unique((chans[:, None] * (hin * win) + pos[None, :]).ravel())

    def succs(self, in_units) -> np.ndarray:
        """Output units with an edge from any of ``in_units``."""
        if self.kind == "dense":
            return np.arange(self.n_out)
        c, iy, ix = self._split(in_units, self.in_shape)
        cout, hout, wout = self.out_shape
        pos = set()
        for yy, xx in set(zip(iy.tolist(), ix.tolist(), strict=False)):
            ny = yy + self.pad[0] - np.arange(self.kh) * self.dil[0]
            nx_ = xx + self.pad[1] - np.arange(self.kw) * self.dil[1]
            ys = ny[(ny % self.stride[0] == 0)] // self.stride[0]
            xs = nx_[(nx_ % self.stride[1] == 0)] // self.stride[1]
            ys, xs = ys[(ys >= 0) & (ys < hout)], xs[(xs >= 0) & (xs < wout)]
            pos.update((ys[:, None] * wout + xs[None, :]).ravel().tolist())
        pos = np.array(sorted(pos), dtype=np.int64)
        chans = np.arange(cout) if self.groups == 1 else self._channels_for(c, self.cin_g, self.cout_g)
        return np.unique((chans[:, None] * (hout * wout) + pos[None, :]).ravel())

    def block(self, out_units, in_units) -> tuple[np.ndarray, np.ndarray]:
        """Lengths (|out| x |in|, inf where no edge) and flat weight indices (-1 where no edge)."""
        out_units = np.asarray(out_units, dtype=np.int64)
        in_units = np.asarray(in_units, dtype=np.int64)
        if self.kind == "dense":
            kidx = out_units[:, None] * self.n_in + in_units[None, :]
            return self.length[kidx], kidx
        o, oy, ox = self._split(out_units, self.out_shape)
        c, iy, ix = self._split(in_units, self.in_shape)
        ky = iy[None, :] - (oy[:, None] * self.stride[0] - self.pad[0])
        kx = ix[None, :] - (ox[:, None] * self.stride[1] - self.pad[1])
        ok = (ky % self.dil[0] == 0) & (kx % self.dil[1] == 0)
        ky, kx = ky // self.dil[0], kx // self.dil[1]
        ok &= (ky >= 0) & (ky < self.kh) & (kx >= 0) & (kx < self.kw)
        c_local = c[None, :] - (o[:, None] // self.cout_g) * self.cin_g
        ok &= (c_local >= 0) & (c_local < self.cin_g)
        kidx = ((o[:, None] * self.cin_g + c_local) * self.kh + ky) * self.kw + kx
        kidx = np.where(ok, kidx, -1)
        length = np.where(ok, self.length[np.where(ok, kidx, 0)], np.inf)
        return length, kidx

    def positions(self, limit: int | None) -> np.ndarray:
        """Output positions (flat y * W + x) whose edges are computed: all, or ``limit`` spread evenly."""
        _, hout, wout = self.out_shape
        n = hout * wout
        if limit is None or limit >= n:
            return np.arange(n)
        return np.unique(np.round(np.linspace(0, n - 1, int(limit) + 2)[1:-1]).astype(np.int64))


@dataclass
class Network:
    layers: list[NetLayer]
    linked: list[bool]  # linked[k]: layer k's input units are layer k-1's output units
    level_in: list[int]  # node-level id of each layer's inputs / outputs (shared where linked)
    level_out: list[int]

    def prev(self, k: int) -> NetLayer | None:
        return self.layers[k - 1] if k > 0 and self.linked[k] else None

    def next(self, k: int) -> NetLayer | None:
        return self.layers[k + 1] if k + 1 < len(self.layers) and self.linked[k + 1] else None


def build_network(model: nn.Module, input_shape=None) -> Network:
    infos = prunable_layers(model, input_shape)
    layers = [NetLayer(info, get_layer(model, info.name).weight) for info in infos]
    linked = [False] + [layers[k - 1].n_out == layers[k].n_in for k in range(1, len(layers))]
    level_in, level_out, nxt = [], [], 0
    for k in range(len(layers)):
        if linked[k]:
            level_in.append(level_out[k - 1])
        else:
            level_in.append(nxt)
            nxt += 1
        level_out.append(nxt)
        nxt += 1
    return Network(layers, linked, level_in, level_out)


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


# ----------------------------------------------------------------------------------------------
# groups of edges that share their neighbourhoods


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


def _blocks_by_position(units: np.ndarray, shape) -> list[np.ndarray]:
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
        if len(P):
            p_preds = nxt.preds(P)
            v3 = np.intersect1d(lay.succs(Us), p_preds)
            row = minplus(lay.block(v3, Us)[0].T, nxt.block(P, v3)[0].T)
        if len(R):
            u2 = prev.succs(R)
            u3 = np.intersect1d(u2, lay.preds(Vs))
            col = minplus(prev.block(u3, R)[0].T, lay.block(Vs, u3)[0].T)
        if len(R) and len(P):
            v2 = np.intersect1d(lay.succs(u2), p_preds)
            # R -> v2 distances; block() depends only on the unit values, so with u2 == u3 and v2 == Vs
            # (e.g. dense-dense-dense) this is the very computation that gave col
            inner = (
                col
                if np.array_equal(u2, u3) and np.array_equal(v2, Vs)
                else minplus(prev.block(u2, R)[0].T, lay.block(v2, u2)[0].T)
            )
            core = minplus(inner, nxt.block(P, v2)[0].T)
        yield EdgeGroup(k, Us, Vs, R, P, ui, vi, kidx[vi, ui], corner_all[vi, ui], pred_len, succ_len, core, row, col)


# ----------------------------------------------------------------------------------------------
# measures


def normalised_activations(act: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Min-max normalised |a| per input (rows) in [0, 1], and the dead (zero-activation) mask."""
    a = np.abs(act)
    lo, hi = a.min(axis=1, keepdims=True), a.max(axis=1, keepdims=True)
    span = hi - lo
    with np.errstate(invalid="ignore", divide="ignore"):
        norm = np.where(span > 0, (a - lo) / np.where(span > 0, span, 1.0), (a > 0).astype(float))
    dead = a <= DEAD_RTOL * hi
    return norm, dead


def _activation_masses(support: np.ndarray, norm: np.ndarray) -> np.ndarray:
    """(N, n_nodes, n_nbrs) masses ~ exp(-(1/ã)^2) over each node's support; uniform if all vanish."""
    with np.errstate(divide="ignore"):
        logw = np.where(norm > 0, -1.0 / np.square(np.where(norm > 0, norm, 1.0)), -np.inf)  # (N, n_nbrs)
    lw = np.where(support[None, :, :], logw[:, None, :], -np.inf)
    top = lw.max(axis=2, keepdims=True)
    alive = np.isfinite(top)
    w = np.exp(lw - np.where(alive, top, 0.0))
    w = np.where(alive, w, support[None, :, :].astype(float))  # nothing alive: uniform over the support
    total = w.sum(axis=2, keepdims=True)
    return w / np.where(total > 0, total, 1.0)


def _length_masses(support: np.ndarray, length: np.ndarray) -> np.ndarray:
    """(1, n_nodes, n_nbrs) masses ~ exp(-len^2), GraphRicciCurvature's rule (uniform if sum <= 1e-7)."""
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        w = np.where(support, np.exp(-np.square(np.where(support, length, 0.0))), 0.0)
    total = w.sum(axis=1, keepdims=True)
    count = support.sum(axis=1, keepdims=True)
    uniform = total <= GRC_EPSILON
    w = np.where(uniform, support / np.maximum(count, 1), w / np.where(uniform, 1.0, total))
    return w[None]


# ----------------------------------------------------------------------------------------------
# the computation


@dataclass
class _Levels:
    norm: dict[int, np.ndarray]
    dead: dict[int, np.ndarray]
    n: int


def _activations(model: nn.Module, net: Network, inputs: torch.Tensor) -> _Levels:
    param = next(model.parameters())
    x = inputs.to(device=param.device, dtype=param.dtype)
    was = model.training
    model.eval()
    try:
        io = layer_io(model, x, [lay.name for lay in net.layers])
    finally:
        model.train(was)
    raw: dict[int, np.ndarray] = {}
    for k, lay in enumerate(net.layers):  # outputs first, then inputs overwrite linked levels
        raw[net.level_out[k]] = io[lay.name][1].reshape(len(x), -1).to("cpu", torch.float64).numpy()
    for k, lay in enumerate(net.layers):
        raw[net.level_in[k]] = io[lay.name][0].reshape(len(x), -1).to("cpu", torch.float64).numpy()
    norm, dead = {}, {}
    for level, act in raw.items():
        if not np.isfinite(act).all():
            raise NNGeoError("the network's activations on the calibration inputs are not finite")
        norm[level], dead[level] = normalised_activations(act)
    return _Levels(norm, dead, len(x))


def _check_nc_params(alpha, method, aggregate, dead_value, conv_positions):
    if not (isinstance(alpha, (int, float)) and 0.0 <= float(alpha) < 1.0):
        raise NNGeoError(f"alpha (the idleness) must lie in [0, 1), got {alpha!r}")
    if method not in NC_METHODS:
        raise NNGeoError(f"unknown curvature method {method!r}; use one of {', '.join(NC_METHODS)}")
    if aggregate not in AGGREGATES:
        raise NNGeoError(f"unknown aggregate {aggregate!r}; use min or mean")
    if not np.isfinite(float(dead_value)):
        raise NNGeoError("dead_value must be a finite number")
    if conv_positions is not None and int(conv_positions) < 1:
        raise NNGeoError("conv_positions must be at least 1 (or None for every position)")


def _network_curvature(
    model,
    inputs,
    *,
    alpha,
    method,
    aggregate,
    normalize_idleness,
    dead_value,
    conv_positions,
    processes,
    device,
    progress,
) -> pd.DataFrame:
    progress = progress or Progress()
    net = build_network(model)
    levels = _activations(model, net, inputs) if inputs is not None else None
    dev = float64_device(device)
    frames = []
    n_layers = len(net.layers)
    for k, lay in enumerate(net.layers):
        progress.check()
        sub = progress.sub(k / n_layers, (k + 1) / n_layers)
        sub.update(0.0, f"layer {lay.name}")
        parts = [
            _group_curvature(
                g, net, levels, alpha, method, aggregate, normalize_idleness, dead_value, processes, dev, sub
            )
            for g in edge_groups(net, k, conv_positions)
        ]
        if not parts:
            continue
        df = pd.DataFrame({c: np.concatenate([p[c] for p in parts]) for c in parts[0]})
        df.insert(0, "layer", lay.name)
        df.insert(1, "layer_index", k)
        df.insert(2, "kind", lay.kind)
        df["src_level"] = net.level_in[k]
        df["dst_level"] = net.level_out[k]
        frames.append(df.sort_values(["src", "dst"], kind="stable"))
        progress.update((k + 1) / n_layers, f"layer {lay.name} done", force=True)
    cols = [
        "layer",
        "layer_index",
        "kind",
        "src",
        "dst",
        "kernel",
        "weight",
        "curvature",
        "alive",
        "src_level",
        "dst_level",
    ]
    if not frames:
        return pd.DataFrame({c: [] for c in cols})
    return pd.concat(frames, ignore_index=True)[cols]


def _group_curvature(
    g: EdgeGroup,
    net: Network,
    levels: _Levels | None,
    alpha,
    method,
    aggregate,
    normalize_idleness,
    dead_value,
    processes,
    device,
    progress: Progress,
) -> dict:
    k = g.k
    lay = net.layers[k]
    pred_support = np.isfinite(g.pred_len)
    succ_support = np.isfinite(g.succ_len)
    if levels is None:  # weight-only: masses from edge lengths, nothing is dead
        a_tab = _length_masses(pred_support, g.pred_len)
        b_tab = _length_masses(succ_support, g.succ_len)
        n_inputs = 1
        alive = np.ones((1, len(g.ui)), dtype=bool)
    else:
        n_inputs = levels.n
        lvl_pred = net.level_in[k - 1] if len(g.R) else None
        lvl_succ = net.level_out[k + 1] if len(g.P) else None
        a_tab = (
            _activation_masses(pred_support, levels.norm[lvl_pred][:, g.R])
            if lvl_pred is not None
            else np.zeros((n_inputs, len(g.Us), 0))
        )
        b_tab = (
            _activation_masses(succ_support, levels.norm[lvl_succ][:, g.P])
            if lvl_succ is not None
            else np.zeros((n_inputs, len(g.Vs), 0))
        )
        dead_u = levels.dead[net.level_in[k]][:, g.Us]
        dead_v = levels.dead[net.level_out[k]][:, g.Vs]
        alive = ~dead_u[:, g.ui] & ~dead_v[:, g.vi]
    has_pred = pred_support.any(axis=1)
    has_succ = succ_support.any(axis=1)
    ax_u = np.where(has_pred, alpha, 1.0)
    by_v = np.where(has_succ, alpha, 1.0)
    inp, edge = np.nonzero(alive)  # ordered by input: a batch shares one input's dead units
    values = np.full((n_inputs, len(g.ui)), float(dead_value))
    if len(edge):
        w1 = np.empty(len(edge))
        width = len(g.R) + len(g.P) + 2
        size = max(1, int(PROBLEM_BUDGET // (4 * width)))
        starts = np.flatnonzero(np.r_[True, np.diff(inp) != 0])
        bounds = [
            (lo, min(end, lo + size))
            for first, end in zip(starts, np.r_[starts[1:], len(inp)], strict=False)
            for lo in range(first, end, size)
        ]
        for done, (lo, hi) in enumerate(bounds):
            progress.check()
            e, n = edge[lo:hi], inp[lo:hi]
            u, v = g.ui[e], g.vi[e]
            probs = CoreProblems(
                C=g.core,
                a=(1.0 - alpha) * a_tab[n if a_tab.shape[0] > 1 else 0 * n, u, :].T,
                b=(1.0 - alpha) * b_tab[n if b_tab.shape[0] > 1 else 0 * n, v, :].T,
                ax=ax_u[u].astype(np.float64),
                by=by_v[v].astype(np.float64),
                row=np.ascontiguousarray(g.row[u, :].T),
                col=np.ascontiguousarray(g.col[:, v]),
                corner=g.corner[e].copy(),
            )
            w1[lo:hi] = transport.solve(probs, method, processes=processes, device=device, check=progress.check)
            progress.update((done + 1) / len(bounds), f"layer {lay.name}", problems=hi)
        d = g.corner[edge]
        with np.errstate(divide="ignore", invalid="ignore"):
            kappa = np.where(d < GRC_EPSILON, 0.0, 1.0 - w1 / np.where(d < GRC_EPSILON, 1.0, d))
        if normalize_idleness:
            kappa = kappa / (1.0 - alpha)
        values[inp, edge] = kappa
    curv = values.min(axis=0) if aggregate == "min" else values.mean(axis=0)
    return {
        "src": g.Us[g.ui],
        "dst": g.Vs[g.vi],
        "kernel": g.kernel,
        "weight": lay.W.ravel()[g.kernel],
        "curvature": curv,
        "alive": alive.sum(axis=0),
    }


# ----------------------------------------------------------------------------------------------
# public API


def _as_inputs(model: nn.Module, inputs) -> torch.Tensor:
    if isinstance(inputs, np.ndarray):
        inputs = torch.from_numpy(inputs)
    if not isinstance(inputs, torch.Tensor):
        raise NNGeoError("inputs must be a tensor of calibration inputs (N, *input_shape)")
    if inputs.ndim == 0 or len(inputs) == 0:
        raise NNGeoError("no calibration inputs given; pass at least one input")
    if not torch.isfinite(inputs).all():
        raise NNGeoError("the calibration inputs contain NaN or infinite values")
    shape = getattr(model, "input_shape", None)
    if shape is not None and tuple(inputs.shape[1:]) != tuple(shape):
        if inputs[0].numel() == int(np.prod(shape)):
            inputs = inputs.reshape(len(inputs), *shape)
        else:
            raise NNGeoError(f"calibration inputs have shape {tuple(inputs.shape[1:])}, the model takes {tuple(shape)}")
    return inputs


def neural_curvature(
    model: nn.Module,
    inputs,
    *,
    alpha: float = 0.5,
    method: str = "sinkhorn",
    aggregate: str = "min",
    normalize_idleness: bool = True,
    dead_value: float = 1.0,
    conv_positions: int | None = DEFAULT_CONV_POSITIONS,
    processes: int | None = None,
    device: str = "auto",
    progress: Progress | None = None,
) -> pd.DataFrame:
    """Neural curvature of every edge, aggregated over the calibration ``inputs`` (N, *input_shape).

    Returns one row per edge: ``layer``, ``layer_index``, ``kind``, ``src``/``dst`` (unit indices
    in the layer's flattened input/output), ``kernel`` (flat index into the layer's weight tensor;
    for conv layers several rows share it), ``weight``, ``curvature``, ``alive`` (inputs on which
    both neurons fire), ``src_level``/``dst_level`` (node layer ids, shared where layers link).
    Conv layers are evaluated at ``conv_positions`` output positions spread over the feature map
    (None: all). ``method``: "sinkhorn" (default: batched entropic OT, within ~1e-2 of exact; tiny
    problems are still solved exactly) or "exact" (network simplex per problem).
    """
    _check_nc_params(alpha, method, aggregate, dead_value, conv_positions)
    inputs = _as_inputs(model, inputs)
    return _network_curvature(
        model,
        inputs,
        alpha=float(alpha),
        method=method,
        aggregate=aggregate,
        normalize_idleness=normalize_idleness,
        dead_value=dead_value,
        conv_positions=conv_positions,
        processes=processes,
        device=device,
        progress=progress,
    )


def weight_only_curvature(
    model: nn.Module,
    *,
    alpha: float = 0.5,
    method: str = "sinkhorn",
    normalize_idleness: bool = False,
    conv_positions: int | None = DEFAULT_CONV_POSITIONS,
    processes: int | None = None,
    device: str = "auto",
    progress: Progress | None = None,
) -> pd.DataFrame:
    """Ollivier-Ricci curvature of the layer graph from the weights alone (no data).

    Lengths 1/|w|, neighbour masses ~ exp(-len^2) as GraphRicciCurvature computes them on the
    network's DiGraph; with ``normalize_idleness=False`` (default) the values equal
    GraphRicciCurvature's. Same table as ``neural_curvature`` (``alive`` is 1).
    """
    _check_nc_params(alpha, method, "min", 0.0, conv_positions)
    return _network_curvature(
        model,
        None,
        alpha=float(alpha),
        method=method,
        aggregate="min",
        normalize_idleness=normalize_idleness,
        dead_value=0.0,
        conv_positions=conv_positions,
        processes=processes,
        device=device,
        progress=progress,
    )


def scores_from_table(model: nn.Module, df: pd.DataFrame, fill: float = 1.0) -> dict[str, torch.Tensor]:
    """Per-weight curvature (min over the edges each weight labels) shaped like each layer's weight.

    Weights with no computed edge (zero weights, conv taps that only ever see padding) get
    ``fill``: no information flows through them, so they rank as redundant.
    """
    out = {}
    for info in prunable_layers(model):
        w = get_layer(model, info.name).weight
        flat = np.full(w.numel(), np.nan)
        rows = df[df["layer"] == info.name]
        if len(rows):
            mins = rows.groupby("kernel")["curvature"].min()
            flat[mins.index.to_numpy(dtype=np.int64)] = mins.to_numpy()
        flat = np.where(np.isnan(flat), fill, flat)
        out[info.name] = torch.from_numpy(flat.reshape(tuple(w.shape))).to(torch.float32)
    return out


def curvature_scores(
    model: nn.Module,
    inputs=None,
    *,
    alpha: float = 0.5,
    method: str = "sinkhorn",
    aggregate: str = "min",
    normalize_idleness: bool = True,
    dead_value: float = 1.0,
    conv_positions: int | None = DEFAULT_CONV_POSITIONS,
    processes: int | None = None,
    device: str = "auto",
    progress: Progress | None = None,
) -> dict[str, torch.Tensor]:
    """Per-weight neural curvature, ``{layer name: tensor shaped like its weight}``, for pruning.

    Positive curvature marks redundant weights (prune highest first); negative marks bottlenecks
    (pruning lowest first is the ablation). With ``inputs=None`` the weight-only curvature is used.
    Never NaN: weights without edges get ``dead_value``.
    """
    if inputs is None:
        df = weight_only_curvature(
            model,
            alpha=alpha,
            method=method,
            normalize_idleness=normalize_idleness,
            conv_positions=conv_positions,
            processes=processes,
            device=device,
            progress=progress,
        )
    else:
        df = neural_curvature(
            model,
            inputs,
            alpha=alpha,
            method=method,
            aggregate=aggregate,
            normalize_idleness=normalize_idleness,
            dead_value=dead_value,
            conv_positions=conv_positions,
            processes=processes,
            device=device,
            progress=progress,
        )
    return scores_from_table(model, df, fill=float(dead_value))


def node_curvature(df: pd.DataFrame) -> pd.DataFrame:
    """Mean curvature of the edges at each neuron: columns ``level``, ``unit``, ``curvature``, ``degree``.

    ``level`` numbers the node layers (a layer's outputs and the next layer's inputs share one
    where they link); tables without level columns number them by layer order.
    """
    need = {"src", "dst", "curvature"}
    if not need <= set(df.columns):
        raise NNGeoError(f"node_curvature needs columns {sorted(need)}")
    src_level, dst_level = edge_levels(df)
    both = pd.DataFrame(
        {
            "level": np.concatenate([src_level, dst_level]),
            "unit": np.concatenate([df["src"].to_numpy(), df["dst"].to_numpy()]),
            "curvature": np.concatenate([df["curvature"].to_numpy()] * 2),
        }
    )
    g = both.groupby(["level", "unit"], as_index=False)["curvature"]
    out = g.mean()
    out["degree"] = g.size()["size"].to_numpy()
    return out


def calibration_set(model: nn.Module, dataset, k: int = 1, *, split: str = "test") -> torch.Tensor:
    """``k`` correctly classified inputs per class from the held-out split (first ones, in order)."""
    if int(k) < 1:
        raise NNGeoError("k (calibration inputs per class) must be at least 1")
    if split not in ("test", "train"):
        raise NNGeoError("split must be test or train")
    x = dataset.x_test if split == "test" else dataset.x_train
    y = dataset.y_test if split == "test" else dataset.y_train
    if len(x) == 0:
        raise NNGeoError(f"dataset {dataset.name} has no {split} inputs to calibrate on")
    yc = y.cpu()
    classes = range(int(dataset.num_classes))
    # a class is done once it has k correct inputs, or all of its inputs (fewer than k) are correct
    need = [min(int(k), int((yc == c).sum())) for c in classes]
    got = [0] * len(need)
    param = next(model.parameters())
    was = model.training
    model.eval()
    preds = []
    with torch.no_grad():
        for s in range(0, len(x), 2048):
            pred = model(x[s : s + 2048].to(device=param.device, dtype=param.dtype)).argmax(1).cpu()
            preds.append(pred)
            hit = yc[s : s + 2048][pred == yc[s : s + 2048]]
            got = [g + int((hit == c).sum()) for g, c in zip(got, classes, strict=False)]
            if all(g >= n for g, n in zip(got, need, strict=False)):
                break  # every class has its first k: later inputs cannot change the choice
    model.train(was)
    seen = torch.cat(preds)
    correct = seen == yc[: len(seen)]
    chosen = []
    for c in classes:
        idx = torch.nonzero(correct & (yc[: len(seen)] == c)).flatten()[: int(k)]
        chosen.append(idx)
    idx = torch.cat(chosen)
    if len(idx) == 0:
        raise NNGeoError("the model classifies none of the held-out inputs correctly; train it first")
    return x[idx].cpu()
