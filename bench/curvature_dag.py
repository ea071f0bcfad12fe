"""Weight curvature on a residual CNN's neuron DAG (skips and pooling as edges): GraphRicciCurvature
on the whole DiGraph vs nngeo's exact and Sinkhorn modes, same graph, one process.

    python bench/curvature_dag.py                  # a small residual CNN, every position
    python bench/curvature_dag.py --channels 6     # wider (slower for both)
    python bench/curvature_dag.py --zoo            # also time nngeo alone on lenet5 / resnet20 layers

The network (random init, float64): conv stem, an identity block, a block with a strided 1x1
shortcut conv, global average pooling, a linear head, on (2, 8, 8). The DiGraph GraphRicciCurvature
gets is built from the traced network's edges (every weight edge with length 1/|w|, identity edges
of length 1, pooling edges of length 1/coefficient); GraphRicciCurvature computes every edge, pool
and skip edges included, nngeo only the weight edges (which is all the analysis reports). Prints
times, the ratio and the largest difference on the weight edges.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import networkx as nx
import numpy as np
import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from nngeo_core.curvature import weight_only_curvature
from nngeo_core.curvature.layer_graph import build_network


class ResidualCNN(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        torch.manual_seed(0)
        self.stem = nn.Conv2d(2, c, 3, padding=1)
        self.a1, self.a2 = nn.Conv2d(c, c, 3, padding=1), nn.Conv2d(c, c, 3, padding=1)
        self.b1, self.b2 = nn.Conv2d(c, 2 * c, 3, stride=2, padding=1), nn.Conv2d(2 * c, 2 * c, 3, padding=1)
        self.down = nn.Conv2d(c, 2 * c, 1, stride=2)
        self.fc = nn.Linear(2 * c, 3)
        self.input_shape, self.num_classes = (2, 8, 8), 3
        self.double()

    def forward(self, x):
        s = torch.relu(self.stem(x))
        a = torch.relu(self.a2(torch.relu(self.a1(s))) + s)
        b = torch.relu(self.b2(torch.relu(self.b1(a))) + self.down(a))
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(b, 1), 1))


def digraph(model) -> nx.DiGraph:
    net, _ = build_network(model)
    G = nx.DiGraph()
    for e in [*net.layers, *net.links]:
        L, _ = e.block(np.arange(e.n_out), np.arange(e.n_in))
        out, inp = np.nonzero(np.isfinite(L))
        G.add_weighted_edges_from(
            ((e.src, int(i)), (e.dst, int(o)), float(L[o, i])) for o, i in zip(out, inp, strict=True)
        )
    return G


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--channels", type=int, default=4)
    ap.add_argument("--zoo", action="store_true")
    args = ap.parse_args()
    from GraphRicciCurvature.OllivierRicci import OllivierRicci

    model = ResidualCNN(args.channels)
    G = digraph(model)
    print(f"residual CNN, {args.channels} channels: {G.number_of_nodes()} neurons, {G.number_of_edges()} edges")
    t = time.perf_counter()
    ref = OllivierRicci(G, alpha=0.5, method="OTD", proc=1, verbose="ERROR").compute_ricci_curvature_edges()
    t_ref = time.perf_counter() - t
    for method in ("exact", "sinkhorn"):
        t = time.perf_counter()
        df = weight_only_curvature(model, method=method, conv_positions=None)
        t_ours = time.perf_counter() - t
        diff = max(
            abs(r.curvature - ref[((r.src_level, r.src), (r.dst_level, r.dst))]) for r in df.itertuples(index=False)
        )
        print(
            f"  GraphRicciCurvature {t_ref:6.2f} s (all {len(ref)} edges) | nngeo {method:8s} {t_ours:6.2f} s "
            f"({len(df)} weight edges) | ratio {t_ref / t_ours:5.2f}x | max |diff| {diff:.1e}"
        )
    if args.zoo:
        from nngeo_core.models import build

        for name, layers in (("lenet5", None), ("resnet20", "0,3.conv1,14")):
            m = build(name).eval()
            t = time.perf_counter()
            df = weight_only_curvature(m, conv_positions=1, layers=layers)
            zero = [n for n, g in df.groupby("layer") if (g["curvature"].abs() < 1e-12).all()]
            print(
                f"  {name} ({layers or 'all layers'}, 1 position): {time.perf_counter() - t:.1f} s, "
                f"{len(df)} edges, layers with curvature = 0 everywhere: {zero or 'none'}"
            )


if __name__ == "__main__":
    main()
