"""Ollivier-Ricci curvature of graphs (``nngeo_core.curvature.ollivier_ricci``) against
GraphRicciCurvature and against a direct per-edge POT computation written here."""

from __future__ import annotations

import math
import typing

import networkx as nx
import numpy as np
import ot
import pytest

from nngeo_core.curvature import dense_layer_graph, ollivier_ricci
from nngeo_core.errors import NNGeoError
from nngeo_core.progress import Cancelled, Progress


def grc(G, alpha=0.5):
    from GraphRicciCurvature.OllivierRicci import OllivierRicci

    orc = OllivierRicci(G, alpha=alpha, method="OTD", base=math.e, exp_power=2, proc=1, verbose="ERROR")
    return orc.compute_ricci_curvature_edges()


def max_diff(a: dict, b: dict) -> float:
    assert set(a) == set(b)
    return max(abs(a[e] - b[e]) for e in a)


def with_random_weights(G, seed, low=0.5, high=2.0):
    rng = np.random.default_rng(seed)
    H = G.copy()
    for u, v in H.edges():
        H[u][v]["weight"] = float(rng.uniform(low, high))
    return H


def direct_orc(G, alpha=0.5, weight="weight"):
    """Textbook ORC per edge: shortest paths from networkx, W1 from ot.emd2, measures built here."""
    directed = G.is_directed()
    dist = dict(nx.all_pairs_dijkstra_path_length(G, weight=weight))

    def measure(x, nbrs, lengths):
        if not nbrs:
            return {x: 1.0}
        w = np.exp(-(np.asarray(lengths) ** 2))
        w = w / w.sum() if w.sum() > 1e-7 else np.full(len(w), 1.0 / len(w))
        m = {z: (1 - alpha) * wi for z, wi in zip(nbrs, w, strict=False)}
        m[x] = m.get(x, 0.0) + alpha
        return m

    out = {}
    for x, y in G.edges():
        if directed:
            px = list(G.predecessors(x))
            mx = measure(x, px, [G[z][x][weight] for z in px])
        else:
            nx_ = list(G.neighbors(x))
            mx = measure(x, nx_, [G[x][z][weight] for z in nx_])
        ny = list(G.successors(y)) if directed else list(G.neighbors(y))
        my = measure(y, ny, [G[y][z][weight] for z in ny])
        src, dst = list(mx), list(my)
        M = np.array([[dist[a][b] for b in dst] for a in src])
        w1 = ot.emd2(np.array([mx[a] for a in src]), np.array([my[b] for b in dst]), M)
        out[(x, y)] = 1.0 - w1 / dist[x][y]
    return out


# ---------------------------------------------------------------- agreement with GraphRicciCurvature


def test_exact_equals_graphricci_on_karate_unit_weights():
    G = nx.karate_club_graph()
    for u, v in G.edges():
        G[u][v]["weight"] = 1.0
    assert max_diff(ollivier_ricci(G, method="exact", processes=1), grc(G)) < 1e-6


def test_exact_equals_graphricci_on_karate_without_weight_attribute():
    G = nx.Graph(nx.karate_club_graph().edges())  # no attributes at all: every length is 1
    assert max_diff(ollivier_ricci(G, processes=1), grc(G)) < 1e-6


@pytest.mark.parametrize("alpha", [0.0, 0.5, 0.8])
def test_exact_equals_graphricci_on_karate_random_weights(alpha):
    G = with_random_weights(nx.karate_club_graph(), seed=1)
    assert max_diff(ollivier_ricci(G, alpha=alpha, processes=1), grc(G, alpha)) < 1e-6


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_exact_equals_graphricci_on_random_weighted_graphs(seed):
    G = with_random_weights(nx.gnp_random_graph(40, 0.12, seed=seed), seed=seed, low=0.1, high=3.0)
    assert max_diff(ollivier_ricci(G, processes=1), grc(G)) < 1e-6


@pytest.mark.parametrize("seed", [0, 1])
def test_exact_equals_graphricci_on_small_directed_graphs(seed):
    G = with_random_weights(nx.gnp_random_graph(25, 0.15, seed=seed, directed=True), seed=seed)
    ours = ollivier_ricci(G, processes=1)
    assert len(ours) == G.number_of_edges()
    assert max_diff(ours, grc(G)) < 1e-6


