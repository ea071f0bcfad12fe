"""The neighbour measures of the layer graph's edges, from activations or from the weights alone.

For an edge u -> v and a calibration input x (activations |a| min-max normalised per layer and
input to ã in [0, 1]):

    mu_u = alpha * delta_u + (1 - alpha) * sum_{p in pred(u)} m_p delta_p,   m_p ~ exp(-(1/ã_p)^2)
    nu_v = alpha * delta_v + (1 - alpha) * sum_{s in succ(v)} m_s delta_s,   m_s ~ exp(-(1/ã_s)^2)

Zero-activation neurons get no mass; when every neighbour's mass vanishes it is spread uniformly;
a source without predecessors or a target without successors is a Dirac measure. A neuron whose
|a| is at most ``DEAD_RTOL`` of its layer's largest is dead on that input.

Without data (weight-only curvature) the neighbour masses come from the edge lengths,
m_p ~ exp(-len(p, u)^2), exactly as GraphRicciCurvature does on the network's DiGraph.

Two rules for the activation masses and the dead neurons (``neural.PRESETS`` picks them):

- ``masses="stable"`` (nngeo): float64, in the log domain (no underflow); when every neighbour's
  mass vanishes, uniform over the support. ``dead_rule="raw"``: |a| at most ``DEAD_RTOL`` of the
  level's largest, on every level (input pixels and outputs too).
- ``masses="float32"`` (Tan et al.'s code): ã and exp(-(1/ã)^2) in float32 (masses of ã below
  ~0.1 underflow to 0); uniform over the live neighbours (ã > 0) when their total is at most
  ``TAN_EPSILON``; a Dirac on the node itself when no neighbour is live. ``dead_rule="normalised"``:
  ã <= 0 (the level's least active unit, under min-max normalisation) on hidden levels only
  (levels with both predecessors and successors). exp and the sum are evaluated in float64 and
  rounded to float32, so the masses do not depend on a reduction order (their CUDA float32 sums
  differ by an ulp from device to device).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..errors import NNGeoError
from .edge_groups import EdgeGroup
from .layer_graph import Network
from .orc import GRC_EPSILON

DEAD_RTOL = 1e-12  # |a| at most this fraction of the layer's largest |a| counts as zero
TAN_EPSILON = np.float32(1e-7)  # float32 totals at most this fall back to uniform (Tan et al.'s EPSILON)
MASS_RULES = ("stable", "float32")
DEAD_RULES = ("raw", "normalised")


def normalised_activations(act: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Min-max normalised |a| per input (rows) in [0, 1], and the dead (zero-activation) mask."""
    a = np.abs(act)
    lo, hi = a.min(axis=1, keepdims=True), a.max(axis=1, keepdims=True)
    span = hi - lo
    with np.errstate(invalid="ignore", divide="ignore"):
        norm = np.where(span > 0, (a - lo) / np.where(span > 0, span, 1.0), (a > 0).astype(float))
    dead = a <= DEAD_RTOL * hi
    return norm, dead


def normalised_activations32(act: np.ndarray) -> np.ndarray:
    """Min-max normalised |a| per input (rows), computed in float32 (Tan et al.'s ``node_norm``); a
    level whose |a| are all equal gets 1 where |a| > 0 and 0 elsewhere (their code gives NaN)."""
    a = np.abs(act.astype(np.float32))
    lo, hi = a.min(axis=1, keepdims=True), a.max(axis=1, keepdims=True)
    span = hi - lo
    with np.errstate(invalid="ignore", divide="ignore", under="ignore"):
        norm = np.where(span > 0, (a - lo) / np.where(span > 0, span, np.float32(1.0)), (a > 0).astype(np.float32))
    return norm.astype(np.float32)


