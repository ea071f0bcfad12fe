"""Neural persistence of a whole model (Rieck et al., ICLR 2019), per layer.

``NP(G_k) = || D_k ||_p`` over the persistences ``1 - w'`` of layer k's 0-dim diagram (see
``diagrams.py`` for normalisation, essential classes and zero weights); the normalised value is
``NP / (|V_k| - 1)^(1/p)``. The network's NP is the sum over layers, its normalised NP the mean of
the normalised values (``network_persistence``).

Conv layers (``conv=``): ``"toeplitz"`` (exact) uses the unrolled matrix with padded input
positions; ``"filter"`` sums ``|w|`` over input channels and builds one small graph per filter, the
layer's NP is the sum of the filters' NPs and its normalised NP the mean over filters of
``NP_f / (|V_f| - 1)^(1/p)``. Residual blocks need nothing special: each conv is its own layer.

Layers come from ``models.layers.analysis_layers``, so any ``nn.Module`` works: a batch norm right
after a conv is folded into its weight (the ``note`` column says so) and every module with weights
that has no layer graph (attention, Conv1d, a conv whose geometry is not representable, ...) gets a
row with NaN values, ``kind = "skipped"`` and its reason in ``note``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
from torch import nn

from ..errors import NNGeoError, one_line
from ..models.layers import SkippedLayer, analysis_layers
from .diagrams import NORMALIZE_MODES, check_choice, check_p, diagram_points, normalized, pnorm
from .graphs import CONV_METHODS, ZERO_MODES, Forest, LayerGraph, conv_graph, dense_graph, spanning_forest


@dataclass
class LayerTopology:
    """A layer's graph, its maximum spanning forest and the ``w_max`` used to normalise it."""

    graph: LayerGraph
    forest: Forest
    wmax: float

    @property
    def deaths(self) -> np.ndarray:
        return normalized(self.graph.values[self.forest.groups], self.wmax)

    def points(self, essential: bool) -> np.ndarray:
        return diagram_points(self.deaths, self.forest.components, essential)

    def persistence(self, p: float, essential: bool) -> tuple[float, float]:
        """(NP, normalised NP) of the layer."""
        g = self.graph
        pers = 1.0 - self.deaths
        if g.method != "filter":
            if essential:
                pers = np.concatenate([pers, np.ones(self.forest.components)])
            value = pnorm(pers, p)
            return value, value / _root(g.n_vertices - 1, p)
        # filter variant: one diagram per filter, NP summed, normalised NP averaged
        n_filters = g.weight_shape[0]
        filt = g.group_filter(self.forest.groups)
        v_f = g.n_vertices // n_filters
        if essential:
            comps = v_f - np.bincount(filt, minlength=n_filters)
            filt = np.concatenate([filt, np.repeat(np.arange(n_filters), comps)])
            pers = np.concatenate([pers, np.ones(int(comps.sum()))])
        per_filter: np.ndarray
        if np.isinf(p):
            per_filter = np.zeros(n_filters)
            np.maximum.at(per_filter, filt, pers)
        else:
            per_filter = np.bincount(filt, weights=pers**p, minlength=n_filters) ** (1.0 / p)
        return float(per_filter.sum()), float(np.mean(per_filter / _root(v_f - 1, p)))


def _root(x: int, p: float) -> float:
    return 1.0 if np.isinf(p) else float(x) ** (1.0 / p)


def model_layer_graphs(
    model: nn.Module, *, conv: str = "toeplitz", input_shape=None, fold_bn: bool = True
) -> tuple[list[LayerGraph], list[SkippedLayer]]:
    """Graphs of the model's weight layers in forward order (batch norms folded, see
    ``models.layers``), and the modules with weights that have none, each with its reason."""
    check_choice("conv", conv, CONV_METHODS)
    if not isinstance(model, nn.Module):
        raise NNGeoError(f"expected a torch nn.Module, got {type(model).__name__}")
    plan = analysis_layers(model, input_shape, fold_bn=fold_bn)
    graphs, skipped = [], list(plan.skipped)
    for layer in plan.layers:
        info, weight = layer.info, layer.weight
        try:
            if info.kind == "conv":
                graph = conv_graph(info, weight, conv)
            else:
                graph = dense_graph(info.name, weight.reshape(weight.shape[0], -1))
        except NNGeoError as exc:  # e.g. asymmetric padding: one layer without a graph, not the model
            if not np.isfinite(weight.detach().cpu().numpy()).all() or weight.numel() == 0:
                raise  # bad weights are an error of the model, not a layer we cannot represent
            skipped.append(SkippedLayer(info.name, info.kind, str(exc)))
            continue
        graphs.append(replace(graph, note=layer.note))
    order = {name: k for k, (name, _) in enumerate(model.named_modules())}
    skipped.sort(key=lambda s: order.get(s.name, len(order)))  # module order, however found
    if not graphs:
        reason = skipped[0].reason if skipped else "no Linear or Conv2d layer"
        raise NNGeoError(f"the model has no layer graph to analyse ({reason})")
    return graphs, skipped


