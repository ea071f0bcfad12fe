"""The pullback metric g(x) = J(x)ᵀJ(x)/n of a feature map and its volume element.

J = ∂Φ/∂x is computed for a whole chunk of points at once with ``torch.func`` (``vmap`` of
``jacfwd`` when the input dimension d is at most the feature width n, else of ``jacrev``), in
float64. MLPs on inputs of dimension ≤ 4 take the faster jet path of ``jets.py`` (same numbers).
log10 √det g comes from the 2×2 closed form or ``eigvalsh`` of g for d ≤ 3, and from the singular
values of J/√n for larger d, where squaring J's condition number would cost too much precision.

On a plane x(s, t) = x0 + s·e1 + t·e2 through input space only J_plane = [J e1, J e2] (n × 2) is
needed: ``plane_jacobians`` pushes the two tangents through the network in forward mode
(``torch.func.jvp``, vmapped over them; the points of a chunk are one batch), two tangent passes
per point instead of min(n, d) Jacobian-vector passes for the full J (512 backward passes per
point for a torchvision resnet18's pooled features). ``plane_volume_element`` gives
log10 √det(J_planeᵀJ_plane/n) per point.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import torch
from torch import nn
from torch.func import jacfwd, jacrev, jvp, vmap

from ..errors import NNGeoError
from ..progress import Progress
from .chunking import CHUNK_BYTES, JET_CHUNK_BYTES, chunk_size_for, iter_chunks
from .features import FeatureMap, feature_map
from .jets import metric_and_derivatives
from .model_copy import prepare_for_forward_mode
from .points import as_points, shape_hint

# floats per point one chunk of plane Jacobians holds per float of a forward pass: the primal and
# two tangents of every module output, with room for the ops' temporaries
PLANE_FLOATS_PER_ACTIVATION = 8


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


def plane_chunk_size(fmap: FeatureMap, budget: int = CHUNK_BYTES) -> int:
    """Points per chunk of ``plane_jacobians`` within the memory budget."""
    d = math.prod(fmap.input_shape)
    act = max(fmap.activation_numel, fmap.width + d)
    return chunk_size_for(PLANE_FLOATS_PER_ACTIVATION * act + 2 * fmap.width + 4 * d, budget, cap=1024)


def plane_jacobians(
    fmap: FeatureMap, x: torch.Tensor, basis: torch.Tensor, progress: Progress | None = None
) -> Iterator[tuple[slice, torch.Tensor, torch.Tensor]]:
    """Yield (slice, J_plane, Φ) with J_plane = [J e1, J e2] of shape (chunk, n, 2) and the
    features Φ (chunk, n) that the same pass computed, chunk by chunk.

    ``x``: points (N, *input_shape) on ``fmap.device``; ``basis``: (2, d), the plane's directions
    (any two, not necessarily orthonormal). Forward mode: one jvp per direction, vmapped over the
    two directions, each chunk of points one batch (the model copy is in eval mode, so batch norm
    uses its running statistics and the points do not interact). The copy's batch norms become
    their affine maps and its convs constant-weight convs (``prepare_for_forward_mode``: same
    values to rounding, far cheaper forward-mode AD; the copy then runs forward mode only).
    """
    prepare_for_forward_mode(fmap.model)
    n = fmap.width
    tangents = basis.to(device=x.device, dtype=x.dtype).reshape(2, 1, *fmap.input_shape)
    batched = vmap(fmap.fn)
    total = len(x)
    for sl in iter_chunks(total, plane_chunk_size(fmap)):
        if progress is not None:
            progress.check()
        xc = x[sl]

        def push(v: torch.Tensor, xc: torch.Tensor = xc) -> tuple[torch.Tensor, torch.Tensor]:
            value, tangent = jvp(batched, (xc,), (v.expand_as(xc),))[:2]
            return value, tangent

        phi, JE = vmap(push)(tangents)  # (2, chunk, n) each; the primal is the same for both
        yield sl, JE.reshape(2, len(xc), n).permute(1, 2, 0), phi[0].reshape(len(xc), n)
        if progress is not None:
            progress.update(sl.stop / total)


def log_area_of_map(fmap: FeatureMap, points, basis: torch.Tensor, progress: Progress | None = None) -> torch.Tensor:
    """log10 √det(J_planeᵀJ_plane/n) per point for a feature map (``plane_volume_element``)."""
    x = as_points(points, fmap.input_shape, fmap.device)
    out = torch.empty(len(x), dtype=torch.float64)
    for sl, JE, _ in plane_jacobians(fmap, x, basis, progress):
        out[sl] = log_volume_from_metric(JE.transpose(1, 2) @ JE / fmap.width, fmap.width).cpu()
    return out


def plane_volume_element(
    model: nn.Module,
    points,
    basis,
    *,
    layer: int | str = -1,
    device: str = "auto",
    progress: Progress | None = None,
) -> torch.Tensor:
    """log10 √det g_plane(x) per point, g_plane = J_planeᵀJ_plane/n the pullback metric of hidden
    layer ``layer`` restricted to the plane spanned by ``basis`` (2, d) (or (2, *input_shape)).

    The volume element of Zavatone-Veth et al. (arXiv 2301.11375) on a 2-D plane through input
    space, with (s, t) the coordinates along the two directions; −inf where J_plane has rank < 2.
    Two forward-mode passes per point (``plane_jacobians``), on CUDA when present.
    """
    fmap = feature_map(model, layer, input_shape=shape_hint(model, points), device=device)
    E = torch.as_tensor(basis, dtype=torch.float64)
    d = math.prod(fmap.input_shape)
    if E.numel() != 2 * d:
        raise NNGeoError(f"basis must hold two directions of {d} values each, got shape {tuple(E.shape)}")
    E = E.reshape(2, d)
    if not torch.isfinite(E).all():
        raise NNGeoError("basis contains NaN or infinite values")
    return log_area_of_map(fmap, points, E, progress)
