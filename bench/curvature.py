"""Curvature engine vs GraphRicciCurvature, same graphs, one process.

    python bench/curvature.py                # K(100,100) layer graph, karate, NC on fcn_mnist
    python bench/curvature.py --size 60      # a smaller dense layer (quicker)
    python bench/curvature.py --nc-exact     # also time exact neural curvature on fcn_mnist

1. One dense layer as an undirected complete bipartite graph K(n, n), edge lengths 1/|w| with
   w ~ N(0, 1): GraphRicciCurvature (method="OTD", exp_power=2, base=e) with ``--processes``
   worker processes, this engine's exact mode (network simplex, same number of processes) and its
   approximate mode (batched Sinkhorn in torch). Prints times, speed-up ratios and the largest
   difference of each from GraphRicciCurvature.
2. The karate club graph (unit lengths): small-graph overhead.
3. Neural curvature of ``fcn_mnist`` (784-100-100-100-100-100-10, seeded initialisation) on 10
   calibration inputs (one test digit per class, digits resized to 28x28), approximate mode.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import networkx as nx
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from nngeo_core.curvature import dense_layer_graph, neural_curvature, ollivier_ricci


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


def bench_nc(exact: bool) -> None:
    import torch

    from nngeo_core.data import load
    from nngeo_core.models import build

    ds = load("digits", resize=28)
    torch.manual_seed(0)
    model = build("fcn_mnist", input_shape=ds.input_shape, num_classes=ds.num_classes)
    idx = torch.cat([torch.nonzero(ds.y_test == c).flatten()[:1] for c in range(ds.num_classes)])
    x = ds.x_test[idx]
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=100, help="n of the K(n, n) layer graph (default 100)")
    ap.add_argument("--processes", type=int, default=2, help="worker processes for both engines (default 2)")
    ap.add_argument("--skip-nc", action="store_true", help="skip the fcn_mnist neural-curvature timing")
    ap.add_argument("--nc-exact", action="store_true", help="also time exact neural curvature (slow)")
    args = ap.parse_args()
    print(f"cpu cores: {os.cpu_count()}, load average: {os.getloadavg()[0]:.1f}")
    bench_graph(f"dense layer K({args.size},{args.size}), lengths 1/|w|", random_layer_graph(args.size), args.processes)
    karate = nx.karate_club_graph()
    nx.set_edge_attributes(karate, 1.0, "weight")
    bench_graph("karate club, unit lengths", karate, args.processes)
    if not args.skip_nc:
        bench_nc(args.nc_exact)


if __name__ == "__main__":
    main()
