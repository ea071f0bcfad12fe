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

Presets (``preset=``, ``PRESETS``): "nngeo" (default) is nngeo's own choices; "tan2026" is the
authors' code (SH-Tan/Post-Training-NN-Pruning-using-Graph-Curvature) rule by rule: idleness 0.9,
exact transport (their ``ot.emd2`` per edge and input), every conv output position, float32
masses with their fallbacks, dead = min-max normalised ã <= 0 at a hidden neuron, and curvature
within 1e-6 of 1 on an edge between hidden levels remapped to 2.0 per input (so dead edges rank
first). A preset fills every setting left unset (None, or omitted); a setting given explicitly
wins over it (``preset_settings``). What stays nngeo's in both: batch norms folded into the
lengths, a zero weight is no edge, padding/dilation/groups as the layer computes them.

Weight-only curvature uses no data: the neighbour masses come from the edge lengths, exactly as
GraphRicciCurvature does on the network's DiGraph (and it is tested against it).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

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
from .measures import DEAD_RULES, MASS_RULES, ActivationLevels, activation_levels, group_measures
from .orc import GRC_EPSILON
from .transport import CoreProblems

AGGREGATES = ("min", "mean")
NC_METHODS = ("exact", "sinkhorn")
DEFAULT_CONV_POSITIONS = 4
PROBLEM_BUDGET = 8e6  # floats per batch of transport problems
# the transport methods whose problems are pooled by shared core cost matrix (the others solve each
# chunk of a group as it comes, as before pooling; ``bench/curvature.py`` times both by emptying it).
# Sinkhorn only: on 2 idle cores pooling took lenet5_s2 (nngeo preset) from 16.4 s to 14.0 s, while
# the exact mode's bigger batches went to worker processes and paid for it (30.9 s -> 35.0 s)
POOL_METHODS: tuple[str, ...] = ("sinkhorn",)
REMAP_RTOL = 1e-6  # |curvature - 1| below this is remapped by ``remap_one`` (Tan et al.'s test)

# every setting a preset decides; the strategies' ``tie_break`` ranks ties (``position``: by weight
# position, as every strategy; ``fc_first``: dense edges before conv weights, the authors' list order)
PRESETS: dict[str, dict] = {
    "nngeo": {
        "alpha": 0.5,
        "method": "sinkhorn",
        "normalize_idleness": True,
        "dead_value": 1.0,
        "conv_positions": DEFAULT_CONV_POSITIONS,
        "masses": "stable",
        "dead_rule": "raw",
        "remap_one": 1.0,
        "tie_break": "position",
    },
    "tan2026": {
        "alpha": 0.9,
        "method": "exact",
        "normalize_idleness": True,
        "dead_value": 1.0,
        "conv_positions": None,
        "masses": "float32",
        "dead_rule": "normalised",
        "remap_one": 2.0,
        "tie_break": "fc_first",
    },
}
TIE_BREAKS = ("position", "fc_first")


class _FromPreset:
    """The default of every preset-governed keyword: take the value from ``preset``."""

    def __repr__(self) -> str:
        return "FROM_PRESET"


FROM_PRESET: Any = _FromPreset()


def preset_settings(preset: str = "nngeo", **given) -> dict:
    """The settings of ``preset`` with the explicitly ``given`` ones put over them: a given value
    wins; ``FROM_PRESET`` (and None, except for ``conv_positions`` where None means every
    position) leaves the preset's. Unknown presets or setting names are one-line errors."""
    if preset not in PRESETS:
        raise NNGeoError(f"unknown curvature preset {preset!r}; use one of {', '.join(PRESETS)}")
    out = dict(PRESETS[preset])
    unknown = sorted(set(given) - set(out))
    if unknown:
        raise NNGeoError(f"no curvature setting named {unknown[0]!r}; the settings: {', '.join(out)}")
    for name, value in given.items():
        if value is FROM_PRESET or (value is None and name != "conv_positions"):
            continue
        out[name] = value
    return out


def _check_nc_params(
    alpha, method, aggregate, dead_value, conv_positions, masses="stable", dead_rule="raw", remap_one=1.0
):
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
    if masses not in MASS_RULES:
        raise NNGeoError(f"unknown mass rule {masses!r}; use one of {', '.join(MASS_RULES)}")
    if dead_rule not in DEAD_RULES:
        raise NNGeoError(f"unknown dead rule {dead_rule!r}; use one of {', '.join(DEAD_RULES)}")
    if isinstance(remap_one, bool) or not isinstance(remap_one, (int, float)) or not np.isfinite(float(remap_one)):
        raise NNGeoError("remap_one must be a finite number (1.0: no remap)")


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
    masses: str = "stable",
    dead_rule: str = "raw",
    remap_one: float = 1.0,
) -> pd.DataFrame:
    progress = progress or Progress()
    shape = tuple(inputs.shape[1:]) if inputs is not None else model_input_shape(model)
    folded, plan = fold_batchnorm(model, shape)  # lengths are those of the function the network computes
    net, values = build_network(folded, shape, inputs=inputs)
    # hidden levels have predecessors and successors (the input and output levels have not)
    hidden = {lvl for lvl in range(len(net.level_size)) if net.into.get(lvl) and net.out_of.get(lvl)}
    levels = (
        activation_levels(values, masses=masses, dead_rule=dead_rule, hidden=hidden) if inputs is not None else None
    )
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
        # Tan et al. remap curvature ~1 only on edges between hidden levels (not the first or last layer)
        remap = float(remap_one) if lay.src in hidden and lay.dst in hidden and float(remap_one) != 1.0 else None
        parts = _layer_curvature(
            edge_groups(net, k, conv_positions),
            net,
            levels,
            alpha,
            method,
            aggregate,
            normalize_idleness,
            dead_value,
            processes,
            dev,
            sub,
            remap,
        )
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


