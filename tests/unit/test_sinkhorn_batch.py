"""The Sinkhorn solver's batches (``transport.sinkhorn_batch_size`` from the problem size, fewer
problems when a thread would sit idle) and threads (batches side by side, one per torch thread)
change the timing only: the same curvatures come out with the adaptive batch, one problem per
batch and every problem in one batch, on 1 and 2 torch threads, and they match POT (``ot.emd2``
per edge, and ``ot.sinkhorn2`` at the same regularisation). Cancelling and errors reach the caller
from the batch threads."""

from __future__ import annotations

import threading

import networkx as nx
import numpy as np
import ot
import pytest
import torch

from nngeo_core.curvature import ollivier_ricci, transport
from nngeo_core.curvature.transport import CoreProblems, sinkhorn_batch_size, w1_sinkhorn
from nngeo_core.errors import NNGeoError
from nngeo_core.progress import Cancelled

SINKHORN_TOL = 0.02  # documented: |kappa_sinkhorn - kappa_exact| <= 0.02 (typically ~1e-3)
SAME = 1e-10  # "identical": float rounding only (the GEMM blocking differs with the batch width)


@pytest.fixture
def threads():
    """Restores torch's thread count after a test that sets it."""
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.fixture
def batches(monkeypatch):
    """Records (batch size, torch's intra-op threads, the thread) of every batch the solver runs."""
    seen: list[tuple[int, int, str]] = []
    solve = transport._sinkhorn_batch

    def spy(q, *args):
        seen.append((q.size, torch.get_num_threads(), threading.current_thread().name))
        return solve(q, *args)

    monkeypatch.setattr(transport, "_sinkhorn_batch", spy)
    return seen


def test_batch_size_is_a_cache_budget_per_thread():
    for n1, n2 in [(1, 1), (25, 31), (100, 100), (784, 100)]:
        per_problem = 8 * transport.SINKHORN_HOT_ARRAYS * (n1 + n2)
        size = sinkhorn_batch_size(n1, n2)
        assert size * per_problem <= transport.SINKHORN_THREAD_BYTES < (size + 1) * per_problem
    assert 600 <= sinkhorn_batch_size(100, 100) <= 1000  # K(100,100): mid-plateau of the measured times
    assert sinkhorn_batch_size(10**7, 10**7) == 1  # a problem too big for the budget still runs


def hubs_and_leaves(hubs, leaves, seed):
    """Every hub joined to every hub and every leaf, lengths in [0.5, 2] (some edges are not
    shortest paths). Hub-hub edges have ((hubs + leaves) ** 2) support pairs, enough for the
    batched solver; hub-leaf edges have few and go to the network simplex."""
    rng = np.random.default_rng(seed)
    G = nx.Graph()
    G.add_edges_from((h, k) for h in range(hubs) for k in range(h + 1, hubs))
    G.add_edges_from((h, hubs + i) for h in range(hubs) for i in range(leaves))
    for u, v in G.edges():
        G[u][v]["weight"] = float(rng.uniform(0.5, 2.0))
    return G


def emd2_curvature(G, alpha=0.5):
    """Textbook ORC per edge, written here: networkx shortest paths, measures built here, ot.emd2."""
    dist = dict(nx.all_pairs_dijkstra_path_length(G, weight="weight"))

    def measure(x):
        nbrs = list(G.neighbors(x))
        w = np.exp(-(np.array([G[x][z]["weight"] for z in nbrs]) ** 2))
        m = {z: (1 - alpha) * wi / w.sum() for z, wi in zip(nbrs, w, strict=True)}
        m[x] = alpha
        return m

    out = {}
    for x, y in G.edges():
        mx, my = measure(x), measure(y)
        M = np.array([[dist[s][t] for t in my] for s in mx])
        out[(x, y)] = 1.0 - ot.emd2(np.array(list(mx.values())), np.array(list(my.values())), M) / dist[x][y]
    return out


