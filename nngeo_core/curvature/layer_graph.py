"""A network as a directed layered graph over neurons, the graph neural curvature lives on.

A prunable layer (``nn.Linear`` or ``nn.Conv2d``) joins the units of its input to the units of
its output; a conv layer gives one edge per (output position, kernel tap, input channel), so one
kernel weight labels many edges. Edge length is 1/|w| (a zero weight is no edge). Layer k's input
units *are* layer k-1's output units when the two have the same number of elements (element-wise
activations, batch norm and flatten in between); otherwise (pooling, a changed shape) the chain is
cut there: layer k's inputs have no predecessors and layer k-1's outputs no successors. Skip
connections are not edges.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..errors import NNGeoError
from ..models.base import LayerInfo, get_layer, prunable_layers, tensor_attribute


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
        cells: set[int] = set()
        for yy, xx in set(zip(oy.tolist(), ox.tolist(), strict=False)):
            ys = yy * self.stride[0] - self.pad[0] + np.arange(self.kh) * self.dil[0]
            xs = xx * self.stride[1] - self.pad[1] + np.arange(self.kw) * self.dil[1]
            ys, xs = ys[(ys >= 0) & (ys < hin)], xs[(xs >= 0) & (xs < win)]
            cells.update((ys[:, None] * win + xs[None, :]).ravel().tolist())
        pos = np.array(sorted(cells), dtype=np.int64)
        chans = np.arange(cin) if self.groups == 1 else self._channels_for(o, self.cout_g, self.cin_g)
        return np.unique((chans[:, None] * (hin * win) + pos[None, :]).ravel())

    def succs(self, in_units) -> np.ndarray:
        """Output units with an edge from any of ``in_units``."""
        if self.kind == "dense":
            return np.arange(self.n_out)
        c, iy, ix = self._split(in_units, self.in_shape)
        cout, hout, wout = self.out_shape
        cells: set[int] = set()
        for yy, xx in set(zip(iy.tolist(), ix.tolist(), strict=False)):
            ny = yy + self.pad[0] - np.arange(self.kh) * self.dil[0]
            nx_ = xx + self.pad[1] - np.arange(self.kw) * self.dil[1]
            ys = ny[(ny % self.stride[0] == 0)] // self.stride[0]
            xs = nx_[(nx_ % self.stride[1] == 0)] // self.stride[1]
            ys, xs = ys[(ys >= 0) & (ys < hout)], xs[(xs >= 0) & (xs < wout)]
            cells.update((ys[:, None] * wout + xs[None, :]).ravel().tolist())
        pos = np.array(sorted(cells), dtype=np.int64)
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
    layers = [NetLayer(info, tensor_attribute(get_layer(model, info.name), "weight")) for info in infos]
    linked = [False] + [layers[k - 1].n_out == layers[k].n_in for k in range(1, len(layers))]
    level_in: list[int] = []
    level_out: list[int] = []
    nxt = 0
    for k in range(len(layers)):
        if linked[k]:
            level_in.append(level_out[k - 1])
        else:
            level_in.append(nxt)
            nxt += 1
        level_out.append(nxt)
        nxt += 1
    return Network(layers, linked, level_in, level_out)
