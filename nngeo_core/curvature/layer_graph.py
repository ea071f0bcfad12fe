"""A network as a directed acyclic graph over neurons, the graph neural curvature lives on.

The node levels and what joins them come from one traced forward pass (``trace``): a prunable
layer (``nn.Linear`` or ``nn.Conv2d``) joins the units of its input level to those of its output
level; a conv layer gives one edge per (output position, kernel tap, input channel), so one kernel
weight labels many edges. Fixed linear maps (pooling, skip connections, subsampling, padding,
concatenation) are edges too (``LinkEdges``), with their coefficients as weights, but carry no
curvature of their own: they only shape the neighbourhoods and distances of the weight edges.
Edge length is 1/|w| (a zero weight is no edge). Batch norms are folded into the convs before
(``models.layers.fold_batchnorm``), so lengths are those of the function the network computes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from ..errors import NNGeoError
from ..models.base import LayerInfo, get_layer, model_input_shape, prunable_layers, tensor_attribute
from .trace import Link, trace_network


class NetLayer:
    """One prunable layer as a bipartite graph between its input and output units (flat indices)."""

    in_shape: tuple[int, ...]  # (n_in,) for dense layers, (C, H, W) for conv layers
    out_shape: tuple[int, ...]
    # conv geometry (conv layers only)
    groups: int
    cin_g: int
    cout_g: int
    kh: int
    kw: int
    stride: tuple[int, int]
    pad: tuple[int, int]
    dil: tuple[int, int]

    src: int = -1  # node levels of its inputs / outputs (set by ``build_network``)
    dst: int = -1

    def __init__(self, info: LayerInfo, weight: torch.Tensor):
        self.name, self.kind, self.info = info.name, info.kind, info
        W = weight.detach().cpu().numpy()  # kept in its dtype: lengths are taken in float64 per edge
        if W.size == 0:
            raise NNGeoError(f"layer {info.name} has no weights")
        if not np.isfinite(W).all():
            raise NNGeoError(f"layer {info.name} has NaN or infinite weights")
        self.W = W
        self.flat = W.ravel()
        if self.kind == "dense":
            self.n_out, self.n_in = W.shape
            self.in_shape, self.out_shape = (self.n_in,), (self.n_out,)
            return
        if (
            info.input_size is None
            or info.output_size is None
            or info.stride is None
            or info.padding is None
            or info.dilation is None
        ):
            raise NNGeoError(f"conv layer {info.name} lacks its spatial geometry (sizes, stride, padding, dilation)")
        cout, cin_g, kh, kw = W.shape
        self.groups = int(info.groups)
        self.cin_g, self.cout_g = cin_g, cout // self.groups
        self.kh, self.kw = kh, kw
        self.stride, self.pad, self.dil = info.stride, info.padding, info.dilation
        hin, win = info.input_size
        hout, wout = info.output_size
        self.in_shape, self.out_shape = (cin_g * self.groups, hin, win), (cout, hout, wout)
        self.n_in, self.n_out = int(np.prod(self.in_shape)), int(np.prod(self.out_shape))

    def length(self, kidx: np.ndarray) -> np.ndarray:
        """1/|w| of the weights at flat indices ``kidx`` in float64 (a zero weight: inf, no edge)."""
        with np.errstate(divide="ignore"):
            return 1.0 / np.abs(self.flat[kidx].astype(np.float64))

    # ---- conv index helpers
    def _split(self, units, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
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
        at = np.unique(oy * self.out_shape[2] + ox)
        yy, xx = at // self.out_shape[2], at % self.out_shape[2]
        ys = yy[:, None] * self.stride[0] - self.pad[0] + np.arange(self.kh)[None, :] * self.dil[0]
        xs = xx[:, None] * self.stride[1] - self.pad[1] + np.arange(self.kw)[None, :] * self.dil[1]
        ok = ((ys >= 0) & (ys < hin))[:, :, None] & ((xs >= 0) & (xs < win))[:, None, :]
        pos = np.unique((ys[:, :, None] * win + xs[:, None, :])[ok])
        chans = np.arange(cin) if self.groups == 1 else self._channels_for(o, self.cout_g, self.cin_g)
        return np.unique((chans[:, None] * (hin * win) + pos[None, :]).ravel())

    def succs(self, in_units) -> np.ndarray:
        """Output units with an edge from any of ``in_units``."""
        if self.kind == "dense":
            return np.arange(self.n_out)
        c, iy, ix = self._split(in_units, self.in_shape)
        cout, hout, wout = self.out_shape
        at = np.unique(iy * self.in_shape[2] + ix)
        yy, xx = at // self.in_shape[2], at % self.in_shape[2]
        ny = yy[:, None] + self.pad[0] - np.arange(self.kh)[None, :] * self.dil[0]
        nx_ = xx[:, None] + self.pad[1] - np.arange(self.kw)[None, :] * self.dil[1]
        oky = (ny % self.stride[0] == 0) & (ny // self.stride[0] >= 0) & (ny // self.stride[0] < hout)
        okx = (nx_ % self.stride[1] == 0) & (nx_ // self.stride[1] >= 0) & (nx_ // self.stride[1] < wout)
        ok = oky[:, :, None] & okx[:, None, :]
        pos = np.unique(((ny // self.stride[0])[:, :, None] * wout + (nx_ // self.stride[1])[:, None, :])[ok])
        chans = np.arange(cout) if self.groups == 1 else self._channels_for(c, self.cin_g, self.cout_g)
        return np.unique((chans[:, None] * (hout * wout) + pos[None, :]).ravel())

    def block(self, out_units, in_units) -> tuple[np.ndarray, np.ndarray]:
        """Lengths (|out| x |in|, inf where no edge) and flat weight indices (-1 where no edge)."""
        out_units = np.asarray(out_units, dtype=np.int64)
        in_units = np.asarray(in_units, dtype=np.int64)
        if self.kind == "dense":
            kidx = out_units[:, None] * self.n_in + in_units[None, :]
            return self.length(kidx), kidx
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
        length = np.where(ok, self.length(np.where(ok, kidx, 0)), np.inf)
        return length, kidx

    def positions(self, limit: int | None) -> np.ndarray:
        """Output positions (flat y * W + x) whose edges are computed: all, or ``limit`` spread evenly."""
        _, hout, wout = self.out_shape
        n = hout * wout
        if limit is None or limit >= n:
            return np.arange(n)
        return np.unique(np.round(np.linspace(0, n - 1, int(limit) + 2)[1:-1]).astype(np.int64))


class LinkEdges:
    """A fixed linear map between two levels (pooling, a skip, a gather) as edges: coefficient c
    gives an edge of length 1/|c|. Same interface as ``NetLayer`` (no kernel indices: -1)."""

    kind = "link"

    def __init__(self, link: Link, in_shape: tuple[int, ...], out_shape: tuple[int, ...]):
        self.name = f"{link.kind} ({link.where})"
        self.src, self.dst = link.src, link.dst
        self.M = sp.csr_matrix(link.matrix)
        self.M.eliminate_zeros()
        self.Mt = sp.csr_matrix(self.M.T)
        self.n_out, self.n_in = self.M.shape
        self.in_shape, self.out_shape = in_shape, out_shape

    def preds(self, out_units) -> np.ndarray:
        return np.unique(self.M[np.asarray(out_units, dtype=np.int64)].indices).astype(np.int64)

    def succs(self, in_units) -> np.ndarray:
        return np.unique(self.Mt[np.asarray(in_units, dtype=np.int64)].indices).astype(np.int64)

    def block(self, out_units, in_units) -> tuple[np.ndarray, np.ndarray]:
        sub = self.M[np.asarray(out_units, dtype=np.int64)][:, np.asarray(in_units, dtype=np.int64)].toarray()
        with np.errstate(divide="ignore"):
            length = np.where(sub != 0, 1.0 / np.abs(sub), np.inf)
        return length, np.full(sub.shape, -1, dtype=np.int64)


Edges = NetLayer | LinkEdges


@dataclass
class Network:
    layers: list[NetLayer]  # the weight layers, in forward order
    links: list[LinkEdges]
    level_size: list[int]
    level_shape: list[tuple[int, ...]]  # (C, H, W) for image levels, else (n,)
    cut: dict[int, str] = field(default_factory=dict)  # level -> the op its units come from, not drawn
    lost: dict[int, str] = field(default_factory=dict)  # level -> an op that reads it, not drawn
    into: dict[int, list[Edges]] = field(default_factory=dict)
    out_of: dict[int, list[Edges]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        every: list[Edges] = [*self.layers, *self.links]
        for e in every:
            self.into.setdefault(e.dst, []).append(e)
            self.out_of.setdefault(e.src, []).append(e)

    def spatial(self, level: int) -> bool:
        """Whether a level is an image with more than one position (its units differ by position)."""
        shape = self.level_shape[level]
        return len(shape) == 3 and shape[1] * shape[2] > 1

    def notes(self) -> dict[str, str]:
        """Per weight layer, what the graph leaves out next to it (an op it cannot draw as edges)."""
        out: dict[str, str] = {}
        for lay in self.layers:
            parts = []
            if lay.src in self.cut:
                parts.append(f"its inputs come from {self.cut[lay.src]}, not drawn as edges: no predecessors")
            if lay.dst in self.lost:
                drawn = "no successors" if not self.out_of.get(lay.dst) else "those successors are missing"
                parts.append(f"its outputs also go on through {self.lost[lay.dst]}, not drawn as edges: {drawn}")
            if parts:
                out[lay.name] = "; ".join(parts)
        return out


def build_network(
    model: nn.Module, input_shape=None, inputs: torch.Tensor | None = None
) -> tuple[Network, dict[int, torch.Tensor]]:
    """The neuron DAG of ``model`` (traced on ``inputs``, or on one zero input), and the activations
    of every level on ``inputs`` ({} without inputs)."""
    shape = tuple(input_shape) if input_shape is not None else model_input_shape(model)
    infos = {info.name: info for info in prunable_layers(model, shape)}
    param = next(model.parameters())
    x = inputs if inputs is not None else torch.zeros((1, *shape))
    trace = trace_network(model, x.to(device=param.device, dtype=param.dtype), keep_values=inputs is not None)
    layers = []
    for call in trace.layers:
        lay = NetLayer(infos[call.name], tensor_attribute(get_layer(model, call.name), "weight"))
        lay.src, lay.dst = call.src, call.dst
        for level, n in ((call.src, lay.n_in), (call.dst, lay.n_out)):
            if trace.level_size[level] != n:
                raise NNGeoError(
                    f"layer {call.name} does not act on whole neuron levels ({trace.level_size[level]} units "
                    f"there, the layer has {n}): the neuron graph cannot place it"
                )
        layers.append(lay)
    links = [LinkEdges(link, trace.level_shape[link.src], trace.level_shape[link.dst]) for link in trace.links]
    net = Network(layers, links, trace.level_size, trace.level_shape, trace.cut, trace.lost)
    return net, trace.values
