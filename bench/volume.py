"""Benchmark: log-volume and Ricci scalar on a 200×200 grid for a width-250 one-hidden-layer MLP,
and the image plane (pseudo-volume) of fcn_mnist on digits 28×28.

Reference (same process, same inputs): a per-point loop of ``torch.autograd.functional.jacobian``
(and, for R, nested jacobians of g with create_graph), timed on a subset of points and
extrapolated to the full grid; the subset's values are compared with nngeo's. Image plane: the
former computation (SVD of each 100 × 784 Jacobian as it is, i.e. wide) and the Gram route
(eigenvalues of J Jᵀ/n), against nngeo's SVD of the tall Jᵀ.

    python bench/volume.py [--resolution 200] [--width 250] [--threads 2] [--activation tanh]
    python bench/volume.py --part plane [--plane-resolution 20] [--plane-epochs 3] [--threads 1]
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
    ap.add_argument("--part", choices=["all", "grid", "plane"], default="all")
    ap.add_argument("--plane-resolution", type=int, default=20)
    ap.add_argument("--plane-epochs", type=int, default=3, help="training epochs of fcn_mnist on digits")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.part in ("all", "grid"):
        grid_bench(args)
    if args.part in ("all", "plane"):
        plane_bench(args)


def grid_bench(args) -> None:

    from nngeo_core.geometry import ricci_scalar, volume_element
    from nngeo_core.geometry.ricci import pullback_metric, ricci_from_derivatives, ricci_scalar_of_metric
    from nngeo_core.models import build

    torch.manual_seed(0)
    model = build("mlp", input_shape=(2,), num_classes=2, widths=(args.width,), activation=args.activation)
    ticks = torch.linspace(-3, 3, args.resolution, dtype=torch.float64)
    grid = torch.cartesian_prod(ticks, ticks)
    N = len(grid)
    print(
        f"grid {args.resolution}x{args.resolution} = {N} points, MLP 2-{args.width}-2 ({args.activation}), "
        f"torch threads {torch.get_num_threads()}, cores {os.cpu_count()}, load average {os.getloadavg()[0]:.1f}"
    )

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
            lambda y: torch.autograd.functional.jacobian(g, y, create_graph=True, vectorize=True), x, vectorize=True
        )
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
    row(
        "log10 sqrt det g vs jacobian loop",
        vol_best,
        vol_ref,
        f"(loop timed on {vol_k} points, extrapolated; max |diff| {vol_err:.1e})",
    )
    row(
        "Ricci R vs nested jacobian loop",
        ric_best,
        ric_ref,
        f"(loop timed on {ric_k} points, extrapolated; max rel diff {ric_err:.1e})",
    )
    row(
        "Ricci R vs torch.func generic",
        ric_best,
        generic_s,
        f"(vmap nested jacfwd of g on 2000 points, extrapolated; max rel diff {gen_err:.1e})",
    )


def plane_bench(args) -> None:
    """image_plane on fcn_mnist (784-100×5-10): nngeo against the former SVD and the Gram route."""
    import importlib

    from nngeo_core.data import load
    from nngeo_core.geometry import image_plane
    from nngeo_core.geometry.analyses import default_plane_indices
    from nngeo_core.geometry.features import feature_map
    from nngeo_core.geometry.pullback import feature_jacobians, log10_singular_values
    from nngeo_core.models import build
    from nngeo_core.specs import DataSpec, TrainSpec
    from nngeo_core.train import fit

    ip = importlib.import_module("nngeo_core.geometry.image_plane")  # the package exports a function of that name
    torch.manual_seed(0)
    ds = load(DataSpec("digits", params={"resize": 28}))
    model = build("fcn_mnist", input_shape=ds.input_shape, num_classes=ds.num_classes)
    fit(model, ds, TrainSpec(epochs=args.plane_epochs, batch_size=64, optimizer="adam", lr=1e-3, seed=0))
    xs = [ds.x_test[i] for i in default_plane_indices(ds)]
    res = args.plane_resolution
    print(
        f"\nimage plane {res}x{res} (+3 inputs) on fcn_mnist/digits 28x28 ({args.plane_epochs} epochs), "
        f"torch threads {torch.get_num_threads()}, load average {os.getloadavg()[0]:.1f}"
    )

    def former(J, n):  # the SVD of J as it is (100 × 784: wide), as before
        s = torch.linalg.svdvals(J) / math.sqrt(n)
        keep = s > s[..., :1] * max(J.shape[-2:]) * torch.finfo(s.dtype).eps
        return torch.where(keep, torch.log10(torch.where(keep, s, torch.ones_like(s))), -math.inf), keep.sum(-1)

    def best_of(fn, repeats=3):
        times, out = [], None
        for _ in range(repeats):
            t0 = time.perf_counter()
            out = fn()
            times.append(time.perf_counter() - t0)
        return out, min(times)

    plane = lambda **kw: image_plane(model, *xs, res, line_points=0, device="cpu", **kw)  # noqa: E731  (a one-line local converter reads better than a def)
    new, new_s = best_of(plane)
    ip.log10_singular_values = former
    try:
        old, old_s = best_of(plane)
    finally:
        ip.log10_singular_values = log10_singular_values
    with_line, line_s = best_of(lambda: image_plane(model, *xs, res, device="cpu"))
    rel = float(((new.log_volume - old.log_volume).abs() / old.log_volume.abs()).max())
    # the stages on the plane's Jacobians
    fmap = feature_map(model, device="cpu")
    c, E, _ = ip.plane_frame(*xs)
    ticks = (
        torch.linspace(-1, 1, res, dtype=torch.float64)
        * 1.5
        * float((torch.stack([x.reshape(-1).double() for x in xs]) - c).norm(dim=1).max())
    )
    uv = torch.cartesian_prod(ticks, ticks)
    pts = (c + uv @ E).reshape(len(uv), *ds.input_shape)
    J, jac_s = best_of(lambda: torch.cat([j for _, j in feature_jacobians(fmap, pts)]))
    (ls_new, k_new), svd_new_s = best_of(lambda: log10_singular_values(J, 100))
    (ls_old, k_old), svd_old_s = best_of(lambda: former(J, 100))
    lam, gram_s = best_of(lambda: torch.linalg.eigvalsh(J @ J.mT / 100).flip(-1))
    lv_new = torch.where(k_new > 0, torch.nan_to_num(ls_new, neginf=0.0).sum(-1), -math.inf)
    lv_gram = torch.stack([0.5 * torch.log10(lam[i, : k_new[i]].clamp_min(1e-300)).sum() for i in range(len(J))])
    gram_err = float((lv_gram - lv_new).abs().max())
    print(
        f"image_plane: nngeo {new_s:.2f} s, former SVD of J {old_s:.2f} s ({old_s / new_s:.1f}x); "
        f"max rel diff {rel:.1e}, ranks {'equal' if (new['rank'] == old['rank']).all() else 'DIFFER'} "
        f"(ranks {int(new['rank'].min())}..{int(new['rank'].max())} of 100)"
    )
    print(f"  with the line 1 -> 2 ({2 * res + 1} points, the default): {line_s:.2f} s")
    print(
        f"  stages on {len(J)} grid points: Jacobians {jac_s:.2f} s; SVD of Jᵀ (tall) {svd_new_s:.2f} s, "
        f"of J (wide) {svd_old_s:.2f} s; Gram eigvalsh {gram_s:.2f} s but max |error| {gram_err:.1e} "
        f"in log10 (κ(J) squared), not used"
    )


if __name__ == "__main__":
    main()
