"""Curvature engine vs GraphRicciCurvature, same graphs, one process.

    python bench/curvature.py                # K(100,100) layer graph, karate, NC on fcn_mnist
    python bench/curvature.py --size 60      # a smaller dense layer (quicker)
    python bench/curvature.py --nc-exact     # also time exact neural curvature on fcn_mnist
    python bench/curvature.py --threads-study  # Sinkhorn time vs torch threads, quiet and loaded
    python bench/curvature.py --conv-only    # only 4.: pooled vs per-group problems on lenet5_s2
    python bench/curvature.py --highs        # only 5.: warm-started HiGHS vs POT per transport problem

1. One dense layer as an undirected complete bipartite graph K(n, n), edge lengths 1/|w| with
   w ~ N(0, 1): GraphRicciCurvature (method="OTD", exp_power=2, base=e) with ``--processes``
   worker processes, this engine's exact mode (network simplex, same number of processes) and its
   approximate mode (batched Sinkhorn in torch). Prints times, speed-up ratios and the largest
   difference of each from GraphRicciCurvature.
2. The karate club graph (unit lengths): small-graph overhead; and a sparse graph,
   ``gnm_random_graph(2000, 10000)`` with lengths U[1, 2] (neighbourhoods of ~10 nodes: all-pairs
   distances and per-problem overhead, not the LPs, dominate).
3. Neural curvature of ``fcn_mnist`` (784-100-100-100-100-100-10, seeded initialisation) on 10
   calibration inputs (one test digit per class, digits resized to 28x28), approximate mode.
4. Neural curvature of ``lenet5_s2`` (seeded initialisation, eval mode) on the same 10 inputs, for
   both presets (nngeo: Sinkhorn, 4 positions per conv layer; tan2026: exact, every position): the
   reference solves each edge group's transport problems alone (``POOL_METHODS = ()``, the
   engine before pooling), nngeo pools the groups that share a core cost matrix (a conv layer's
   interior positions with one tap offset) into one batch; only Sinkhorn pools (``POOL_METHODS``),
   so the tan2026 (exact) line times the same code twice. Prints both times, their ratio and the
   largest difference (Sinkhorn: within its tolerance, as its regularisation is set per batch).

5. ``--highs``: the exact solver's alternative the issue names, HiGHS's dual simplex warm-started
   from the previous problem's basis (``highspy``, installed separately: not a dependency), against
   POT's network simplex on the same 300 problems of 101 x 101 support pairs (a shared 100 x 100
   core, one row, one column and the masses changed between problems, as in K(100, 100)).

``--threads-study`` replaces all of that: Sinkhorn curvature of K(n, n) (and with ``--study-nc``
of fcn_mnist as in 3., ~75 s a run on a busy 2-core box) with torch threads = 1 and 2, on the
machine as it is ("quiet") and with a second process burning one core ("1 core busy"), the
minimum of ``--repeats`` runs each. It prints seconds per threads x load, the ratios, the Sinkhorn
batch size, and the thread count the worker's policy (usable cores // consumers,
``nngeo_core.threads``) picks. ``--batch 1000000000`` gives the solver's old behaviour (one big
batch whose ops torch's threads split). Run it on an otherwise idle machine: other load shows up
in the "quiet" column.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import nullcontext

import networkx as nx
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch

from nngeo_core.curvature import dense_layer_graph, neural_curvature, ollivier_ricci
from nngeo_core.curvature.transport import sinkhorn_batch_size
from nngeo_core.threads import for_consumers, usable_cores


def random_layer_graph(n: int, seed: int = 0) -> nx.Graph:
    return dense_layer_graph(np.random.default_rng(seed).standard_normal((n, n)))


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def diff(a: dict, b: dict) -> tuple[float, float]:
    d = np.array([abs(a[e] - b[e]) for e in b])
    return float(d.max()), float(d.mean())


def bench_graph(name: str, G: nx.Graph, processes: int) -> None:
    print(f"\n== {name}: {G.number_of_nodes()} nodes, {G.number_of_edges()} edges, {processes} processes")
    ref, t_ref = timed(lambda: ollivier_ricci(G, method="graphricci", processes=processes))
    exact, t_exact = timed(lambda: ollivier_ricci(G, method="exact", processes=processes))
    approx, t_approx = timed(lambda: ollivier_ricci(G, method="sinkhorn", device="auto"))
    dx, dxm = diff(exact, ref)
    da, dam = diff(approx, ref)
    print(f"{'engine':34s} {'seconds':>9s} {'speed-up':>9s} {'max |dk| vs GRC':>16s} {'mean':>9s}")
    print(f"{'GraphRicciCurvature OTD':34s} {t_ref:9.2f} {1.0:9.1f}x {0.0:16.1e} {0.0:9.1e}")
    print(f"{'nngeo exact (network simplex)':34s} {t_exact:9.2f} {t_ref / t_exact:9.1f}x {dx:16.1e} {dxm:9.1e}")
    print(f"{'nngeo sinkhorn (batched, torch)':34s} {t_approx:9.2f} {t_ref / t_approx:9.1f}x {da:16.1e} {dam:9.1e}")


def fcn_case():
    """fcn_mnist (seeded initialisation) and one test digit per class, digits resized to 28x28."""
    from nngeo_core.data import load
    from nngeo_core.models import build

    ds = load("digits", resize=28)
    torch.manual_seed(0)
    model = build("fcn_mnist", input_shape=ds.input_shape, num_classes=ds.num_classes)
    idx = torch.cat([torch.nonzero(ds.y_test == c).flatten()[:1] for c in range(ds.num_classes)])
    return model, ds.x_test[idx]


def bench_nc(exact: bool) -> None:
    model, x = fcn_case()
    print(
        f"\n== neural curvature, fcn_mnist (seeded init), {len(x)} calibration inputs, "
        f"torch threads {torch.get_num_threads()}"
    )
    df, t = timed(lambda: neural_curvature(model, x, method="sinkhorn"))
    print(f"sinkhorn: {t:.1f} s for {len(df)} edges")
    if exact:
        dfe, te = timed(lambda: neural_curvature(model, x, method="exact"))
        d = np.abs(df["curvature"].to_numpy() - dfe["curvature"].to_numpy())
        print(f"exact:    {te:.1f} s; sinkhorn vs exact max |dk| {d.max():.1e}, mean {d.mean():.1e}")


def sparse_graph(n: int = 2000, m: int = 10000, seed: int = 0) -> nx.Graph:
    G = nx.gnm_random_graph(n, m, seed=seed)
    rng = np.random.default_rng(seed)
    for u, v in G.edges:
        G[u][v]["weight"] = float(rng.uniform(1.0, 2.0))
    return G


def bench_highs(n_problems: int = 300) -> None:
    from ot.lp.emd_wrap import emd_c

    try:
        import highspy
    except ImportError:
        print("\n== HiGHS: highspy is not installed (pip install highspy); skipped")
        return
    rng = np.random.default_rng(0)
    n = 101
    core = 1.0 / (np.abs(rng.standard_normal((n - 1, n - 1))) + 1e-3)
    problems = []
    for _ in range(n_problems):
        M = np.empty((n, n))
        M[:-1, :-1] = core
        M[-1, :-1] = 1.0 / (np.abs(rng.standard_normal(n - 1)) + 1e-3)
        M[:-1, -1] = 1.0 / (np.abs(rng.standard_normal(n - 1)) + 1e-3)
        M[-1, -1] = 1.0
        a, b = np.exp(-3 * rng.random(n) ** 2), np.exp(-3 * rng.random(n) ** 2)
        a[-1], b[-1] = a[:-1].sum(), b[:-1].sum()  # the idleness mass of the edge's own node
        a, b = a / a.sum(), b / b.sum()
        problems.append((a, b * (a.sum() / b.sum()), M))
    t = time.perf_counter()
    ref = [emd_c(a, b, M, 10**7, 1, None, None)[1] for a, b, M in problems]
    t_pot = time.perf_counter() - t
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    nv = n * n
    lp = highspy.HighsLp()
    lp.num_col_, lp.num_row_ = nv, 2 * n
    lp.col_cost_ = problems[0][2].ravel()
    lp.col_lower_, lp.col_upper_ = np.zeros(nv), np.full(nv, highspy.kHighsInf)
    rhs = np.r_[problems[0][0], problems[0][1]]
    lp.row_lower_, lp.row_upper_ = rhs, rhs
    i, j = np.divmod(np.arange(nv), n)  # variable i * n + j: one entry in source row i, one in target row n + j
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_ = np.arange(0, 2 * nv + 1, 2)
    lp.a_matrix_.index_ = np.stack([i, n + j], axis=1).ravel().astype(np.int32)
    lp.a_matrix_.value_ = np.ones(2 * nv)
    h.passModel(lp)
    changed = np.r_[np.arange(n - 1) * n + n - 1, (n - 1) * n + np.arange(n)].astype(np.int32)
    rows = np.arange(2 * n, dtype=np.int32)
    t = time.perf_counter()
    err = 0.0
    for (a, b, M), r in zip(problems, ref, strict=True):
        rhs = np.r_[a, b]
        h.changeRowsBounds(2 * n, rows, rhs, rhs)  # the basis of the last solve is kept: a warm start
        h.changeColsCost(len(changed), changed, M.ravel()[changed])
        h.run()
        err = max(err, abs(h.getInfo().objective_function_value - r))
    t_highs = time.perf_counter() - t
    print(f"\n== exact W1, {n_problems} problems of {n}x{n}")
    print(f"POT network simplex: {1e3 * t_pot / n_problems:.3f} ms each")
    print(
        f"HiGHS dual simplex, warm-started: {1e3 * t_highs / n_problems:.3f} ms each "
        f"({t_pot / t_highs:.3f}x POT); max |cost difference| {err:.1e}"
    )


def lenet_case():
    from nngeo_core.models import build

    _, x = fcn_case()
    torch.manual_seed(0)
    return build("lenet5_s2").eval(), x


def bench_conv_pooling() -> None:
    from nngeo_core.curvature import neural

    model, x = lenet_case()
    print(f"\n== neural curvature, lenet5_s2 (seeded init), {len(x)} calibration inputs: per group vs pooled cores")
    for preset in ("nngeo", "tan2026"):
        pooled, neural.POOL_METHODS = neural.POOL_METHODS, ()
        ref, t_ref = timed(lambda preset=preset: neural_curvature(model, x, preset=preset))
        neural.POOL_METHODS = pooled
        ours, t = timed(lambda preset=preset: neural_curvature(model, x, preset=preset))
        d = np.abs(ref["curvature"].to_numpy() - ours["curvature"].to_numpy())
        print(
            f"{preset:8s} {len(ours):7d} edges: per group {t_ref:6.1f} s, pooled {t:6.1f} s, "
            f"{t_ref / t:.2f}x; max |dk| {d.max():.1e}"
        )


class BusyCore:
    """A second process spinning on one core for the duration of the ``with`` block."""

    def __enter__(self):
        # a pure user-space spin that stops within ~0.1 s once this process is gone (even if killed)
        spin = "import os\np = os.getppid()\nwhile os.getppid() == p:\n    for _ in range(10**6): pass"
        self.proc = subprocess.Popen([sys.executable, "-c", spin])
        time.sleep(0.5)  # let it start spinning before the timing begins
        return self

    def __exit__(self, *exc):
        self.proc.kill()
        self.proc.wait()


def min_time(fn: Callable[[], object], repeats: int) -> float:
    return min(timed(fn)[1] for _ in range(repeats))


def threads_study(size: int, repeats: int, with_nc: bool, batch: int | None) -> None:
    cases: list[tuple[str, Callable[[], object]]] = []
    G = random_layer_graph(size)
    cases.append(
        (f"K({size},{size}) sinkhorn", lambda: ollivier_ricci(G, method="sinkhorn", device="cpu", sinkhorn_batch=batch))
    )
    if with_nc:
        model, x = fcn_case()
        cases.append(("fcn_mnist NC sinkhorn", lambda: neural_curvature(model, x, method="sinkhorn", device="cpu")))
    thread_counts = (1, 2)
    loads = ("quiet", "1 core busy")
    for _, fn in cases:
        fn()  # untimed: the first call pays one-off start-up costs (allocator, thread pool)
    before = torch.get_num_threads()
    times: dict[tuple[str, str, int], float] = {}
    try:
        for load in loads:
            with BusyCore() if load != "quiet" else nullcontext():
                for name, fn in cases:
                    for t in thread_counts:
                        torch.set_num_threads(t)
                        times[name, load, t] = min_time(fn, repeats)
                        print(f"  {name:24s} {load:12s} threads {t}: {times[name, load, t]:7.2f} s", flush=True)
    finally:
        torch.set_num_threads(before)
    batch_note = f"batch {batch}" if batch else f"adaptive batches of <= {sinkhorn_batch_size(size, size)} problems"
    print(f"\n== threads study, min of {repeats} runs; K({size},{size}) Sinkhorn: {batch_note}")
    print(f"{'case':24s} {'threads':>7s} " + " ".join(f"{ld:>12s}" for ld in loads) + f" {'busy/quiet':>11s}")
    for name, _ in cases:
        for t in thread_counts:
            row = " ".join(f"{times[name, ld, t]:11.2f}s" for ld in loads)
            print(f"{name:24s} {t:7d} {row} {times[name, loads[1], t] / times[name, loads[0], t]:10.2f}x")
        ratio = " ".join(f"{times[name, ld, 2] / times[name, ld, 1]:11.2f}x" for ld in loads)
        print(f"{'':24s} {'2 vs 1':>7s} {ratio}")
    cores = usable_cores()
    for consumers in (1, 2):
        picked = for_consumers(consumers, cores=cores)
        print(f"worker policy with {consumers} consumer(s) on {cores} usable cores: {picked} thread(s)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=100, help="n of the K(n, n) layer graph (default 100)")
    ap.add_argument("--processes", type=int, default=2, help="worker processes for both engines (default 2)")
    ap.add_argument("--skip-nc", action="store_true", help="skip the fcn_mnist neural-curvature timing")
    ap.add_argument("--nc-exact", action="store_true", help="also time exact neural curvature (slow)")
    ap.add_argument("--conv-only", action="store_true", help="only the lenet5_s2 pooling comparison (4.)")
    ap.add_argument("--highs", action="store_true", help="only warm-started HiGHS vs POT per problem (5.)")
    ap.add_argument("--threads-study", action="store_true", help="only the torch-threads x load study (see above)")
    ap.add_argument("--study-nc", action="store_true", help="threads study: also time fcn_mnist (slow)")
    ap.add_argument("--repeats", type=int, default=3, help="runs per setting in the threads study (default 3)")
    ap.add_argument(
        "--batch", type=int, default=None, help="Sinkhorn batch in the threads study (default: adaptive to the threads)"
    )
    args = ap.parse_args()
    print(f"cpu cores: {os.cpu_count()}, load average: {os.getloadavg()[0]:.1f}")
    if args.threads_study:
        threads_study(args.size, args.repeats, args.study_nc, args.batch)
        return
    if args.conv_only:
        bench_conv_pooling()
        return
    if args.highs:
        bench_highs()
        return
    bench_graph(f"dense layer K({args.size},{args.size}), lengths 1/|w|", random_layer_graph(args.size), args.processes)
    karate = nx.karate_club_graph()
    nx.set_edge_attributes(karate, 1.0, "weight")
    bench_graph("karate club, unit lengths", karate, args.processes)
    bench_graph("gnm_random_graph(2000, 10000), lengths U[1, 2]", sparse_graph(), args.processes)
    if not args.skip_nc:
        bench_nc(args.nc_exact)
        bench_conv_pooling()


if __name__ == "__main__":
    main()
