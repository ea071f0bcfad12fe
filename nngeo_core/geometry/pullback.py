"""The pullback metric g(x) = J(x)ᵀJ(x)/n of a feature map and its volume element.

J = ∂Φ/∂x is computed for a whole chunk of points at once with ``torch.func`` (``vmap`` of
``jacfwd`` when the input dimension d is at most the feature width n, else of ``jacrev``), in
float64. MLPs on inputs of dimension ≤ 4 take the faster jet path of ``jets.py`` (same numbers).
log10 √det g comes from the 2×2 closed form or ``eigvalsh`` of g for d ≤ 3, and from the singular
values of J/√n for larger d, where squaring J's condition number would cost too much precision.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.func import jacfwd, jacrev, vmap

from ..errors import NNGeoError
from ..progress import Progress
from .features import FeatureMap, feature_map
from .jets import metric_and_derivatives

# bytes of working memory one chunk of points may use (Jacobians and their forward passes)
CHUNK_BYTES = 2**28
# the jet path runs few, large elementwise passes: big chunks amortise per-op (thread) overhead
JET_CHUNK_BYTES = 2**27


def chunk_size_for(per_point_floats: int, budget_bytes: int = CHUNK_BYTES, cap: int = 8192) -> int:
    return int(max(1, min(cap, budget_bytes // max(1, 8 * per_point_floats))))


def iter_chunks(n: int, size: int) -> Iterator[slice]:
    for start in range(0, n, size):
        yield slice(start, min(n, start + size))


def as_points(points, input_shape: tuple[int, ...], device: torch.device) -> torch.Tensor:
    """Points as a float64 tensor of shape (N, *input_shape); flat (N, d) input is reshaped."""
    x = torch.tensor(points) if isinstance(points, np.ndarray) else torch.as_tensor(points)  # copy read-only arrays
    x = x.to(device=device, dtype=torch.float64)
    d = math.prod(input_shape)
    if x.ndim == 1 and x.numel() == d:
        x = x.unsqueeze(0)
    if x.shape[1:] != torch.Size(input_shape):
        if x.ndim == 2 and x.shape[1] == d:
            x = x.reshape(len(x), *input_shape)
        else:
            raise NNGeoError(f"points have shape {tuple(x.shape)}, the model takes inputs of shape {input_shape}")
    if len(x) == 0:
        raise NNGeoError("no points given")
    if not torch.isfinite(x).all():
        raise NNGeoError("the points contain NaN or infinite values")
    return x


def jacobian_fn(phi: Callable, d: int, n: int, vectors_at_once: int | None = None) -> Callable:
    """Per-point Jacobian (n, d) of a flat-output function: forward mode when d <= n, else reverse.

    ``vectors_at_once`` bounds how many tangents (cotangents) one pass pushes through together.
    """
    if d <= n:
        inner = jacfwd(phi)  # d ≤ n tangents: the caller bounds memory by chunking points
    else:
        inner = jacrev(phi, chunk_size=vectors_at_once if vectors_at_once and vectors_at_once < n else None)

    def jac(x: torch.Tensor) -> torch.Tensor:
        return inner(x).reshape(n, d)

    return jac


def plan_jacobian_memory(d: int, n: int, activation_numel: int, budget: int = CHUNK_BYTES) -> tuple[int, int]:
    """(points per chunk, vectors at once) so one chunk of Jacobians fits the memory budget."""
    if 8 * n * d > 4 * budget:
        raise NNGeoError(
            f"the Jacobian of this layer has {n} × {d} entries per point, too many; "
            "choose a later (narrower) hidden layer"
        )
    act = max(activation_numel, n + d)
    vectors = min(d, n)
    room = max(budget // 8 - n * d, 3 * act)
    vectors_at_once = int(max(1, min(vectors, room // (3 * act))))
    points = chunk_size_for(3 * act * vectors_at_once + n * d, budget)
    return points, vectors_at_once


def feature_jacobians(
    fmap: FeatureMap, x: torch.Tensor, progress: Progress | None = None
) -> Iterator[tuple[slice, torch.Tensor]]:
    """Yield (slice, J) with J = ∂Φ/∂x of shape (chunk, n, d), chunk by chunk (torch.func path)."""
    d = math.prod(fmap.input_shape)
    n = fmap.width
    size, vectors_at_once = plan_jacobian_memory(d, n, fmap.activation_numel)
    batched = vmap(jacobian_fn(fmap.fn, d, n, vectors_at_once))
    total = len(x)
    for sl in iter_chunks(total, size):
        if progress is not None:
            progress.check()
        yield sl, batched(x[sl])
        if progress is not None:
            progress.update(sl.stop / total)


def log10_singular_values(J: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """log10 of the singular values of J/√n, descending (−inf beyond the rank), and the rank.

    Rank tolerance: s > s_max · max(n, d) · eps (NumPy's matrix_rank rule). The SVD runs on the
    tall orientation (Jᵀ when n < d): the same singular values, about twice as fast on CPU. The
    Gram matrix J Jᵀ would be faster still but squares κ(J) (up to 10⁸ for trained ReLU nets), and
    its rank and small singular values then differ from the SVD's.
    """
    s = torch.linalg.svdvals(J.mT if J.shape[-2] < J.shape[-1] else J) / math.sqrt(n)
    tol = s[..., :1] * max(J.shape[-2:]) * torch.finfo(s.dtype).eps
    keep = s > tol
    log_s = torch.where(keep, torch.log10(torch.where(keep, s, torch.ones_like(s))), torch.full_like(s, -math.inf))
    return log_s, keep.sum(-1)


def log_volume_from_metric(g: torch.Tensor, n: int) -> torch.Tensor:
    """½ log10 det g for a batch of small SPD metrics (N, d, d); −inf where g is numerically singular.

    Forming g squares J's condition number, so eigenvalues below λ_max · 64 · max(n, d) · eps
    are rounding noise and count as zero: the volume is resolved while κ(J) ≲ 10⁶.
    """
    d = g.shape[-1]
    eps = torch.finfo(g.dtype).eps
    if d == 2:  # closed form, several times faster than a batched eigvalsh
        a, b, c = g[:, 0, 0], g[:, 0, 1], g[:, 1, 1]
        lam_max = 0.5 * (a + c) + torch.sqrt((0.5 * (a - c)) ** 2 + b * b)
        det = a * c - b * b
        lam_min = det / torch.where(lam_max > 0, lam_max, torch.ones_like(lam_max))
    else:
        lam = torch.linalg.eigvalsh(g)
        lam_max, lam_min = lam[:, -1], lam[:, 0]
        det = torch.prod(lam, dim=-1)
    ok = (lam_max > 0) & (lam_min > lam_max * 64 * max(n, d) * eps)
    out = 0.5 * torch.log10(torch.where(ok, det, torch.ones_like(det)))
    return torch.where(ok, out, torch.full_like(out, -math.inf))


def log_volume_from_jacobian(J: torch.Tensor, n: int) -> torch.Tensor:
    """log10 √det(JᵀJ/n) per point, J of shape (N, n, d); −inf where rank J < d."""
    d = J.shape[-1]
    if n < d:
        return torch.full(J.shape[:-2], -math.inf, dtype=J.dtype, device=J.device)
    if d <= 3:  # the small Gram matrix is much cheaper than a batched SVD
        return log_volume_from_metric(torch.einsum("bni,bnj->bij", J, J) / n, n)
    log_s, _ = log10_singular_values(J, n)
    return log_s.sum(-1)


def volume_element(
    model: nn.Module, points, *, layer: int | str = -1, device: str = "auto", progress: Progress | None = None
) -> torch.Tensor:
    """log10 √det g(x) of the pullback metric g = JᵀJ/n of hidden layer ``layer``, per point.

    ``points``: (N, *input_shape) or flat (N, d). Returns a float64 CPU tensor of shape (N,);
    −inf where g is singular (e.g. a ReLU region where fewer than d units are active, or n < d).
    """
    fmap = feature_map(model, layer, input_shape=_shape_hint(model, points), device=device)
    return _log_volume(fmap, points, progress)


def _shape_hint(model: nn.Module, points) -> tuple[int, ...] | None:
    if getattr(model, "input_shape", None) is not None:
        return None
    pts = torch.as_tensor(points)
    return tuple(pts.shape[1:]) if pts.ndim >= 2 else (int(pts.numel()),)


def _log_volume(fmap: FeatureMap, points, progress: Progress | None = None) -> torch.Tensor:
    x = as_points(points, fmap.input_shape, fmap.device)
    out = torch.empty(len(x), dtype=torch.float64)
    if fmap.jet_modules is not None:
        flat = x.reshape(len(x), -1)
        size = chunk_size_for(8 * (fmap.width + flat.shape[1]), budget_bytes=JET_CHUNK_BYTES)
        for sl in iter_chunks(len(x), size):
            if progress is not None:
                progress.check()
            g, _, _ = metric_and_derivatives(fmap.jet_modules, flat[sl], fmap.width, 1)
            out[sl] = log_volume_from_metric(g, fmap.width).cpu()
            if progress is not None:
                progress.update(sl.stop / len(x))
        return out
    for sl, J in feature_jacobians(fmap, x, progress):
        out[sl] = log_volume_from_jacobian(J, fmap.width).cpu()
    return out


def log_volume_of_features(phi: Callable[[torch.Tensor], torch.Tensor], points) -> torch.Tensor:
    """log10 √det(JᵀJ/n) for any feature function ``phi`` (one flat input -> flat output of n)."""
    x = torch.as_tensor(points, dtype=torch.float64)
    n = int(phi(x[0]).numel())
    d = int(x[0].numel())
    jac = vmap(jacobian_fn(phi, d, n))
    size = chunk_size_for(4 * n * d + 64 * (n + d))
    return torch.cat([log_volume_from_jacobian(jac(x[sl]), n) for sl in iter_chunks(len(x), size)])


# ---------------------------------------------------------------- predictions on a set of points


def predictions(work_model: nn.Module, x: torch.Tensor, batch: int = 4096) -> dict[str, np.ndarray]:
    """Predicted class, softmax entropy (nats) and probability margins of a float64 model copy."""
    preds, ent, margin, pmax = [], [], [], []
    with torch.no_grad():
        for sl in iter_chunks(len(x), batch):
            logits = work_model(x[sl]).reshape(len(x[sl]), -1)
            if logits.shape[1] == 1:  # one logit: a binary classifier with p(1) = sigmoid
                logits = torch.cat([torch.zeros_like(logits), logits], dim=1)
            logp = torch.log_softmax(logits, dim=1)
            p = logp.exp()
            top2 = torch.topk(p, k=min(2, p.shape[1]), dim=1).values
            preds.append(p.argmax(1))
            ent.append(-(p * logp).sum(1))
            pmax.append(top2[:, 0])
            if p.shape[1] == 2:
                margin.append(p[:, 1] - p[:, 0])  # signed: its zero contour is the boundary
            elif p.shape[1] > 2:
                margin.append(top2[:, 0] - top2[:, 1])  # ≥ 0, zero on a boundary
            else:
                margin.append(torch.ones_like(p[:, 0]))
    cat = lambda xs: torch.cat(xs).cpu().numpy()  # noqa: E731
    return {"pred": cat(preds).astype(np.int64), "entropy": cat(ent), "margin": cat(margin), "p_max": cat(pmax)}


# ---------------------------------------------------------------- 2-D heatmaps


def parse_bounds(bounds) -> tuple[float, float, float, float]:
    """(xmin, xmax, ymin, ymax) from that tuple, ((xmin, xmax), (ymin, ymax)) or a dict."""
    try:
        if isinstance(bounds, dict):
            b = (bounds["xmin"], bounds["xmax"], bounds["ymin"], bounds["ymax"])
        else:
            flat = np.asarray(bounds, dtype=float).reshape(-1)
            if flat.size != 4:
                raise ValueError
            b = tuple(flat)
        b = tuple(float(v) for v in b)
    except (KeyError, TypeError, ValueError):
        raise NNGeoError(
            f"bounds must be (xmin, xmax, ymin, ymax) or ((xmin, xmax), (ymin, ymax)), got {bounds!r}"
        ) from None
    if not all(math.isfinite(v) for v in b) or b[0] >= b[1] or b[2] >= b[3]:
        raise NNGeoError(f"bounds must be finite with xmin < xmax and ymin < ymax, got {b}")
    return b  # type: ignore[return-value]


def _check_resolution(resolution) -> int:
    if isinstance(resolution, bool) or not isinstance(resolution, (int, np.integer)) or not 2 <= resolution <= 2000:
        raise NNGeoError(f"resolution must be an integer from 2 to 2000, got {resolution!r}")
    return int(resolution)


def grid_points(bounds, resolution: int) -> tuple[np.ndarray, np.ndarray]:
    xmin, xmax, ymin, ymax = parse_bounds(bounds)
    res = _check_resolution(resolution)
    xs = np.linspace(xmin, xmax, res)
    ys = np.linspace(ymin, ymax, res)
    gx, gy = np.meshgrid(xs, ys, indexing="xy")  # row-major: y varies slowest
    return gx.reshape(-1), gy.reshape(-1)


def grid_heatmap(
    model: nn.Module,
    bounds,
    resolution: int = 100,
    *,
    layer: int | str = -1,
    ricci: bool = True,
    convention: str = "standard",
    device: str = "auto",
    progress: Progress | None = None,
) -> pd.DataFrame:
    """Geometry of a 2-input model on a resolution × resolution grid.

    Columns: x, y, log_volume (log10 √det g, −inf where g is singular), ricci (Ricci scalar R,
    NaN where g is singular), pred (predicted class), margin (binary: p1 − p0, so the contour at
    0 is the decision boundary; more classes: p_top1 − p_top2, zero on a boundary), p_max,
    entropy (nats).
    """
    from .ricci import _ricci_of_features  # local: ricci imports this module

    progress = progress or Progress()
    gx, gy = grid_points(bounds, resolution)
    fmap = feature_map(model, layer, input_shape=_shape_hint(model, np.zeros((1, 2))), device=device)
    if fmap.input_shape != (2,):
        raise NNGeoError(
            f"grid_heatmap needs a model with 2 inputs, this one takes {fmap.input_shape}; "
            "use image_plane for image models"
        )
    x = torch.as_tensor(np.stack([gx, gy], 1), dtype=torch.float64, device=fmap.device)
    volume_part = progress.sub(0.0, 0.25 if ricci else 0.95)
    logvol = _log_volume(fmap, x, volume_part)
    frame = {"x": gx, "y": gy, "log_volume": logvol.numpy()}
    if ricci:
        frame["ricci"] = _ricci_of_features(fmap, x, convention, progress.sub(0.25, 0.95)).numpy()
    pred = predictions(fmap.model, x)
    frame.update(pred=pred["pred"], margin=pred["margin"], p_max=pred["p_max"], entropy=pred["entropy"])
    progress.update(1.0, "done")
    return pd.DataFrame(frame)


def heatmaps_over_training(
    models_by_epoch: dict[int, nn.Module],
    bounds,
    resolution: int = 60,
    *,
    layer: int | str = -1,
    ricci: bool = True,
    convention: str = "standard",
    device: str = "auto",
    progress: Progress | None = None,
) -> pd.DataFrame:
    """``grid_heatmap`` of each training snapshot, stacked with an ``epoch`` column (for animation)."""
    if not models_by_epoch:
        raise NNGeoError("no training snapshots given")
    progress = progress or Progress()
    epochs = sorted(models_by_epoch)
    frames = []
    for i, epoch in enumerate(epochs):
        sub = progress.sub(i / len(epochs), (i + 1) / len(epochs))
        frame = grid_heatmap(
            models_by_epoch[epoch],
            bounds,
            resolution,
            layer=layer,
            ricci=ricci,
            convention=convention,
            device=device,
            progress=sub,
        )
        frame.insert(0, "epoch", int(epoch))
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)
