"""Geometry of image models on a plane through three inputs and on a line between two.

For inputs of dimension d > n the metric g = JᵀJ/n on input space is singular, so the quantity
plotted by Zavatone-Veth et al. (arXiv 2301.11375) is the log pseudo-volume: the sum of the top-k
log10 singular values of J/√n with k = rank J (numerical rank, NumPy's tolerance, reported in the
``rank`` column). The plane's own area element (the metric restricted to the plane, a 2 × 2
matrix) is reported too as ``log_area``. The segment from x1 to x2 lies in the plane; the plane's
table carries it too, evaluated at points of the segment itself (not read off the grid).

The plane has its origin at the three inputs' centroid and an orthonormal basis (e1, e2) from
Gram–Schmidt on x1 − c and x2 − c, so the three inputs sit at the vertices of a triangle;
coordinates (u, v) are Euclidean distances in input space.

Cost. The pseudo-volume needs the whole Jacobian J (n × d): min(n, d) Jacobian-vector passes per
point (512 backward passes of a torchvision resnet18 for its pooled features: minutes for one
plane on CPU), while the plane's area element needs only J_plane = [J e1, J e2], two forward-mode
passes (``pullback.plane_jacobians``). ``pseudo_volume=None`` (the default) computes the
pseudo-volume only while one point's full Jacobian costs at most ``PSEUDO_VOLUME_MACS``
multiply-adds (min(n, d) × the forward pass up to the layer: the zoo's MLPs and LeNet-5, a small
custom CNN on 16×16 images; not a torchvision net, nor that CNN at 3×32×32, 2.6·10⁸), and
otherwise reports ``log_volume`` as NaN and no ``rank`` column (not computed), with the plane's
volume element ``log_area`` from the forward-mode path; ``True`` / ``False``
force either. ``frame.attrs["pseudo_volume"]`` says which was done.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch
from torch import nn

from ..errors import NNGeoError
from ..progress import Progress
from .checks import check_int
from .features import feature_map
from .points import input_shape_of
from .predictions import predictions
from .pullback import feature_jacobians, log10_singular_values, log_volume_from_metric, plane_jacobians

# most multiply-adds one point's full Jacobian may cost for the default to compute the pseudo-volume
PSEUDO_VOLUME_MACS = 10**8


def full_jacobian_macs(width: int, input_dim: int, forward_macs: int) -> int:
    """Multiply-adds of one point's full Jacobian: min(n, d) passes of the forward pass's cost."""
    return min(width, input_dim) * max(1, forward_macs)


def _flat_inputs(model: nn.Module, xs: list, names: list[str]) -> tuple[torch.Tensor, tuple[int, ...]]:
    first = torch.as_tensor(xs[0])
    shape = input_shape_of(model, first.unsqueeze(0))
    d = math.prod(shape)
    flat = []
    for x, name in zip(xs, names, strict=False):
        t = torch.as_tensor(x, dtype=torch.float64).reshape(-1)
        if t.numel() != d:
            raise NNGeoError(f"{name} has {t.numel()} values, the model takes inputs of shape {shape}")
        if not torch.isfinite(t).all():
            raise NNGeoError(f"{name} contains NaN or infinite values")
        flat.append(t)
    return torch.stack(flat), shape


def _geometry_at(
    model: nn.Module,
    points: torch.Tensor,
    shape: tuple[int, ...],
    layer,
    device,
    plane_basis: torch.Tensor | None,
    progress: Progress,
    pseudo_volume: bool | None = None,
) -> tuple[dict[str, np.ndarray], bool]:
    """(columns, whether the pseudo-volume was computed): log pseudo-volume and rank (NaN and no
    rank when not computed), log area on the plane, prediction and entropy at flat points."""
    fmap = feature_map(model, layer, input_shape=shape, device=device)
    x = points.to(fmap.device).reshape(len(points), *shape)
    n = fmap.width
    if pseudo_volume is None:
        pseudo_volume = full_jacobian_macs(n, math.prod(shape), fmap.macs) <= PSEUDO_VOLUME_MACS
    if not pseudo_volume:
        out = {"log_volume": np.full(len(x), np.nan)}
        pred_input, pred_model = x, fmap.model
        if plane_basis is not None:
            area = torch.empty(len(x), dtype=torch.float64)
            phi = torch.empty(len(x), n, dtype=torch.float64, device=x.device)
            for sl, JE, values in plane_jacobians(fmap, x, plane_basis, progress.sub(0.0, 0.95)):
                area[sl] = log_volume_from_metric(JE.transpose(1, 2) @ JE / n, n).cpu()
                phi[sl] = values
            out["log_area"] = area.numpy()
            if fmap.head is not None:  # a zoo model: its head on the features the jvps computed
                pred_input, pred_model = phi.reshape(len(x), *fmap.feature_shape), fmap.head
        pred = predictions(pred_model, pred_input)
        out.update(pred=pred["pred"], p_max=pred["p_max"], entropy=pred["entropy"])
        return out, False
    logvol = torch.empty(len(x), dtype=torch.float64)
    rank = torch.empty(len(x), dtype=torch.int64)
    area = torch.empty(len(x), dtype=torch.float64)
    E = plane_basis.to(fmap.device) if plane_basis is not None else None
    for sl, J in feature_jacobians(fmap, x, progress.sub(0.0, 0.95)):
        log_s, k = log10_singular_values(J, n)
        logvol[sl] = torch.where(
            k > 0, torch.nan_to_num(log_s, neginf=0.0).sum(-1), torch.full_like(k, -math.inf, dtype=torch.float64)
        ).cpu()
        rank[sl] = k.cpu()
        if E is not None:
            JE = J @ E.T  # (chunk, n, 2): the Jacobian along the plane
            area[sl] = log_volume_from_metric(JE.transpose(1, 2) @ JE / n, n).cpu()
    out = {"log_volume": logvol.numpy(), "rank": rank.numpy()}
    if E is not None:
        out["log_area"] = area.numpy()
    pred = predictions(fmap.model, x)
    out.update(pred=pred["pred"], p_max=pred["p_max"], entropy=pred["entropy"])
    return out, True


def plane_frame(x1, x2, x3) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """(centroid (d,), orthonormal basis (2, d), anchor coordinates (3, 2)) of the plane through 3 points."""
    X = torch.stack([torch.as_tensor(v, dtype=torch.float64).reshape(-1) for v in (x1, x2, x3)])
    c = X.mean(0)
    a = X[0] - c
    b = X[1] - c
    scale = max(float(a.norm()), float(b.norm()), float((X[2] - c).norm()))
    if scale == 0 or a.norm() <= 1e-12 * scale:
        raise NNGeoError("the three inputs must be distinct to span a plane")
    e1 = a / a.norm()
    b = b - (b @ e1) * e1
    if b.norm() <= 1e-9 * scale:
        raise NNGeoError("the three inputs lie on one line; pick inputs that span a plane")
    e2 = b / b.norm()
    E = torch.stack([e1, e2])
    anchors = ((X - c) @ E.T).numpy()
    return c, E, anchors


def segment(x1: torch.Tensor, x2: torch.Tensor, n_points: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(t, points): x(t) = (1 − t)·x1 + t·x2 at n_points values of t from 0 to 1 (flat float64 inputs)."""
    t = torch.linspace(0.0, 1.0, int(n_points), dtype=torch.float64)
    return t, (1 - t)[:, None] * x1 + t[:, None] * x2