def test_graphricci_backend_returns_the_library_values():
    G = with_random_weights(nx.gnp_random_graph(20, 0.2, seed=4), seed=4)
    assert max_diff(ollivier_ricci(G, method="graphricci", processes=1), grc(G)) < 1e-12
    assert max_diff(ollivier_ricci(G, method="graphricci", processes=1), ollivier_ricci(G)) < 1e-6


# ---------------------------------------------------------------- against a direct computation


@pytest.mark.parametrize("seed", [0, 1])
def test_exact_equals_direct_emd2_per_edge(seed):
    # lengths spread 0.1..3 so many edges are longer than a detour: the denominator must be
    # the shortest-path distance, which the direct computation uses
    G = with_random_weights(nx.gnp_random_graph(30, 0.15, seed=seed), seed=seed, low=0.1, high=3.0)
    ref = direct_orc(G)
    assert max_diff(ollivier_ricci(G, processes=1), ref) < 1e-9
    detours = [(u, v) for u, v in G.edges() if nx.dijkstra_path_length(G, u, v) < G[u][v]["weight"] - 1e-9]
    assert detours, "the test graph should contain edges longer than a detour"


def test_exact_equals_direct_emd2_on_directed_graph():
    G = with_random_weights(nx.gnp_random_graph(20, 0.2, seed=7, directed=True), seed=7)
    assert max_diff(ollivier_ricci(G, processes=1), direct_orc(G)) < 1e-9


def test_closed_forms():
    # a path a - b - c with unit lengths, alpha = 0: mu_a = delta_b, mu_b = (delta_a + delta_c)/2,
    # W1 = 1, so kappa(a, b) = 0 (a known value for the end edge of a path)
    G = nx.path_graph(3)
    k = ollivier_ricci(G, alpha=0.0)
    assert k[(0, 1)] == pytest.approx(0.0, abs=1e-12)
    # complete graph K_n, unit lengths, alpha = 0: kappa = (n - 2) / (n - 1)
    n = 6
    k = ollivier_ricci(nx.complete_graph(n), alpha=0.0)
    assert all(v == pytest.approx((n - 2) / (n - 1), abs=1e-12) for v in k.values())


# ---------------------------------------------------------------- approximate mode

SINKHORN_TOL = 0.02  # documented: |kappa_sinkhorn - kappa_exact| <= 0.02 (typically ~1e-3)


def bipartite_layer(m, n, seed):
    """One dense layer as an undirected complete bipartite graph, lengths 1/|w|, w ~ N(0, 1)."""
    return dense_layer_graph(np.random.default_rng(seed).standard_normal((m, n)))


def test_sinkhorn_is_close_to_exact_on_a_dense_layer():
    G = bipartite_layer(24, 30, seed=0)  # supports of 25 x 31: large enough for the batched solver
    exact = ollivier_ricci(G, method="exact", processes=1)
    approx = ollivier_ricci(G, method="sinkhorn", device="cpu")
    diff = np.array([abs(exact[e] - approx[e]) for e in exact])
    assert diff.max() < SINKHORN_TOL
    assert diff.mean() < SINKHORN_TOL / 4


def test_sinkhorn_mode_solves_small_neighbourhoods_exactly():
    # every karate edge has at most 400 support pairs: the approximate mode hands them to the
    # network simplex, so it returns the exact values
    G = with_random_weights(nx.karate_club_graph(), seed=2)
    assert max_diff(ollivier_ricci(G, method="sinkhorn", device="cpu"), ollivier_ricci(G)) < 1e-12


def test_sinkhorn_solver_against_emd2_directly():
    from nngeo_core.curvature.transport import CoreProblems, w1_sinkhorn

    rng = np.random.default_rng(5)
    n1, n2, B = 30, 35, 40
    pts_s, pts_t = rng.random((n1 + 1, 2)), rng.random((n2 + 1, 2))
    D = np.linalg.norm(pts_s[:, None] - pts_t[None], axis=2)
    a = rng.random((n1, B)) ** 3
    b = rng.random((n2, B)) ** 3
    a, b = 0.5 * a / a.sum(0), 0.5 * b / b.sum(0)
    p = CoreProblems(
        C=D[:n1, :n2],
        a=a,
        b=b,
        ax=np.full(B, 0.5),
        by=np.full(B, 0.5),
        row=np.repeat(D[n1, :n2, None], B, 1),
        col=np.repeat(D[:n1, n2, None], B, 1),
        corner=np.full(B, D[n1, n2]),
    )
    got = w1_sinkhorn(p, device="cpu")
    ref = np.array([ot.emd2(np.r_[a[:, e], 0.5], np.r_[b[:, e], 0.5], D) for e in range(B)])
    assert np.abs(got - ref).max() < 0.01 * np.median(D)