@dataclass
class _PendingGroup:
    """One edge group whose transport problems are queued: its per-input values are filled in
    as the pool solves them, then ``finish`` aggregates them."""

    g: EdgeGroup
    alive: np.ndarray
    inp: np.ndarray  # (input, edge) of every live problem, in queue order
    edge: np.ndarray
    w1: np.ndarray


class _ProblemPool:
    """Transport problems queued by their core cost matrix, solved a bucket at a time.

    Edge groups of one conv layer at interior positions with the same tap offset have the same
    core cost matrix (the layer graph is translation invariant away from the borders), and so do
    the blocks of a dense layer after a spatial level. Solving their problems as one batch turns
    Sinkhorn's matrix-vector products into matrix-matrix ones and the exact mode's many small
    dispatches into a few large ones. Cores are compared by their bytes (a hash of the float64
    values), so only identical cost matrices merge. Exact values are those of solving every problem
    alone; Sinkhorn sets its regularisation per batch, so its values move within its tolerance.
    """

    def __init__(self, method, processes, device, check, budget: float | None = None):
        self.method, self.processes, self.device, self.check = method, processes, device, check
        self.budget = PROBLEM_BUDGET if budget is None else budget
        self.pooled = method in POOL_METHODS
        self.buckets: dict[tuple, list[tuple[CoreProblems, _PendingGroup, int, int]]] = {}
        self.floats: dict[tuple, float] = {}
        self.queued = 0.0  # floats in every bucket
        self.solved = 0

    def add(self, probs: CoreProblems, target: _PendingGroup, lo: int, hi: int) -> None:
        C = probs.C
        key = (
            (C.shape, hashlib.blake2b(np.ascontiguousarray(C).tobytes(), digest_size=16).digest())
            if self.pooled
            else ("group", id(target))  # solved at once below: no need to hash the core
        )
        self.buckets.setdefault(key, []).append((probs, target, lo, hi))
        floats = probs.size * (sum(C.shape) + 2) * 4
        self.floats[key] = self.floats.get(key, 0.0) + floats
        self.queued += floats
        if not self.pooled or self.floats[key] >= self.budget:
            self.flush(key)
        elif self.queued >= 2 * self.budget:  # many partly filled buckets: the largest goes
            self.flush(max(self.floats, key=self.floats.__getitem__))

    def flush(self, key=None) -> None:
        for k in [key] if key is not None else list(self.buckets):
            items = self.buckets.pop(k)
            self.queued -= self.floats.pop(k)
            parts = [p for p, *_ in items]
            merged = (
                parts[0]
                if len(parts) == 1
                else CoreProblems(
                    C=parts[0].C,
                    a=np.concatenate([p.a for p in parts], axis=1),
                    b=np.concatenate([p.b for p in parts], axis=1),
                    ax=np.concatenate([p.ax for p in parts]),
                    by=np.concatenate([p.by for p in parts]),
                    row=np.concatenate([p.row for p in parts], axis=1),
                    col=np.concatenate([p.col for p in parts], axis=1),
                    corner=np.concatenate([p.corner for p in parts]),
                )
            )
            w1 = transport.solve(merged, self.method, processes=self.processes, device=self.device, check=self.check)
            at = 0
            for p, target, lo, hi in items:
                target.w1[lo:hi] = w1[at : at + p.size]
                at += p.size
            self.solved += merged.size


