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

import torch
from torch import nn
from torch.func import jacfwd, jacrev, vmap

from ..errors import NNGeoError
from ..progress import Progress
from .chunking import CHUNK_BYTES, JET_CHUNK_BYTES, chunk_size_for, iter_chunks
from .features import FeatureMap, feature_map
from .jets import metric_and_derivatives
from .points import as_points, shape_hint


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
    fmap = feature_map(model, layer, input_shape=shape_hint(model, points), device=device)
    return log_volume_of_map(fmap, points, progress)


def log_volume_of_map(fmap: FeatureMap, points, progress: Progress | None = None) -> torch.Tensor:
    """log10 √det g per point for a feature map (``volume_element`` of a model)."""
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
