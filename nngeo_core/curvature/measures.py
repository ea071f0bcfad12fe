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


def normalised_activations(act: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Min-max normalised |a| per input (rows) in [0, 1], and the dead (zero-activation) mask."""
    a = np.abs(act)
    lo, hi = a.min(axis=1, keepdims=True), a.max(axis=1, keepdims=True)
    span = hi - lo
    with np.errstate(invalid="ignore", divide="ignore"):
        norm = np.where(span > 0, (a - lo) / np.where(span > 0, span, 1.0), (a > 0).astype(float))
    dead = a <= DEAD_RTOL * hi
    return norm, dead


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
    """Normalised activations and dead masks of every node level, (N, units) each, on N inputs."""

    norm: dict[int, np.ndarray]
    dead: dict[int, np.ndarray]
    n: int


def activation_levels(values: dict[int, torch.Tensor]) -> ActivationLevels:
    """Normalise the traced activations of every node level (``layer_graph.build_network``); a
    level's activation is the last value its neurons took in the forward pass (after the
    activation function, after a residual sum)."""
    norm, dead = {}, {}
    n = 0
    for level, t in values.items():
        act = t.to("cpu", torch.float64).numpy()
        if not np.isfinite(act).all():
            raise NNGeoError("the network's activations on the calibration inputs are not finite")
        norm[level], dead[level] = normalised_activations(act)
        n = len(act)
    return ActivationLevels(norm, dead, n)


@dataclass
class GroupMeasures:
    """The measures of an edge group's edges, per input (first axis; length 1 when the same for all).

    ``pred`` (·, |Us|, |R|) / ``succ`` (·, |Vs|, |P|): neighbour masses of each source / target,
    summing to 1 over its support (the measure gives them 1 - alpha of its mass); ``self_u`` /
    ``self_v``: the mass a source / target keeps (alpha, or 1 without neighbours); ``alive``
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
        lay = net.layers[k]
        dead_u = levels.dead[lay.src][:, g.Us]
        dead_v = levels.dead[lay.dst][:, g.Vs]
        alive = ~dead_u[:, g.ui] & ~dead_v[:, g.vi]
    self_u = np.where(pred_support.any(axis=1), alpha, 1.0)
    self_v = np.where(succ_support.any(axis=1), alpha, 1.0)
    return GroupMeasures(pred, succ, self_u, self_v, alive)
