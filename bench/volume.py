"""Benchmark: log-volume and Ricci scalar on a 200×200 grid for a width-250 one-hidden-layer MLP.

Reference (same process, same inputs): a per-point loop of ``torch.autograd.functional.jacobian``
(and, for R, nested jacobians of g with create_graph), timed on a subset of points and
extrapolated to the full grid; the subset's values are compared with nngeo's.

    python bench/volume.py [--resolution 200] [--width 250] [--threads 2] [--activation tanh]
"""
from __future__ import annotations

import argparse
import math
import os
import statistics
import time

import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--resolution", type=int, default=200)
    ap.add_argument("--width", type=int, default=250)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--activation", default="tanh")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--ref-seconds", type=float, default=20.0, help="time budget of each reference loop")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from nngeo_core.geometry import ricci_scalar, volume_element
    from nngeo_core.geometry.ricci import ricci_from_derivatives, ricci_scalar_of_metric, pullback_metric
    from nngeo_core.models import build

    torch.manual_seed(0)
    model = build("mlp", input_shape=(2,), num_classes=2, widths=(args.width,), activation=args.activation)
    ticks = torch.linspace(-3, 3, args.resolution, dtype=torch.float64)
    grid = torch.cartesian_prod(ticks, ticks)
    N = len(grid)
    print(f"grid {args.resolution}x{args.resolution} = {N} points, MLP 2-{args.width}-2 ({args.activation}), "
          f"torch threads {torch.get_num_threads()}, cores {os.cpu_count()}, load average {os.getloadavg()[0]:.1f}")

    def timed(fn):
        times, out = [], None
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            out = fn()
            times.append(time.perf_counter() - t0)
        return out, min(times), statistics.median(times)

    logvol, vol_best, vol_med = timed(lambda: volume_element(model, grid))
    R, ric_best, ric_med = timed(lambda: ricci_scalar(model, grid))

    # ---- reference: one point at a time with torch.autograd.functional on the plain submodule
    # (Flatten, Linear, activation) in float64, each call given its fastest settings
    hidden = model.double()[:3]
    n = args.width

    def phi(x):
        return hidden(x.unsqueeze(0))[0]

    def ref_logvol(x):
        J = torch.autograd.functional.jacobian(phi, x, vectorize=True, strategy="forward-mode")
        return 0.5 * torch.linalg.slogdet(J.T @ J / n)[1] / math.log(10)

    def g(y):
        J = torch.autograd.functional.jacobian(phi, y, create_graph=True, vectorize=True)
        return J.T @ J / n

    def ref_ricci(x):
        dg = torch.autograd.functional.jacobian(g, x, create_graph=True, vectorize=True)
        ddg = torch.autograd.functional.jacobian(
            lambda y: torch.autograd.functional.jacobian(g, y, create_graph=True, vectorize=True), x, vectorize=True)
        return ricci_from_derivatives(g(x)[None].detach(), dg[None].detach(), ddg[None].detach())[0]

    def ref_loop(fn, budget):
        perm = torch.randperm(N, generator=torch.Generator().manual_seed(1))
        vals, idx = [], []
        t0 = time.perf_counter()
        for i in perm.tolist():
            vals.append(float(fn(grid[i]).detach()))
            idx.append(i)
            if time.perf_counter() - t0 > budget:
                break
        elapsed = time.perf_counter() - t0
        return torch.tensor(idx), torch.tensor(vals, dtype=torch.float64), elapsed * N / len(idx), len(idx)

    vi, vv, vol_ref, vol_k = ref_loop(ref_logvol, args.ref_seconds)
    ri, rv, ric_ref, ric_k = ref_loop(ref_ricci, args.ref_seconds)
    vol_err = float((logvol[vi] - vv).abs().max())
    ric_err = float(((R[ri] - rv).abs() / (1 + rv.abs())).max())

    # the generic torch.func path (vmap of nested jacfwd over g), used for models without the jet path
    sub = grid[:2000]
    t0 = time.perf_counter()
    generic = ricci_scalar_of_metric(pullback_metric(phi, n), sub)
    generic_s = (time.perf_counter() - t0) * N / len(sub)
    gen_err = float(((generic - R[:2000]).abs() / (1 + generic.abs())).max())

    def row(name, ours, ref, note):
        print(f"{name:<32} nngeo {ours:8.3f} s   reference {ref:9.1f} s   ratio {ref / ours:7.0f}x   {note}")

    print(f"log-volume: best {vol_best:.3f} s, median {vol_med:.3f} s of {args.repeats} (target <= 1 s)")
    print(f"Ricci scalar: best {ric_best:.3f} s, median {ric_med:.3f} s of {args.repeats} (target <= 10 s)")
    row("log10 sqrt det g vs jacobian loop", vol_best, vol_ref,
        f"(loop timed on {vol_k} points, extrapolated; max |diff| {vol_err:.1e})")
    row("Ricci R vs nested jacobian loop", ric_best, ric_ref,
        f"(loop timed on {ric_k} points, extrapolated; max rel diff {ric_err:.1e})")
    row("Ricci R vs torch.func generic", ric_best, generic_s,
        f"(vmap nested jacfwd of g on 2000 points, extrapolated; max rel diff {gen_err:.1e})")


if __name__ == "__main__":
    main()
