"""Benchmark: the exact geodesic step, and geodesic vs magnitude pruning on digits.

1. One step of argmin θᵀgθ − β·θᵀv s.t. ‖θ‖² ≤ ε for a digits MLP, from the same J_w:
   nngeo (eigendecomposition of the small J Jᵀ + bisection) against the dense reference (build
   g = JᵀJ, P × P, NumPy eigh, SciPy brentq on the secular equation, dense solve).
2. Accuracy after pruning to 70% without retraining: one-shot global magnitude pruning vs the
   end of the geodesic path, for several seeds (``--full`` adds the 64-64-10 net of the issue).

    python bench/geodesic.py [--threads 2] [--seeds 0 1 2] [--full]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch
from scipy.optimize import brentq


def train(ds, widths, seed, epochs=30):
    from nngeo_core.models import build
    from nngeo_core.specs import TrainSpec
    from nngeo_core.train import fit

    torch.manual_seed(seed)
    model = build("mlp", input_shape=ds.input_shape, num_classes=10, widths=widths, activation="relu")
    # the project's one training loop: Adam 1e-2, batch 64, batches from a permutation seeded by `seed`
    return fit(
        model, ds, TrainSpec(epochs=epochs, batch_size=64, optimizer="adam", lr=1e-2, seed=seed, device="cpu")
    ).model


@torch.no_grad()
def accuracy(model, x, y):
    return float((model(x).argmax(1) == y).float().mean())


def dense_step(J: np.ndarray, v: np.ndarray, beta: float, eps: float) -> np.ndarray:
    g = J.T @ J
    lam, Q = np.linalg.eigh(g)
    c = Q.T @ v

    def excess(mu):
        with np.errstate(divide="ignore", over="ignore"):  # μ → 0 on a zero eigenvalue: +inf is right
            return (beta / 2) ** 2 * np.sum((c / (lam + mu)) ** 2) - eps

    hi = 1.0
    while excess(hi) > 0:
        hi *= 10
    mu = brentq(excess, 1e-300, hi, xtol=1e-300, rtol=4 * np.finfo(float).eps, maxiter=1000)
    return np.linalg.solve(g + mu * np.eye(len(v)), beta / 2 * v)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--full", action="store_true", help="also the 64-64-10 net with 100 steps of batch 64")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from nngeo_core.data import load
    from nngeo_core.geometry import ParamSpace, functional_jacobian, solve_step, sparsify_path
    from nngeo_core.geometry.weight_space import global_magnitude_mask, plain_copy
    from nngeo_core.models.base import prunable_layers
    from nngeo_core.pruning.strategies.geodesic import magnitude_prune

    ds = load("digits")
    print(f"torch threads {torch.get_num_threads()}, cores {os.cpu_count()}, load average {os.getloadavg()[0]:.1f}")

    # ---- 1. one exact step, nngeo vs dense KKT
    model = train(ds, (32,), 0)
    work, _ = plain_copy(model)
    space = ParamSpace(work)
    w = space.flatten(work)
    prunable = torch.zeros(space.size, dtype=torch.bool)
    for info in prunable_layers(work):
        prunable[space.slice_of(f"{info.name}.weight")] = True
    pruned = global_magnitude_mask(w, prunable, 0.7)
    v = torch.where(pruned, -w, torch.zeros_like(w))
    x = ds.x_train[:64].double()
    t0 = time.perf_counter()
    J = functional_jacobian(work, space, w, x)
    jac_s = time.perf_counter() - t0
    beta, eps = 0.01, (1.5 * float(v.norm()) / 60) ** 2
    t0 = time.perf_counter()
    res = solve_step(J, v, beta=beta, eps=eps)
    ours = time.perf_counter() - t0
    t0 = time.perf_counter()
    ref = dense_step(J.numpy(), v.numpy(), beta, eps)
    dense = time.perf_counter() - t0
    err = np.abs(res.theta.numpy() - ref).max() / np.abs(ref).max()
    print(
        f"step solve (P = {space.size}, J {tuple(J.shape)}): nngeo {ours:.3f} s, dense KKT {dense:.3f} s, "
        f"ratio {dense / ours:.0f}x, max rel diff {err:.1e}; J_w itself {jac_s:.3f} s"
    )

    # ---- 2. accuracy at 70% sparsity without retraining
    configs = [("64-32-10", (32,), dict(steps=60, batch_size=32))]
    if args.full:
        configs.append(("64-64-10", (64,), dict(steps=100, batch_size=64)))
    for name, widths, kw in configs:
        for seed in args.seeds:
            net = train(ds, widths, seed)
            dense_acc = accuracy(net, ds.x_test, ds.y_test)
            mag = accuracy(magnitude_prune(net, 0.7)[0], ds.x_test, ds.y_test)
            t0 = time.perf_counter()
            walk = sparsify_path(
                net, ds.x_train, ds.y_train, eval_x=ds.x_test, eval_y=ds.y_test, sparsity=0.7, seed=seed, **kw
            )
            pruned_net, path = walk.model, walk.table
            secs = time.perf_counter() - t0
            geo = accuracy(pruned_net, ds.x_test, ds.y_test)
            print(
                f"digits {name} relu seed {seed}: dense {dense_acc:.4f}  magnitude-70% {mag:.4f}  "
                f"geodesic-70% {geo:.4f}  ({kw['steps']} steps, batch {kw['batch_size']}, {secs:.1f} s, "
                f"path length {path.path_length.iloc[-1]:.3f})"
            )


if __name__ == "__main__":
    main()