def model_graphs(
    model: nn.Module, *, conv: str = "toeplitz", input_shape=None, fold_bn: bool = True
) -> list[LayerGraph]:
    """Graphs of the model's weight layers, in forward order (``model_layer_graphs`` without the skipped)."""
    return model_layer_graphs(model, conv=conv, input_shape=input_shape, fold_bn=fold_bn)[0]


def with_skipped(table: pd.DataFrame, skipped: list[SkippedLayer], before_total: bool = False) -> pd.DataFrame:
    """``table`` with one row per skipped module (``kind = "skipped"``, reason in ``note``, NaN values)."""
    if not skipped:
        return table
    extra = pd.DataFrame([{"layer": s.name, "kind": "skipped", "note": s.reason} for s in skipped])
    if "name" in table.columns:
        extra["name"] = extra["layer"]
    if before_total and len(table) and table["layer"].iloc[-1] == "total":
        out = pd.concat([table.iloc[:-1], extra, table.iloc[-1:]], ignore_index=True)
    else:
        out = pd.concat([table, extra], ignore_index=True)
    out.attrs.update(table.attrs)
    return out


def layer_topologies(
    model: nn.Module,
    *,
    normalize: str = "layer",
    conv: str = "toeplitz",
    zeros: str = "absent",
    input_shape=None,
    progress=None,
) -> list[LayerTopology]:
    """Spanning forest of every layer with its ``w_max`` (layer's own or the network's)."""
    check_choice("normalize", normalize, NORMALIZE_MODES)  # before the (costly) graphs
    check_choice("zeros", zeros, ZERO_MODES)
    return _topologies(model_graphs(model, conv=conv, input_shape=input_shape), normalize, zeros, progress)


def _topologies(graphs: list[LayerGraph], normalize: str, zeros: str, progress) -> list[LayerTopology]:
    """``layer_topologies`` on graphs already built (the callers have checked the choices)."""
    network_max = max(float(g.values.max()) for g in graphs)
    out = []
    total_edges = sum(g.n_edges for g in graphs) or 1
    done = 0
    for g in graphs:
        if progress is not None:
            progress.check()
            progress.update(done / total_edges, f"persistence {g.name}")
        forest = spanning_forest(g, include_zero=zeros == "edge", progress=progress)
        wmax = network_max if normalize == "network" else float(g.values.max())
        out.append(LayerTopology(g, forest, wmax))
        done += g.n_edges
    if progress is not None:
        progress.update(1.0, "persistence done")
    return out


def neural_persistence(
    model: nn.Module,
    *,
    p: float = 2,
    normalize: str = "layer",
    essential: bool = False,
    conv: str = "toeplitz",
    input_shape=None,
    zeros: str = "absent",
    progress=None,
) -> pd.DataFrame:
    """Neural persistence per layer, one row each, in forward order.

    Columns: ``layer`` (and ``name``, the same), ``kind``, ``n_in``/``n_out`` (vertices on each
    side; for ``conv="filter"`` summed over the filter graphs), ``n_edges`` (edges with every
    weight present), ``n_nonzero``, ``np``, ``np_normalized``, ``eta_tau`` (= n_edges /
    structural spanning-tree size, the critical compression ratio of this graph), ``mst_size``
    (edges of the spanning forest actually found), ``components`` (of the graph actually spanned),
    ``wmax`` and the settings ``p``, ``normalize``, ``essential``, ``conv_method`` ("dense" for dense
    layers) and ``zeros``. Network values: ``network_persistence(table)``.
    NaN/inf weights or empty layers raise ``NNGeoError``; an all-zero layer has NP 0 (see
    ``persistence_diagram`` for the conventions).
    """
    p = check_p(p)
    essential = bool(essential)
    check_choice("normalize", normalize, NORMALIZE_MODES)
    check_choice("zeros", zeros, ZERO_MODES)
    graphs, skipped = model_layer_graphs(model, conv=conv, input_shape=input_shape)
    rows = []
    for lt in _topologies(graphs, normalize, zeros, progress):
        g = lt.graph
        value, value_norm = lt.persistence(p, essential)
        rows.append(
            {
                "layer": g.name,
                "name": g.name,
                "kind": g.kind,
                "n_in": g.n_in,
                "n_out": g.n_out,
                "n_edges": g.n_edges,
                "n_nonzero": int(np.count_nonzero(g.values)) * g.group_size,
                "np": value,
                "np_normalized": value_norm,
                "eta_tau": g.n_edges / g.structural_mst_size if g.structural_mst_size else float("nan"),
                "mst_size": lt.forest.size,
                "components": lt.forest.components,
                "wmax": lt.wmax,
                "p": p,
                "normalize": normalize,
                "essential": essential,
                "conv_method": g.method,
                "zeros": zeros,
                "note": g.note,
            }
        )
    table = pd.DataFrame(rows)
    table.attrs.update(network_persistence(table))
    return with_skipped(table, skipped)


