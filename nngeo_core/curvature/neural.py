"""Neural curvature (Tan, Sia, Bogdan, Ivanov, arXiv 2601.16366) and weight-only Ollivier-Ricci
curvature of a network's layer graph.

The graph is ``layer_graph.Network`` (neurons, edges of length 1/|w|); its edges are batched by
``edge_groups`` (shared neighbourhoods and shortest-path costs), their measures come from
``measures`` (activations on calibration inputs, or the lengths alone) and the Wasserstein
distances from ``transport``. The curvature of an edge u -> v is

    kappa = (1 - W1(mu_u, nu_v) / d(u, v)) / (1 - alpha)

(the division is ``normalize_idleness``). An edge whose source or target neuron has zero
activation on an input gets ``dead_value`` on that input (no information flows, so it ranks as
redundant). Per-edge values are aggregated over the calibration inputs by ``aggregate`` ("min" or
"mean"); a kernel weight's score is the minimum over the spatial edges it labels (``scores``).

Weight-only curvature uses no data: the neighbour masses come from the edge lengths, exactly as
GraphRicciCurvature does on the network's DiGraph (and it is tested against it).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from torch import nn

from ..errors import NNGeoError, one_line
from ..models.base import builder_name, builder_renames, model_input_shape
from ..models.layers import fold_batchnorm
from ..progress import Progress
from ..settings import float64_device
from . import transport
from .edge_groups import EdgeGroup, edge_groups
from .layer_graph import Network, build_network
from .measures import ActivationLevels, activation_levels, group_measures
from .orc import GRC_EPSILON
from .transport import CoreProblems

AGGREGATES = ("min", "mean")
NC_METHODS = ("exact", "sinkhorn")
DEFAULT_CONV_POSITIONS = 4
PROBLEM_BUDGET = 8e6  # floats per batch of transport problems


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


def _selected(net: Network, layers, renames: list[tuple[str, str]] | None = None) -> set[int]:
    """Indices of the weight layers to compute (all when ``layers`` is None), named as ours
    (``0.net.conv1``) or, on a foreign network, as its builder names them (``conv1``); unknown
    names are an error."""
    if layers is None:
        return set(range(len(net.layers)))
    wanted = [layers] if isinstance(layers, str) else list(layers)
    wanted = [str(w).strip() for item in wanted for w in str(item).split(",") if str(w).strip()]
    names = [lay.name for lay in net.layers]
    index = {name: k for k, name in enumerate(names)}
    index.update({builder_name(renames or [], name): k for k, name in enumerate(names)})
    unknown = [w for w in wanted if w not in index]
    if unknown or not wanted:
        shown = ", ".join(builder_name(renames or [], name) for name in names)
        raise NNGeoError(
            one_line(f"no weight layer named {unknown[0] if unknown else '(none given)'!r}; the layers are {shown}")
        )
    return {index[w] for w in wanted}


def _network_curvature(
    model,
    inputs,
    *,
    layers=None,
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
    shape = tuple(inputs.shape[1:]) if inputs is not None else model_input_shape(model)
    folded, plan = fold_batchnorm(model, shape)  # lengths are those of the function the network computes
    net, values = build_network(folded, shape, inputs=inputs)
    levels = activation_levels(values) if inputs is not None else None
    chosen = _selected(net, layers, builder_renames(model))
    notes = {name: note for name, note in plan.notes.items() if note}
    for name, note in net.notes().items():
        notes[name] = f"{notes[name]}; {note}" if name in notes else note
    dev = float64_device(device)
    frames = []
    n_layers = len(net.layers)
    for k, lay in enumerate(net.layers):
        if k not in chosen:
            continue
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
        df["src_level"] = lay.src
        df["dst_level"] = lay.dst
        df["note"] = notes.get(lay.name, "")
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
        "note",
    ]
    if not frames:
        df = pd.DataFrame({c: [] for c in cols})
        return df.astype({"note": str})
    return pd.concat(frames, ignore_index=True)[cols]


def _group_curvature(
    g: EdgeGroup,
    net: Network,
    levels: ActivationLevels | None,
    alpha: float,
    method,
    aggregate,
    normalize_idleness,
    dead_value,
    processes,
    device,
    progress: Progress,
) -> dict:
    lay = net.layers[g.k]
    m = group_measures(g, net, levels, alpha)
    alive = m.alive
    inp, edge = np.nonzero(alive)  # ordered by input: a batch shares one input's dead units
    values = np.full(alive.shape, float(dead_value))
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
                a=(1.0 - alpha) * m.pred[n if m.pred.shape[0] > 1 else 0 * n, u, :].T,
                b=(1.0 - alpha) * m.succ[n if m.succ.shape[0] > 1 else 0 * n, v, :].T,
                ax=m.self_u[u].astype(np.float64),
                by=m.self_v[v].astype(np.float64),
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
        "weight": lay.flat[g.kernel].astype(np.float64),
        "curvature": curv,
        "alive": alive.sum(axis=0),
    }


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
    layers=None,
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
        layers=layers,
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
    layers=None,
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
        layers=layers,
        processes=processes,
        device=device,
        progress=progress,
    )