# ---------------------------------------------------------------- parallel exact


def test_exact_with_worker_processes_equals_serial():
    G = bipartite_layer(45, 45, seed=1)  # enough work to start the worker pool
    assert max_diff(ollivier_ricci(G, processes=2), ollivier_ricci(G, processes=1)) < 1e-12


# ---------------------------------------------------------------- odd graphs and bad input


def test_disconnected_graph_and_isolated_nodes():
    A = with_random_weights(nx.cycle_graph(7), seed=0)
    B = with_random_weights(nx.complete_graph(5), seed=1)
    G = nx.disjoint_union(A, B)
    G.add_node("lonely")
    ours = ollivier_ricci(G, processes=1)
    assert len(ours) == G.number_of_edges()
    assert max_diff(ours, grc(G)) < 1e-6
    # each component alone gives the same values
    alone = ollivier_ricci(A, processes=1)
    assert all(abs(ours[e] - alone[e]) < 1e-12 for e in alone)


def test_self_loops_are_ignored():
    G = with_random_weights(nx.cycle_graph(6), seed=0)
    H = G.copy()
    H.add_edge(2, 2, weight=1.0)
    ours = ollivier_ricci(H)
    assert (2, 2) not in ours
    assert max_diff(ours, ollivier_ricci(G)) < 1e-12


def test_zero_length_edge_gets_zero_curvature():
    G = nx.path_graph(4)
    nx.set_edge_attributes(G, 1.0, "weight")
    G[1][2]["weight"] = 0.0
    ours = ollivier_ricci(G)
    assert ours[(1, 2)] == 0.0
    assert max_diff(ours, grc(G)) < 1e-6


def test_empty_graph_gives_empty_result():
    G = nx.Graph()
    G.add_nodes_from(range(3))
    assert ollivier_ricci(G) == {}


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -1.0])
def test_bad_lengths_are_refused(bad):
    G = nx.path_graph(3)
    nx.set_edge_attributes(G, 1.0, "weight")
    G[0][1]["weight"] = bad
    with pytest.raises(NNGeoError, match="length"):
        ollivier_ricci(G)


def test_bad_graphs_and_settings_are_refused():
    G = nx.path_graph(3)
    G[0][1]["weight"] = 1.0  # the other edge has none
    with pytest.raises(NNGeoError, match="no 'weight' attribute"):
        ollivier_ricci(G)
    with pytest.raises(NNGeoError, match="multigraph"):
        ollivier_ricci(nx.MultiGraph([(0, 1), (0, 1)]))
    with pytest.raises(NNGeoError, match="networkx"):
        ollivier_ricci([(0, 1)])
    H = nx.path_graph(3)
    with pytest.raises(NNGeoError, match="alpha"):
        ollivier_ricci(H, alpha=1.0)
    with pytest.raises(NNGeoError, match="method"):
        ollivier_ricci(H, method="magic")
    G = nx.path_graph(3)
    nx.set_edge_attributes(G, "long", "weight")
    with pytest.raises(NNGeoError, match="number"):
        ollivier_ricci(G)


def test_cancel_stops_the_computation():
    G = bipartite_layer(10, 10, seed=0)
    with pytest.raises(Cancelled):
        ollivier_ricci(G, progress=Progress(is_cancelled=lambda: True))


def test_dense_layer_graph_has_an_edge_per_nonzero_weight_of_length_one_over_w():
    w = np.array([[2.0, 0.0, -0.5], [1.0, 4.0, 0.0]])
    G = dense_layer_graph(w)
    expected = {(i, 2 + j): 1.0 / abs(w[i, j]) for i in range(2) for j in range(3) if w[i, j] != 0}
    assert {tuple(sorted(e)): d["weight"] for *e, d in G.edges(data=True)} == pytest.approx(expected)
    with pytest.raises(NNGeoError, match="NaN"):
        dense_layer_graph(np.array([[1.0, np.nan]]))


def test_dense_layer_graph_is_a_networkx_graph_as_annotated():
    # the return annotation names networkx's Graph: it must resolve (it once named an unimported nx)
    hints = typing.get_type_hints(dense_layer_graph)
    assert hints["return"] is nx.Graph
    G = dense_layer_graph(np.array([[1.0, -2.0]]))
    assert type(G) is nx.Graph and not G.is_directed()
    assert ollivier_ricci(G) == pytest.approx(ollivier_ricci(nx.Graph(G)))