def network_persistence(table: pd.DataFrame) -> dict:
    """Network NP from a ``neural_persistence`` table: sum of NP, mean of normalised NP."""
    if len(table) == 0:
        raise NNGeoError("the neural persistence table is empty")
    if "kind" in table.columns:
        table = table[table["kind"] != "skipped"]
    return {"network_np": float(table["np"].sum()), "network_np_normalized": float(table["np_normalized"].mean())}


def persistence_diagrams(
    model: nn.Module,
    *,
    normalize: str = "layer",
    essential: bool = False,
    conv: str = "toeplitz",
    input_shape=None,
    zeros: str = "absent",
    progress=None,
) -> pd.DataFrame:
    """Every layer's diagram as one long table for plotting.

    Columns ``layer``, ``birth`` (always 1), ``death`` (= w'), ``persistence`` (= 1 - w'); for
    ``conv="filter"`` also ``filter`` (the output channel whose graph the point belongs to; -1 for
    other layers). Points of one layer are sorted by death.
    """
    check_choice("normalize", normalize, NORMALIZE_MODES)
    check_choice("zeros", zeros, ZERO_MODES)
    graphs, skipped = model_layer_graphs(model, conv=conv, input_shape=input_shape)
    frames = []
    for lt in _topologies(graphs, normalize, zeros, progress):
        frames.append(_diagram_frame(lt, bool(essential), conv == "filter"))
    table = pd.concat(frames, ignore_index=True)
    # a long table of points has no place for a layer without points: notes and reasons go in attrs
    table.attrs["notes"] = {g.name: g.note for g in graphs if g.note}
    table.attrs["skipped"] = {s.name: s.reason for s in skipped}
    return table


def _diagram_frame(lt: LayerTopology, essential: bool, with_filter: bool) -> pd.DataFrame:
    g = lt.graph
    if g.method == "filter":
        deaths = lt.deaths
        filt = g.group_filter(lt.forest.groups)
        keep = deaths < 1.0
        deaths, filt = deaths[keep], filt[keep]
        if essential:
            n_filters = g.weight_shape[0]
            comps = g.n_vertices // n_filters - np.bincount(g.group_filter(lt.forest.groups), minlength=n_filters)
            deaths = np.concatenate([np.zeros(int(comps.sum())), deaths])
            filt = np.concatenate([np.repeat(np.arange(n_filters), comps), filt])
        order = np.argsort(deaths, kind="stable")
        deaths, filt = deaths[order], filt[order]
    else:
        pts = lt.points(essential)
        deaths = pts[:, 1]
        filt = np.full(deaths.size, -1)
    frame = pd.DataFrame({"layer": g.name, "birth": np.ones(deaths.size), "death": deaths, "persistence": 1.0 - deaths})
    if with_filter:
        frame["filter"] = filt.astype(np.int64)
    return frame


def np_over_training(snapshots: Mapping, build_model: Callable[[], nn.Module] | None = None, **options) -> pd.DataFrame:
    """NP of each layer at each snapshot: columns ``epoch``, ``layer``, ``np``, ``np_normalized``.

    ``snapshots`` maps epoch -> ``nn.Module`` (or -> state_dict, then ``build_model()`` must make a
    fresh model to load it into). ``options`` go to ``neural_persistence`` (p, normalize, ...).
    """
    if not isinstance(snapshots, Mapping) or not snapshots:
        raise NNGeoError("snapshots must be a non-empty dict epoch -> model (or state_dict)")
    frames = []
    for epoch in sorted(snapshots):
        snap = snapshots[epoch]
        if isinstance(snap, nn.Module):
            model = snap
        elif isinstance(snap, Mapping):
            if build_model is None:
                raise NNGeoError(f"snapshot {epoch!r} is a state_dict; pass build_model to make the model")
            model = build_model()
            try:
                model.load_state_dict(snap)
            except RuntimeError as exc:
                raise NNGeoError(
                    f"snapshot {epoch!r} does not fit build_model(): {one_line(exc, typed=False)}"
                ) from None
        else:
            raise NNGeoError(f"snapshot {epoch!r} is a {type(snap).__name__}, expected an nn.Module or state_dict")
        table = neural_persistence(model, **options)
        frames.append(
            pd.DataFrame(
                {"epoch": epoch, "layer": table["layer"], "np": table["np"], "np_normalized": table["np_normalized"]}
            )
        )
    return pd.concat(frames, ignore_index=True)
