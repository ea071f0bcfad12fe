"""Neural curvature on the neural-curvature paper's two models: sampled conv positions vs all.

    python bench/curvature_paper_models.py               # both models, 5-minute limit per run
    python bench/curvature_paper_models.py --limit 60    # a shorter limit per run
    python bench/curvature_paper_models.py --first-conv  # each model's first conv layer only (~1 min)

``lenet5_s2`` (random init, seed 0) on 10 calibration inputs, the first test digit of each class
from ``digits`` resized to 28x28, every layer, conv layers at 4 output positions vs all of them
(None). ``vgg9`` (random init, seed 0, eval mode) on 1 input (uniform in [0, 1), seed 1), its first
two conv layers only, at 4 vs 16 positions. The reference is the run over more positions (all, or
16); each run is its own process, stopped after ``--limit`` seconds. Prints each run's seconds, the
reference / sampled time ratio, and, where both finished, the Spearman correlation of the per-weight
scores (``scores_from_table``: a weight's score is the minimum curvature over the edges it labels)
per computed layer and over all of them, on the weights both runs scored.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# (label, model, layers, [sampled positions, reference positions])
CASES = (
    ("lenet5_s2, 10 digits, all layers", "lenet5_s2", None, (4, None)),
    ("vgg9, 1 input, conv layers 0 and 3", "vgg9", "0,3", (4, 16)),
)


def _inputs(model_name: str):
    import torch

    if model_name == "lenet5_s2":
        from nngeo_core.data import load

        ds = load("digits", seed=0, resize=28)
        first = [int(np.flatnonzero(ds.y_test.numpy() == c)[0]) for c in range(ds.num_classes)]
        return ds.x_test[first]
    return torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(1))


def worker(model_name: str, layers: str | None, positions: int | None, out: str) -> None:
    """One run: neural curvature, then the per-weight scores of the computed layers into ``out``."""
    import torch

    from nngeo_core.curvature import neural_curvature
    from nngeo_core.curvature.scores import scores_from_table
    from nngeo_core.models import build

    torch.manual_seed(0)
    model = build(model_name).eval()
    x = _inputs(model_name)
    t = time.perf_counter()
    table = neural_curvature(model, x, conv_positions=positions, layers=layers)
    seconds = time.perf_counter() - t
    computed = list(dict.fromkeys(table["layer"]))
    scores = scores_from_table(model, table, fill=float("nan"))
    np.savez(out, **{f"layer:{name}": scores[name].numpy() for name in computed})
    with open(out + ".json", "w") as f:
        json.dump({"seconds": seconds, "edges": len(table), "layers": computed}, f)


def run(model_name: str, layers: str | None, positions: int | None, limit: float, tmp: str):
    out = os.path.join(tmp, f"{model_name}-{positions}.npz")
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", model_name, str(layers), str(positions), out]
    # its own process group, so a run stopped at the limit takes any worker processes with it
    proc = subprocess.Popen(cmd, start_new_session=True)
    try:
        code = proc.wait(timeout=limit)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        return None
    if code != 0:
        raise SystemExit(f"the {model_name} run at conv_positions={positions} failed (exit status {code})")
    with open(out + ".json") as f:
        info = json.load(f)
    with np.load(out, allow_pickle=False) as data:
        info["scores"] = {k.removeprefix("layer:"): data[k] for k in data.files}
    return info


def spearman(a: np.ndarray, b: np.ndarray) -> tuple[float, int]:
    from scipy.stats import spearmanr

    both = np.isfinite(a) & np.isfinite(b)
    if both.sum() < 3:
        return float("nan"), int(both.sum())
    return float(spearmanr(a[both], b[both]).statistic), int(both.sum())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--limit", type=float, default=300.0, help="seconds each run may take (default 300)")
    ap.add_argument("--first-conv", action="store_true", help="compute each model's first conv layer only")
    ap.add_argument("--worker", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        name, layers, positions, out = args.worker
        worker(name, None if layers == "None" else layers, None if positions == "None" else int(positions), out)
        return

    with tempfile.TemporaryDirectory() as tmp:
        for label, name, layers, (sampled, reference) in CASES:
            if args.first_conv:
                label, layers = f"{label.split(',')[0]}, {label.split(',')[1].strip()}, first conv layer (0)", "0"
            print(label)
            results = {}
            for positions in (sampled, reference):
                res = run(name, layers, positions, args.limit, tmp)
                results[positions] = res
                what = "all" if positions is None else positions
                if res is None:
                    print(f"  conv_positions {what!s:>4}: did not finish within {args.limit:.0f} s")
                else:
                    print(f"  conv_positions {what!s:>4}: {res['seconds']:7.1f} s, {res['edges']} edges")
            a, b = results[sampled], results[reference]
            if a is None or b is None:
                print("  (no comparison: a run did not finish)")
                continue
            print(f"  time ratio reference / sampled: {b['seconds'] / a['seconds']:.2f}x")
            pooled_a, pooled_b = [], []
            for layer in b["layers"]:
                sa, sb = a["scores"][layer].ravel(), b["scores"][layer].ravel()
                rho, n = spearman(sa, sb)
                kind = "conv" if a["scores"][layer].ndim == 4 else "dense"
                print(f"  layer {layer:>3} ({kind}): Spearman {rho:.4f} over {n} of {sa.size} weights")
                pooled_a.append(sa)
                pooled_b.append(sb)
            rho, n = spearman(np.concatenate(pooled_a), np.concatenate(pooled_b))
            print(f"  all computed layers: Spearman {rho:.4f} over {n} weights")


if __name__ == "__main__":
    main()