def activation_masses32(support: np.ndarray, norm: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """Tan et al.'s float32 masses: ((N, n_nodes, n_nbrs) neighbour masses, already times 1 - alpha,
    and (N, n_nodes) the mass each node keeps: alpha, or 1 (a Dirac) when no neighbour is live).

    Live neighbours have ã > 0; term = exp(-(1/ã)^2) in float32; mass = (1 - alpha) * term / total
    in float32; uniform (1 - alpha) / live count when the float32 total is at most ``TAN_EPSILON``.
    """
    live = support[None, :, :] & (norm > 0)[:, None, :]  # (N, nodes, nbrs)
    with np.errstate(divide="ignore", over="ignore", under="ignore"):
        inv = np.float32(1.0) / np.where(norm > 0, norm, np.float32(1.0)).astype(np.float32)
        sq = (inv * inv).astype(np.float32)
        term = np.exp(-sq.astype(np.float64)).astype(np.float32)  # (N, nbrs), float32 values
    terms = np.where(live, term[:, None, :], np.float32(0.0)).astype(np.float32)
    total = terms.astype(np.float64).sum(axis=2, keepdims=True).astype(np.float32)
    scale = np.float32(1.0 - alpha)
    with np.errstate(invalid="ignore", divide="ignore", under="ignore"):
        mass = (scale * terms) / np.where(total > 0, total, np.float32(1.0))
    count = live.sum(axis=2, keepdims=True)
    uniform = ((1.0 - alpha) / np.maximum(count, 1).astype(np.float64)).astype(np.float32)  # as theirs: f64, stored f32
    fallback = total <= TAN_EPSILON
    mass = np.where(fallback, np.where(live, uniform, np.float32(0.0)), mass).astype(np.float32)
    dirac = ~(mass > 0).any(axis=2)  # no live neighbour: all mass on the node itself
    keep = np.where(dirac, 1.0, float(alpha))
    return mass.astype(np.float64), keep


def activation_masses(support: np.ndarray, norm: np.ndarray) -> np.ndarray:
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


def length_masses(support: np.ndarray, length: np.ndarray) -> np.ndarray:
    """(1, n_nodes, n_nbrs) masses ~ exp(-len^2), GraphRicciCurvature's rule (uniform if sum <= 1e-7)."""
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        w = np.where(support, np.exp(-np.square(np.where(support, length, 0.0))), 0.0)
    total = w.sum(axis=1, keepdims=True)
    count = support.sum(axis=1, keepdims=True)
    uniform = total <= GRC_EPSILON
    w = np.where(uniform, support / np.maximum(count, 1), w / np.where(uniform, 1.0, total))
    return w[None]


@dataclass
class ActivationLevels:
    """Normalised activations and dead masks of every node level, (N, units) each, on N inputs;
    ``masses`` the rule the neighbour masses follow (``MASS_RULES``)."""

    norm: dict[int, np.ndarray]
    dead: dict[int, np.ndarray]
    n: int
    masses: str = "stable"


def activation_levels(
    values: dict[int, torch.Tensor],
    *,
    masses: str = "stable",
    dead_rule: str = "raw",
    hidden: set[int] | frozenset[int] = frozenset(),
) -> ActivationLevels:
    """Normalise the traced activations of every node level (``layer_graph.build_network``); a
    level's activation is the last value its neurons took in the forward pass (after the
    activation function, after a residual sum). ``masses``/``dead_rule``: see the module
    docstring; ``hidden``: the levels the "normalised" dead rule applies to."""
    norm, dead = {}, {}
    n = 0
    for level, t in values.items():
        raw = t.detach().to("cpu")
        act = raw.to(torch.float64).numpy()
        if not np.isfinite(act).all():
            raise NNGeoError("the network's activations on the calibration inputs are not finite")
        norm64, dead_raw = normalised_activations(act)
        norm[level] = normalised_activations32(raw.to(torch.float32).numpy()) if masses == "float32" else norm64
        if dead_rule == "raw":
            dead[level] = dead_raw
        else:
            dead[level] = (norm[level] <= 0) & (level in hidden)
        n = len(act)
    return ActivationLevels(norm, dead, n, masses)


@dataclass
class GroupMeasures:
    """The measures of an edge group's edges, per input (first axis; length 1 when the same for all).

    ``pred`` (·, |Us|, |R|) / ``succ`` (·, |Vs|, |P|): neighbour masses of each source / target,
    already times 1 - alpha (the share the measure gives its neighbours); ``self_u`` (·, |Us|) /
    ``self_v`` (·, |Vs|): the mass a source / target keeps (alpha, or 1: a Dirac); ``alive``
    (N, edges): both of the edge's neurons fire on that input (all True without data).
    """

    pred: np.ndarray
    succ: np.ndarray
    self_u: np.ndarray
    self_v: np.ndarray
    alive: np.ndarray


def _gather(per_level: dict[int, np.ndarray], level_of: np.ndarray, units: np.ndarray) -> np.ndarray:
    """(N, len(units)) values of units that may lie on several levels."""
    out = np.empty((next(iter(per_level.values())).shape[0], len(units)))
    for level in np.unique(level_of):
        at = level_of == level
        out[:, at] = per_level[int(level)][:, units[at]]
    return out


def group_measures(g: EdgeGroup, net: Network, levels: ActivationLevels | None, alpha: float) -> GroupMeasures:
    """The measures of ``g``'s edges: from ``levels`` (neural curvature), or the lengths when None."""
    k = g.k
    pred_support = np.isfinite(g.pred_len)
    succ_support = np.isfinite(g.succ_len)
    if levels is None:  # weight-only: masses from edge lengths, nothing is dead
        pred = length_masses(pred_support, g.pred_len)
        succ = length_masses(succ_support, g.succ_len)
        alive = np.ones((1, len(g.ui)), dtype=bool)
    else:
        n_inputs = levels.n
        lay = net.layers[k]
        dead_u = levels.dead[lay.src][:, g.Us]
        dead_v = levels.dead[lay.dst][:, g.Vs]
        alive = ~dead_u[:, g.ui] & ~dead_v[:, g.vi]
        if levels.masses == "float32":
            pred, self_u = (
                activation_masses32(pred_support, _gather(levels.norm, g.R_level, g.R), alpha)
                if len(g.R)
                else (np.zeros((n_inputs, len(g.Us), 0)), np.ones((n_inputs, len(g.Us))))
            )
            succ, self_v = (
                activation_masses32(succ_support, _gather(levels.norm, g.P_level, g.P), alpha)
                if len(g.P)
                else (np.zeros((n_inputs, len(g.Vs), 0)), np.ones((n_inputs, len(g.Vs))))
            )
            return GroupMeasures(pred, succ, self_u, self_v, alive)
        pred = (
            activation_masses(pred_support, _gather(levels.norm, g.R_level, g.R))
            if len(g.R)
            else np.zeros((n_inputs, len(g.Us), 0))
        )
        succ = (
            activation_masses(succ_support, _gather(levels.norm, g.P_level, g.P))
            if len(g.P)
            else np.zeros((n_inputs, len(g.Vs), 0))
        )
    self_u = np.where(pred_support.any(axis=1), alpha, 1.0)[None, :]
    self_v = np.where(succ_support.any(axis=1), alpha, 1.0)[None, :]
    return GroupMeasures((1.0 - alpha) * pred, (1.0 - alpha) * succ, self_u, self_v, alive)
