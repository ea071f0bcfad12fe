"""Neural-curvature distributions of fcn_mnist at initialisation and after training on digits.

    python bench/curvature_trained.py [--epochs 20] [--method sinkhorn] [--seed 0]

Trains ``fcn_mnist`` (784-100-100-100-100-100-10) on the sklearn digits resized to 28x28 with
``nngeo_core.train.fit`` (Adam), keeping a copy of the initial weights. Both networks are
evaluated on the same calibration inputs: one correctly classified test digit per class, chosen
by the trained network (the untrained one classifies almost nothing correctly). Prints the 5, 25,
50, 75 and 95% quantiles of edge curvature per layer, initialisation vs trained, the share of
negative-curvature edges (bottlenecks) and of edges dead on every input; once over all edges and
once over the live ones.
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
import time

import numpy as np
import pandas as pd

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)


def main() -> None:
    import torch

    from nngeo_core.curvature import calibration_set, neural_curvature
    from nngeo_core.data import load
    from nngeo_core.models import build
    from nngeo_core.specs import TrainSpec
    from nngeo_core.train import evaluate, fit

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--method", default="sinkhorn", choices=("sinkhorn", "exact"))
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    ds = load("digits", seed=args.seed, resize=28)
    torch.manual_seed(args.seed)
    model = build("fcn_mnist", input_shape=ds.input_shape, num_classes=ds.num_classes)
    init = copy.deepcopy(model)
    t = time.perf_counter()
    result = fit(model, ds, TrainSpec(epochs=args.epochs, batch_size=64, lr=1e-3, seed=args.seed), device="cpu")
    print(
        f"trained {args.epochs} epochs in {time.perf_counter() - t:.1f} s: "
        f"test accuracy {result.test_accuracy:.3f} (init {evaluate(init, ds.x_test, ds.y_test)[1]:.3f})"
    )
    x = calibration_set(model, ds, k=1)
    print(f"{len(x)} calibration inputs (correctly classified by the trained network), method {args.method}")

    rows = []
    for name, net in (("init", init), ("trained", model)):
        t = time.perf_counter()
        df = neural_curvature(net, x, method=args.method)
        print(f"{name}: neural curvature of {len(df)} edges in {time.perf_counter() - t:.1f} s")
        for layer, g in df.groupby("layer", sort=False):
            for subset, part in (("all", g), ("live", g[g["alive"] > 0])):
                c = part["curvature"].to_numpy()
                rows.append(
                    {
                        "layer": layer,
                        "net": name,
                        "edges": subset,
                        **{f"q{int(q * 100)}": np.quantile(c, q) for q in QUANTILES},
                        "neg%": 100 * float((c < 0).mean()),
                        "dead%": 100 * float((g["alive"] == 0).mean()),
                    }
                )
    table = pd.DataFrame(rows)
    order = {n: i for i, n in enumerate(dict.fromkeys(table["layer"]))}
    with pd.option_context("display.float_format", "{:8.3f}".format, "display.width", 160):
        for subset, title in (
            ("all", "all edges (edges dead on every input carry dead_value = 1)"),
            ("live", "live edges only (both neurons fire on at least one input)"),
        ):
            part = table[table["edges"] == subset].drop(columns="edges")
            part = part.sort_values(["layer", "net"], key=lambda s: s.map(order) if s.name == "layer" else s)
            print(f"\n{title}")
            print(part.to_string(index=False))


if __name__ == "__main__":
    main()
