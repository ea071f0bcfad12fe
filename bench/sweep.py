"""Benchmark of the pruning lab.

1. Reference vs nngeo on the same input: magnitude masks of a trained fcn_mnist by
   ``torch.nn.utils.prune`` (global_unstructured / l1_unstructured) and by ``nngeo``'s ``prune``;
   prints both times, their ratio and whether the masks agree.
2. A full sweep: 5 strategies x 6 levels (compression 2..64) x 1 seed on fcn_mnist / digits
   (resize 28), fine-tuning 2 epochs per level, in a fresh temporary store; prints the wall time
   and the share spent in pruning (the strategies themselves, IMP's retraining included) versus
   training (dense run and fine-tuning) and evaluation.

    python bench/sweep.py [--threads 2] [--strategies magnitude,random,imp,timp,synflow] [--quick]
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def best_of(fn, repeat=5):
    times = []
    out = None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), out


def reference_comparison(model):
    import torch
    from torch import nn
    from torch.nn.utils import prune as torch_prune

    from nngeo_core.pruning import prune

    linears = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear)]

    def torch_global():
        clones = []
        for _, m in linears:
            c = nn.Linear(m.in_features, m.out_features)
            c.weight.data.copy_(m.weight.data)
            clones.append(c)
        torch_prune.global_unstructured([(c, "weight") for c in clones], torch_prune.L1Unstructured, amount=0.9)
        return {n: c.weight_mask.bool() for (n, _), c in zip(linears, clones, strict=False)}

    def torch_layer():
        out = {}
        for n, m in linears:
            c = nn.Linear(m.in_features, m.out_features)
            c.weight.data.copy_(m.weight.data)
            torch_prune.l1_unstructured(c, "weight", amount=0.9)
            out[n] = c.weight_mask.bool()
        return out

    print("magnitude pruning to 90% of a trained fcn_mnist (119,400 weights), best of 5")
    print(f"{'scope':8s} {'torch.prune (s)':>16s} {'nngeo (s)':>10s} {'ratio':>7s}  masks equal")
    for scope, ref in (("global", torch_global), ("layer", torch_layer)):
        t_ref, m_ref = best_of(ref)
        t_ours, res = best_of(functools.partial(prune, model, "magnitude", 0.9, scope=scope))
        same = all(torch.equal(m_ref[n], res.masks[n]) for n in m_ref)
        print(f"{scope:8s} {t_ref:16.4f} {t_ours:10.4f} {t_ours / t_ref:7.2f}  {same}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2, help="torch intra-op threads (default 2 = the 2 cores)")
    ap.add_argument("--strategies", default="magnitude,random,imp,timp,synflow")
    ap.add_argument("--levels", type=int, default=6)
    ap.add_argument("--finetune-epochs", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="3 levels and 5-epoch IMP rounds (a smoke run)")
    a = ap.parse_args()

    import torch

    torch.set_num_threads(a.threads)
    with tempfile.TemporaryDirectory() as home:
        os.environ["NNGEO_HOME"] = home
        os.environ["NNGEO_STORE"] = os.path.join(home, "store")
        from nngeo_core.defaults import default_train
        from nngeo_core.pruning import SweepSpec, compression_levels, run_sweep
        from nngeo_core.runs import load_run
        from nngeo_core.specs import DataSpec, ModelSpec, RunSpec
        from nngeo_core.store import Store

        store = Store(os.environ["NNGEO_STORE"])
        run = RunSpec(
            data=DataSpec("digits", params={"resize": 28}),
            model=ModelSpec("fcn_mnist"),
            train=default_train("fcn_mnist", "digits"),
        )
        levels = compression_levels(3 if a.quick else a.levels)
        load1 = os.getloadavg()[0]
        print(
            f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), load average {load1:.1f}, "
            f"{os.cpu_count()} cores visible"
        )
        print(
            f"sweep: fcn_mnist on digits (28x28), {run.train.epochs} dense epochs, levels "
            f"{', '.join(f'{s:.4g}' for s in levels)}, fine-tune {a.finetune_epochs} epochs, 1 seed\n"
        )
        total = {"train": 0.0, "prune": 0.0, "finetune": 0.0, "evaluate": 0.0}
        rows = []
        start = time.perf_counter()
        dense_key = None
        for strategy in [s.strip() for s in a.strategies.split(",") if s.strip()]:
            params = {"round_epochs": 5} if a.quick and strategy in ("imp", "timp") else {}
            spec = SweepSpec(
                run=run,
                strategy=strategy,
                params=params,
                sparsities=levels,
                seeds=(0,),
                finetune_epochs=a.finetune_epochs,
            )
            t = time.perf_counter()
            key = run_sweep(spec, store=store)
            wall = time.perf_counter() - t
            import json

            secs = json.loads(store.entry(key)["attrs"])["seconds"]
            for k in total:
                total[k] += secs[k]
            table = store.get(key)
            dense_key = table["run"].iloc[0]
            rows.append(
                (strategy, wall, secs["prune"], secs["finetune"], secs["train"], float(table["accuracy"].iloc[-1]))
            )
        wall = time.perf_counter() - start
        print(
            f"{'strategy':10s} {'wall (s)':>9s} {'prune (s)':>10s} {'finetune (s)':>13s} {'dense (s)':>10s}"
            f" {'acc@' + format(levels[-1], '.4g'):>11s}"
        )
        for r in rows:
            print(f"{r[0]:10s} {r[1]:9.1f} {r[2]:10.1f} {r[3]:13.1f} {r[4]:10.1f} {r[5]:11.4f}")
        training = total["train"] + total["finetune"]
        print(f"\nfull sweep wall time: {wall:.1f} s")
        print(
            f"share: pruning {total['prune'] / wall:.1%} (strategies, incl. IMP/T-IMP retraining), "
            f"training {training / wall:.1%} (dense {total['train']:.1f} s + fine-tuning "
            f"{total['finetune']:.1f} s), evaluation {total['evaluate'] / wall:.1%}, "
            f"other {(wall - total['prune'] - training - total['evaluate']) / wall:.1%}\n"
        )
        reference_comparison(load_run(dense_key, store=store).model)
        print(f"\nload average at the end: {os.getloadavg()[0]:.1f} (shared machine: times vary with it)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
