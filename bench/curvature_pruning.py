"""Post-training curvature pruning against magnitude and Wanda (issue #15's science question).

For each model (default: ``fcn_mnist`` and ``lenet5_s2`` on ``digits`` resized to 28x28), each
seed trains one dense net (the zoo's default training) and prunes it without fine-tuning at
``--levels`` sparsities with:

* ``tan2026+``   curvature, preset tan2026 (the authors' rules), highest curvature first;
* ``tan2026-``   curvature_neg, preset tan2026, lowest first (the paper's ablation);
* ``nngeo+``     curvature with nngeo's default settings;
* ``magnitude``  global magnitude;
* ``wanda``      Wanda (|w| x input norm per output row).

It prints accuracy (mean ± std over seeds) per sparsity and strategy, and per layer the Spearman
correlation of the per-weight curvature scores with |w| (the stored ``curvature-scores`` of each
preset): does curvature say anything magnitude does not? All runs go to a temporary store, so
dense nets and curvature scores are shared between strategies (curvature and curvature_neg read
one score set).

    python bench/curvature_pruning.py [--models fcn_mnist,lenet5_s2] [--seeds 3] [--levels 10]
        [--tan-method exact|sinkhorn] [--tan-positions N] [--calibration-k 1]

``--tan-method sinkhorn`` / ``--tan-positions N`` override the preset's exact transport / every
conv position (say so when you report the numbers: it is then not the authors' method).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="fcn_mnist,lenet5_s2")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--levels", type=int, default=10, help="sparsities 0.1, 0.2, ... spread up to 0.95")
    ap.add_argument("--tan-method", default=None, choices=("exact", "sinkhorn"), help="override the preset's")
    ap.add_argument("--tan-positions", type=int, default=None, help="override the preset's every position")
    ap.add_argument("--calibration-k", type=int, default=1, help="calibration inputs per class")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()

    import numpy as np
    import pandas as pd
    import torch
    from scipy.stats import spearmanr

    torch.set_num_threads(a.threads)
    os.environ.setdefault("NNGEO_HOME", tempfile.mkdtemp(prefix="nngeo-curvprune-"))
    from nngeo_core.defaults import complete, default_data_params, default_train
    from nngeo_core.pruning import SweepSpec, run_sweep
    from nngeo_core.pruning.strategies.curvature import SCORES_KIND, weights_digest
    from nngeo_core.runs import load_run
    from nngeo_core.specs import DataSpec, ModelSpec, RunSpec
    from nngeo_core.store import default_store

    store = default_store()
    sparsities = tuple(np.round(np.linspace(0.1, 0.95, a.levels), 4))
    tan = {"preset": "tan2026", "calibration_k": a.calibration_k}
    if a.tan_method:
        tan["method"] = a.tan_method
    if a.tan_positions:
        tan["conv_positions"] = a.tan_positions
    configs = {
        "tan2026+": ("curvature", tan),
        "tan2026-": ("curvature_neg", tan),
        "nngeo+": ("curvature", {"calibration_k": a.calibration_k}),
        "magnitude": ("magnitude", {}),
        "wanda": ("wanda", {}),
    }
    print(f"store {store.root}; sparsities {', '.join(map(str, sparsities))}; {a.seeds} seeds; no fine-tuning")
    print(f"tan2026 overrides: {({k: v for k, v in tan.items() if k not in ('preset', 'calibration_k')}) or 'none'}")
    for model in [m.strip() for m in a.models.split(",") if m.strip()]:
        data = complete(DataSpec("digits", params=default_data_params(model, "digits", {})))
        run = RunSpec(data=data, model=complete(ModelSpec(model)), train=default_train(model, "digits"))
        rows, seconds = [], {}
        for label, (strategy, params) in configs.items():
            spec = SweepSpec(
                run=run, strategy=strategy, params=params, sparsities=sparsities, seeds=tuple(range(a.seeds))
            )
            clock = time.perf_counter()
            key = run_sweep(spec, store=store)
            seconds[label] = time.perf_counter() - clock
            table = store.get(key)
            table["label"] = label
            rows.append(table)
        df = pd.concat(rows, ignore_index=True)
        dense = df.groupby("seed")["dense_accuracy"].first()
        print(f"\n== {model} on digits 28x28: dense accuracy {dense.mean():.4f} ± {dense.std(ddof=0):.4f}")
        stats = df.groupby(["sparsity_requested", "label"])["accuracy_pruned"].agg(["mean", "std"])
        pivot = (
            stats.apply(lambda r: f"{r['mean']:.3f} ± {0.0 if pd.isna(r['std']) else r['std']:.3f}", axis=1)
            .unstack("label")
            .reindex(columns=list(configs))
        )
        print(pivot.to_string())
        print(
            "seconds per strategy (all seeds, shared dense runs and scores): "
            + ", ".join(f"{k} {v:.0f}" for k, v in seconds.items())
        )
        # Spearman of each preset's stored per-weight scores with |w| of the dense nets
        # each score set names the weights it was computed on (weights_digest in its attrs)
        models = {}
        for r in sorted(set(df["run"])):
            m = load_run(r, store=store).model
            models[weights_digest(m)] = m.state_dict()
        cat = store.catalog(kind=SCORES_KIND)
        out = []
        for _, entry in cat.iterrows():
            state = models.get(json.loads(entry["attrs"]).get("weights"))
            if state is None:
                continue
            scores = store.get(entry["key"])
            for layer, part in scores.groupby("layer", observed=True):
                ref = state[f"{layer}.weight"].abs().reshape(-1).numpy()[part["index"].to_numpy()]
                rho = spearmanr(part["score"].to_numpy(), ref).statistic
                out.append({"scores": entry["label"], "layer": layer, "spearman": rho})
        if out:
            corr = pd.DataFrame(out).groupby(["scores", "layer"])["spearman"].agg(["mean", "std", "count"])
            print("\nSpearman(curvature score, |w|) per layer, over the seeds' dense nets")
            print(corr.round(3).to_string())


if __name__ == "__main__":
    main()
