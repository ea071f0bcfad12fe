"""Topologically critical compression ratio and maximum-spanning-tree masks.

Balwani & Krzyston (2022): a pruned layer keeps all of its 0-dim topology (the layer graph stays
connected and the finite diagram is unchanged) only while it keeps at least a spanning tree, so the
largest compression that can preserve it is ``eta_tau = |W| / |MST(G)|``:

* dense ``m -> n``: ``m*n / (m + n - 1)``;
* recurrent ``l -> l``: ``l^2 / (2l - 1)`` (the dense formula with ``m = n = l``);
* conv, per filter: ``n*f1*f2 / (m + n - 1)``, ``m`` the padded input spatial size ``Hp*Wp``, ``n``
  the output spatial size ``Ho*Wo`` and ``f1 x f2`` the kernel (``|W|`` counts edges of the filter's
  Toeplitz graph). ``conv="toeplitz"`` instead uses the full multi-channel Toeplitz graph:
  ``C_in*C_out*n*f1*f2 / (C_in*m + C_out*n - 1)``.

``|MST|`` is the number of vertices minus the number of connected components of the graph with
every edge present, so the closed forms hold whenever that graph is connected; a conv whose stride
skips some padded positions leaves them isolated and gets the exact (smaller) spanning-forest size.
The whole model's ratio is total edges / total spanning-tree edges over the layers.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from torch import nn

from ..errors import NNGeoError
from ..models.base import get_layer, tensor_attribute
from .diagrams import check_choice
from .graphs import CONV_METHODS, ZERO_MODES, dense_graph, spanning_forest
from .persistence import model_graphs, model_layer_graphs, with_skipped


def critical_ratio_dense(m: int, n: int) -> float:
    """``m*n / (m + n - 1)`` for a dense layer with ``m`` inputs and ``n`` outputs."""
    return m * n / (m + n - 1)


def critical_ratio_recurrent(width: int) -> float:
    """``l^2 / (2l - 1)`` for an ``l -> l`` recurrent weight matrix."""
    return width * width / (2 * width - 1)


def critical_ratio_conv(m: int, n: int, f1: int, f2: int) -> float:
    """``n*f1*f2 / (m + n - 1)`` for one filter: ``m`` padded input positions, ``n`` output positions."""
    return n * f1 * f2 / (m + n - 1)


def critical_compression(model: nn.Module, input_shape=None, *, conv: str = "filter") -> pd.DataFrame:
    """Per-layer ``eta_tau`` plus a ``total`` row (total edges / total spanning-tree edges).

    Columns: ``layer``, ``kind``, ``n_in``, ``n_out`` (vertices), ``n_params`` (weights of the
    layer), ``n_edges`` (edges of the graph: weights for dense, Toeplitz edges for conv),
    ``mst_size`` (edges of a spanning tree/forest of the full graph), ``eta_tau`` and
    ``conv_method``. Needs only the layer shapes, so it works for any zoo model or uploaded
    checkpoint given its input shape. ``conv="filter"`` (default) is the paper's per-filter formula.
    ``note`` says how a layer was prepared (a folded batch norm, a grouped conv); modules with
    weights but no layer graph get a ``kind = "skipped"`` row (reason in ``note``) before ``total``.
    """
    graphs, skipped = model_layer_graphs(model, conv=conv, input_shape=input_shape)
    rows = [
        {
            "layer": g.name,
            "kind": g.kind,
            "n_in": g.n_in,
            "n_out": g.n_out,
            "n_params": g.n_params,
            "n_edges": g.n_edges,
            "mst_size": g.structural_mst_size,
            "eta_tau": g.n_edges / g.structural_mst_size if g.structural_mst_size else float("nan"),
            "conv_method": g.method,
            "note": g.note,
        }
        for g in graphs
    ]
    total_edges = sum(g.n_edges for g in graphs)
    total_mst = sum(g.structural_mst_size for g in graphs)
    rows.append(
        {
            "layer": "total",
            "kind": "total",
            "n_in": sum(g.n_in for g in graphs),
            "n_out": sum(g.n_out for g in graphs),
            "n_params": sum(g.n_params for g in graphs),
            "n_edges": total_edges,
            "mst_size": total_mst,
            "eta_tau": total_edges / total_mst if total_mst else float("nan"),
            "conv_method": conv,
            "note": "",
        }
    )
    return with_skipped(pd.DataFrame(rows), skipped, before_total=True)


def mst_mask_from_weight(W, *, zeros: str = "absent"):
    """Boolean mask of the maximum-spanning-tree edges of one dense ``(out, in)`` weight matrix.

    Same type as ``W`` (torch tensor on its device, or numpy array). Exactly-zero weights are never
    kept with ``zeros="absent"``; where the nonzero weights do not connect the layer the mask is a
    spanning forest of what they do connect. Ties are broken by index (row-major).
    """
    check_choice("zeros", zeros, ZERO_MODES)
    graph = dense_graph("matrix", W)
    forest = spanning_forest(graph, include_zero=zeros == "edge")
    flat = np.zeros(graph.values.size, dtype=bool)
    flat[forest.groups] = True
    mask = flat.reshape(graph.weight_shape)
    if isinstance(W, torch.Tensor):
        return torch.from_numpy(mask).to(W.device)
    return mask


def mst_mask(
    model: nn.Module, *, conv: str = "toeplitz", zeros: str = "absent", input_shape=None
) -> dict[str, torch.Tensor]:
    """Per prunable layer, a bool mask shaped like its weight that keeps a maximum spanning tree.

    Dense: exactly the spanning-tree edges. Conv, ``"toeplitz"``: a kernel weight is kept when any
    of its Toeplitz edges is in the maximum spanning tree, so the kept weights span the unrolled
    graph (they usually keep more edges than the tree itself). Conv, ``"filter"``: kernel position
    ``(ky, kx)`` of filter ``co`` is kept for all input channels when the filter graph's tree uses
    it. Masks live on the weight's device. Keeping only these weights preserves every layer's
    connectivity (and, for dense layers, its finite persistence diagram). The masks are for the
    stored weights, so batch norms are not folded here (``fold_bn=False``).
    """
    check_choice("conv", conv, CONV_METHODS)
    check_choice("zeros", zeros, ZERO_MODES)
    masks = {}
    for g in model_graphs(model, conv=conv, input_shape=input_shape, fold_bn=False):
        forest = spanning_forest(g, include_zero=zeros == "edge")
        keep: np.ndarray = np.zeros(g.values.size, dtype=bool)
        keep[forest.groups] = True
        if g.method == "filter":  # groups are (co, ky, kx): broadcast over input channels
            c_out, c_in, kh, kw = g.weight_shape
            keep = np.broadcast_to(keep.reshape(c_out, 1, kh, kw), g.weight_shape)
            if zeros == "absent":  # a weight that is exactly zero stays out
                w = tensor_attribute(get_layer(model, g.name), "weight").detach().to("cpu").numpy()
                keep = keep & (w != 0)
        weight = tensor_attribute(get_layer(model, g.name), "weight")
        masks[g.name] = torch.from_numpy(np.ascontiguousarray(keep).reshape(weight.shape)).to(weight.device)
    if not masks:
        raise NNGeoError("the model has no layers to mask")
    return masks
