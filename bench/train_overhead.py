"""Overhead of nngeo's training loop (progress reporting, cancel checks, per-epoch evaluation
excluded) against a bare PyTorch loop doing the same optimisation steps, in one process.

    python bench/train_overhead.py [--model fcn_mnist --data digits --epochs 5]

Both loops use the same model initialisation, data, batch order and optimizer; nngeo's loop is
timed with a live Progress (callback + cancel check) so the reporting cost is included.
"""

from __future__ import annotations

import argparse
import math
import time

import torch
from torch import nn

from nngeo_core.data import load
from nngeo_core.defaults import default_data_params, default_train
from nngeo_core.progress import Progress
from nngeo_core.specs import DataSpec, ModelSpec, RunSpec
from nngeo_core.train import build_for, fit, make_optimizer


def bare_loop(model, ds, t):
    opt = make_optimizer(model.parameters(), t)
    gen = torch.Generator().manual_seed(t.seed)
    x, y, n = ds.x_train, ds.y_train, len(ds.x_train)
    model.train()
    for _ in range(t.epochs):
        perm = torch.randperm(n, generator=gen)
        for i in range(0, n, t.batch_size):
            idx = perm[i : i + t.batch_size]
            loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="fcn_mnist")
    ap.add_argument("--data", default="digits")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    spec = RunSpec(
        data=DataSpec(a.data, params=default_data_params(a.model, a.data, {})),
        model=ModelSpec(a.model),
        train=default_train(a.model, a.data).replace(epochs=a.epochs, device="cpu"),
    )
    ds = load(spec.data)
    calls = []
    bare, ours, evals = [], [], []
    for _ in range(a.repeats):
        m = build_for(spec, ds)
        t0 = time.perf_counter()
        bare_loop(m, ds, spec.train)
        bare.append(time.perf_counter() - t0)
        m = build_for(spec, ds)
        progress = Progress(lambda f, ph, met: calls.append(f), is_cancelled=lambda: False)
        t0 = time.perf_counter()
        fit(m, ds, spec.train, progress=progress)
        total = time.perf_counter() - t0
        # per-epoch test evaluation is a feature, not loop overhead: measure it and subtract
        m.eval()
        t1 = time.perf_counter()
        for _ in range(spec.train.epochs + 1):
            with torch.no_grad():
                m(ds.x_test)
                m(ds.x_train)
        evals.append(time.perf_counter() - t1)
        ours.append(total - evals[-1])
    b, o, e = min(bare), min(ours), min(evals)
    print(
        f"model {a.model} on {a.data}: {a.epochs} epochs, {len(ds.x_train)} samples, "
        f"{math.ceil(len(ds.x_train) / spec.train.batch_size) * a.epochs} steps, best of {a.repeats}"
    )
    print(f"bare PyTorch loop          {b:8.3f} s")
    print(f"nngeo fit (minus eval)     {o:8.3f} s   (evaluation passes {e:.3f} s)")
    print(f"overhead ratio nngeo/bare  {o / b:8.3f}  ({100 * (o / b - 1):+.1f}%)  progress callbacks: {len(calls)}")


if __name__ == "__main__":
    main()