def _queue_group(g: EdgeGroup, net: Network, levels: ActivationLevels | None, alpha: float, pool: _ProblemPool):
    """The group's measures, its live (input, edge) problems queued in ``pool``."""
    m = group_measures(g, net, levels, alpha)
    exact_totals = levels is not None and levels.masses == "float32"
    inp, edge = np.nonzero(m.alive)  # ordered by input: a batch shares one input's dead units
    pending = _PendingGroup(g, m.alive, inp, edge, np.empty(len(edge)))
    width = len(g.R) + len(g.P) + 2
    size = max(1, int(PROBLEM_BUDGET // (4 * width)))
    for lo in range(0, len(edge), size):
        hi = min(len(edge), lo + size)
        e, n = edge[lo:hi], inp[lo:hi]
        u, v = g.ui[e], g.vi[e]
        a = m.pred[n if m.pred.shape[0] > 1 else 0 * n, u, :].T
        b = m.succ[n if m.succ.shape[0] > 1 else 0 * n, v, :].T
        ax = m.self_u[n if m.self_u.shape[0] > 1 else 0 * n, u].astype(np.float64)
        by = m.self_v[n if m.self_v.shape[0] > 1 else 0 * n, v].astype(np.float64)
        if exact_totals:  # float32 masses total 1 only to ~1e-7: scale nu to mu's total, as POT's emd2 does
            ratio = (a.sum(axis=0) + ax) / (b.sum(axis=0) + by)
            b, by = b * ratio, by * ratio
        probs = CoreProblems(
            C=g.core,
            a=a,
            b=b,
            ax=ax,
            by=by,
            row=np.ascontiguousarray(g.row[u, :].T),
            col=np.ascontiguousarray(g.col[:, v]),
            corner=g.corner[e].copy(),
        )
        pool.add(probs, pending, lo, hi)
    return pending


def _finish_group(
    pending: _PendingGroup, net: Network, alpha, aggregate, normalize_idleness, dead_value, remap
) -> dict:
    g, inp, edge = pending.g, pending.inp, pending.edge
    lay = net.layers[g.k]
    values = np.full(pending.alive.shape, float(dead_value))
    if len(edge):
        d = g.corner[edge]
        with np.errstate(divide="ignore", invalid="ignore"):
            kappa = np.where(d < GRC_EPSILON, 0.0, 1.0 - pending.w1 / np.where(d < GRC_EPSILON, 1.0, d))
        if normalize_idleness:
            kappa = kappa / (1.0 - alpha)
        values[inp, edge] = kappa
    if remap is not None:  # per input, before aggregating: dead edges (and any at ~1) rank first
        values = np.where(np.abs(values - 1.0) < REMAP_RTOL, remap, values)
    curv = values.min(axis=0) if aggregate == "min" else values.mean(axis=0)
    return {
        "src": g.Us[g.ui],
        "dst": g.Vs[g.vi],
        "kernel": g.kernel,
        "weight": lay.flat[g.kernel].astype(np.float64),
        "curvature": curv,
        "alive": pending.alive.sum(axis=0),
    }


def _layer_curvature(
    groups: Iterable[EdgeGroup],
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
    remap: float | None = None,
) -> list[dict]:
    """Curvature of every edge of one layer's groups; problems sharing a core are solved together."""
    pool = _ProblemPool(method, processes, device, progress.check)
    pending = []
    queued = 0
    for g in groups:
        progress.check()
        pending.append(_queue_group(g, net, levels, alpha, pool))
        queued += len(pending[-1].edge)
        # the share solved of what is queued so far (the groups come lazily; their count is unknown)
        progress.update(0.9 * pool.solved / max(1, queued), f"layer {net.layers[g.k].name}", problems=pool.solved)
    pool.flush()
    return [_finish_group(p, net, alpha, aggregate, normalize_idleness, dead_value, remap) for p in pending]


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
    preset: str = "nngeo",
    alpha: float = FROM_PRESET,
    method: str = FROM_PRESET,
    aggregate: str = "min",
    normalize_idleness: bool = FROM_PRESET,
    dead_value: float = FROM_PRESET,
    conv_positions: int | None = FROM_PRESET,
    masses: str = FROM_PRESET,
    dead_rule: str = FROM_PRESET,
    remap_one: float = FROM_PRESET,
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

    ``preset`` ("nngeo" or "tan2026", ``PRESETS``) fills every setting not given (see the module
    docstring); given settings win. Conv layers are evaluated at ``conv_positions`` output
    positions spread over the feature map (None: all). ``method``: "sinkhorn" (batched entropic OT,
    within ~1e-2 of exact; tiny problems are still solved exactly) or "exact" (network simplex per
    problem). ``masses`` ("stable"/"float32") and ``dead_rule`` ("raw"/"normalised"): see
    ``measures``; ``remap_one``: curvature within 1e-6 of 1 on an edge between hidden levels
    becomes this value on that input (1.0: unchanged).
    """
    s = preset_settings(
        preset,
        alpha=alpha,
        method=method,
        normalize_idleness=normalize_idleness,
        dead_value=dead_value,
        conv_positions=conv_positions,
        masses=masses,
        dead_rule=dead_rule,
        remap_one=remap_one,
    )
    _check_nc_params(
        s["alpha"],
        s["method"],
        aggregate,
        s["dead_value"],
        s["conv_positions"],
        s["masses"],
        s["dead_rule"],
        s["remap_one"],
    )
    inputs = _as_inputs(model, inputs)
    return _network_curvature(
        model,
        inputs,
        alpha=float(s["alpha"]),
        method=s["method"],
        aggregate=aggregate,
        normalize_idleness=bool(s["normalize_idleness"]),
        dead_value=float(s["dead_value"]),
        conv_positions=s["conv_positions"],
        layers=layers,
        processes=processes,
        device=device,
        progress=progress,
        masses=s["masses"],
        dead_rule=s["dead_rule"],
        remap_one=float(s["remap_one"]),
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