@pytest.mark.parametrize("n_threads", [1, 2])
def test_curvature_is_the_same_for_any_batch_and_thread_count(n_threads, threads, batches, monkeypatch):
    hubs = 6
    G = hubs_and_leaves(hubs, 20, seed=3)
    # a cache budget of 2 problems (supports of <= 26 + 25 points) so that the adaptive batch
    # really splits this small graph's chunks (hub h has hubs - 1 - h hub edges), and torch's
    # threads on however small a single batch so that 2 intra-op threads really run there too
    monkeypatch.setattr(transport, "SINKHORN_THREAD_BYTES", 2 * 8 * transport.SINKHORN_HOT_ARRAYS * 51)
    monkeypatch.setattr(transport, "SINGLE_THREAD_WORK", 0)
    torch.set_num_threads(n_threads)
    runs = {}
    for name, batch in [("adaptive", None), ("one", 1), ("all", 10**9)]:
        batches.clear()
        runs[name] = ollivier_ricci(G, method="sinkhorn", device="cpu", sinkhorn_batch=batch)
        assert torch.get_num_threads() == n_threads  # the caller's setting is restored
        sizes = [s for s, _, _ in batches]
        assert sum(sizes) == hubs * (hubs - 1) // 2  # every hub-hub edge, once
        if name == "all":  # one batch per chunk, its ops split over torch's threads
            assert max(sizes) == hubs - 1 and {t for _, t, _ in batches} == {n_threads}
            assert {n for _, _, n in batches} == {"MainThread"}
        else:  # batches side by side, one intra-op thread each
            assert max(sizes) == (2 if name == "adaptive" else 1)
            # in the threads, one intra-op thread each; a chunk of one batch stays in the caller's
            # thread, its ops split over torch's threads
            assert all(t == (n_threads if n == "MainThread" else 1) for _, t, n in batches)
            names = {n for _, _, n in batches}
            if n_threads == 1:
                assert names == {"MainThread"}
            else:
                assert "sinkhorn_0" in names and names <= {"MainThread", "sinkhorn_0", "sinkhorn_1"}
    ref = emd2_curvature(G)
    assert set(runs["adaptive"]) == set(ref)
    keys = list(ref)
    got = {name: np.array([r[e] for e in keys]) for name, r in runs.items()}
    exact = np.array([ref[e] for e in keys])
    assert np.abs(got["adaptive"] - got["one"]).max() < SAME
    assert np.abs(got["adaptive"] - got["all"]).max() < SAME
    diff = np.abs(got["adaptive"] - exact)
    assert diff.max() < SINKHORN_TOL and diff.mean() < SINKHORN_TOL / 4
    to_leaf = [i for i, (x, y) in enumerate(keys) if max(x, y) >= hubs]
    assert np.abs(got["adaptive"][to_leaf] - exact[to_leaf]).max() < 1e-12  # solved exactly


def random_core_problems(n1, n2, B, seed):
    """B problems on points in the unit square sharing a core; every mass positive (nothing to compact)."""
    rng = np.random.default_rng(seed)
    pts_s, pts_t = rng.random((n1, 2)), rng.random((n2, 2))
    xs, ys = rng.random((B, 2)), rng.random((B, 2))  # each problem's extra source / target point
    dist = lambda p, q: np.linalg.norm(p[:, None] - q[None], axis=2)  # noqa: E731  (a one-line local helper)
    a, b = rng.random((n1, B)) + 0.1, rng.random((n2, B)) + 0.1
    ax, by = np.full(B, 0.5), np.full(B, 0.5)
    a, b = 0.5 * a / a.sum(0), 0.5 * b / b.sum(0)
    p = CoreProblems(
        C=dist(pts_s, pts_t),
        a=a,
        b=b,
        ax=ax,
        by=by,
        row=dist(xs, pts_t).T.copy(),
        col=dist(pts_s, ys),
        corner=np.linalg.norm(xs - ys, axis=1),
    )
    return p, pts_s, pts_t, xs, ys


