"""How much of a layer's maximum spanning tree (MST) sits among its largest weights.

Balwani & Krzyston (2022) compare a layer's MST with its ``alpha = |MST|`` largest-magnitude
weights (the weights magnitude pruning keeps at the critical compression ratio). We report:

``overlap``
    ``|MST ∩ top-alpha| / alpha``. Order edges by decreasing ``|w|`` (ties by weight index, then,
    for conv, by output position: the Kruskal order used everywhere in this package) and let ``A``
    be the first ``alpha`` edges. Kruskal's algorithm reads ``A`` first and accepts exactly a
    spanning forest of ``A``, so ``|MST ∩ A| = |V| - c(V, A)`` with ``c`` the number of connected
    components. That is how it is computed (exact, and independent of how ties are broken inside
    the spanning-tree routine). Exactly-zero weights are absent edges: for a pruned (p-sparse) layer
    ``alpha`` is the size of the spanning forest of what is left, and everything below still holds.

``bound`` (a weight-independent lower bound on ``overlap``; our derivation, playing the role of
the paper's Theorem 3.3 and its p-sparse corollary)
    ``|MST ∩ A| = sum over the non-trivial components of (V, A) of (a_i + b_i - 1)``, where
    component ``i`` has ``a_i`` inputs and ``b_i`` outputs and so at most ``a_i * b_i`` edges.
    Two components ``(a1, b1), (a2, b2)`` with ``b1 >= b2`` can be replaced by one
    ``(a1 + a2, b1)``: it holds at least as many edges at no larger cost (``b2 >= 1``). Hence the
    smallest possible overlap for any ``alpha`` edges of a bipartite graph with ``m`` inputs and
    ``n`` outputs is ``L = min{a + b - 1 : a*b >= alpha, 1 <= a <= m, 1 <= b <= n}`` (attained when
    the top weights fill an ``a x b`` block), and ``overlap >= L / alpha`` (about ``2/sqrt(alpha)``).
    It holds for any weights and for any bipartite layer graph (conv graphs are subgraphs of
    ``K_{m,n}``), dense or pruned.

``chance`` and ``p_chance`` (random baseline, the paper's Appendix C in spirit)
    If the ``alpha`` kept weights were a uniformly random ``alpha``-subset of the ``N`` present
    edges, the number of MST edges among them would be hypergeometric(N, alpha, alpha): mean
    fraction ``chance = alpha / N = 1 / eta_tau`` for a dense layer; ``p_chance`` is the probability
    of an overlap at least as large as the measured one by chance.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.stats import hypergeom
from torch import nn

from .diagrams import check_choice
from .graphs import CONV_METHODS, LayerGraph, kruskal_blocks, spanning_forest
from .persistence import model_layer_graphs, with_skipped


def overlap_lower_bound(alpha: int, m: int, n: int) -> int:
    """``min{a + b - 1 : a*b >= alpha, a <= m, b <= n}``: the fewest MST edges ``alpha`` edges can hold."""
    if alpha <= 0:
        return 0
    a = np.arange(1, min(m, alpha) + 1, dtype=np.int64)
    b = -(-alpha // a)
    ok = b <= n
    if not ok.any():
        raise ValueError(f"{alpha} edges do not fit a {m} x {n} bipartite graph")
    return int((a[ok] + b[ok] - 1).min())


def top_overlap_count(graph: LayerGraph, alpha: int) -> int:
    """``|MST ∩ A|`` for the first ``alpha`` present edges in Kruskal order: ``|V| - c(V, A)``."""
    if alpha <= 0:
        return 0
    n_groups = -(-alpha // graph.group_size)
    block = next(kruskal_blocks(graph.values, False, first=n_groups))[:n_groups]
    u, v = graph.edges(block)
    u, v = u[:alpha], v[:alpha]
    n = graph.n_vertices
    adj = coo_matrix((np.ones(alpha, dtype=np.int8), (u, v)), shape=(n, n))
    n_comp, _ = connected_components(adj, directed=False)
    return int(n - n_comp)


def _fraction(count: int, alpha: int) -> float:
    """``count / alpha``, NaN for an empty spanning tree."""
    return count / alpha if alpha else float("nan")


def mst_overlap(model: nn.Module, *, conv: str = "toeplitz", input_shape=None) -> pd.DataFrame:
    """Per layer: MST / top-alpha overlap, its lower bound and the random-chance baseline.

    Columns ``layer``, ``kind``, ``n_in``, ``n_out``, ``n_edges`` (present, i.e. nonzero, edges),
    ``alpha`` (= MST size), ``overlap_count``, ``overlap``, ``bound_count``, ``bound``,
    ``chance_count``, ``chance``, ``p_chance`` and ``conv_method`` (see the module docstring).
    A layer with no nonzero weight has ``alpha = 0`` and NaN fractions. Per layer, so skip
    connections do not enter; ``note`` and the ``kind = "skipped"`` rows as in ``neural_persistence``.
    """
    check_choice("conv", conv, CONV_METHODS)
    rows = []
    graphs, skipped = model_layer_graphs(model, conv=conv, input_shape=input_shape)
    for g in graphs:
        forest = spanning_forest(g)
        alpha = forest.size
        n_present = int(np.count_nonzero(g.values)) * g.group_size
        count = top_overlap_count(g, alpha)
        bound = overlap_lower_bound(alpha, g.n_in, g.n_out)
        rows.append(
            {
                "layer": g.name,
                "kind": g.kind,
                "n_in": g.n_in,
                "n_out": g.n_out,
                "n_edges": n_present,
                "alpha": alpha,
                "overlap_count": count,
                "overlap": _fraction(count, alpha),
                "bound_count": bound,
                "bound": _fraction(bound, alpha),
                "chance_count": alpha * alpha / n_present if n_present else float("nan"),
                "chance": alpha / n_present if n_present else float("nan"),
                "p_chance": float(hypergeom.sf(count - 1, n_present, alpha, alpha)) if alpha else float("nan"),
                "conv_method": g.method,
                "note": g.note,
            }
        )
    return with_skipped(pd.DataFrame(rows), skipped)
