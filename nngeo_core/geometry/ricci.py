"""Ricci scalar of a metric g(x) on a small-dimensional input space.

g, its first derivatives ∂g (for the Christoffel symbols) and second derivatives ∂²g (for their
derivatives) come from nested ``jacfwd`` over the function x -> g(x), batched with ``vmap`` and
chunked. The curvature formulas are generic in the dimension d and work for any metric function,
not only pullbacks of networks (the tests use the round sphere).

Conventions: Γᵏᵢⱼ = ½ gᵏˡ(∂ᵢg_lj + ∂ⱼg_li − ∂ₗgᵢⱼ);
Rᵖ_σμν = ∂_μΓᵖ_νσ − ∂_νΓᵖ_μσ + Γᵖ_μλΓˡ_νσ − Γᵖ_νλΓˡ_μσ; Ric_σν = Rᵖ_σρν; R = g^σν Ric_σν.
For a surface R = 2K (K the Gaussian curvature), so the unit sphere has R = 2.

``convention="paper"`` returns 3R: the reference code of Zavatone-Veth et al. (arXiv 2301.11375)
reports three times the standard value because of a sign slip in its Christoffel terms; this
option reproduces their plots' numbers.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn
from torch.func import jacfwd, vmap

from ..errors import NNGeoError
from ..progress import Progress
from .chunking import JET_CHUNK_BYTES, chunk_size_for, iter_chunks
from .features import FeatureMap, feature_map
from .jets import metric_and_derivatives, multi_indices
from .points import as_points, shape_hint

CONVENTIONS = {"standard": 1.0, "paper": 3.0}


def _convention_factor(convention: str) -> float:
    if convention not in CONVENTIONS:
        raise NNGeoError(f"convention must be one of {sorted(CONVENTIONS)}, got {convention!r}")
    return CONVENTIONS[convention]


Metric = Callable[[torch.Tensor], torch.Tensor]  # one point (d,) -> g (d, d)


def metric_derivatives(metric_fn: Metric) -> Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """x -> (g, dg, ddg) with dg[i,j,k] = ∂ₖgᵢⱼ and ddg[i,j,k,l] = ∂ₗ∂ₖgᵢⱼ, by nested jacfwd."""

    def g_aux(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        g = metric_fn(x)
        return g, g

    def dg_aux(x: torch.Tensor) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        dg, g = jacfwd(g_aux, has_aux=True)(x)
        return dg, (dg, g)

    def all_three(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        ddg, (dg, g) = jacfwd(dg_aux, has_aux=True)(x)
        return g, dg, ddg

    return all_three


def ricci_from_derivatives(g: torch.Tensor, dg: torch.Tensor, ddg: torch.Tensor) -> torch.Tensor:
    """Ricci scalar for a batch: g (B,d,d), dg (B,d,d,d), ddg (B,d,d,d,d) as from ``metric_derivatives``.

    NaN where g is not invertible.
    """
    if g.shape[-1] == 2:  # closed form: much faster than a batched LAPACK inverse
        det = g[:, 0, 0] * g[:, 1, 1] - g[:, 0, 1] * g[:, 1, 0]
        adj = torch.stack([torch.stack([g[:, 1, 1], -g[:, 0, 1]], -1), torch.stack([-g[:, 1, 0], g[:, 0, 0]], -1)], -2)
        scale = torch.maximum(g[:, 0, 0].abs(), g[:, 1, 1].abs())
        info = (det <= (scale * scale) * 1e-13).to(torch.int64)  # singular to working precision
        ginv = adj / torch.where(info == 0, det, torch.ones_like(det))[:, None, None]
    else:
        ginv, info = torch.linalg.inv_ex(g)
    # D[b,k,i,j] = ∂ₖgᵢⱼ ; DD[b,m,k,i,j] = ∂ₘ∂ₖgᵢⱼ
    D = dg.permute(0, 3, 1, 2)
    DD = ddg.permute(0, 4, 3, 1, 2)
    # first-kind symbols Γ_l,ij = ½(∂ᵢg_lj + ∂ⱼg_li − ∂ₗgᵢⱼ) and their derivatives ∂ₘΓ_l,ij
    gam1 = 0.5 * (D.permute(0, 2, 1, 3) + D.permute(0, 2, 3, 1) - D)  # [b,l,i,j]
    dgam1 = 0.5 * (DD.permute(0, 1, 3, 2, 4) + DD.permute(0, 1, 3, 4, 2) - DD)  # [b,m,l,i,j]
    gam = torch.einsum("bkl,blij->bkij", ginv, gam1)
    # ∂ₘgᵏˡ = −gᵏᵃ ∂ₘg_ab gᵇˡ
    dginv = -torch.einsum("bka,bmac,bcl->bmkl", ginv, D, ginv)
    dgam = torch.einsum("bmkl,blij->bmkij", dginv, gam1) + torch.einsum("bkl,bmlij->bmkij", ginv, dgam1)
    # Ric_σν = ∂_ρΓᵖ_νσ − ∂_νΓᵖ_ρσ + Γᵖ_ρλΓˡ_νσ − Γᵖ_νλΓˡ_ρσ
    ric = (
        torch.einsum("brrns->bsn", dgam)
        - torch.einsum("bnrrs->bsn", dgam)
        + torch.einsum("brrl,blns->bsn", gam, gam)
        - torch.einsum("brnl,blrs->bsn", gam, gam)
    )
    R = torch.einsum("bsn,bsn->b", ginv, ric)
    bad = (info != 0) | ~torch.isfinite(R)
    return torch.where(bad, torch.full_like(R, math.nan), R)


def ricci_scalar_of_metric(
    metric_fn: Metric,
    points,
    *,
    convention: str = "standard",
    chunk_size: int = 1024,
    progress: Progress | None = None,
) -> torch.Tensor:
    """Ricci scalar of any metric function (one point (d,) -> (d, d)) at each of ``points`` (N, d)."""
    factor = _convention_factor(convention)
    x = torch.as_tensor(points)
    if not x.is_floating_point():
        x = x.to(torch.float64)
    if x.ndim != 2:
        raise NNGeoError(f"points must have shape (N, d), got {tuple(x.shape)}")
    batched = vmap(metric_derivatives(metric_fn))
    out = []
    for sl in iter_chunks(len(x), chunk_size):
        if progress is not None:
            progress.check()
        g, dg, ddg = batched(x[sl])
        out.append(ricci_from_derivatives(g, dg, ddg).detach().cpu())
        if progress is not None:
            progress.update(sl.stop / len(x))
    return torch.cat(out) * factor


def pullback_metric(phi: Callable[[torch.Tensor], torch.Tensor], n: int | None = None) -> Metric:
    """x -> J(x)ᵀJ(x)/n for a flat-input, flat-output feature function (n = output size by default)."""

    def metric(x: torch.Tensor) -> torch.Tensor:
        J = jacfwd(phi)(x)
        J = J.reshape(-1, x.numel())
        return J.T @ J / (n if n is not None else J.shape[0])

    return metric


def ricci_of_features(
    fmap: FeatureMap, x: torch.Tensor, convention: str, progress: Progress | None = None
) -> torch.Tensor:
    """Ricci scalar of the pullback metric of a feature map at points x (N, *input_shape)."""
    d = math.prod(fmap.input_shape)
    if d > 4:
        raise NNGeoError(f"the Ricci scalar is computed for inputs of dimension ≤ 4, this model takes {d}")
    if fmap.jet_modules is not None:
        return _ricci_by_jets(fmap.jet_modules, fmap.width, x.reshape(len(x), d), convention, progress)
    flat_shape = fmap.input_shape

    def phi(v: torch.Tensor) -> torch.Tensor:
        return fmap.fn(v.reshape(flat_shape))

    # forward-mode nesting multiplies the activations by about (2d)^3 per point
    size = chunk_size_for((2 * d) ** 3 * 8 * (fmap.width + d), cap=2048)
    return ricci_scalar_of_metric(
        pullback_metric(phi, fmap.width),
        x.reshape(len(x), d),
        convention=convention,
        chunk_size=size,
        progress=progress,
    )


def _ricci_by_jets(
    modules: list[nn.Module], width: int, x: torch.Tensor, convention: str, progress: Progress | None = None
) -> torch.Tensor:
    factor = _convention_factor(convention)
    d = x.shape[1]
    n_comp = len(multi_indices(d, 3)) + 5
    size = chunk_size_for(n_comp * (width + d), budget_bytes=JET_CHUNK_BYTES)
    out = []
    for sl in iter_chunks(len(x), size):
        if progress is not None:
            progress.check()
        g, dg, ddg = metric_and_derivatives(modules, x[sl], width, 3)
        out.append(ricci_from_derivatives(g, dg, ddg).detach().cpu())
        if progress is not None:
            progress.update(sl.stop / len(x))
    return torch.cat(out) * factor


def ricci_scalar(
    model: nn.Module,
    points,
    *,
    layer: int | str = -1,
    convention: str = "standard",
    device: str = "auto",
    progress: Progress | None = None,
) -> torch.Tensor:
    """Ricci scalar R of the pullback metric g = JᵀJ/n of hidden layer ``layer`` at each point.

    Meant for 2-D inputs (works up to d = 4). ``convention="standard"`` gives R = 2K for surfaces;
    ``"paper"`` gives 3R as reported by the reference code of arXiv 2301.11375. Returns a float64
    CPU tensor of shape (N,), NaN where g is singular.
    """
    _convention_factor(convention)
    fmap = feature_map(model, layer, input_shape=shape_hint(model, points), device=device)
    x = as_points(points, fmap.input_shape, fmap.device)
    return ricci_of_features(fmap, x, convention, progress)