def image_plane(
    model: nn.Module,
    x1,
    x2,
    x3,
    resolution: int = 40,
    *,
    layer: int | str = -1,
    extent: float = 1.5,
    line_points: int | None = None,
    pseudo_volume: bool | None = None,
    device: str = "auto",
    progress: Progress | None = None,
) -> pd.DataFrame:
    """Geometry on the plane through inputs x1, x2, x3 (each of the model's input shape or flat).

    The grid is resolution × resolution over [−r, r]² with r = ``extent`` × the largest distance
    of an input from the centroid. Columns: u, v (plane coordinates), anchor (−1 for grid points,
    0/1/2 for the rows of x1/x2/x3 themselves, appended after the grid, −2 for the points of the
    segment from x1 to x2, appended last), t (position on that segment, 0 at x1, 1 at x2; NaN on
    other rows), log_volume (Σ top-k log10 singular values of J/√n, k = rank), rank, log_area
    (log10 area element of the plane: log10 √det(J_planeᵀJ_plane/n), the volume element of the
    plane's own 2 × 2 pullback metric), pred, p_max, entropy (nats). ``line_points``: points on the
    segment (default 2·resolution + 1; 0 for none), computed like ``image_line``.
    ``pseudo_volume``: see the module docstring (None: only when the full Jacobian is cheap; else
    log_volume is NaN, ``rank`` absent, and log_area comes from two forward-mode passes per point).
    """
    progress = progress or Progress()
    resolution = check_int("resolution", resolution, 2, 500)
    n_line = 2 * resolution + 1 if line_points is None else check_int("line_points", line_points, 0, 100_000)
    if n_line == 1:
        raise NNGeoError("line_points must be 0 (no line) or at least 2")
    if not (isinstance(extent, (int, float)) and math.isfinite(extent) and extent > 0):
        raise NNGeoError(f"extent must be a positive number, got {extent!r}")
    X, shape = _flat_inputs(model, [x1, x2, x3], ["x1", "x2", "x3"])
    c, E, anchors = plane_frame(*X)
    r = float(extent) * float(np.linalg.norm(anchors, axis=1).max())
    ticks = np.linspace(-r, r, resolution)
    gu, gv = np.meshgrid(ticks, ticks, indexing="xy")
    grid_uv = np.stack([gu.reshape(-1), gv.reshape(-1)], 1)
    t, line = segment(X[0], X[1], n_line)
    line_uv = anchors[0] + t.numpy()[:, None] * (anchors[1] - anchors[0])
    # the anchors and the segment's points exactly, not their round trip through the basis
    points = torch.cat([c + torch.as_tensor(grid_uv) @ E, X, line])
    uv = np.concatenate([grid_uv, anchors, line_uv])
    cols, full = _geometry_at(model, points, shape, layer, device, E, progress, pseudo_volume)
    anchor = np.r_[np.full(len(grid_uv), -1), [0, 1, 2], np.full(n_line, -2)].astype(np.int64)
    t_col = np.r_[np.full(len(grid_uv) + 3, np.nan), t.numpy()]
    frame = pd.DataFrame({"u": uv[:, 0], "v": uv[:, 1], "anchor": anchor, "t": t_col, **cols})
    frame.attrs["pseudo_volume"] = full
    progress.update(1.0, "done")
    return frame


def image_line(
    model: nn.Module,
    x1,
    x2,
    n_points: int = 50,
    *,
    layer: int | str = -1,
    pseudo_volume: bool | None = None,
    device: str = "auto",
    progress: Progress | None = None,
) -> pd.DataFrame:
    """Geometry on the segment x(t) = (1 − t)·x1 + t·x2, t in [0, 1].

    Columns: t, distance (Euclidean, from x1), log_volume, rank, pred, p_max, entropy;
    ``pseudo_volume`` as for ``image_plane`` (not computed: log_volume NaN, no rank).
    """
    progress = progress or Progress()
    n_points = check_int("n_points", n_points, 2, 100_000)
    X, shape = _flat_inputs(model, [x1, x2], ["x1", "x2"])
    if torch.equal(X[0], X[1]):
        raise NNGeoError("x1 and x2 are the same input; pick two different inputs")
    t, points = segment(X[0], X[1], n_points)
    cols, full = _geometry_at(model, points, shape, layer, device, None, progress, pseudo_volume)
    frame = pd.DataFrame({"t": t.numpy(), "distance": (t * (X[1] - X[0]).norm()).numpy(), **cols})
    frame.attrs["pseudo_volume"] = full
    progress.update(1.0, "done")
    return frame
