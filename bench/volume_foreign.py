"""Benchmark: the volume element on an image plane for networks from elsewhere, the reference
(the former path: the full Jacobian of the representation by reverse mode, ``feature_jacobians``,
then J @ Eᵀ) against nngeo's (two forward-mode jvps per point, ``plane_jacobians``), on an uploaded
torchvision resnet18 (3×32×32, its pooled features, n = 512) and a small custom CNN
(Conv-ReLU-MaxPool-Conv-ReLU-Flatten-Linear, its last ReLU, n = 1536).

Both paths run on the same points of the plane through three random inputs, in float64; the
reference's values are compared with nngeo's (max relative difference of √det g_plane). Then the
whole default-sized analysis (``image_plane`` at 20×20 with its 41-point line, what the volume
analysis runs) is timed with nngeo's path.

    python bench/volume_foreign.py [--threads 2] [--points 4] [--cnn-points 24] [--resolution 20]
"""

from __future__ import annotations

import argparse
import time

import torch
import torchvision
from torch import nn

from nngeo_core.geometry import feature_map, image_plane, plane_frame
from nngeo_core.geometry.pullback import feature_jacobians, log_volume_from_metric, plane_jacobians
from nngeo_core.models import FeedForward
from nngeo_core.models.foreign import feedforward_parts
from nngeo_core.models.mlp import sequential
from nngeo_core.testing.nets import custom_cnn


def resnet18() -> nn.Module:
    torch.manual_seed(0)
    return sequential(FeedForward, feedforward_parts(torchvision.models.resnet18(num_classes=10).eval()))


def log_area(fmap, J_plane: torch.Tensor) -> torch.Tensor:
    return log_volume_from_metric(J_plane.transpose(1, 2) @ J_plane / fmap.width, fmap.width)


def compare(name: str, model: nn.Module, points: int, resolution: int) -> None:
    shape = (3, 32, 32)
    xs = torch.rand(3, *shape, generator=torch.Generator().manual_seed(1))
    c, E, _ = plane_frame(*xs)
    uv = torch.rand(points, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(2)) * 20 - 10
    x = (c + uv @ E).reshape(points, *shape)

    fmap = feature_map(model, input_shape=shape)
    t = time.perf_counter()
    ref = torch.cat([log_area(fmap, J @ E.T) for _, J in feature_jacobians(fmap, x)])
    t_ref = time.perf_counter() - t

    fmap = feature_map(model, input_shape=shape)
    t = time.perf_counter()
    new = torch.cat([log_area(fmap, JE) for _, JE, _ in plane_jacobians(fmap, x, E)])
    t_new = time.perf_counter() - t
    rel = float(((10**new - 10**ref).abs() / 10**ref).max())
    print(
        f"{name}: n={fmap.width}, d={3 * 32 * 32}, {points} points: reference (full J, reverse mode) "
        f"{t_ref / points * 1e3:.0f} ms/point, nngeo (2 jvps) {t_new / points * 1e3:.0f} ms/point, "
        f"ratio {t_ref / t_new:.1f}x; max rel diff of sqrt det g_plane {rel:.1e}"
    )
    t = time.perf_counter()
    frame = image_plane(model, *xs, resolution)
    t_plane = time.perf_counter() - t
    print(
        f"{name}: image_plane {resolution}x{resolution} + anchors + line ({len(frame)} points), "
        f"pseudo_volume={frame.attrs['pseudo_volume']}: {t_plane:.1f} s "
        f"(reference path extrapolated: {t_ref / points * len(frame):.0f} s)"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--points", type=int, default=4, help="points of the resnet18 comparison")
    ap.add_argument("--cnn-points", type=int, default=24, help="points of the custom CNN comparison")
    ap.add_argument("--resolution", type=int, default=20, help="the timed image plane's grid")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = feature_map(custom_cnn(32), input_shape=(3, 32, 32)).device
    print(f"torch {torch.__version__}, {args.threads} threads, float64, device {device}")
    compare("custom CNN", custom_cnn(32), args.cnn_points, args.resolution)
    compare("resnet18", resnet18(), args.points, args.resolution)


if __name__ == "__main__":
    main()