@pytest.mark.parametrize("n_threads", [1, 2])
def test_w1_sinkhorn_matches_pot_sinkhorn2_for_any_batch(n_threads, threads, batches, monkeypatch):
    n1, n2, B = 22, 26, 16
    p, pts_s, pts_t, xs, ys = random_core_problems(n1, n2, B, seed=7)
    monkeypatch.setattr(transport, "SINGLE_THREAD_WORK", 0)
    torch.set_num_threads(n_threads)
    # the solver's regularisation, from its documented rule: eps times the median core cost above
    # the smallest cost (a coarser eps than the default, so that both sides converge tightly fast)
    eps = 0.05
    cmin = min(p.C.min(), p.row.min(), p.col.min(), p.corner.min())
    reg = eps * (np.median(p.C) - cmin)
    ref_entropic, ref_exact = np.empty(B), np.empty(B)
    for e in range(B):
        src, dst = np.vstack([pts_s, xs[e]]), np.vstack([pts_t, ys[e]])
        M = np.linalg.norm(src[:, None] - dst[None], axis=2)
        mu, nu = np.r_[p.a[:, e], p.ax[e]], np.r_[p.b[:, e], p.by[e]]
        ref_entropic[e] = ot.sinkhorn2(mu, nu, M, reg, stopThr=1e-11, numItermax=100_000)
        ref_exact[e] = ot.emd2(mu, nu, M)
    gap = np.abs(ref_entropic - ref_exact).max()
    assert gap > 1e-3  # the entropic cost really differs from the exact one at this regularisation
    assert sinkhorn_batch_size(n1, n2) > B
    results = {}
    # (name, batch, cache budget in problems or None for the default, largest batch expected):
    # the default budget holds all B problems, so only the threads split them; a budget of 5
    # splits them whatever the threads
    cases = [
        ("adaptive", None, None, -(-B // n_threads)),
        ("budget 5", None, 5, 5),
        ("one", 1, None, 1),
        ("all", B, None, B),
    ]
    for name, batch, budget, largest in cases:
        if budget is not None:
            monkeypatch.setattr(
                transport, "SINKHORN_THREAD_BYTES", budget * 8 * transport.SINKHORN_HOT_ARRAYS * (n1 + n2)
            )
        batches.clear()
        # converged tightly, so the comparison with POT's converged plan is sharp
        results[name] = w1_sinkhorn(p, eps=eps, device="cpu", tol=1e-9, max_iter=20_000, fallback=False, batch=batch)
        assert max(s for s, _, _ in batches) == largest and sum(s for s, _, _ in batches) == B
        one_batch = len(batches) == 1
        assert {t for _, t, _ in batches} == {n_threads if one_batch else 1}
        assert ({n for _, _, n in batches} == {"MainThread"}) == (n_threads == 1 or one_batch)
    for got in results.values():
        assert np.abs(got - ref_entropic).max() < 1e-3 * gap
        assert np.abs(got - results["adaptive"]).max() < SAME


def test_cancel_and_errors_reach_the_caller_from_the_batch_threads(threads, monkeypatch):
    p = random_core_problems(22, 26, 40, seed=1)[0]
    monkeypatch.setattr(transport, "SINKHORN_THREAD_BYTES", 4 * 8 * transport.SINKHORN_HOT_ARRAYS * 48)
    torch.set_num_threads(2)
    calls = []

    def cancel_on_second_poll():
        calls.append(threading.current_thread().name)
        if len(calls) >= 2:
            raise Cancelled("cancelled")

    with pytest.raises(Cancelled):
        w1_sinkhorn(p, device="cpu", tol=1e-12, max_iter=10**6, check=cancel_on_second_poll)
    assert set(calls) == {"MainThread"}  # the caller's check runs in the caller's thread only
    assert not [t for t in threading.enumerate() if t.name.startswith("sinkhorn")]  # the threads are gone
    assert torch.get_num_threads() == 2

    solve = transport._sinkhorn_batch

    def fail_after_four_batches(q, *args):
        if threading.current_thread().name != "MainThread" and len(calls) >= 4:
            raise NNGeoError("batch failed")
        calls.append(q.size)
        return solve(q, *args)

    calls.clear()
    monkeypatch.setattr(transport, "_sinkhorn_batch", fail_after_four_batches)
    with pytest.raises(NNGeoError, match="batch failed"):
        w1_sinkhorn(p, device="cpu")
    assert not [t for t in threading.enumerate() if t.name.startswith("sinkhorn")]
